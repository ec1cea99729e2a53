//! Each actor alone, with recording probe actors for its neighbours and the real things where they
//! run here (the emulator's S3 endpoint, a real HTTP listener).

use actix::prelude::*;
use adaptive_batching_extension::actors::batch::{BatchActor, BatchSettings, ShipperHandles};
use adaptive_batching_extension::actors::messages::{
    AwaitRuntimeDone, Closed, Flush, IngestRecords, InvokeStarted, Pending, Restored, ShipBatch,
    Shutdown,
};
use adaptive_batching_extension::actors::receiver::{self, ReceiverState};
use adaptive_batching_extension::actors::shipper::{ShipperActor, ShipperSettings};
use adaptive_batching_extension::config::{ShipAt, Thresholds};
use adaptive_batching_extension::encode::Compression;
use adaptive_batching_extension::lambda::records::{Kind, Record};
use adaptive_batching_extension::object_key::KeyTemplate;
use adaptive_batching_extension::sealed::SealedObject;
use adaptive_batching_extension::sink::S3Sink;
use adaptive_batching_extension::spill::SpillDir;
use adaptive_batching_extension::stats::Counters;
use bytes::Bytes;
use lambda_emulator::s3::{Faults, S3Endpoint};
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn log() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

async fn sink_for(ep: &S3Endpoint) -> S3Sink {
    S3Sink::new(&crate::support::sdk_config(ep), "logs", true, true)
}

/// In memory up to 1 MiB, spilling to `spill` when given.
/// 1 MiB in memory, objects up to 512 KiB.
fn settings() -> ShipperSettings {
    ShipperSettings::new(1024 * 1024, 512 * 1024, std::path::PathBuf::new())
}

/// A spill directory of 1 MiB in `dir`.
fn spill(dir: Option<&std::path::Path>) -> Option<SpillDir> {
    dir.map(|d| SpillDir::open(d, 1024 * 1024, false).unwrap())
}

/// A sealed batch of one record.
fn object(key: impl Into<String>, body: impl Into<Bytes>) -> SealedObject {
    let body: Bytes = body.into();
    SealedObject {
        key: key.into(),
        raw_bytes: body.len() as u64,
        body,
        records: 1,
        meta: Default::default(),
    }
}

/// Asks `shipper` to flush within `secs`; `last` as at shutdown.
async fn flush(shipper: &Addr<ShipperActor>, secs: u64, last: bool) -> Pending {
    shipper
        .send(Flush {
            deadline: Instant::now() + Duration::from_secs(secs),
            last,
        })
        .await
        .unwrap()
}

/// Records every message it receives, in order.
#[derive(Default, Clone)]
struct Probe {
    seen: Arc<Mutex<Vec<String>>>,
    ships: Arc<Mutex<Vec<SealedObject>>>,
    ingested: Arc<Mutex<Vec<Record>>>,
}

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<ShipBatch> for Probe {
    type Result = ();
    fn handle(&mut self, msg: ShipBatch, _: &mut Context<Self>) {
        self.seen.lock().unwrap().push("ship".into());
        self.ships.lock().unwrap().push(msg.object);
    }
}

impl Handler<Flush> for Probe {
    type Result = Pending;
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Pending {
        self.seen.lock().unwrap().push("flush".into());
        Pending::default()
    }
}

impl Handler<Restored> for Probe {
    type Result = ();
    fn handle(&mut self, _: Restored, _: &mut Context<Self>) {
        self.seen.lock().unwrap().push("restored".into());
    }
}

impl Handler<IngestRecords> for Probe {
    type Result = Result<(), Closed>;
    fn handle(&mut self, msg: IngestRecords, _: &mut Context<Self>) -> Result<(), Closed> {
        self.ingested.lock().unwrap().extend(msg.records);
        Ok(())
    }
}

fn record(text: &'static str) -> Record {
    Record {
        raw: Bytes::from_static(text.as_bytes()),
        kind: Kind::Other,
        request_id: None,
    }
}

fn batch_actor(probe: &Addr<Probe>, bytes: u64, invokes: u64) -> Addr<BatchActor> {
    batch_actor_shipping_at(probe, bytes, invokes, ShipAt::NextInvoke)
}

