//! The end: SHUTDOWN seals everything buffered (the last ship point) and has the shipper make its
//! final round. Records that arrive after that seal — a runtime still logging while it exits —
//! are shipped at once, within the final round, while time is left for an upload; once the final
//! round is over, or too close to the deadline, they are refused (the receiver answers 503), so
//! Lambda counts them undelivered. A record is never acknowledged and then dropped.

use super::BatchActor;
use crate::actors::messages::{Closed, Flush, Pending, Shutdown};
use crate::stats::Counters;
use actix::prelude::*;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Late records are refused this close to the deadline: there is no time left to upload them.
const LATE_MARGIN: Duration = Duration::from_millis(300);

#[derive(Default)]
pub(super) struct Closing {
    /// The shutdown's deadline, from the final seal on.
    deadline: Option<Instant>,
    /// Late batches: sealed (counted when the records are taken), and queued at the shipper.
    /// Shared with the final-round loop, which runs on this actor's thread.
    late_sealed: Rc<Cell<u64>>,
    late_queued: Rc<Cell<u64>>,
    closed: Rc<Cell<bool>>,
}

impl Closing {
    pub(super) fn started(&self) -> bool {
        self.deadline.is_some()
    }

    /// No record is taken any more: the final round is over, or its deadline too close.
    pub(super) fn closed(&self) -> bool {
        self.closed.get()
            || self
                .deadline
                .is_some_and(|d| Instant::now() + LATE_MARGIN >= d)
    }
}

impl BatchActor {
    /// After the final seal: what was just taken goes out as a batch of its own.
    pub(super) fn ship_late(&mut self, ctx: &mut Context<Self>) {
        let Some(b) = self.batcher.seal_all(Instant::now()) else {
            return;
        };
        let sealed = &self.closing.late_sealed;
        sealed.set(sealed.get() + 1);
        let sealing = self.seal(b, chrono::Utc::now(), uuid::Uuid::new_v4());
        let (queued, done) = tokio::sync::oneshot::channel();
        self.send_object_then(sealing, Some(queued), ctx);
        let counter = self.closing.late_queued.clone();
        ctx.spawn(
            async move {
                let _ = done.await;
                counter.set(counter.get() + 1);
            }
            .into_actor(self),
        );
    }
}

impl Handler<Shutdown> for BatchActor {
    type Result = ResponseFuture<Pending>;

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        self.closing.deadline = Some(msg.deadline);
        let (queued, final_batch) = tokio::sync::oneshot::channel();
        match self.batcher.seal_all(Instant::now()) {
            Some(b) => {
                let sealing = self.seal(b, chrono::Utc::now(), uuid::Uuid::new_v4());
                self.send_object_then(sealing, Some(queued), ctx);
            }
            None => {
                let _ = queued.send(());
            }
        }
        let flush = self.shipper.flush.clone();
        let (sealed, queued, closed) = (
            self.closing.late_sealed.clone(),
            self.closing.late_queued.clone(),
            self.closing.closed.clone(),
        );
        Box::pin(async move {
            // Bounded: a batch still being encoded at the deadline is not shipped, and the summary
            // counts its records lost in memory (received, never sealed).
            let _ = tokio::time::timeout_at(msg.deadline.into(), final_batch).await;
            loop {
                // Every late batch sealed so far must be at the shipper before the round that
                // covers it starts.
                while queued.get() < sealed.get() && Instant::now() < msg.deadline {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                let mark = sealed.get();
                let pending = flush
                    .send(Flush {
                        deadline: msg.deadline,
                        last: true,
                    })
                    .await
                    .unwrap_or_default();
                // No await between the check and the close: no delivery can slip in between.
                if sealed.get() == mark || Instant::now() >= msg.deadline {
                    closed.set(true);
                    return pending;
                }
            }
        })
    }
}

/// Counts records refused once closed, and says so.
pub(super) fn refuse(counters: &Counters, records: u64) -> Closed {
    Counters::add(&counters.late_refused, records);
    Closed
}
