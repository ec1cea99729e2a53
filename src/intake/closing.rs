//! The end: SHUTDOWN seals everything buffered (the last ship point) and has the shipper make its
//! final round. Records that arrive after that seal — a runtime still logging while it exits —
//! are shipped at once, within the final round, while time is left for an upload; once the final
//! round is over, or too close to the deadline, they are refused (the receiver answers 503), so
//! Lambda counts them undelivered. A record is never acknowledged and then dropped.
//!
//! The final round starts once every batch sealed so far — SHUTDOWN's, one a ship point sealed
//! just before it, the late ones — is queued at the shipper (or at the deadline). When it is answered and no late batch was sealed meanwhile,
//! intake closes; otherwise another round covers the late batches.

use super::{Action, Intake, Now, Token};
use std::time::{Duration, Instant};

/// Late records are refused this close to the deadline: there is no time left to upload them.
const LATE_MARGIN: Duration = Duration::from_millis(300);

#[derive(Default)]
pub(super) struct Closing {
    /// The shutdown's deadline, from the final seal on.
    deadline: Option<Instant>,
    /// Late batches sealed.
    late_sealed: u64,
    /// A final round is in flight; it covers this many late batches.
    flushing: Option<u64>,
    closed: bool,
}

impl Closing {
    pub(super) fn started(&self) -> bool {
        self.deadline.is_some()
    }

    /// No record is taken any more: the final round is over, or its deadline too close.
    pub(super) fn closed(&self, now: Instant) -> bool {
        self.closed || self.deadline.is_some_and(|d| now + LATE_MARGIN >= d)
    }

    /// The deadline, while a round waits for batches on their way to the shipper: a batch still
    /// being encoded then is not waited for (the summary counts it lost in memory).
    pub(super) fn next_wake(&self, in_transit: u64) -> Option<Instant> {
        self.deadline
            .filter(|_| !self.closed && self.flushing.is_none() && in_transit > 0)
    }
}

impl Intake {
    pub(super) fn shutdown(&mut self, deadline: Instant, now: Now) {
        self.closing.deadline = Some(deadline);
        if let Some(b) = self.batcher.seal_all(now.mono) {
            self.ship(b, now, Token::Plain);
        }
        self.final_round(now);
    }

    /// After the final seal: what was just taken goes out as a batch of its own.
    pub(super) fn ship_late(&mut self, now: Now) {
        if let Some(b) = self.batcher.seal_all(now.mono) {
            self.closing.late_sealed += 1;
            self.ship(b, now, Token::Plain);
        }
    }

    /// Starts a final round once everything sealed is at the shipper, or the deadline came.
    pub(super) fn final_round(&mut self, now: Now) {
        let c = &mut self.closing;
        let Some(deadline) = c.deadline else { return };
        if c.closed || c.flushing.is_some() {
            return;
        }
        if self.in_transit == 0 || now.mono >= deadline {
            c.flushing = Some(c.late_sealed);
            self.out.push(Action::Flush { deadline });
        }
    }

    /// The final round was answered: close, unless late batches were sealed meanwhile and time is
    /// left for another round. Nothing else runs between this and the close, so no delivery can
    /// slip in between.
    pub(super) fn flushed(&mut self, now: Now) {
        let c = &mut self.closing;
        let (Some(deadline), Some(mark)) = (c.deadline, c.flushing.take()) else {
            return;
        };
        if c.late_sealed == mark || now.mono >= deadline {
            c.closed = true;
            self.out.push(Action::Close);
        } else {
            self.final_round(now);
        }
    }
}
