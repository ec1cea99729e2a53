//! BatchActor: the actor shell around [`crate::batch::Batcher`]. It counts records and invocations,
//! checks the thresholds at the ship points — INVOKE, a timer while the environment runs (a long
//! invocation), `platform.runtimeDone` with `SHIP_AT=end-of-invoke` ([`waiters`]), SHUTDOWN
//! ([`closing`]) — seals batches into objects (key fixed here, body encoded off the actor's thread
//! when large) and hands them to the shipper. It never does I/O itself.
//!
//! It also reads the few records that change what it does: `platform.report` (what SHUTDOWN waits
//! for), `platform.start` (the invocation count on Managed Instances, which have no INVOKE event),
//! `platform.logsDropped` (counted and reported), `platform.restoreStart` (SnapStart, see
//! [`crate::snapshot`]). Requests are told apart by `requestId`, never by "the current invocation":
//! records of one invoke routinely arrive during the next or after SHUTDOWN.

mod closing;
mod waiters;

use super::messages::{Closed, Flush, IngestRecords, InvokeStarted, Pace, Restored, ShipBatch};

use crate::batch::{Batch, Batcher, ShipPoint};
use crate::config::{ShipAt, Thresholds};
use crate::encode;
use crate::encode::Compression;
use crate::lambda::records::{Kind, record_time};
use crate::object_key::{KeyTemplate, KeyValues};
use crate::sealed::{ObjectMeta, SealedObject};
use crate::snapshot;
use crate::stats::{Counters, Throttle};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use slog::{Logger, debug, info, warn};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};
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
    /// A buffer this large is sealed at once, ship point or not (memory).
    pub max_object_bytes: u64,
    /// The freshness bound: how long the time threshold may grow while S3 throttles.
    pub max_delay: Duration,
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
    /// The clocks at the last look: a wall clock that jumped away from the monotonic one says the
    /// environment was restored from a snapshot.
    last_look: (SystemTime, Instant),
    /// One restore is often seen twice (the wall-clock jump, then `platform.restoreStart`): the
    /// second sighting within [`RESTORE_DEBOUNCE`] is the same restore.
    last_restore: Option<Instant>,
    waiters: waiters::Waiters,
    /// After SHUTDOWN: records are shipped as they come, until the final flush closes.
    closing: closing::Closing,
    dropped_throttle: Throttle,
    /// Sealed batches on their way to the encoder ([`encoder`]).
    encoder: mpsc::Sender<(Sealing, Option<oneshot::Sender<()>>)>,
    /// Its receiving end, until the actor starts the encoder.
    encoder_rx: Option<mpsc::Receiver<(Sealing, Option<oneshot::Sender<()>>)>>,
    /// How often the thresholds are checked while the environment runs.
    tick: Duration,
    counters: Arc<Counters>,
    log: Logger,
}

/// A batch with its key and metadata fixed, its body not yet encoded.
struct Sealing {
    key: String,
    records: Vec<bytes::Bytes>,
    body_bytes: u64,
    meta: ObjectMeta,
}

/// Encodes sealed batches one after another on the blocking pool (compression never runs on the
/// actors' thread) and queues each at the shipper, in the order they were sealed; answers each
/// batch's `queued` once it is there. Ends when BatchActor is gone.
async fn encoder(
    mut batches: mpsc::Receiver<(Sealing, Option<oneshot::Sender<()>>)>,
    compression: Compression,
    ship: Recipient<ShipBatch>,
    counters: Arc<Counters>,
    log: Logger,
) {
    while let Some((s, queued)) = batches.recv().await {
        let raw = s.body_bytes;
        let encoded = tokio::task::spawn_blocking(move || SealedObject {
            body: encode::body(&s.records, s.body_bytes, compression),
            raw_bytes: s.body_bytes,
            records: s.records.len(),
            key: s.key,
            meta: s.meta,
        })
        .await;
        match encoded {
            Ok(object) => {
                if ship.send(ShipBatch { object }).await.is_err() {
                    slog::error!(log, "the shipper is gone; a batch could not be queued");
                }
            }
            // Counted at the end: received but never sealed is lost in memory.
            Err(e) => slog::error!(log, "encoding a batch failed"; "error" => e.to_string()),
        }
        Counters::sub(&counters.buffered, raw);

        if let Some(q) = queued {
            let _ = q.send(());
        }
    }
}

impl BatchActor {
    pub fn new(
        settings: BatchSettings,
        shipper: ShipperHandles,
        counters: Arc<Counters>,
        log: Logger,
    ) -> Self {
        let now = Instant::now();
        let (encoder, encoder_rx) = mpsc::channel(1);
        Self {
            encoder,
            encoder_rx: Some(encoder_rx),
            batcher: Batcher::new(settings.thresholds, settings.max_object_bytes, now)
                .with_max_delay(settings.max_delay)
                .with_jitter(rand::random()),
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
            last_look: (SystemTime::now(), now),
            last_restore: None,
            waiters: Default::default(),
            closing: Default::default(),
            dropped_throttle: Throttle::default(),
            counters,
            log,
        }
    }

    /// Fixes the batch's key and metadata. `fallback_at` dates the key when the first record
    /// carries no readable `time`.
    fn seal(&mut self, batch: Batch, fallback_at: DateTime<Utc>, batch_id: Uuid) -> Sealing {
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
        Sealing {
            key,
            records: batch.records,
            body_bytes: batch.body_bytes,
            meta: ObjectMeta {
                content_encoding: s.compression.content_encoding().map(str::to_string),
                first_record_time,
                last_record_time,
            },
        }
    }

