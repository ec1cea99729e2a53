//! What LifecycleActor waits for from BatchActor: with `SHIP_AT=end-of-invoke`, the invoke's
//! `platform.runtimeDone` (a ship point); at SHUTDOWN, the records Lambda still holds (the last
//! request's `platform.report`, then a quiet moment).

use super::BatchActor;
use crate::actors::messages::{AwaitLateRecords, AwaitRuntimeDone};
use crate::batch::ShipPoint;
use actix::prelude::*;
use slog::debug;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

struct LateRecordsWaiter {
    request_id: Option<String>,
    all_open: bool,
    quiet: Duration,
    until: Instant,
    done: oneshot::Sender<()>,
}

#[derive(Default)]
pub(super) struct Waiters {
    late: Option<LateRecordsWaiter>,
    /// The runtimeDone LifecycleActor waits for, and the ones seen (one may arrive before
    /// LifecycleActor asks).
    runtime_done: Option<(String, oneshot::Sender<()>)>,
    runtime_done_seen: VecDeque<String>,
}

impl Waiters {
    pub(super) fn runtime_done_seen(&mut self, id: String) {
        BatchActor::remember(&mut self.runtime_done_seen, id);
    }
}

impl BatchActor {
    /// `SHIP_AT=end-of-invoke`: once the awaited runtimeDone is in (or `give_up`: it was perhaps
    /// dropped, or the deadline is near), checks the thresholds, queues a batch that is due, then
    /// answers LifecycleActor.
    pub(super) fn answer_runtime_done(&mut self, give_up: bool, ctx: &mut Context<Self>) {
        let arrived = match &self.waiters.runtime_done {
            Some((id, _)) => self.waiters.runtime_done_seen.contains(id),
            None => return,
        };
        if !(arrived || give_up) {
            return;
        }
        let Some((_, done)) = self.waiters.runtime_done.take() else {
            return;
        };
        match self.batcher.check(ShipPoint::All, Instant::now()) {
            Some(b) => {
                let sealing = self.seal(b, chrono::Utc::now(), uuid::Uuid::new_v4());
                self.send_object_then(sealing, Some(done), ctx);
            }
            None => {
                let _ = done.send(());
            }
        }
    }

    /// Re-checks the late-records waiter every few milliseconds until it is answered.
    fn poll_late_records_waiter(&mut self, ctx: &mut Context<Self>) {
        self.check_late_records_waiter();
        if self.waiters.late.is_some() {
            ctx.run_later(Duration::from_millis(5), |act, ctx| {
                act.poll_late_records_waiter(ctx)
            });
        }
    }

    pub(super) fn check_late_records_waiter(&mut self) {
        let Some(w) = &self.waiters.late else { return };
        let now = Instant::now();
        let reports_in = !self.settings.platform_records
            || match &w.request_id {
                Some(id) => self.reports_seen.contains(id),
                None => !w.all_open || self.open_requests.is_empty(),
            };
        let quiet = now.saturating_duration_since(self.last_ingest) >= w.quiet;
        if ((reports_in && quiet) || now >= w.until)
            && let Some(w) = self.waiters.late.take()
        {
            let _ = w.done.send(());
        }
    }
}

impl Handler<AwaitRuntimeDone> for BatchActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: AwaitRuntimeDone, ctx: &mut Context<Self>) -> Self::Result {
        let (done, wait) = oneshot::channel();
        let id = msg.request_id.clone();
        self.waiters.runtime_done = Some((msg.request_id, done));
        self.answer_runtime_done(false, ctx);
        if self.waiters.runtime_done.is_some() {
            let left = msg.until.saturating_duration_since(Instant::now());
            ctx.run_later(left, move |act, ctx| {
                if act
                    .waiters
                    .runtime_done
                    .as_ref()
                    .is_some_and(|(w, _)| *w == id)
                {
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
        self.waiters.late = Some(LateRecordsWaiter {
            request_id: msg.request_id,
            all_open: msg.all_open,
            quiet: msg.quiet,
            until: msg.until,
            done,
        });
        self.poll_late_records_waiter(ctx);
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}
