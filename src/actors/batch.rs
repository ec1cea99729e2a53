//! BatchActor: the actor shell around [`crate::batch::Batcher`]. It counts records and invocations,
//! checks the thresholds on a timer while the environment runs, seals batches into objects (key and
//! body fixed here) and hands them to the shipper. It never does I/O itself.
//!
//! It also reads the few records that change what it does: `platform.report` (what SHUTDOWN waits
//! for), `platform.start` (the invocation count on Managed Instances, which have no INVOKE event),
//! `platform.logsDropped` (counted and reported), `platform.restoreStart` (SnapStart, see
//! [`crate::snapshot`]). Requests are told apart by `requestId`, never by "the current invocation":
//! records of one invoke routinely arrive during the next or after SHUTDOWN.

use super::messages::{
    AwaitLateRecords, AwaitRuntimeDone, Flush, IngestRecords, InvokeStarted, Pending, Restored,
    ShipBatch, Shutdown,
};
use crate::batch::{Batch, Batcher};
use crate::config::{ShipAt, Thresholds};
use crate::encode;
use crate::encode::Compression;
use crate::lambda::records::Kind;
use crate::lambda::records::record_time;
use crate::object_key::{KeyTemplate, KeyValues};
use crate::sink::{ObjectMeta, SealedObject};
use crate::snapshot;
use crate::stats::{Counters, Throttle};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{Logger, debug, info, warn};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Restore sightings closer than this are one restore.
const RESTORE_DEBOUNCE: Duration = Duration::from_secs(10);
/// How many request ids to remember, reported or still open (only the latest matter).
const REQUESTS_REMEMBERED: usize = 1024;
/// At most one line per this about records Lambda dropped.
const DROPPED_REPORT_PERIOD: Duration = Duration::from_secs(10);

/// What BatchActor is configured with.
pub struct BatchSettings {
    pub thresholds: Thresholds,
    pub compression: Compression,
    pub key_template: KeyTemplate,
    /// `AWS_LAMBDA_FUNCTION_VERSION`, for `{version}`.
    pub function_version: String,
    /// A v4 UUID made once per process (renewed after a SnapStart restore).
    pub environment_id: Uuid,
    pub function_name: String,
    /// Whether `platform` records are subscribed (else no report will ever come).
    pub platform_records: bool,
    /// Lambda Managed Instances: invocations counted from `platform.start`, thresholds on the timer.
    pub managed_instances: bool,
    /// When the invokes and time thresholds are checked: at INVOKE, or at runtimeDone.
    pub ship_at: ShipAt,
}

/// Where BatchActor sends sealed batches and asks for the final flush.
pub struct ShipperHandles {
    pub ship: Recipient<ShipBatch>,
    pub flush: Recipient<Flush>,
    pub restored: Recipient<Restored>,
}

struct LateRecordsWaiter {
    request_id: Option<String>,
    all_open: bool,
    quiet: Duration,
    until: Instant,
    done: oneshot::Sender<()>,
}

pub struct BatchActor {
    batcher: Batcher,
    settings: BatchSettings,
    shipper: ShipperHandles,
    reports_seen: VecDeque<String>,
    /// Requests with a `platform.start` and no `platform.report` yet.
    open_requests: VecDeque<String>,
    last_ingest: Instant,
    /// Wall-clock time of the last record (identical in every copy of a snapshot).
    last_ingest_wall: DateTime<Utc>,
    /// Batches sealed so far (identical in every copy of a snapshot).
    sealed: u64,
    last_tick: (SystemTime, Instant),
    /// One restore is often seen twice (the wall-clock jump at the first tick, then
    /// `platform.restoreStart`): the second sighting within [`RESTORE_DEBOUNCE`] is the same restore.
    last_restore: Option<Instant>,
    waiter: Option<LateRecordsWaiter>,
    /// `SHIP_AT=end-of-invoke`: the runtimeDone LifecycleActor waits for, and the ones seen (it may
    /// arrive before LifecycleActor asks).
    runtime_done_waiter: Option<(String, oneshot::Sender<()>)>,
    runtime_done_seen: VecDeque<String>,
    dropped_throttle: Throttle,
    /// How often the thresholds are checked while the environment runs.
    tick: Duration,
    counters: Arc<Counters>,
    log: Logger,
}

