//! BatchActor: the shell around [`crate::intake::Intake`], which decides everything between a
//! delivery and a sealed batch. The shell reads the clocks, hands the core its events, and carries
//! out its actions: encodes sealed batches off the actors' thread and queues them at the shipper in
//! order, answers the waits LifecycleActor asked for, asks the shipper for the final flush, and
//! wakes the core when it asked to be woken. It decides nothing itself.

use super::messages::{
    AwaitLateRecords, AwaitRuntimeDone, Closed, Flush, IngestRecords, InvokeStarted, Pace, Pending,
    Restored, ShipBatch, Shutdown,
};
use crate::encode;
use crate::encode::{Compression, Format};
use crate::intake::{Action, Event, Intake, Note, Now, Sealing, Token, Waiter};
use crate::stats::Counters;
use actix::prelude::*;
use slog::{Logger, debug, info, warn};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// What BatchActor is configured with: the core's settings.
pub use crate::intake::Settings as BatchSettings;

/// Where BatchActor sends sealed batches and asks for the final flush.
pub struct ShipperHandles {
    pub ship: Recipient<ShipBatch>,
    pub flush: Recipient<Flush>,
    pub restored: Recipient<Restored>,
}

/// The answers owed to LifecycleActor.
#[derive(Default)]
struct Answers {
    runtime_done: Option<oneshot::Sender<()>>,
    late_records: Option<oneshot::Sender<()>>,
    shutdown: Option<oneshot::Sender<Pending>>,
    /// What the last final flush left pending (SHUTDOWN's answer).
    pending: Pending,
}

type ToEncode = (Sealing, oneshot::Sender<()>);

pub struct BatchActor {
    intake: Intake,
    shipper: ShipperHandles,
    answers: Answers,
    /// The wake-up the core asked for, scheduled.
    wake: Option<(Instant, SpawnHandle)>,
    /// Sealed batches on their way to the encoder ([`encoder`]).
    encoder: mpsc::Sender<ToEncode>,
    /// Its receiving end, until the actor starts the encoder.
    encoder_rx: Option<mpsc::Receiver<ToEncode>>,
    /// The objects' format and compression.
    encoding: (Format, Compression),
    counters: Arc<Counters>,
    log: Logger,
}

/// Encodes sealed batches one after another on the blocking pool (compression and Parquet never
/// run on the actors' thread) and queues each at the shipper, in the order they were sealed;
/// answers each batch's `queued` once it is there. Logs and counts a batch that went as NDJSON
/// because Parquet could not hold it. Ends when BatchActor is gone.
async fn encoder(
    mut batches: mpsc::Receiver<ToEncode>,
    (format, compression): (Format, Compression),
    ship: Recipient<ShipBatch>,
    counters: Arc<Counters>,
    log: Logger,
) {
    while let Some((s, queued)) = batches.recv().await {
        let raw = s.body_bytes;
        let encoded =
            tokio::task::spawn_blocking(move || encode::object(s, format, compression)).await;
        match encoded {
            Ok(encode::Encoded { object, fallback }) => {
                if let Some(why) = fallback {
                    warn!(log, "a batch could not be written as Parquet; it goes as NDJSON";
                        "key" => &object.key, "records" => object.records, "why" => why.to_string());
                    Counters::add(&counters.format_fallbacks, 1);
                }
                if ship.send(ShipBatch { object }).await.is_err() {
                    slog::error!(log, "the shipper is gone; a batch could not be queued");
                }
            }
            // Counted at the end: received but never sealed is lost in memory.
            Err(e) => slog::error!(log, "encoding a batch failed"; "error" => e.to_string()),
        }
        Counters::sub(&counters.buffered, raw);

        let _ = queued.send(());
    }
}

impl BatchActor {
    /// `environment_id`: this process's, a v4 UUID made once (the core renews it at a restore).
    pub fn new(
        settings: BatchSettings,
        environment_id: uuid::Uuid,
        shipper: ShipperHandles,
        counters: Arc<Counters>,
        log: Logger,
    ) -> Self {
        let (encoder, encoder_rx) = mpsc::channel(1);
        Self {
            encoder,
            encoder_rx: Some(encoder_rx),
            encoding: (settings.format, settings.compression),
            intake: Intake::new(
                settings,
                environment_id,
                counters.clone(),
                rand::random(),
                Now::read(),
            ),
            shipper,
            answers: Answers::default(),
            wake: None,
            counters,
            log,
        }
    }

    /// Hands the core one event and carries out what it decided; true if it refused a delivery.
    fn apply(&mut self, event: Event, ctx: &mut Context<Self>) -> bool {
        let mut refused = false;
        for action in self.intake.handle(event, Now::read()) {
            match action {
                Action::Ship { sealing, then } => self.send(sealing, then, ctx),
                Action::Answer(Waiter::RuntimeDone) => answer(&mut self.answers.runtime_done),
                Action::Answer(Waiter::LateRecords) => answer(&mut self.answers.late_records),
                Action::Refuse => refused = true,
                Action::Flush { deadline } => self.flush(deadline, ctx),
                Action::Close => {
                    if let Some(s) = self.answers.shutdown.take() {
                        let _ = s.send(self.answers.pending);
                    }
                }
                Action::TellRestored => self.shipper.restored.do_send(Restored),
                Action::Say(note) => self.say(note),
            }
        }
        self.schedule_wake(ctx);
        refused
    }

