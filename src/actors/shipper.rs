//! ShipperActor: owns the S3 client and every sealed batch not yet confirmed. One upload at a time,
//! retried with backoff; a batch leaves the extension's ownership only when S3 confirmed it, under
//! the key fixed at sealing, so a retry overwrites rather than duplicates.
//!
//! Memory is bounded: sealed batches are held in memory up to `max_memory` bytes; past it they are
//! written to the spill directory (see [`crate::sink::spill`]), and a batch whose upload failed is
//! written there too, so a crash does not lose it. Past both bounds a new batch waits (which pushes
//! back through BatchActor and the listener on Lambda, which then drops and reports
//! `platform.logsDropped`) and, after [`REFUSE_AFTER`], is refused and counted. Batches a previous
//! process spilled are shipped first. After a failed round the queue waits for the next opportunity
//! (a [`Flush`]: every INVOKE and the shutdown; a timer on Managed Instances).

use super::messages::{Flush, Pending, Restored, ShipBatch};
use crate::sink::retry::Backoff;
use crate::sink::spill::{SpillDir, Spilled};
use crate::sink::{S3Sink, SealedObject, ShipError, Shipped};
use crate::stats::{Counters, Throttle};
use actix::prelude::*;
use slog::{Logger, error, info, warn};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a stalled queue waits on Managed Instances before the next round.
const STALLED_RETRY: Duration = Duration::from_secs(5);
/// How long a new batch may wait for room before it is refused.
pub const REFUSE_AFTER: Duration = Duration::from_secs(2);
/// After a refusal, the slowest pace of retries.
const REFUSED_RETRY: Duration = Duration::from_secs(30);
/// One line per failure cause, then at most one per this.
const FAILURE_REPORT_PERIOD: Duration = Duration::from_secs(60);

/// A batch the shipper owns.
enum Held {
    Memory(SealedObject),
    Disk(Spilled),
}

impl Held {
    fn records(&self) -> usize {
        match self {
            Held::Memory(o) => o.records,
            Held::Disk(s) => s.records,
        }
    }
}

/// The queue's state as Flush waiters see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    pending: Pending,
    /// The last round failed: nothing will move until the next Flush.
    stalled: bool,
    memory: u64,
}

/// What ShipperActor starts with.
pub struct ShipperSettings {
    pub backoff: Backoff,
    /// Retry a stalled queue on a timer (Managed Instances: no INVOKE will).
    pub managed_instances: bool,
    /// Bytes of sealed batches held in memory.
    pub max_memory: u64,
    /// The spill directory, if it could be opened, and what a previous process left there.
    pub spill: Option<(SpillDir, Vec<Spilled>)>,
    /// Emit an EMF line per shipped object, with this function name as the dimension.
    pub emf_function: Option<String>,
}

