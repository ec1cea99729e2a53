//! The ship path's held batches against the emulator's S3 endpoint and a real spill directory:
//! the defects of issue 19, each as the outcome a user sees (records in S3, the summary's counts).

use actix::prelude::*;
use adaptive_batching_extension::actors::messages::{Flush, Pending, ShipBatch};
use adaptive_batching_extension::actors::shipper::{ShipperActor, ShipperSettings};
use adaptive_batching_extension::sealed::{ObjectMeta, SealedObject};
use adaptive_batching_extension::sink::S3Sink;
use adaptive_batching_extension::spill::{self, Header, Piece, SpillDir};
use adaptive_batching_extension::stats::Counters;
use bytes::Bytes;
use lambda_emulator::s3::{Faults, S3Endpoint};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn log() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// A shipper on `ep` holding `max_memory` bytes in memory and up to `spill_max` in `dir`.
fn shipper(
    ep: &S3Endpoint,
    dir: &Path,
    max_memory: u64,
    spill_max: u64,
) -> (Addr<ShipperActor>, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let sink = S3Sink::new(&crate::support::sdk_config(ep), "logs", true, true);
    let settings = ShipperSettings::new(max_memory, max_memory, dir.into());
    let spill = SpillDir::open(dir, spill_max, false).unwrap();
    (
        ShipperActor::new(sink, &settings, Some(spill), counters.clone(), log()).start(),
        counters,
    )
}

/// A batch of `lines` records `<key>:<n>`, each padded to 100 bytes with its newline.
fn batch(key: &str, lines: usize) -> SealedObject {
    let mut body = String::new();
    for n in 0..lines {
        let line = format!("{{\"r\":\"{key}:{n}\"}}");
        body.push_str(&format!("{line:<99}\n"));
    }
    SealedObject {
        key: key.to_string(),
        raw_bytes: body.len() as u64,
        body: Bytes::from(body),
        records: lines,
        meta: ObjectMeta::default(),
    }
}

/// Writes `obj`'s spill file as a previous process would have.
fn spill_file(dir: &Path, obj: &SealedObject, maybe_stored: bool) {
    let disk = spill::FsDisk::open(dir).unwrap();
    spill::write(
        &disk,
        &Header::of(obj, maybe_stored, vec![]),
        &[Piece::Memory(obj.body.clone())],
    )
    .unwrap();
}

async fn ship(shipper: &Addr<ShipperActor>, object: SealedObject) {
    shipper.send(ShipBatch { object }).await.unwrap();
}

async fn last_flush(shipper: &Addr<ShipperActor>, secs: u64) -> Pending {
    shipper
        .send(Flush {
            deadline: Instant::now() + Duration::from_secs(secs),
            last: true,
        })
        .await
        .unwrap()
}

/// Waits until the endpoint has answered `n` object writes.
async fn puts_answered(ep: &S3Endpoint, n: usize) {
    puts_answered_within(ep, n, Duration::from_secs(20)).await;
}

/// Waits until the endpoint has answered `n` object writes, at most `limit`: whether it did.
async fn puts_answered_within(ep: &S3Endpoint, n: usize, limit: Duration) -> bool {
    let wait = async {
        while ep
            .requests()
            .iter()
            .filter(|r| r.operation == "PutObject" && r.status != 0)
            .count()
            < n
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(limit, wait).await.is_ok()
}

/// Every line's `r` in `bodies`, sorted.
fn records_in<'a>(bodies: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    let mut all: Vec<String> = bodies
        .flat_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["r"].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    all.sort();
    all
}

/// The records S3 holds: every line's `r`.
fn records_in_s3(ep: &S3Endpoint) -> Vec<String> {
    let objects = ep.objects("logs");
    records_in(objects.iter().map(|o| &o.body[..]))
}

fn records_of(batches: &[SealedObject]) -> Vec<String> {
    records_in(batches.iter().map(|b| &b.body[..]))
}

/// Asserts that no key was written twice with different content.
fn assert_no_key_rewritten(ep: &S3Endpoint) {
    let mut seen = std::collections::BTreeMap::new();
    for w in ep.writes() {
        if let Some(prev) = seen.insert(w.key.clone(), w.etag.clone()) {
            assert_eq!(prev, w.etag, "{} rewritten with other content", w.key);
        }
    }
}

/// Runs `work` on a shipper in an actix System of its own (a process), then ends that System
/// without a shutdown: what it held only in memory is gone, as after SIGKILL.
async fn process_killed_after<F, Fut>(work: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (done, ended) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let system = System::new();
        system.block_on(work());
        drop(system);
        let _ = done.send(());
    });
    ended.await.unwrap();
}

