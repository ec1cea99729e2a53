//! What LifecycleActor waits for: with `SHIP_AT=end-of-invoke`, the invoke's
//! `platform.runtimeDone` (a ship point); at SHUTDOWN, the records Lambda still holds (the last
//! request's `platform.report`, then a quiet moment). Each wait is answered by an event or at a
//! wake-up computed from its deadline and the last delivery, never by polling.

use super::{Action, Intake, Now, Token, Waiter};
use crate::batch::ShipPoint;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many request ids to remember, reported or still open (only the latest matter).
const REQUESTS_REMEMBERED: usize = 1024;

fn remember(list: &mut VecDeque<String>, id: String) {
    if list.len() == REQUESTS_REMEMBERED {
        list.pop_front();
    }
    list.push_back(id);
}

/// The requests the records name: started and not yet reported, and reported.
#[derive(Default)]
pub(super) struct Requests {
    /// Requests with a `platform.start` and no `platform.report` yet.
    open: VecDeque<String>,
    reported: VecDeque<String>,
}

impl Requests {
    pub(super) fn started(&mut self, id: String) {
        remember(&mut self.open, id);
    }

    pub(super) fn reported(&mut self, id: String) {
        self.open.retain(|open| *open != id);
        remember(&mut self.reported, id);
    }
}

struct LateRecords {
    request_id: Option<String>,
    all_open: bool,
    quiet: Duration,
    until: Instant,
}

impl LateRecords {
    /// Whether the reports it waits for are in (none will come without platform records).
    fn reports_in(&self, requests: &Requests, platform_records: bool) -> bool {
        !platform_records
            || match &self.request_id {
                Some(id) => requests.reported.contains(id),
                None => !self.all_open || requests.open.is_empty(),
            }
    }

    /// When it is to be answered if nothing else happens: a quiet moment after the last delivery
    /// once the reports are in, else its deadline.
    fn due(&self, reports_in: bool, last_ingest: Instant) -> Instant {
        if reports_in {
            (last_ingest + self.quiet).min(self.until)
        } else {
            self.until
        }
    }
}

#[derive(Default)]
pub(super) struct Waiters {
    late: Option<LateRecords>,
    /// The runtimeDone LifecycleActor waits for and until when, and the ones seen (one may arrive
    /// before LifecycleActor asks).
    runtime_done: Option<(String, Instant)>,
    runtime_done_seen: VecDeque<String>,
}

impl Waiters {
    pub(super) fn runtime_done_seen(&mut self, id: String) {
        remember(&mut self.runtime_done_seen, id);
    }

    /// A new wait replaces the one before (its answer is dropped).
    pub(super) fn await_runtime_done(&mut self, id: String, until: Instant) {
        self.runtime_done = Some((id, until));
    }

    pub(super) fn await_late_records(
        &mut self,
        request_id: Option<String>,
        all_open: bool,
        quiet: Duration,
        until: Instant,
    ) {
        self.late = Some(LateRecords {
            request_id,
            all_open,
            quiet,
            until,
        });
    }

    pub(super) fn runtime_done_expired(&self, now: Instant) -> bool {
        self.runtime_done
            .as_ref()
            .is_some_and(|(_, until)| now >= *until)
    }

    pub(super) fn runtime_done_id(&self) -> Option<String> {
        self.runtime_done.as_ref().map(|(id, _)| id.clone())
    }

    pub(super) fn next_wake(
        &self,
        requests: &Requests,
        platform_records: bool,
        last_ingest: Instant,
    ) -> Option<Instant> {
        let late = self.late.as_ref().map(|w| {
            let reports_in = w.reports_in(requests, platform_records);
            w.due(reports_in, last_ingest)
        });
        let runtime_done = self.runtime_done.as_ref().map(|(_, until)| *until);
        [late, runtime_done].into_iter().flatten().min()
    }
}

impl Intake {
    /// `SHIP_AT=end-of-invoke`: once the awaited runtimeDone is in (or `give_up`: it was perhaps
    /// dropped, or the deadline came), checks the thresholds and ships a batch that is due; the
    /// answer waits until that batch is queued at the shipper.
    pub(super) fn answer_runtime_done(&mut self, give_up: bool, now: Now) {
        let arrived = match &self.waiters.runtime_done {
            Some((id, _)) => self.waiters.runtime_done_seen.contains(id),
            None => return,
        };
        if !(arrived || give_up) {
            return;
        }
        self.waiters.runtime_done = None;
        match self.batcher.check(ShipPoint::All, now.mono) {
            Some(b) => self.ship(b, now, Token::RuntimeDone),
            None => self.out.push(Action::Answer(Waiter::RuntimeDone)),
        }
    }

    pub(super) fn check_late_records(&mut self, now: Instant) {
        let Some(w) = &self.waiters.late else { return };
        let reports_in = w.reports_in(&self.requests, self.settings.platform_records);
        let quiet = now.saturating_duration_since(self.last_ingest) >= w.quiet;
        if (reports_in && quiet) || now >= w.until {
            self.waiters.late = None;
            self.out.push(Action::Answer(Waiter::LateRecords));
        }
    }
}