pub struct ShipperActor {
    sink: S3Sink,
    backoff: Backoff,
    queue: VecDeque<Held>,
    memory: u64,
    max_memory: u64,
    spill: Option<SpillDir>,
    uploading: bool,
    stalled: bool,
    /// The last round failed: the next opportunity makes one attempt (a probe), not a full round,
    /// so an outage costs each invoke one request rather than a backoff sequence.
    failing: bool,
    /// After a refusal (AccessDenied, a KMS denial…) no probe before this: retried at a slow pace.
    no_probe_before: Option<Instant>,
    /// The deadline of the latest Flush: retries never wait past it.
    deadline: Option<Instant>,
    retry_stalled_every: Option<Duration>,
    progress: watch::Sender<Progress>,
    failures: HashMap<String, Throttle>,
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
            Some((dir, found)) => (Some(dir), found),
            None => (None, Vec::new()),
        };
        let recovered_records: usize = recovered.iter().map(|s| s.records).sum();
        if !recovered.is_empty() {
            Counters::add(&counters.recovered, recovered_records as u64);
            info!(log, "recovered spilled batches; shipping them first";
                "batches" => recovered.len(), "records" => recovered_records);
        }
        let actor = Self {
            sink,
            backoff: settings.backoff,
            queue: recovered.into_iter().map(Held::Disk).collect(),
            memory: 0,
            max_memory: settings.max_memory,
            spill,
            uploading: false,
            stalled: false,
            failing: false,
            no_probe_before: None,
            deadline: None,
            retry_stalled_every: settings.managed_instances.then_some(STALLED_RETRY),
            progress: watch::channel(Progress::default()).0,
            failures: HashMap::new(),
            emf_function: settings.emf_function,
            counters,
            log,
        };
        actor.publish();
        actor
    }

    fn publish(&self) {
        let pending = Pending {
            batches: self.queue.len(),
            records: self.queue.iter().map(Held::records).sum(),
        };
        self.progress.send_replace(Progress {
            pending,
            stalled: self.stalled,
            memory: self.memory,
        });
    }

    /// Takes `obj` in memory, or on disk past the memory bound; gives it back when neither has room.
    #[allow(clippy::result_large_err)] // The batch comes back to be waited on or refused, not copied.
    fn admit(&mut self, obj: SealedObject) -> Result<(), SealedObject> {
        let len = obj.body.len() as u64;
        if self.memory + len <= self.max_memory {
            self.memory += len;
            self.queue.push_back(Held::Memory(obj));
            return Ok(());
        }
        match self.spill.as_mut().map(|d| d.write(&obj)) {
            Some(Ok(s)) => {
                Counters::add(&self.counters.spilled, obj.records as u64);
                self.queue.push_back(Held::Disk(s));
                Ok(())
            }
            Some(Err(e)) => {
                self.report_failure("spill", || format!("cannot spill a batch: {e}"), "free space in the spill directory or raise ADAPTIVE_BATCHING_EXTENSION_SPILL_MAX_BYTES");
                Err(obj)
            }
            None => Err(obj),
        }
    }

    /// Moves the batch at `i` from memory to the spill directory, if it is in memory and there is
    /// room: a failed batch so that a crash does not lose it, and everything at the end.
    fn move_to_disk(&mut self, i: usize) {
        if let (Some(Held::Memory(obj)), Some(dir)) = (self.queue.get(i), self.spill.as_mut())
            && let Ok(s) = dir.write(obj)
        {
            Counters::add(&self.counters.spilled, obj.records as u64);
            self.memory -= obj.body.len() as u64;
            self.queue[i] = Held::Disk(s);
        }
    }

    /// Starts the next upload unless one runs or the queue is stalled.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.uploading
            || self.stalled
            || self.no_probe_before.is_some_and(|t| Instant::now() < t)
        {
            return;
        }
        let source = match self.queue.front() {
            None => return,
            Some(Held::Memory(o)) => Ok(o.clone()),
            Some(Held::Disk(s)) => Err(s.clone()),
        };
        self.uploading = true;
        let sink = self.sink.clone();
        let backoff = if self.failing {
            Backoff {
                attempts: 1,
                ..self.backoff
            }
        } else {
            self.backoff
        };
        let deadline = self.deadline.filter(|d| *d > Instant::now());
        let upload = async move {
            let started = Instant::now();
            let obj = match source {
                Ok(o) => o,
                Err(s) => match tokio::task::spawn_blocking(move || SpillDir::read(&s)).await {
                    Ok(Ok(o)) => o,
                    Ok(Err(e)) => return Err(format!("cannot read a spilled batch: {e}")),
                    Err(e) => return Err(e.to_string()),
                },
            };
            let attempt = sink.ship(&obj, backoff, deadline);
            // Never run past the deadline: at shutdown the process must exit before it.
            let result = match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), attempt)
                    .await
                    .unwrap_or_else(|_| {
                        Err((
                            ShipError::Transient("the deadline passed during the upload".into()),
                            0,
                        ))
                    }),
                None => attempt.await,
            };
            Ok((obj, result, started.elapsed()))
        };
        ctx.spawn(upload.into_actor(self).map(|outcome, act, ctx| {
            act.uploading = false;
            match outcome {
                Ok((obj, result, took)) => act.finished(obj, result, took),
                Err(e) => {
                    // An unreadable spill file cannot be shipped; say so once and move on.
                    error!(act.log, "dropping a spilled batch that cannot be read"; "error" => e);
                    if let Some(Held::Disk(s)) = act.queue.pop_front() {
                        Counters::add(&act.counters.refused, s.records as u64);
                        if let Some(d) = act.spill.as_mut() {
                            d.remove(&s);
                        }
                    }
                }
            }
            act.publish();
            if act.stalled
                && let Some(every) = act.retry_stalled_every
            {
                ctx.run_later(every, |act, ctx| {
                    act.stalled = false;
                    act.pump(ctx);
                });
            }
            act.pump(ctx);
        }));
    }

    fn finished(
        &mut self,
        obj: SealedObject,
        result: Result<Shipped, (ShipError, u32)>,
        took: Duration,
    ) {
        match result {
            Ok(shipped) => {
                match self.queue.pop_front() {
                    Some(Held::Memory(o)) => self.memory -= o.body.len() as u64,
                    Some(Held::Disk(s)) => {
                        if let Some(d) = self.spill.as_mut() {
                            d.remove(&s);
                        }
                    }
                    None => {}
                }
                self.failing = false;
                self.no_probe_before = None;
                Counters::add(&self.counters.shipped, obj.records as u64);
                Counters::add(&self.counters.objects, 1);
                Counters::add(
                    &self.counters.failed_attempts,
                    u64::from(shipped.attempts - 1),
                );
                if let Some(function) = &self.emf_function {
                    let now = chrono::Utc::now().timestamp_millis();
                    println!(
                        "{}",
                        crate::metrics::emf_line(
                            function,
                            now,
                            &[
                                ("RecordsShipped", obj.records as f64, "Count"),
                                ("BytesShipped", obj.body.len() as f64, "Bytes"),
                                (
                                    "UploadMilliseconds",
                                    took.as_secs_f64() * 1000.0,
                                    "Milliseconds"
                                ),
                                ("Retries", f64::from(shipped.attempts - 1), "Count"),
                            ],
                        )
                    );
                }
                info!(self.log, "shipped";
                    "key" => &obj.key, "records" => obj.records, "bytes" => obj.body.len(),
                    "ms" => took.as_millis() as u64, "attempts" => shipped.attempts);
            }
            Err((e, attempts)) => {
                self.stalled = true;
                self.failing = true;
                if !e.is_retriable() {
                    self.no_probe_before = Some(Instant::now() + REFUSED_RETRY);
                }
                Counters::add(&self.counters.failed_attempts, u64::from(attempts.max(1)));
                self.move_to_disk(0);
                let (cause, hint) = match &e {
                    ShipError::Transient(_) | ShipError::Throttled(_) => (
                        "transient",
                        "kept; retried at the next invoke and at shutdown",
                    ),
                    ShipError::NoSuchBucket => (
                        "NoSuchBucket",
                        "kept; create the bucket or set ADAPTIVE_BATCHING_EXTENSION_CREATE_BUCKET=true",
                    ),
                    ShipError::Refused { code, .. } if code.contains("KMS") => (
                        "kms",
                        "kept; allow kms:GenerateDataKey on the bucket's KMS key to the function's role",
                    ),
                    ShipError::Refused { code, .. } if code == "AccessDenied" => (
                        "AccessDenied",
                        "kept; allow s3:PutObject on the bucket's objects to the function's role",
                    ),
                    ShipError::Refused { .. } => (
                        "refused",
                        "kept; check the bucket's name and region and the role's permissions",
                    ),
                };
                let (key, records, pending) = (obj.key.clone(), obj.records, self.queue.len());
                self.report_failure(cause, || format!("{e}"), hint);
                slog::debug!(self.log, "ship failed"; "key" => key, "records" => records, "attempts" => attempts, "pending_batches" => pending);
            }
        }
    }

    /// One line per cause, then at most one a minute with the count: failures repeat at every invoke.
    fn report_failure(&mut self, cause: &str, error: impl FnOnce() -> String, what_now: &str) {
        let throttle = self.failures.entry(cause.to_string()).or_default();
        if let Some(n) = throttle.note(1, Instant::now(), FAILURE_REPORT_PERIOD) {
            warn!(self.log, "ship failed"; "cause" => cause, "error" => error(), "what_now" => what_now,
                "occurrences" => n, "pending_batches" => self.queue.len());
        }
    }

    /// At the end: batches still in memory go to the spill directory, for a re-initialised
    /// environment (a reset keeps /tmp) to ship.
    fn spill_memory(&mut self) {
        for i in 0..self.queue.len() {
            self.move_to_disk(i);
        }
        self.publish();
    }

    /// Records still owned and where: (in memory, on disk).
    fn owned(&self) -> (usize, usize) {
        self.queue.iter().fold((0, 0), |(m, d), h| match h {
            Held::Memory(o) => (m + o.records, d),
            Held::Disk(s) => (m, d + s.records),
        })
    }
}