/// Throttled, batches on disk are merged; a merge whose result the disk cannot take must leave
/// the parts on disk as they were. (Before: the parts' files were deleted, the first part's file
/// kept its old body, and after a crash that body was shipped under the merged key: the other
/// parts' records were lost.)
#[actix_rt::test]
async fn a_merge_the_disk_cannot_take_leaves_its_parts_on_disk() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    ep.set_faults(Faults {
        slowdown_every: Some(1),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let batches: Vec<SealedObject> = (0..3).map(|i| batch(&format!("k/{i}"), 3)).collect();
    let (path, first, ep2) = (dir.path().to_path_buf(), batches.clone(), ep.clone());
    process_killed_after(move || async move {
        // Room on disk for the three parts (900 bytes), not for a merged copy beside them; room
        // in memory for one batch, and the three being written to disk.
        let (s, _) = shipper(&ep2, &path, 350, 1000);
        for b in first {
            ship(&s, b).await;
        }
        // Three SlowDowns, then two more probes: the pace is up and a merge was due. (A merge
        // re-issued in a tight loop, as before, makes no more requests: bounded.)
        puts_answered_within(&ep2, 5, Duration::from_secs(8)).await;
    })
    .await;
    ep.set_faults(Faults::default());
    let (second, _) = shipper(&ep, dir.path(), 1 << 20, 1 << 20);
    assert_eq!(last_flush(&second, 10).await, Pending::default());
    assert_eq!(records_in_s3(&ep), records_of(&batches));
    assert_no_key_rewritten(&ep);
}

/// A batch on disk is never refused, whatever happens to spilling: a spill that fails for want
/// of room turns nothing off, and only a batch held in memory alone can be refused — counted.
/// (Before: one failed spill turned spilling off for the process, and the refusal loop then
/// dropped batches already on disk, uncounted.)
#[actix_rt::test]
async fn batches_on_disk_are_never_refused_and_every_refusal_is_counted() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    // Uploads in flight for two seconds, then answered 503.
    ep.set_faults(Faults {
        latency: Duration::from_secs(2),
        outage_now: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (s, counters) = shipper(&ep, dir.path(), 100, 250);
    let batches: Vec<SealedObject> = (0..7).map(|i| batch(&format!("k/{i}"), 1)).collect();
    for b in batches.clone() {
        ship(&s, b).await;
    }
    // The uploads in flight are answered 503; what is on disk by then is noted; then S3 is back.
    puts_answered(&ep, 2).await;
    let on_disk: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| spill::key_of(&e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert!(!on_disk.is_empty(), "the disk took some");
    ep.set_faults(Faults::default());
    let pending = last_flush(&s, 15).await;
    assert_eq!(pending, Pending::default());
    let refused = Counters::get(&counters.refused) as usize;
    let shipped = records_in_s3(&ep);
    assert_eq!(
        shipped.len() + refused,
        7,
        "every record shipped or counted refused: {shipped:?}, refused {refused}"
    );
    for key in on_disk {
        assert!(
            shipped.contains(&format!("\"{key}:0\"")),
            "{key} was on disk: shipped, never refused: {shipped:?}"
        );
    }
}

/// A batch a previous process spilled may be in S3 already (its upload timed out, or its answer
/// was lost): it is retried with the same bytes, never merged into another key's content.
#[actix_rt::test]
async fn a_recovered_batch_that_may_be_stored_is_never_merged() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (batch("k/a", 2), batch("k/b", 2));
    // Batch a may be in S3 (the previous process's attempt timed out); b was spilled for room.
    spill_file(dir.path(), &a, true);
    spill_file(dir.path(), &b, false);
    // The previous process's upload of k/a reached S3; its answer did not reach the process.
    let sdk = aws_sdk_s3::Client::new(&crate::support::sdk_config(&ep));
    sdk.put_object()
        .bucket("logs")
        .key("k/a")
        .body(a.body.clone().into())
        .send()
        .await
        .unwrap();
    ep.set_faults(Faults {
        slowdown_every: Some(1),
        ..Faults::default()
    });
    let (s, _) = shipper(&ep, dir.path(), 1 << 20, 1 << 20);
    puts_answered(&ep, 3).await;
    ep.set_faults(Faults::default());
    assert_eq!(last_flush(&s, 10).await, Pending::default());
    assert_no_key_rewritten(&ep);
    assert_eq!(ep.object("logs", "k/a").unwrap().body, a.body);
    assert_eq!(records_in_s3(&ep), records_of(&[a, b]));
}

/// A metadata value that no HTTP header can carry (a control character in a record's `time`)
/// is sanitised, so the batch ships; and while one batch fails, the others still get tried.
/// (Before: the SDK could not build the request, the failure was taken for a network one and
/// retried for ever, and the back-off's one probe was always that batch: nothing else shipped.)
#[actix_rt::test]
async fn a_metadata_value_no_header_can_carry_is_sanitised_and_blocks_nothing() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let dir = tempfile::tempdir().unwrap();
    let (s, counters) = shipper(&ep, dir.path(), 1 << 20, 1 << 20);
    let mut odd = batch("k/odd", 1);
    odd.meta.first_record_time = Some("2026-12-04T10:00:00.000Z\u{7}\n".into());
    ship(&s, odd.clone()).await;
    let mut rest = Vec::new();
    for i in 0..3 {
        let b = batch(&format!("k/{i}"), 1);
        rest.push(b.clone());
        ship(&s, b).await;
    }
    assert_eq!(last_flush(&s, 5).await, Pending::default());
    let mut all = rest.clone();
    all.push(odd);
    assert_eq!(records_in_s3(&ep), records_of(&all));
    let stored = ep.object("logs", "k/odd").unwrap();
    let time = &stored.metadata["first-record-time"];
    assert!(
        time.starts_with("2026-12-04T10:00:00.000Z")
            && time.chars().all(|c| (' '..='~').contains(&c)),
        "{time:?}"
    );
    assert_eq!(Counters::get(&counters.shipped), 4);
}

/// A spilled batch whose request cannot be built at all (here a damaged header) is set aside at
/// once and counted, and blocks nothing.
#[actix_rt::test]
async fn a_request_that_cannot_be_built_is_set_aside_at_once_and_counted() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    let dir = tempfile::tempdir().unwrap();
    let mut bad = batch("k/bad", 2);
    bad.meta.content_encoding = Some("gzip\u{1}".into());
    spill_file(dir.path(), &bad, false);
    let (s, counters) = shipper(&ep, dir.path(), 1 << 20, 1 << 20);
    let good = batch("k/good", 1);
    ship(&s, good.clone()).await;
    assert_eq!(last_flush(&s, 5).await, Pending::default());
    assert_eq!(records_in_s3(&ep), records_of(&[good]));
    assert_eq!(Counters::get(&counters.rejected), 2);
    assert_eq!(
        Counters::get(&counters.failed_attempts),
        1,
        "one attempt: it could never be sent"
    );
    let aside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        aside.iter().any(|n| n.ends_with(".rejected")),
        "kept for a person: {aside:?}"
    );
}

