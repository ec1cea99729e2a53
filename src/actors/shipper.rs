//! ShipperActor: the thin shell that carries out [`crate::ship_policy`]'s decisions. It owns the S3
//! client and every sealed batch not yet confirmed (in memory, or on disk in the spill directory),
//! feeds the policy its events (a batch sealed, an upload's outcome, a spill done, a flush asked
//! for, a wake-up), and does what the policy says: upload, spill, forget, refuse, give up, answer a
//! flush, wake up later. Every file operation (spill writes with fsync, reads, deletes) runs on
//! tokio's blocking pool, never on the actor's thread.

use super::messages::{Flush, Pace, PaceTo, Pending, Restored, ShipBatch};
use crate::ship_policy::{Action, BatchId, Config, Event, Failure, FlushId, Policy};
use crate::sink::spill::{SpillDir, Spilled};
use crate::sink::{S3Sink, SealedObject};
use crate::stats::{Counters, Throttle};
use actix::prelude::*;
use slog::{Logger, error, info, warn};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One line per failure cause, then at most one per this, with the count.
const FAILURE_REPORT_PERIOD: Duration = Duration::from_secs(60);
/// Uploads at once while S3 takes them: enough to keep up with a slow S3 (300 ms a request) at the
/// default thresholds, few enough to keep the bodies in flight small.
const MAX_IN_FLIGHT: usize = 4;

/// A batch the shipper owns.
#[derive(Clone)]
enum Held {
    Memory(SealedObject),
    Disk(Spilled),
}

impl Held {
    /// The batch itself: as held, or read back from its spill file (blocking I/O: call it on the
    /// blocking pool).
    fn load(self) -> std::io::Result<SealedObject> {
        match self {
            Held::Memory(o) => Ok(o),
            Held::Disk(s) => SpillDir::read(&s),
        }
    }
}

/// What ShipperActor starts with.
pub struct ShipperSettings {
    /// Bytes of sealed batches held in memory.
    pub max_memory: u64,
    /// The spill directory, if it could be opened, and what a previous process left there.
    pub spill: Option<(SpillDir, Vec<Spilled>)>,
    /// Emit an EMF line per shipped object, with this function name as the dimension.
    pub emf_function: Option<String>,
}

pub struct ShipperActor {
    sink: S3Sink,
    policy: Policy,
    held: HashMap<BatchId, Held>,
    /// Shared with the blocking pool, where spill files are written and removed.
    spill: Option<Arc<Mutex<SpillDir>>>,
    next_id: BatchId,
    flushes: HashMap<FlushId, oneshot::Sender<Pending>>,
    next_flush: FlushId,
    /// The earliest wake-up asked for and not yet due.
    wake_at: Option<Instant>,
    /// Batches forgotten while their spill was being written: the file goes when it is done.
    forgotten_while_spilling: std::collections::HashSet<BatchId>,
    /// When each upload started, for the log line.
    started: HashMap<BatchId, Instant>,
    failures: HashMap<String, Throttle>,
    /// The last upload error, for the failure's log line.
    last_error: Option<String>,
    /// Batches a previous process spilled, handed to the policy when the actor starts.
    recovered: Vec<Spilled>,
    /// Where the pace goes (BatchActor).
    pace_to: Option<Recipient<Pace>>,
    emf_function: Option<String>,
    counters: Arc<Counters>,
    log: Logger,
}

impl ShipperActor {
    pub fn new(
        sink: S3Sink,
        settings: ShipperSettings,
        counters: Arc<Counters>,
        log: Logger,
    ) -> Self {
        let (spill, recovered) = match settings.spill {
            Some((dir, found)) => (Some(Arc::new(Mutex::new(dir))), found),
            None => (None, Vec::new()),
        };
        let actor = Self {
            sink,
            policy: Policy::new(Config {
                max_memory: settings.max_memory,
                max_in_flight: MAX_IN_FLIGHT,
                can_spill: spill.is_some(),
                seed: u64::from(std::process::id()) ^ rand::random::<u64>(),
                // Merged bodies stay single PutObjects and within half the memory bound.
                merge_limit: (settings.max_memory / 2)
                    .clamp(1024 * 1024, crate::sink::MULTIPART_THRESHOLD as u64),
            }),
            held: HashMap::new(),
            spill,
            next_id: 0,
            flushes: HashMap::new(),
            next_flush: 0,
            wake_at: None,
            forgotten_while_spilling: Default::default(),
            started: HashMap::new(),
            failures: HashMap::new(),
            last_error: None,
            recovered,
            pace_to: None,
            emf_function: settings.emf_function,
            counters,
            log,
        };
        let records: usize = actor.recovered.iter().map(|s| s.records).sum();
        if !actor.recovered.is_empty() {
            Counters::add(&actor.counters.recovered, records as u64);
            info!(actor.log, "recovered spilled batches; shipping them first";
                "batches" => actor.recovered.len(), "records" => records);
        }
        actor
    }

