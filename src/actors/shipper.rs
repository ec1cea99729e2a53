//! ShipperActor: the thin shell that carries out [`crate::ship_policy`]'s decisions. It owns the S3
//! client and the [`HeldStore`] (each held batch's body in memory, its spill file), feeds the
//! policy its events (a batch sealed or recovered, an upload's or a disk job's outcome, a flush
//! asked for, a restore, a wake-up) and does what the policy says. It decides nothing about a
//! held batch. Every file operation, every read-back and every merge runs on tokio's blocking
//! pool, never on the actor's thread.

use super::messages::{Flush, Pace, PaceTo, Pending, Restored, ShipBatch};
use crate::held::{Done, HeldStore, Job, Source};
use crate::metrics::Emf;
use crate::sealed::SealedObject;
use crate::ship_policy::{Accounts, Action, BatchId, Config, Event, Failure, FlushId, Policy};
use crate::sink::S3Sink;
use crate::spill::{Disk, FsDisk, SpillDir};
use crate::stats::{Counters, Throttle};
use actix::prelude::*;
use slog::{Logger, error, info, warn};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One line per failure cause, then at most one per this, with the count.
const FAILURE_REPORT_PERIOD: Duration = Duration::from_secs(60);
/// Uploads at once while S3 takes them: enough to keep up with a slow S3 (300 ms a request) at the
/// default thresholds, few enough to keep the bodies in flight small.
const MAX_IN_FLIGHT: usize = 4;

/// What ShipperActor starts with: its section of the configuration.
pub use crate::config::ShipperSettings;

pub struct ShipperActor {
    sink: S3Sink,
    policy: Policy,
    store: HeldStore,
    disk: Option<FsDisk>,
    next_id: BatchId,
    flushes: HashMap<FlushId, oneshot::Sender<Pending>>,
    next_flush: FlushId,
    /// The earliest wake-up asked for and not yet due.
    wake_at: Option<Instant>,
    /// When each upload started, for the log line.
    started: HashMap<BatchId, Instant>,
    failures: HashMap<String, Throttle>,
    /// The last upload error, for the failure's log line.
    last_error: Option<String>,
    /// Batches a previous process spilled, handed to the policy when the actor starts.
    recovered: Vec<crate::spill::Recovered>,
    /// Where the pace goes (BatchActor).
    pace_to: Option<Recipient<Pace>>,
    emf: Option<Emf>,
    counters: Arc<Counters>,
    log: Logger,
}

impl ShipperActor {
    /// `spill` is the settings' spill directory, if it could be opened, with what a previous
    /// process left there.
    pub fn new(
        sink: S3Sink,
        settings: &ShipperSettings,
        spill: Option<SpillDir>,
        counters: Arc<Counters>,
        log: Logger,
    ) -> Self {
        let (disk, max_disk, taken, recovered) = match spill {
            Some(s) => {
                let r = s.recovery;
                if r.removed_absorbed > 0 || !r.unreadable.is_empty() {
                    warn!(log, "spill directory: parts of merged batches removed, unreadable files left alone";
                        "removed_absorbed" => r.removed_absorbed, "unreadable" => r.unreadable.len());
                }
                (Some(s.disk), s.max_bytes, r.unreadable_bytes, r.batches)
            }
            None => (None, 0, 0, Vec::new()),
        };
        let records: usize = recovered.iter().map(|s| s.records).sum();
        if !recovered.is_empty() {
            info!(log, "recovered spilled batches; shipping them first";
                "batches" => recovered.len(), "records" => records);
        }
        let mut policy = Policy::new(Config {
            max_memory: settings.max_memory,
            max_object: settings.max_object,
            max_disk,
            max_in_flight: MAX_IN_FLIGHT,
            seed: rand::random(),
            merge_limit: settings.merge_limit,
        });
        policy.set_disk_taken(taken);
        if settings.snap_start {
            policy.set_snapshot_pending();
        }
        Self {
            sink,
            policy,
            store: HeldStore::default(),
            disk,
            next_id: 0,
            flushes: HashMap::new(),
            next_flush: 0,
            wake_at: None,
            started: HashMap::new(),
            failures: HashMap::new(),
            last_error: None,
            recovered,
            pace_to: None,
            emf: None,
            counters,
            log,
        }
    }