    /// Hands the batch to the encoder (which encodes it on the blocking pool and queues it at the
    /// shipper, in order) and tells the core once it is queued there. The mailbox is
    /// held only while the encoder is busy and one batch already waits for it: a slow encoder
    /// pushes back on deliveries, and at most two batches are between sealing and the shipper.
    fn send(&mut self, sealing: Sealing, then: Token, ctx: &mut Context<Self>) {
        use tokio::sync::mpsc::error::TrySendError;
        let (queued, at_shipper) = oneshot::channel();
        ctx.spawn(
            async move {
                // An encoder that is gone answers nothing: the batch is not coming either.
                let _ = at_shipper.await;
            }
            .into_actor(self)
            .map(move |_, act, ctx| {
                act.apply(Event::Queued(then), ctx);
            }),
        );
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

    fn flush(&mut self, deadline: Instant, ctx: &mut Context<Self>) {
        let flush = self.shipper.flush.clone();
        ctx.spawn(
            async move {
                flush
                    .send(Flush {
                        deadline,
                        last: true,
                    })
                    .await
                    .unwrap_or_default()
            }
            .into_actor(self)
            .map(|pending, act, ctx| {
                act.answers.pending = pending;
                act.apply(Event::Flushed, ctx);
            }),
        );
    }

    /// One timer for the core's next wake-up, moved when that changes.
    fn schedule_wake(&mut self, ctx: &mut Context<Self>) {
        let want = self.intake.next_wake();
        if self.wake.as_ref().map(|(at, _)| *at) == want {
            return;
        }
        if let Some((_, handle)) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = want {
            let handle = ctx.run_later(at.saturating_duration_since(Instant::now()), |act, ctx| {
                act.wake = None;
                act.apply(Event::Wake, ctx);
            });
            self.wake = Some((at, handle));
        }
    }

    fn say(&self, note: Note) {
        let log = &self.log;
        match note {
            Note::Sealed {
                key,
                records,
                bytes,
                reason,
            } => {
                debug!(log, "sealed"; "key" => key, "records" => records, "bytes" => bytes, "reason" => reason.as_str())
            }
            Note::Restored {
                detected_by,
                previous,
                environment_id,
            } => info!(log, "restored from a snapshot"; "detected_by" => detected_by,
                "previous_environment_id" => previous.to_string(), "environment_id" => environment_id.to_string()),
            Note::LambdaDropped {
                since_last_report,
                total,
            } => warn!(log, "Lambda dropped records before delivering them (platform.logsDropped)";
                "records_since_last_report" => since_last_report, "total" => total),
            Note::Paced(factor) if factor > 1.0 => {
                info!(log, "S3 asks for fewer requests: shipping less often, in larger objects"; "pace" => factor)
            }
            Note::Paced(_) => info!(log, "S3 takes requests again: shipping as configured"),
            Note::NoRuntimeDone { request_id } => {
                debug!(log, "no runtimeDone before the invoke's deadline"; "request_id" => request_id)
            }
        }
    }
}

fn answer(waiting: &mut Option<oneshot::Sender<()>>) {
    if let Some(w) = waiting.take() {
        let _ = w.send(());
    }
}

impl Actor for BatchActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(rx) = self.encoder_rx.take() {
            actix_rt::spawn(encoder(
                rx,
                self.encoding,
                self.shipper.ship.clone(),
                self.counters.clone(),
                self.log.clone(),
            ));
        }
        // While the environment runs (a frozen one runs no timer: INVOKE covers it).
        ctx.run_interval(self.intake.settings().tick, |act, ctx| {
            act.apply(Event::Tick, ctx);
        });
    }
}

impl Handler<IngestRecords> for BatchActor {
    type Result = Result<(), Closed>;

    fn handle(&mut self, msg: IngestRecords, ctx: &mut Context<Self>) -> Result<(), Closed> {
        if self.apply(Event::Records(msg.records), ctx) {
            Err(Closed)
        } else {
            Ok(())
        }
    }
}

impl Handler<Pace> for BatchActor {
    type Result = ();

    fn handle(&mut self, msg: Pace, ctx: &mut Context<Self>) {
        self.apply(Event::Pace(msg.factor), ctx);
    }
}

impl Handler<InvokeStarted> for BatchActor {
    type Result = ();

    fn handle(&mut self, _msg: InvokeStarted, ctx: &mut Context<Self>) {
        self.apply(Event::Invoke, ctx);
    }
}

impl BatchActor {
    /// Hands the core an event that LifecycleActor awaits the answer of: the answer's slot is
    /// filled before the event (the core may answer at once), and the future resolves with it
    /// (with the default if the actor is gone first).
    fn awaited<T: Default + Send + 'static>(
        &mut self,
        slot: fn(&mut Answers) -> &mut Option<oneshot::Sender<T>>,
        event: Event,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<T> {
        let (done, answer) = oneshot::channel();
        *slot(&mut self.answers) = Some(done);
        self.apply(event, ctx);
        Box::pin(async move { answer.await.unwrap_or_default() })
    }
}

impl Handler<AwaitRuntimeDone> for BatchActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: AwaitRuntimeDone, ctx: &mut Context<Self>) -> Self::Result {
        let event = Event::AwaitRuntimeDone {
            request_id: msg.request_id,
            until: msg.until,
        };
        self.awaited(|a| &mut a.runtime_done, event, ctx)
    }
}

impl Handler<AwaitLateRecords> for BatchActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: AwaitLateRecords, ctx: &mut Context<Self>) -> Self::Result {
        let event = Event::AwaitLateRecords {
            request_id: msg.request_id,
            all_open: msg.all_open,
            quiet: msg.quiet,
            until: msg.until,
        };
        self.awaited(|a| &mut a.late_records, event, ctx)
    }
}

impl Handler<Shutdown> for BatchActor {
    type Result = ResponseFuture<Pending>;

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let event = Event::Shutdown {
            deadline: msg.deadline,
        };
        self.awaited(|a| &mut a.shutdown, event, ctx)
    }
}