    /// Seals `batch` under a new id and hands it to the shipper.
    fn ship(&mut self, batch: Batch, ctx: &mut Context<Self>) {
        let sealing = self.seal(batch, Utc::now(), Uuid::new_v4());
        self.send_object_then(sealing, None, ctx);
    }

    /// Hands the batch to the encoder (which encodes it on the blocking pool and queues it at the
    /// shipper, in order) and has `queued` answered once it is queued there. The mailbox is held
    /// only while the encoder is busy and one batch already waits for it: a slow encoder pushes
    /// back on deliveries, and at most two batches are between sealing and the shipper.
    fn send_object_then(
        &mut self,
        sealing: Sealing,
        queued: Option<oneshot::Sender<()>>,
        ctx: &mut Context<Self>,
    ) {
        use tokio::sync::mpsc::error::TrySendError;
        match self.encoder.try_send((sealing, queued)) {
            Ok(()) => {}
            Err(TrySendError::Full(item)) => {
                let encoder = self.encoder.clone();
                ctx.wait(
                    async move {
                        let _ = encoder.send(item).await;
                    }
                    .into_actor(self),
                );
            }
            Err(TrySendError::Closed(_)) => {
                slog::error!(self.log, "the encoder is gone; a batch could not be queued");
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
        // The shipper hears of the restore once the snapshot's last batch is queued there: that
        // batch's key is every copy's too, and the restore marks every held key so.
        let (queued, at_shipper) = oneshot::channel();
        match self.batcher.seal_all(now) {
            Some(b) => {
                let id =
                    snapshot::batch_id_before_snapshot(self.settings.environment_id, self.sealed);
                let sealing = self.seal(b, self.last_ingest_wall, id);
                self.send_object_then(sealing, Some(queued), ctx);
            }
            None => {
                let _ = queued.send(());
            }
        }
        let previous = std::mem::replace(&mut self.settings.environment_id, Uuid::new_v4());
        Counters::add(&self.counters.restores, 1);
        info!(self.log, "restored from a snapshot"; "detected_by" => why,
            "previous_environment_id" => previous.to_string(), "environment_id" => self.settings.environment_id.to_string());
        let restored = self.shipper.restored.clone();
        let notify = async move {
            let _ = at_shipper.await;
            let _ = restored.send(Restored).await;
        };
        // Not holding the mailbox: later records go under the new environment id anyway (a
        // batch of theirs the restore still finds held is only marked more carefully than needed).
        ctx.spawn(notify.into_actor(self));
    }

    /// Looks at the clocks: a wall clock that jumped away from the monotonic one means a restore.
    /// Done at every tick and every delivery, so the first record after a restore already goes
    /// under the new environment id.
    fn look_at_clocks(&mut self, ctx: &mut Context<Self>) -> Instant {
        let now = (SystemTime::now(), Instant::now());
        if snapshot::wall_clock_jumped(self.last_look, now) {
            self.restored("wall clock jump", ctx);
        }
        self.last_look = now;
        now.1
    }

    fn remember(list: &mut VecDeque<String>, id: String) {
        if list.len() == REQUESTS_REMEMBERED {
            list.pop_front();
        }
        list.push_back(id);
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        let now = self.look_at_clocks(ctx);
        if self.closing.started() {
            return;
        }
        // On Managed Instances the invocation count is checked here too: there is no INVOKE event.
        let at = if self.settings.managed_instances {
            ShipPoint::All
        } else {
            ShipPoint::Timer
        };
        if let Some(b) = self.batcher.check(at, now) {
            self.ship(b, ctx);
        }
    }
}

impl Actor for BatchActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(rx) = self.encoder_rx.take() {
            actix_rt::spawn(encoder(
                rx,
                self.settings.compression,
                self.shipper.ship.clone(),
                self.counters.clone(),
                self.log.clone(),
            ));
        }
        // While the environment runs (a frozen one runs no timer: INVOKE covers it).
        ctx.run_interval(self.tick, |act, ctx| act.on_tick(ctx));
    }
}

impl Handler<IngestRecords> for BatchActor {
    type Result = Result<(), Closed>;

    fn handle(&mut self, msg: IngestRecords, ctx: &mut Context<Self>) -> Result<(), Closed> {
        if self.closing.closed() {
            return Err(closing::refuse(&self.counters, msg.records.len() as u64));
        }
        let now = self.look_at_clocks(ctx);
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
                    self.waiters.runtime_done_seen(id);
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
            Counters::add(&self.counters.buffered, r.raw.len() as u64 + 1);
            if let Some(b) = self.batcher.push(r.raw, r.kind == Kind::Extension, now) {
                self.ship(b, ctx);
            }
        }
        self.last_ingest = now;
        self.last_ingest_wall = Utc::now();
        if self.closing.started() {
            // After the final seal: what arrives goes out at once, within the final flush.
            self.ship_late(ctx);
        }
        self.check_late_records_waiter();
        // A runtimeDone Lambda dropped will never come: do not hold the invoke for it.
        self.answer_runtime_done(dropped, ctx);
        Ok(())
    }
}

impl Handler<Pace> for BatchActor {
    type Result = ();

    fn handle(&mut self, msg: Pace, _: &mut Context<Self>) {
        if msg.factor > 1.0 {
            info!(self.log, "S3 asks for fewer requests: shipping less often, in larger objects"; "pace" => msg.factor);
        } else {
            info!(self.log, "S3 takes requests again: shipping as configured");
        }
        self.batcher.set_pace(msg.factor);
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