    /// Also an EMF line per shipped object.
    pub fn with_emf(mut self, emf: Option<Emf>) -> Self {
        self.emf = emf;
        self
    }

    fn id(&mut self) -> BatchId {
        self.next_id += 1;
        self.next_id
    }

    /// Feeds the policy one event and carries out what it decides.
    fn event(&mut self, event: Event, ctx: &mut Context<Self>) {
        self.policy
            .set_upstream(Counters::get(&self.counters.buffered));
        let actions = self.policy.handle(event, Instant::now());
        self.publish(self.policy.accounts());
        for a in actions {
            self.act(a, ctx);
        }
    }

    /// The policy's accounts, for the summary.
    fn publish(&self, a: Accounts) {
        let c = &self.counters;
        for (counter, n) in [
            (&c.sealed, a.sealed),
            (&c.recovered, a.recovered),
            (&c.shipped, a.shipped),
            (&c.objects, a.objects),
            (&c.spilled, a.spilled),
            (&c.refused, a.refused),
            (&c.rejected, a.rejected),
            (&c.unreadable, a.unreadable),
            (&c.unshipped_in_memory, a.in_memory),
            (&c.still_spilled, a.on_disk),
            (&c.peak_held_bytes, a.peak_memory),
        ] {
            Counters::set(counter, n);
        }
    }