    fn id(&mut self) -> BatchId {
        self.next_id += 1;
        self.next_id
    }

    /// Feeds the policy one event and carries out what it decides.
    fn event(&mut self, event: Event, ctx: &mut Context<Self>) {
        let actions = self.policy.handle(event, Instant::now());
        for a in actions {
            self.act(a, ctx);
        }
    }

    fn act(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::Upload { id, timeout } => self.upload(id, timeout, ctx),
            Action::Spill { id } => self.spill(id, ctx),
            Action::Forget { id } => self.forget(id, true),
            Action::Refuse { id } => {
                if let Some(Held::Memory(o)) = self.held.remove(&id) {
                    Counters::add(&self.counters.refused, o.records as u64);
                    error!(self.log, "no room in memory or on disk: a batch was refused";
                        "key" => &o.key, "records" => o.records,
                        "what_now" => "S3 is not taking batches fast enough and the spill directory is unusable or full; raise ADAPTIVE_BATCHING_EXTENSION_MAX_BUFFER_BYTES or _SPILL_MAX_BYTES");
                }
            }
            Action::GiveUp { id } => self.give_up(id, ctx),
            Action::Merge { into, from } => self.merge(into, from, ctx),
            Action::Report { failure } => self.report(&failure),
            Action::AnswerFlush { id } => {
                if let Some(tx) = self.flushes.remove(&id) {
                    let p = self.policy.pending();
                    let _ = tx.send(Pending {
                        batches: p.batches,
                        records: p.records,
                    });
                }
            }
            Action::Pace(factor) => {
                if let Some(to) = &self.pace_to {
                    to.do_send(Pace { factor });
                }
            }
            Action::WakeAt(at) => {
                if self.wake_at.is_none_or(|w| at < w || w <= Instant::now()) {
                    self.wake_at = Some(at);
                    ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| {
                        if act.wake_at.is_some_and(|w| w <= Instant::now()) {
                            act.wake_at = None;
                        }
                        act.event(Event::Tick, ctx);
                    });
                }
            }
        }
    }

    fn upload(&mut self, id: BatchId, timeout: Duration, ctx: &mut Context<Self>) {
        let Some(held) = self.held.get(&id).cloned() else {
            return;
        };
        self.started.insert(id, Instant::now());
        let sink = self.sink.clone();
        let attempt = async move {
            let obj = match held {
                Held::Memory(o) => o,
                on_disk => {
                    match tokio::task::spawn_blocking(move || on_disk.load()).await {
                        Ok(Ok(o)) => o,
                        // An unreadable spill file cannot be shipped: given up like a rejected batch.
                        _ => {
                            return Err((
                                Failure::Rejected,
                                "cannot read a spilled batch".to_string(),
                                0,
                            ));
                        }
                    }
                }
            };
            // A time limit sized to the body: a connection that died, or an upload cut by a freeze
            // (the monotonic clock runs while frozen), ends here and is tried again, same key.
            match tokio::time::timeout(timeout, sink.put(&obj)).await {
                Ok((requests, Ok(()))) => Ok((obj, requests)),
                Ok((requests, Err(e))) => Err((e.failure(), format!("{}: {e}", obj.key), requests)),
                Err(_) => Err((
                    Failure::Transient,
                    format!("{}: no answer within {} ms", obj.key, timeout.as_millis()),
                    // At least the one request that got no answer.
                    1,
                )),
            }
        };
        ctx.spawn(attempt.into_actor(self).map(move |outcome, act, ctx| {
            let took = act
                .started
                .remove(&id)
                .map(|t| t.elapsed())
                .unwrap_or_default();
            match outcome {
                Ok((obj, requests)) => {
                    Counters::add(&act.counters.put_requests, u64::from(requests));
                    act.shipped(&obj, took);
                    act.event(Event::Uploaded { id }, ctx);
                }
                Err((failure, error, requests)) => {
                    Counters::add(&act.counters.put_requests, u64::from(requests));
                    Counters::add(&act.counters.failed_attempts, 1);
                    act.last_error = Some(error);
                    act.event(Event::Failed { id, failure }, ctx);
                }
            }
        }));
    }

    /// Appends the bodies of `from` to `into`'s (NDJSON, gzip members and zstd frames all
    /// concatenate), under `into`'s key, writes the result to disk before removing the parts, and
    /// tells the policy. Reads and writes run on the blocking pool.
    fn merge(&mut self, into: BatchId, from: Vec<BatchId>, ctx: &mut Context<Self>) {
        let parts: Option<Vec<Held>> = std::iter::once(&into)
            .chain(&from)
            .map(|id| self.held.get(id).cloned())
            .collect();
        let dir = self.spill.clone();
        let work = tokio::task::spawn_blocking(
            move || -> Option<(SealedObject, Option<Spilled>, Vec<Held>)> {
                let parts = parts?;
                let objects = parts
                    .iter()
                    .map(|p| p.clone().load().ok())
                    .collect::<Option<_>>()?;
                let merged = SealedObject::concat(objects)?;
                let spilled = dir.as_ref().and_then(|d| {
                    let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
                    // The merged batch replaces its first part's file (same key, same name).
                    d.write(&merged).ok()
                });
                Some((merged, spilled, parts))
            },
        );
        ctx.spawn(work.into_actor(self).map(move |res, act, ctx| {
            let Ok(Some((merged, spilled, parts))) = res else {
                act.event(
                    Event::Merged {
                        into,
                        from,
                        ok: false,
                        records: 0,
                        bytes: 0,
                        on_disk: false,
                    },
                    ctx,
                );
                return;
            };
            let (records, bytes) = (merged.records, merged.body.len() as u64);
            // The parts' files go; the first part's was just overwritten by the merged batch.
            for (id, part) in from.iter().zip(parts.into_iter().skip(1)) {
                act.held.remove(id);
                if let Held::Disk(s) = part {
                    act.remove_file(s);
                }
            }
            let on_disk = spilled.is_some();
            act.held.insert(
                into,
                match spilled {
                    Some(s) => Held::Disk(s),
                    None => Held::Memory(merged),
                },
            );
            act.event(
                Event::Merged {
                    into,
                    from,
                    ok: true,
                    records,
                    bytes,
                    on_disk,
                },
                ctx,
            );
        }));
    }

    fn shipped(&mut self, obj: &SealedObject, took: Duration) {
        Counters::add(&self.counters.shipped, obj.records as u64);
        Counters::add(&self.counters.objects, 1);
        Counters::add(&self.counters.shipped_bytes, obj.raw_bytes);
        if let Some(function) = &self.emf_function {
            println!(
                "{}",
                crate::metrics::emf_line(
                    function,
                    chrono::Utc::now().timestamp_millis(),
                    &[
                        ("RecordsShipped", obj.records as f64, "Count"),
                        ("BytesShipped", obj.body.len() as f64, "Bytes"),
                        (
                            "UploadMilliseconds",
                            took.as_secs_f64() * 1000.0,
                            "Milliseconds"
                        ),
                    ],
                )
            );
        }
        info!(self.log, "shipped";
            "key" => &obj.key, "records" => obj.records, "bytes" => obj.body.len(),
            "ms" => took.as_millis() as u64);
    }

    fn spill(&mut self, id: BatchId, ctx: &mut Context<Self>) {
        let (Some(Held::Memory(obj)), Some(dir)) =
            (self.held.get(&id).cloned(), self.spill.clone())
        else {
            self.event(Event::Spilled { id, ok: false }, ctx);
            return;
        };
        let write = tokio::task::spawn_blocking(move || {
            let mut dir = dir.lock().unwrap_or_else(|e| e.into_inner());
            dir.write(&obj).map_err(|e| e.to_string())
        });
        ctx.spawn(write.into_actor(self).map(move |res, act, ctx| {
            let written = res.map_err(|e| e.to_string()).and_then(|r| r);
            match written {
                Ok(s) => {
                    Counters::add(&act.counters.spilled, s.records as u64);
                    if act.forgotten_while_spilling.remove(&id) {
                        // S3 confirmed it while it was being written: the file is not needed.
                        act.remove_file(s);
                        return;
                    }
                    act.held.insert(id, Held::Disk(s));
                    act.event(Event::Spilled { id, ok: true }, ctx);
                }
                Err(e) => {
                    act.report_cause("spill", &format!("cannot spill a batch: {e}"),
                        "free space in the spill directory or raise ADAPTIVE_BATCHING_EXTENSION_SPILL_MAX_BYTES");
                    act.event(Event::Spilled { id, ok: false }, ctx);
                }
            }
        }));
    }

    /// S3 has it (or it was given up): free the memory, delete the file.
    fn forget(&mut self, id: BatchId, spill_may_be_running: bool) {
        match self.held.remove(&id) {
            Some(Held::Disk(s)) => self.remove_file(s),
            Some(Held::Memory(_)) if spill_may_be_running => {
                self.forgotten_while_spilling.insert(id);
            }
            _ => {}
        }
    }

    fn remove_file(&self, s: Spilled) {
        if let Some(dir) = self.spill.clone() {
            tokio::task::spawn_blocking(move || {
                dir.lock().unwrap_or_else(|e| e.into_inner()).remove(&s);
            });
        }
    }

    /// Rejected too often: the batch stays on disk, renamed aside so no process tries it again.
    fn give_up(&mut self, id: BatchId, ctx: &mut Context<Self>) {
        let Some(held) = self.held.remove(&id) else {
            return;
        };
        let records = match &held {
            Held::Memory(o) => o.records,
            Held::Disk(s) => s.records,
        };
        Counters::add(&self.counters.rejected, records as u64);
        error!(self.log, "S3 rejected a batch three times; it is kept on disk and not tried again";
            "records" => records, "error" => self.last_error.clone().unwrap_or_default(),
            "what_now" => "the batch is in the spill directory with a .rejected suffix; report this");
        let dir = self.spill.clone();
        let aside = async move {
            let Some(dir) = dir else { return };
            let _ = tokio::task::spawn_blocking(move || {
                let mut dir = dir.lock().unwrap_or_else(|e| e.into_inner());
                match held {
                    Held::Disk(s) => dir.set_aside(&s),
                    Held::Memory(o) => dir
                        .write(&o)
                        .map_err(|e| std::io::Error::other(e.to_string()))
                        .and_then(|s| dir.set_aside(&s)),
                }
            })
            .await;
        };
        ctx.spawn(aside.into_actor(self));
    }

    fn report(&mut self, failure: &Failure) {
        let error = self.last_error.clone().unwrap_or_default();
        let (cause, what_now) = match failure {
            Failure::Transient => ("transient", "kept; retried while the environment runs"),
            Failure::Throttled => (
                "throttled",
                "kept; retried less often while S3 asks for fewer requests",
            ),
            Failure::Refused(r) => (r.name(), r.what_to_fix()),
            Failure::Rejected => ("rejected", "kept; retried twice more, then set aside"),
        };
        self.report_cause(cause, &error, what_now);
    }

    /// One line per cause, then at most one a minute with the count.
    fn report_cause(&mut self, cause: &str, error: &str, what_now: &str) {
        let throttle = self.failures.entry(cause.to_string()).or_default();
        if let Some(n) = throttle.note(1, Instant::now(), FAILURE_REPORT_PERIOD) {
            warn!(self.log, "ship failed"; "cause" => cause, "error" => error, "what_now" => what_now,
                "occurrences" => n, "pending_batches" => self.policy.pending().batches);
        }
    }
}