fn batch_actor_shipping_at(
    probe: &Addr<Probe>,
    bytes: u64,
    invokes: u64,
    ship_at: ShipAt,
) -> Addr<BatchActor> {
    let thresholds = Thresholds {
        bytes: NonZeroU64::new(bytes).unwrap(),
        invokes: NonZeroU64::new(invokes).unwrap(),
        elapsed: Duration::from_secs(3600),
    };
    let settings = BatchSettings {
        thresholds,
        max_object_bytes: 1 << 20,
        max_delay: thresholds.elapsed,
        format: Default::default(),
        compression: Compression::None,
        key_template: KeyTemplate::default_with(".log"),
        function_version: "$LATEST".into(),
        function_name: "fn".into(),
        platform_records: true,
        managed_instances: false,
        ship_at,
        tick: adaptive_batching_extension::config::tick(thresholds.elapsed, false),
        rules: Default::default(),
    };
    let handles = ShipperHandles {
        ship: probe.clone().recipient(),
        flush: probe.clone().recipient(),
        restored: probe.clone().recipient(),
    };
    BatchActor::new(
        settings,
        uuid::Uuid::nil(),
        handles,
        Arc::new(Counters::default()),
        log(),
    )
    .start()
}

#[actix_rt::test]
async fn shipper_writes_to_s3_and_keeps_a_failed_batch_under_its_key() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let counters = Arc::new(Counters::default());
    let shipper = ShipperActor::new(
        sink_for(&ep).await,
        &settings(),
        spill(None),
        counters.clone(),
        log(),
    )
    .start();
    let obj = object("k/one.log", Bytes::from_static(b"{\"a\":1}\n"));
    ep.set_faults(Faults {
        fail_next_puts: 3,
        ..Faults::default()
    });
    shipper
        .send(ShipBatch {
            object: obj.clone(),
        })
        .await
        .unwrap();
    // A flush (as `next` with NEXT_WAIT_MS) is answered at the first failure: S3 failing never
    // holds an invoke.
    let pending = flush(&shipper, 5, false).await;
    assert_eq!(
        pending,
        Pending {
            batches: 1,
            records: 1
        },
        "kept after its first failed attempt"
    );
    assert!(ep.object("logs", "k/one.log").is_none());
    // Retried in the background, with backoff; the shutdown's flush waits for the outcome.
    let pending = flush(&shipper, 5, true).await;
    assert_eq!(pending, Pending::default(), "shipped on the fourth attempt");
    assert_eq!(
        ep.object("logs", "k/one.log").unwrap().body.as_ref(),
        b"{\"a\":1}\n"
    );
    assert_eq!(ep.writes().len(), 1);
    assert_eq!(Counters::get(&counters.shipped), 1);
    assert_eq!(Counters::get(&counters.failed_attempts), 3);
}

#[actix_rt::test]
async fn shipper_creates_a_missing_bucket_then_writes() {
    let ep = S3Endpoint::start("eu-west-1").await.unwrap();
    let shipper = ShipperActor::new(
        sink_for(&ep).await,
        &settings(),
        spill(None),
        Arc::new(Counters::default()),
        log(),
    )
    .start();
    shipper
        .send(ShipBatch {
            object: object("a.log", Bytes::from_static(b"1\n")),
        })
        .await
        .unwrap();
    let pending = flush(&shipper, 5, false).await;
    assert_eq!(pending, Pending::default());
    assert!(
        ep.object("logs", "a.log").is_some(),
        "created with the region's LocationConstraint"
    );
}