impl BatchActor {
    pub fn new(
        settings: BatchSettings,
        shipper: ShipperHandles,
        counters: Arc<Counters>,
        log: Logger,
    ) -> Self {
        let now = Instant::now();
        Self {
            batcher: Batcher::new(settings.thresholds, now),
            // On Managed Instances the timer also carries the invocations threshold: check it often.
            tick: (settings.thresholds.elapsed / 10).clamp(
                Duration::from_millis(10),
                if settings.managed_instances {
                    Duration::from_millis(100)
                } else {
                    Duration::from_secs(1)
                },
            ),
            settings,
            shipper,
            reports_seen: VecDeque::new(),
            open_requests: VecDeque::new(),
            last_ingest: now,
            last_ingest_wall: Utc::now(),
            sealed: 0,
            last_tick: (SystemTime::now(), now),
            last_restore: None,
            waiter: None,
            runtime_done_waiter: None,
            runtime_done_seen: VecDeque::new(),
            dropped_throttle: Throttle::default(),
            counters,
            log,
        }
    }

    /// Fixes the batch's key and body. `fallback_at` dates the key when the first record carries
    /// no readable `time`.
    fn seal(&mut self, batch: Batch, fallback_at: DateTime<Utc>, batch_id: Uuid) -> SealedObject {
        self.sealed += 1;
        let first_record_time = batch.records.first().and_then(|r| record_time(r));
        let last_record_time = batch.records.last().and_then(|r| record_time(r));
        let at = first_record_time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(fallback_at, |t| t.with_timezone(&Utc));
        let s = &self.settings;
        let key = s.key_template.render(&KeyValues {
            function: &s.function_name,
            version: &s.function_version,
            environment_id: s.environment_id,
            at,
            batch_id,
        });
        debug!(self.log, "sealed"; "key" => &key, "records" => batch.records.len(), "bytes" => batch.body_bytes, "reason" => batch.reason.as_str());
        let meta = ObjectMeta {
            content_encoding: s.compression.content_encoding().map(str::to_string),
            first_record_time,
            last_record_time,
        };
        SealedObject {
            key,
            body: encode::body(&batch.records, batch.body_bytes, s.compression),
            records: batch.records.len(),
            meta,
        }
    }

    /// Hands a sealed batch to the shipper, holding this actor's mailbox until it is queued there:
    /// batches keep their order and a slow shipper pushes back.
    fn ship(&mut self, batch: Batch, ctx: &mut Context<Self>) {
        let object = self.seal(batch, Utc::now(), Uuid::new_v4());
        self.send_object(object, ctx);
    }

    fn send_object(&mut self, object: SealedObject, ctx: &mut Context<Self>) {
        self.send_object_then(object, None, ctx);
    }

    /// [`Self::send_object`], then answers `queued` once the shipper holds the batch.
    fn send_object_then(
        &mut self,
        object: SealedObject,
        queued: Option<oneshot::Sender<()>>,
        ctx: &mut Context<Self>,
    ) {
        let send = self.shipper.ship.send(ShipBatch { object });
        ctx.wait(send.into_actor(self).map(|res, act, _| {
            if let Err(e) = res {
                slog::error!(act.log, "the shipper is gone; a batch could not be queued"; "error" => e.to_string());
            }
            if let Some(q) = queued {
                let _ = q.send(());
            }
        }));
    }