impl Actor for ShipperActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Recovered batches go first.
        for s in std::mem::take(&mut self.recovered) {
            let id = self.id();
            let event = Event::Recovered {
                id,
                records: s.records,
                bytes: s.bytes,
            };
            self.held.insert(id, Held::Disk(s));
            self.event(event, ctx);
        }
    }
}

impl Handler<ShipBatch> for ShipperActor {
    type Result = ();

    fn handle(&mut self, msg: ShipBatch, ctx: &mut Context<Self>) {
        let id = self.id();
        let (records, bytes) = (msg.object.records, msg.object.body.len() as u64);
        self.held.insert(id, Held::Memory(msg.object));
        self.event(Event::Sealed { id, records, bytes }, ctx);
    }
}

impl Handler<Flush> for ShipperActor {
    type Result = ResponseActFuture<Self, Pending>;

    fn handle(&mut self, msg: Flush, ctx: &mut Context<Self>) -> Self::Result {
        self.next_flush += 1;
        let id = self.next_flush;
        let (tx, rx) = oneshot::channel();
        self.flushes.insert(id, tx);
        self.event(
            Event::Flush {
                id,
                deadline: msg.deadline,
                last: msg.last,
            },
            ctx,
        );
        Box::pin(rx.into_actor(self).map(move |answer, act, _| {
            if msg.last {
                let (memory, disk) = act.policy.owned();
                Counters::add(&act.counters.unshipped_in_memory, memory as u64);
                Counters::add(&act.counters.still_spilled, disk as u64);
            }
            answer.unwrap_or_default()
        }))
    }
}

impl Handler<PaceTo> for ShipperActor {
    type Result = ();

    fn handle(&mut self, msg: PaceTo, _: &mut Context<Self>) {
        self.pace_to = Some(msg.0);
    }
}

impl Handler<Restored> for ShipperActor {
    type Result = ();

    fn handle(&mut self, _: Restored, _: &mut Context<Self>) {
        self.sink.reconnect();
    }
}