#[actix_rt::test]
async fn batch_actor_ships_everything_buffered_when_a_threshold_is_met_at_a_ship_point() {
    let probe = Probe::default();
    let addr = probe.clone().start();
    let batch = batch_actor(&addr, 20, 2);
    let ingest = |names: &[&'static str]| {
        batch.send(IngestRecords {
            records: names.iter().map(|n| record(n)).collect(),
        })
    };
    let invoke = |id: &str| {
        batch.send(InvokeStarted {
            request_id: id.into(),
        })
    };
    // 9 + 1 bytes each: 30 bytes, past the 20 of the threshold, and no cut.
    ingest(&["{\"n\":\"01\"}", "{\"n\":\"02\"}", "{\"n\":\"03\"}"])
        .await
        .unwrap()
        .unwrap();
    assert!(probe.ships.lock().unwrap().is_empty(), "no ship point yet");
    invoke("a").await.unwrap();
    invoke("b").await.unwrap();
    ingest(&["{\"n\":\"04\"}"]).await.unwrap().unwrap();
    invoke("c").await.unwrap();
    ingest(&["{\"n\":\"05\"}"]).await.unwrap().unwrap();
    let pending = batch
        .send(Shutdown {
            deadline: Instant::now() + Duration::from_secs(1),
        })
        .await
        .unwrap();
    assert_eq!(pending, Pending::default());
    let ships = probe.ships.lock().unwrap().clone();
    let bodies: Vec<&[u8]> = ships.iter().map(|o| o.body.as_ref()).collect();
    assert_eq!(
        bodies,
        vec![
            // At INVOKE a: the bytes threshold, everything buffered.
            &b"{\"n\":\"01\"}\n{\"n\":\"02\"}\n{\"n\":\"03\"}\n"[..],
            // At INVOKE c: the second invoke since the last ship.
            b"{\"n\":\"04\"}\n",
            // At SHUTDOWN.
            b"{\"n\":\"05\"}\n"
        ]
    );
    assert!(ships.iter().all(|o| o.key.starts_with(&format!(
        "{}-00000000-0000-0000-0000-000000000000/fn-",
        chrono::Utc::now().format("%Y-%m-%d")
    ))));
    assert_eq!(
        *probe.seen.lock().unwrap(),
        vec!["ship", "ship", "ship", "flush"],
        "the final batch is queued before the flush"
    );
    // After the final flush, records are refused, not taken and dropped.
    assert_eq!(ingest(&["{\"n\":\"06\"}"]).await.unwrap(), Err(Closed));
}

