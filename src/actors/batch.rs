//! BatchActor: the actor shell around [`crate::batch::Batcher`]. It counts records and INVOKEs,
//! checks the time threshold on a timer while the environment runs, seals batches into objects
//! (key and body fixed here) and hands them to the shipper. It never does I/O itself.

use super::messages::{
    AwaitLateRecords, IngestRecords, InvokeStarted, Pending, ShipBatch, Shutdown,
};
use crate::batch::{Batch, Batcher};
use crate::config::Thresholds;
use crate::encode;
use crate::lambda::records::Kind;
use crate::object_key::object_key;
use crate::sink::SealedObject;
use crate::stats::Counters;
use actix::prelude::*;
use slog::{Logger, debug};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// How many `platform.report` request ids to remember (only the last invoke's matters).
const REPORTS_REMEMBERED: usize = 64;

/// Where BatchActor sends sealed batches and asks for the final flush.
pub struct ShipperHandles {
    pub ship: Recipient<ShipBatch>,
    pub flush: Recipient<super::messages::Flush>,
}

struct LateRecordsWaiter {
    request_id: Option<String>,
    quiet: Duration,
    until: Instant,
    done: oneshot::Sender<()>,
}

pub struct BatchActor {
    batcher: Batcher,
    shipper: ShipperHandles,
    environment_id: Uuid,
    function_name: String,
    /// Whether `platform` records are subscribed (else no report will ever come).
    platform_records: bool,
    reports_seen: VecDeque<String>,
    last_ingest: Instant,
    waiter: Option<LateRecordsWaiter>,
    /// How often the time threshold is checked while the environment runs.
    tick: Duration,
    counters: Arc<Counters>,
    log: Logger,
}

impl BatchActor {
    pub fn new(
        thresholds: Thresholds,
        shipper: ShipperHandles,
        environment_id: Uuid,
        function_name: String,
        platform_records: bool,
        counters: Arc<Counters>,
        log: Logger,
    ) -> Self {
        let now = Instant::now();
        Self {
            batcher: Batcher::new(thresholds, now),
            shipper,
            environment_id,
            function_name,
            platform_records,
            reports_seen: VecDeque::new(),
            last_ingest: now,
            waiter: None,
            tick: (thresholds.elapsed / 10)
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
            counters,
            log,
        }
    }

    fn seal(&self, batch: Batch) -> SealedObject {
        let key = object_key(
            chrono::Utc::now(),
            self.environment_id,
            &self.function_name,
            Uuid::new_v4(),
        );
        debug!(self.log, "sealed"; "key" => &key, "records" => batch.records.len(), "bytes" => batch.body_bytes, "reason" => batch.reason.as_str());
        SealedObject {
            key,
            body: encode::ndjson(&batch.records, batch.body_bytes),
            records: batch.records.len(),
        }
    }

    /// Hands a sealed batch to the shipper, holding this actor's mailbox until it is queued there:
    /// batches keep their order and a slow shipper pushes back.
    fn ship(&mut self, batch: Batch, ctx: &mut Context<Self>) {
        let object = self.seal(batch);
        let send = self.shipper.ship.send(ShipBatch { object });
        ctx.wait(send.into_actor(self).map(|res, act, _| {
            if let Err(e) = res {
                slog::error!(act.log, "the shipper is gone; a batch could not be queued"; "error" => e.to_string());
            }
        }));
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
        let report_in = match (&w.request_id, self.platform_records) {
            (Some(id), true) => self.reports_seen.contains(id),
            _ => true,
        };
        let quiet = now.saturating_duration_since(self.last_ingest) >= w.quiet;
        if ((report_in && quiet) || now >= w.until)
            && let Some(w) = self.waiter.take()
        {
            let _ = w.done.send(());
        }
    }
}

impl Actor for BatchActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Time threshold while the environment runs (a frozen one runs no timer: INVOKE covers it).
        ctx.run_interval(self.tick, |act, ctx| {
            if let Some(b) = act.batcher.on_tick(Instant::now()) {
                act.ship(b, ctx);
            }
        });
    }
}

impl Handler<IngestRecords> for BatchActor {
    type Result = ();

    fn handle(&mut self, msg: IngestRecords, ctx: &mut Context<Self>) {
        let now = Instant::now();
        Counters::add(&self.counters.received, msg.records.len() as u64);
        for r in msg.records {
            if r.kind == Kind::Report
                && let Some(id) = r.request_id
            {
                if self.reports_seen.len() == REPORTS_REMEMBERED {
                    self.reports_seen.pop_front();
                }
                self.reports_seen.push_back(id);
            }
            if let Some(b) = self.batcher.push(r.raw, now) {
                self.ship(b, ctx);
            }
        }
        self.last_ingest = now;
        self.check_waiter();
    }
}

impl Handler<InvokeStarted> for BatchActor {
    type Result = ();

    fn handle(&mut self, _msg: InvokeStarted, ctx: &mut Context<Self>) {
        if let Some(b) = self.batcher.on_invoke(Instant::now()) {
            self.ship(b, ctx);
        }
    }
}

impl Handler<AwaitLateRecords> for BatchActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: AwaitLateRecords, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        self.waiter = Some(LateRecordsWaiter {
            request_id: msg.request_id,
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
        let last = self.batcher.seal_all(Instant::now()).map(|b| self.seal(b));
        let ship = self.shipper.ship.clone();
        let flush = self.shipper.flush.clone();
        Box::pin(async move {
            if let Some(object) = last {
                let _ = ship.send(ShipBatch { object }).await;
            }
            flush
                .send(super::messages::Flush {
                    deadline: msg.deadline,
                })
                .await
                .unwrap_or_default()
        })
    }
}