impl Actor for ShipperActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Recovered batches go first.
        self.pump(ctx);
    }
}

impl Handler<ShipBatch> for ShipperActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: ShipBatch, ctx: &mut Context<Self>) -> Self::Result {
        let obj = match self.admit(msg.object) {
            Ok(()) => {
                self.publish();
                self.pump(ctx);
                return Box::pin(fut::ready(()));
            }
            Err(obj) => obj,
        };
        // No room: wait (pushing back on Lambda) for an upload to free memory, then refuse.
        let mut rx = self.progress.subscribe();
        let room_at = self.max_memory.saturating_sub(obj.body.len() as u64);
        let wait = async move {
            let _ = tokio::time::timeout(REFUSE_AFTER, rx.wait_for(|p| p.memory <= room_at)).await;
        };
        Box::pin(wait.into_actor(self).map(move |_, act, ctx| {
            if let Err(obj) = act.admit(obj) {
                Counters::add(&act.counters.refused, obj.records as u64);
                error!(act.log, "no room in memory or on disk: a batch was refused";
                    "key" => &obj.key, "records" => obj.records, "memory_bytes" => act.memory,
                    "what_now" => "S3 is not taking batches fast enough; raise ADAPTIVE_BATCHING_EXTENSION_MAX_BUFFER_BYTES or _SPILL_MAX_BYTES");
            }
            act.publish();
            act.pump(ctx);
        }))
    }
}