    /// `SHIP_AT=end-of-invoke`: once the awaited runtimeDone is in (or `give_up`: it was perhaps
    /// dropped, or the deadline is near), checks the thresholds, queues a batch that is due, then
    /// answers LifecycleActor, which calls `next` after the flush.
    fn answer_runtime_done(&mut self, give_up: bool, ctx: &mut Context<Self>) {
        let arrived = match &self.runtime_done_waiter {
            Some((id, _)) => self.runtime_done_seen.contains(id),
            None => return,
        };
        if !(arrived || give_up) {
            return;
        }
        let Some((_, done)) = self.runtime_done_waiter.take() else {
            return;
        };
        match self.batcher.check(Instant::now()) {
            Some(b) => {
                let object = self.seal(b, Utc::now(), Uuid::new_v4());
                self.send_object_then(object, Some(done), ctx);
            }
            None => {
                let _ = done.send(());
            }
        }
    }

    /// SnapStart restore: seal what the snapshot held under a key every copy derives alike, take a
    /// new environment id for what follows, and have the shipper open new connections.
    fn restored(&mut self, why: &str, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if self
            .last_restore
            .is_some_and(|t| now.duration_since(t) < RESTORE_DEBOUNCE)
        {
            return;
        }
        self.last_restore = Some(now);
        if let Some(b) = self.batcher.seal_all(Instant::now()) {
            let id = snapshot::batch_id_before_snapshot(self.settings.environment_id, self.sealed);
            let object = self.seal(b, self.last_ingest_wall, id);
            self.send_object(object, ctx);
        }
        let previous = std::mem::replace(&mut self.settings.environment_id, Uuid::new_v4());
        Counters::add(&self.counters.restores, 1);
        info!(self.log, "restored from a snapshot"; "detected_by" => why,
            "previous_environment_id" => previous.to_string(), "environment_id" => self.settings.environment_id.to_string());
        let notify = self.shipper.restored.send(Restored);
        ctx.wait(notify.into_actor(self).map(|_, _, _| ()));
    }

    fn remember(list: &mut VecDeque<String>, id: String) {
        if list.len() == REQUESTS_REMEMBERED {
            list.pop_front();
        }
        list.push_back(id);
    }

    /// Re-checks the late-records waiter every few milliseconds until it is answered.
    fn poll_waiter(&mut self, ctx: &mut Context<Self>) {
        self.check_waiter();
        if self.waiter.is_some() {
            ctx.run_later(Duration::from_millis(5), |act, ctx| act.poll_waiter(ctx));
        }
    }

    fn check_waiter(&mut self) {
        let Some(w) = &self.waiter else { return };
        let now = Instant::now();
        let reports_in = !self.settings.platform_records
            || match &w.request_id {
                Some(id) => self.reports_seen.contains(id),
                None => !w.all_open || self.open_requests.is_empty(),
            };
        let quiet = now.saturating_duration_since(self.last_ingest) >= w.quiet;
        if ((reports_in && quiet) || now >= w.until)
            && let Some(w) = self.waiter.take()
        {
            let _ = w.done.send(());
        }
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        let now = (SystemTime::now(), Instant::now());
        if snapshot::wall_clock_jumped(self.last_tick, now) {
            self.restored("wall clock jump", ctx);
        }
        self.last_tick = now;
        // On Managed Instances the invocation count is checked here too: there is no INVOKE event.
        let sealed = if self.settings.managed_instances {
            self.batcher.check(now.1)
        } else {
            self.batcher.on_tick(now.1)
        };
        if let Some(b) = sealed {
            self.ship(b, ctx);
        }
    }
}

impl Actor for BatchActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // While the environment runs (a frozen one runs no timer: INVOKE covers it).
        ctx.run_interval(self.tick, |act, ctx| act.on_tick(ctx));
    }
}

impl Handler<IngestRecords> for BatchActor {
    type Result = ();