/// CompleteMultipartUpload lists the CRC32 the extension computed for each part, so a store that
/// does not echo part checksums (some S3-compatible ones) takes multipart uploads too.
#[actix_rt::test]
async fn multipart_uploads_list_their_own_part_checksums() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    ep.set_faults(Faults {
        omit_part_checksums: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = shipper(&ep, dir.path(), 64 << 20, 64 << 20);
    // 17 MiB: above the 16 MiB multipart threshold.
    let big = batch("k/big", 17 * 1024 * 1024 / 100);
    ship(&s, big.clone()).await;
    assert_eq!(last_flush(&s, 30).await, Pending::default());
    assert_eq!(ep.object("logs", "k/big").unwrap().body, big.body);
}

/// A batch on disk is uploaded straight from its file, as one PutObject or in parts, with the
/// CRC32s read from it, while memory is far smaller than the batch: the emulator's S3 verifies
/// every checksum and the object is the file's body, byte for byte, and no copy was held.
/// (Before: the body was read back into memory for its upload, counted against the bound; one
/// larger than the bound waited until memory was empty, and merged batches never went while
/// records arrived.)
#[actix_rt::test]
async fn batches_on_disk_stream_from_their_files_whatever_the_memory_bound() {
    let ep = S3Endpoint::start("us-east-1").await.unwrap();
    ep.create_bucket("logs");
    ep.set_faults(Faults {
        omit_part_checksums: true,
        ..Faults::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // 17 MiB: above the 16 MiB multipart threshold; and 3 KiB, one PutObject.
    let (big, small) = (batch("k/big", 17 * 1024 * 1024 / 100), batch("k/small", 30));
    spill_file(dir.path(), &big, false);
    spill_file(dir.path(), &small, false);
    let (s, counters) = shipper(&ep, dir.path(), 4096, 64 << 20);
    assert_eq!(last_flush(&s, 30).await, Pending::default());
    assert_eq!(ep.object("logs", "k/big").unwrap().body, big.body);
    assert_eq!(ep.object("logs", "k/small").unwrap().body, small.body);
    let parts = ep
        .requests()
        .iter()
        .filter(|r| r.operation == "UploadPart" && r.status == 200)
        .count();
    assert_eq!(parts, 3, "17 MiB in 8 MiB parts");
    assert_eq!(Counters::get(&counters.peak_held_bytes), 0);
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