#[actix_rt::test]
async fn receiver_forwards_exact_records_and_answers_bad_input_without_crashing() {
    let probe = Probe::default();
    let addr = probe.clone().start();
    let counters = Arc::new(Counters::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = receiver::serve(
        listener,
        ReceiverState::new(addr.recipient(), counters.clone(), log()),
    )
    .unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    let client = awc::Client::default();
    let url = format!("http://127.0.0.1:{port}/");
    let good = r#"[{"time":"t","type":"platform.report","record":{"requestId":"r1","metrics":{}}}, {"time":"t","type":"function","record":"a\n"}]"#;
    assert_eq!(
        client.post(&url).send_body(good).await.unwrap().status(),
        200
    );
    assert_eq!(
        client.put(&url).send_body("[]").await.unwrap().status(),
        200
    );
    assert_eq!(
        client
            .post(&url)
            .send_body("garbage")
            .await
            .unwrap()
            .status(),
        200
    );
    let big = vec![b'['; receiver::MAX_BODY + 1];
    assert_eq!(
        client.post(&url).send_body(big).await.unwrap().status(),
        413
    );
    assert_eq!(client.get(&url).send().await.unwrap().status(), 405);
    let got = probe.ingested.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(
        &got[0].raw[..],
        br#"{"time":"t","type":"platform.report","record":{"requestId":"r1","metrics":{}}}"#
    );
    assert_eq!(
        (got[0].kind, got[0].request_id.as_deref()),
        (Kind::Report, Some("r1"))
    );
    assert_eq!(Counters::get(&counters.malformed), 1);
    assert_eq!(Counters::get(&counters.oversized), 1);
    handle.stop(false).await;
}

#[actix_rt::test]
async fn shipper_spills_past_its_memory_bound_and_a_new_process_ships_the_spill_first() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    ep.set_faults(Faults {
        outage_now: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let counters = Arc::new(Counters::default());
    let tight = ShipperSettings::new(10, 10, dir.path().into());
    let first = ShipperActor::new(
        sink_for(&ep).await,
        &tight,
        spill(Some(dir.path())),
        counters.clone(),
        log(),
    )
    .start();
    for i in 0..3 {
        let body = Bytes::from(format!("{{\"n\":{i}}}\n"));
        first
            .send(ShipBatch {
                object: object(format!("k/{i}.log"), body),
            })
            .await
            .unwrap();
    }
    let pending = flush(&first, 2, true).await;
    assert_eq!(
        pending,
        Pending {
            batches: 3,
            records: 3
        }
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "everything on disk after the last flush"
    );
    assert_eq!(Counters::get(&counters.still_spilled), 3);
    // The "next process": a new shipper on the same directory, S3 back.
    ep.set_faults(Faults::default());
    let again = Arc::new(Counters::default());
    let second = ShipperActor::new(
        sink_for(&ep).await,
        &settings(),
        spill(Some(dir.path())),
        again.clone(),
        log(),
    )
    .start();
    let pending = flush(&second, 5, true).await;
    assert_eq!(pending, Pending::default());
    assert_eq!(Counters::get(&again.recovered), 3);
    let keys: Vec<String> = ep.writes().into_iter().map(|w| w.key).collect();
    assert_eq!(keys.len(), 3);
    for i in 0..3 {
        assert_eq!(
            ep.object("logs", &format!("k/{i}.log")).unwrap().body,
            Bytes::from(format!("{{\"n\":{i}}}\n")),
            "shipped under the key it was sealed with"
        );
    }
    // Files are removed on the blocking pool once S3 confirmed them.
    let emptied = async {
        while std::fs::read_dir(dir.path()).unwrap().count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), emptied)
        .await
        .expect("shipped batches leave the disk");
}

fn runtime_done(request_id: &str) -> Record {
    Record {
        raw: Bytes::from(format!(
            r#"{{"type":"platform.runtimeDone","record":{{"requestId":"{request_id}"}}}}"#
        )),
        kind: Kind::RuntimeDone,
        request_id: Some(request_id.into()),
    }
}

#[actix_rt::test]
async fn end_of_invoke_seals_at_runtime_done_and_answers_after_the_batch_is_queued() {
    let probe = Probe::default();
    let p = probe.clone().start();
    let batch = batch_actor_shipping_at(&p, 1 << 20, 1, ShipAt::EndOfInvoke);
    batch
        .send(InvokeStarted {
            request_id: "r1".into(),
        })
        .await
        .unwrap();
    batch
        .send(IngestRecords {
            records: vec![record(r#"{"type":"function","record":"one"}"#)],
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        probe.ships.lock().unwrap().is_empty(),
        "INVOKE only counts: nothing sealed before runtimeDone"
    );
    let wait = batch.send(AwaitRuntimeDone {
        request_id: "r1".into(),
        until: Instant::now() + Duration::from_secs(30),
    });
    batch
        .send(IngestRecords {
            records: vec![runtime_done("r0"), runtime_done("r1")],
        })
        .await
        .unwrap()
        .unwrap();
    wait.await.unwrap();
    let ships = probe.ships.lock().unwrap().clone();
    assert_eq!(ships.len(), 1, "the invokes threshold (1) was met");
    assert_eq!(
        ships[0].body.as_ref(),
        concat!(
            r#"{"type":"function","record":"one"}"#,
            "\n",
            r#"{"type":"platform.runtimeDone","record":{"requestId":"r0"}}"#,
            "\n",
            r#"{"type":"platform.runtimeDone","record":{"requestId":"r1"}}"#,
            "\n"
        )
        .as_bytes()
    );

    // A runtimeDone that arrived before the question is answered at once; one that never comes is
    // given up at `until`, shipping what is due all the same.
    batch
        .send(InvokeStarted {
            request_id: "r2".into(),
        })
        .await
        .unwrap();
    batch
        .send(IngestRecords {
            records: vec![runtime_done("r2")],
        })
        .await
        .unwrap()
        .unwrap();
    batch
        .send(AwaitRuntimeDone {
            request_id: "r2".into(),
            until: Instant::now() + Duration::from_secs(30),
        })
        .await
        .unwrap();
    assert_eq!(probe.ships.lock().unwrap().len(), 2);
    batch
        .send(InvokeStarted {
            request_id: "r3".into(),
        })
        .await
        .unwrap();
    batch
        .send(IngestRecords {
            records: vec![record(r#"{"type":"function","record":"three"}"#)],
        })
        .await
        .unwrap()
        .unwrap();
    batch
        .send(AwaitRuntimeDone {
            request_id: "r3".into(),
            until: Instant::now() + Duration::from_millis(50),
        })
        .await
        .unwrap();
    let ships = probe.ships.lock().unwrap().clone();
    assert_eq!(ships.len(), 3);
    assert_eq!(
        ships[2].body.as_ref(),
        b"{\"type\":\"function\",\"record\":\"three\"}\n"
    );
}