    fn act(&mut self, action: Action, ctx: &mut Context<Self>) {
        match action {
            Action::Upload { id, timeout } => self.upload(id, timeout, ctx),
            Action::Spill { id, maybe_stored } => {
                let job = self.store.spill(id, maybe_stored);
                self.run(job, Event::Spilled { id, ok: false }, ctx);
            }
            Action::Merge {
                into,
                from,
                to_disk,
            } => {
                let job = self.store.merge(into, from, to_disk);
                self.run(job, Event::Merged { into, ok: false }, ctx);
            }
            Action::Delete { id } => {
                let job = self.store.delete(id);
                self.run(job, Event::Deleted { id, ok: false }, ctx);
            }
            Action::Forget { id } => {
                self.store.forget(id);
            }
            Action::Refuse { id } => {
                if let Some(h) = self.store.forget(id) {
                    error!(self.log, "no room in memory or on disk: a batch was refused";
                        "key" => &h.object.key, "records" => h.object.records,
                        "what_now" => "S3 is not taking batches fast enough and the spill directory is unusable or full; raise ADAPTIVE_BATCHING_EXTENSION_MAX_BUFFER_BYTES or _SPILL_MAX_BYTES");
                }
            }
            Action::SetAside { id } => self.set_aside(id, ctx),
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

    /// Runs a disk job on the blocking pool and reports its outcome; `failed` when it cannot run.
    fn run(&mut self, job: Option<Job>, failed: Event, ctx: &mut Context<Self>) {
        let Some(job) = job else {
            self.event(failed, ctx);
            return;
        };
        let failed = job.failed();
        let disk = self.disk.clone();
        let work =
            tokio::task::spawn_blocking(move || job.run(disk.as_ref().map(|d| d as &dyn Disk)));
        ctx.spawn(work.into_actor(self).map(move |done, act, ctx| {
            if let Ok(Done::SetAside {
                key,
                result: Err(e),
                ..
            }) = &done
            {
                warn!(act.log, "cannot set a batch aside; a file it had stays where it is, for the next process";
                    "key" => key, "error" => e.to_string());
            }
            let event = match done {
                Ok(done) => act.store.apply(done),
                Err(_) => failed,
            };
            if let Some(e) = event {
                act.event(e, ctx);
            }
        }));
    }

    fn upload(&mut self, id: BatchId, timeout: Duration, ctx: &mut Context<Self>) {
        let Some(source) = self.store.source(id) else {
            self.event(
                Event::Failed {
                    id,
                    failure: Failure::Unreadable,
                },
                ctx,
            );
            return;
        };
        self.started.insert(id, Instant::now());
        let sink = self.sink.clone();
        let disk = self.disk.clone();
        let attempt = async move {
            // A spilled body is streamed from its file as the request goes, never read back into
            // memory: only its header and CRC32s are read first (blocking I/O, on the pool).
            let (obj, file) = match source {
                Source::Memory(o) => (o, None),
                on_disk => {
                    let part_size = crate::sink::PART_SIZE as u64;
                    let read = tokio::task::spawn_blocking(move || {
                        on_disk.locate(disk.as_ref(), part_size)
                    });
                    match read.await.map_err(std::io::Error::other).and_then(|r| r) {
                        Ok(found) => found,
                        Err(e) => {
                            return Err((
                                Failure::Unreadable,
                                format!("cannot read a spilled batch: {e}"),
                                0,
                            ));
                        }
                    }
                }
            };
            let len = crate::sink::body_len(&obj, file.as_ref());
            // A time limit sized to the body: a connection that died, or an upload cut by a freeze
            // (the monotonic clock runs while frozen), ends here and is tried again, same key.
            match tokio::time::timeout(timeout, sink.put(&obj, file.as_ref())).await {
                Ok((requests, Ok(()))) => Ok((obj, len, requests)),
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
                Ok((obj, len, requests)) => {
                    Counters::add(&act.counters.put_requests, u64::from(requests));
                    act.shipped(&obj, len, took);
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

    fn shipped(&mut self, obj: &SealedObject, len: u64, took: Duration) {
        Counters::add(&self.counters.shipped_bytes, obj.raw_bytes);
        if let Some(emf) = &self.emf {
            emf.print(&[
                ("RecordsShipped", obj.records as f64, "Count"),
                ("BytesShipped", len as f64, "Bytes"),
                (
                    "UploadMilliseconds",
                    took.as_secs_f64() * 1000.0,
                    "Milliseconds",
                ),
            ]);
        }
        info!(self.log, "shipped";
            "key" => &obj.key, "records" => obj.records, "bytes" => len,
            "ms" => took.as_millis() as u64);
    }

    /// Set aside for a person (S3 rejected it, its request cannot be built, or its file cannot be
    /// read): renamed (or written) with a `.rejected` suffix, which no process recovers.
    fn set_aside(&mut self, id: BatchId, ctx: &mut Context<Self>) {
        let records = self
            .store
            .get(id)
            .map(|h| h.object.records)
            .unwrap_or_default();
        error!(self.log, "a batch cannot be shipped; it is kept on disk and not tried again";
            "records" => records, "error" => self.last_error.clone().unwrap_or_default(),
            "what_now" => "the batch is in the spill directory with a .rejected suffix; report this");
        let job = self.store.set_aside(id);
        self.run(job, Event::SetAsideDone { id, ok: false }, ctx);
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
            Failure::Unsendable => ("unsendable", "set aside: the request can never be sent"),
            Failure::Unreadable => ("unreadable", "set aside: its spill file cannot be read"),
        };
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
        for r in std::mem::take(&mut self.recovered) {
            let id = self.id();
            let event = self.store.recovered(id, &r);
            self.event(event, ctx);
        }
    }
}

impl Handler<ShipBatch> for ShipperActor {
    type Result = ();

    fn handle(&mut self, msg: ShipBatch, ctx: &mut Context<Self>) {
        let id = self.id();
        let event = self.store.sealed(id, msg.object);
        self.event(event, ctx);
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
        Box::pin(
            rx.into_actor(self)
                .map(|answer, _, _| answer.unwrap_or_default()),
        )
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

    fn handle(&mut self, _: Restored, ctx: &mut Context<Self>) {
        self.sink.reconnect();
        self.event(
            Event::Restored {
                seed: rand::random(),
            },
            ctx,
        );
    }
}