    fn handle(&mut self, msg: IngestRecords, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut dropped = false;
        for r in msg.records {
            // Our own EMF lines, back as `extension` records: metrics, not logs to ship.
            if crate::metrics::is_own_metrics_record(&r.raw) {
                continue;
            }
            Counters::add(&self.counters.received, 1);
            match (r.kind, r.request_id) {
                (Kind::Start, Some(id)) => {
                    if self.settings.managed_instances {
                        self.batcher.count_invoke();
                    }
                    Self::remember(&mut self.open_requests, id);
                }
                (Kind::Report, Some(id)) => {
                    self.open_requests.retain(|open| *open != id);
                    Self::remember(&mut self.reports_seen, id);
                }
                (Kind::RuntimeDone, Some(id)) if self.settings.ship_at == ShipAt::EndOfInvoke => {
                    Self::remember(&mut self.runtime_done_seen, id);
                }
                (Kind::LogsDropped { records }, _) => {
                    dropped = true;
                    Counters::add(&self.counters.lambda_dropped, records);
                    if let Some(n) = self
                        .dropped_throttle
                        .note(records, now, DROPPED_REPORT_PERIOD)
                    {
                        warn!(self.log, "Lambda dropped records before delivering them (platform.logsDropped)";
                            "records_since_last_report" => n, "total" => Counters::get(&self.counters.lambda_dropped));
                    }
                }
                // This record and the ones after it belong to the restored environment.
                (Kind::RestoreStart, _) => self.restored("platform.restoreStart", ctx),
                _ => {}
            }
            if let Some(b) = self.batcher.push(r.raw, now) {
                self.ship(b, ctx);
            }
        }
        self.last_ingest = now;
        self.last_ingest_wall = Utc::now();
        self.check_waiter();
        // A runtimeDone Lambda dropped will never come: do not hold the invoke for it.
        self.answer_runtime_done(dropped, ctx);
    }
}

impl Handler<InvokeStarted> for BatchActor {
    type Result = ();

    fn handle(&mut self, _msg: InvokeStarted, ctx: &mut Context<Self>) {
        match self.settings.ship_at {
            ShipAt::NextInvoke => {
                if let Some(b) = self.batcher.on_invoke(Instant::now()) {
                    self.ship(b, ctx);
                }
            }
            // Checked when this invoke's runtimeDone is in, so its records are in the batch.
            ShipAt::EndOfInvoke => self.batcher.count_invoke(),
        }
    }
}

impl Handler<AwaitRuntimeDone> for BatchActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: AwaitRuntimeDone, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        let id = msg.request_id.clone();
        self.runtime_done_waiter = Some((msg.request_id, done));
        self.answer_runtime_done(false, ctx);
        if self.runtime_done_waiter.is_some() {
            let left = msg.until.saturating_duration_since(Instant::now());
            ctx.run_later(left, move |act, ctx| {
                if act.runtime_done_waiter.as_ref().is_some_and(|(w, _)| *w == id) {
                    debug!(act.log, "no runtimeDone before the invoke's deadline"; "request_id" => &id);
                    act.answer_runtime_done(true, ctx);
                }
            });
        }
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}

impl Handler<AwaitLateRecords> for BatchActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: AwaitLateRecords, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        self.waiter = Some(LateRecordsWaiter {
            request_id: msg.request_id,
            all_open: msg.all_open,
            quiet: msg.quiet,
            until: msg.until,
            done,
        });
        self.poll_waiter(ctx);
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}

impl Handler<Shutdown> for BatchActor {
    type Result = ResponseFuture<Pending>;

    fn handle(&mut self, msg: Shutdown, _ctx: &mut Context<Self>) -> Self::Result {
        let last = self
            .batcher
            .seal_all(Instant::now())
            .map(|b| self.seal(b, Utc::now(), Uuid::new_v4()));
        let ship = self.shipper.ship.clone();
        let flush = self.shipper.flush.clone();
        Box::pin(async move {
            if let Some(object) = last {
                let _ = ship.send(ShipBatch { object }).await;
            }
            flush
                .send(Flush {
                    deadline: msg.deadline,
                    last: true,
                })
                .await
                .unwrap_or_default()
        })
    }
}