impl Handler<Flush> for ShipperActor {
    type Result = ResponseActFuture<Self, Pending>;

    fn handle(&mut self, msg: Flush, ctx: &mut Context<Self>) -> Self::Result {
        self.deadline = Some(msg.deadline);
        // A Flush is the next opportunity for batches that failed before.
        self.stalled = false;
        if msg.last {
            // The last chance: a full round, whatever failed before.
            self.failing = false;
            self.no_probe_before = None;
        }
        self.publish();
        self.pump(ctx);
        let mut rx = self.progress.subscribe();
        let settled = async move {
            let settled = rx.wait_for(|p| p.pending.batches == 0 || p.stalled);
            let _ = tokio::time::timeout_at(msg.deadline.into(), settled).await;
        };
        Box::pin(settled.into_actor(self).map(move |_, act, _| {
            if msg.last {
                act.spill_memory();
                let (memory, disk) = act.owned();
                Counters::add(&act.counters.unshipped_in_memory, memory as u64);
                Counters::add(&act.counters.still_spilled, disk as u64);
            }
            act.progress.borrow().pending
        }))
    }
}

impl Handler<Restored> for ShipperActor {
    type Result = ();

    fn handle(&mut self, _: Restored, _: &mut Context<Self>) {
        self.sink.reconnect();
    }
}
