//! Retrying: whether S3 is taking writes ([`Health`]), the back-off of each kind of failure, and
//! what an upload's outcome does to the batch.

use super::*;

/// Whether S3 is taking writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Health {
    Ok,
    /// After `level` consecutive failures of this kind, the last at `since`: no upload before
    /// `until`, then one probe ([`Policy::probe_at`] may bring it forward).
    Backoff {
        until: Instant,
        since: Instant,
        level: u32,
        kind: BackoffKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BackoffKind {
    Transient,
    Throttled,
    Refused,
}

impl BackoffKind {
    /// (first wait, longest wait, jittered).
    fn schedule(self) -> (Duration, Duration, bool) {
        match self {
            BackoffKind::Transient => (Duration::from_millis(100), Duration::from_secs(5), true),
            BackoffKind::Throttled => (Duration::from_secs(2), Duration::from_secs(30), true),
            BackoffKind::Refused => (Duration::from_secs(1), Duration::from_secs(30), false),
        }
    }
}

impl Policy {
    /// The longest wait of a per-batch back-off now: short in the final round.
    pub(super) fn retry_longest(&self) -> Duration {
        if self.final_deadline.is_some() {
            FINAL_ROUND_LONGEST_WAIT
        } else {
            entry::RETRY_LONGEST
        }
    }

    pub(super) fn uploaded(&mut self, id: BatchId) {
        self.health = Health::Ok;
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.upload = None;
        if e.done {
            return;
        }
        e.done = true;
        self.accounts.shipped += e.records as u64;
        self.accounts.objects += 1;
    }

    pub(super) fn failed(
        &mut self,
        id: BatchId,
        failure: Failure,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::Report {
            failure: failure.clone(),
        });
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let started = e.upload.take().map_or(now, |u| u.started);
        if failure == Failure::Throttled
            && let Some(pace) = self.pacing.throttled(started, now)
        {
            out.push(Action::Pace(pace));
        }
        if e.done {
            return;
        }
        e.failed = true;
        let kind = match failure {
            Failure::Transient => {
                e.maybe_stored = true;
                BackoffKind::Transient
            }
            Failure::Throttled => BackoffKind::Throttled,
            Failure::Refused(_) => BackoffKind::Refused,
            Failure::Rejected => {
                e.rejections += 1;
                if e.rejections >= REJECTIONS {
                    self.set_aside(id, false, out);
                    return;
                }
                BackoffKind::Transient
            }
            // About this batch alone, not S3: nothing to back off from.
            Failure::Unsendable | Failure::Unreadable => {
                self.set_aside(id, failure == Failure::Unreadable, out);
                return;
            }
        };
        let level = match self.health {
            Health::Backoff { level, .. } => level + 1,
            Health::Ok => 0,
        };
        let (first, mut longest, jitter) = kind.schedule();
        if self.final_deadline.is_some() {
            // The shutdown leaves about 1.5 s: keep trying, within it — one probe at a time, and
            // while S3 throttles, what waits is merged into that one request.
            longest = longest.min(FINAL_ROUND_LONGEST_WAIT);
        }
        let mut wait = first.saturating_mul(1 << level.min(16)).min(longest);
        if jitter {
            // Equal jitter: half fixed, half random, so retries of many environments spread out.
            wait = wait / 2 + wait.mul_f64(self.rng.unit() / 2.0);
        }
        self.health = Health::Backoff {
            until: now + wait,
            since: now,
            level,
            kind,
        };
    }

    /// When the next probe may go while S3 fails, if it does. While S3 throttles and half the disk
    /// or more is held, the wait stops growing: one that kept doubling (to 30 s) would fill the
    /// rest before the next probe (a 14 s throttle then looked like 21 s and filled a 2 MiB spill
    /// bound). Decided when the probe is due, not when the failure came: the disk fills meanwhile.
    /// A probe carries a merge of what waits, so probing at the first wait adds little to S3's
    /// load and drains the most.
    pub(super) fn probe_at(&self) -> Option<Instant> {
        let Health::Backoff {
            until, since, kind, ..
        } = self.health
        else {
            return None;
        };
        let (first, _, _) = kind.schedule();
        Some(
            if kind == BackoffKind::Throttled && self.disk() * 2 > self.cfg.max_disk {
                until.min(since + first)
            } else {
                until
            },
        )
    }
}
