//! Pacing: how much less often an environment ships while S3 throttles its prefix (AIMD).

use std::time::{Duration, Instant};

/// Additive increase, multiplicative decrease — of the shipping rate, as TCP does of its window:
/// SlowDown divides the rate by [`FIRST_INCREASE`] the first time and halves it after (multiplies
/// the pace — once per round of requests: a SlowDown to an upload that started before the last
/// increase does not count again, as TCP halves its window once per window), and every [`RELAX_EVERY`] without SlowDown adds [`RELAX_RATE`]
/// to it (1/pace), up to the configured rate; after [`RESET_AFTER`] without SlowDown it is the
/// configured rate again. The batcher multiplies its thresholds by the pace,
/// the time threshold capped by the freshness bound (`MAX_DELAY_MS`); the shipper merges waiting
/// batches while it is above 1. Many environments writing to one hot prefix each back off on their
/// own and settle near what the prefix takes: the increase is the same for every environment per
/// unit of time, so they converge to a fair share, and it is slow, because an environment that
/// ships rarely also sees SlowDown rarely (one per cycle of relaxing: at a fleet's low per-environment
/// rates, a fast increase would keep the prefix above its limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    pub pace: f64,
    last_up: Option<Instant>,
    /// The last SlowDown, or the last relaxation step.
    quiet_since: Option<Instant>,
    /// The last SlowDown.
    last_throttle: Option<Instant>,
}

pub const MAX_PACE: f64 = 64.0;
/// The first SlowDown multiplies the pace by this (then by 2 per round).
pub const FIRST_INCREASE: f64 = 4.0;
pub const RELAX_EVERY: Duration = Duration::from_secs(10);
/// Added to the rate (1/pace) per [`RELAX_EVERY`]: slow, so that a fleet settles below the limit.
pub const RELAX_RATE: f64 = 0.0025;
/// After this long without SlowDown the prefix has cooled (or S3 has split it): back to 1 at once.
pub const RESET_AFTER: Duration = Duration::from_secs(300);

impl Default for Pacing {
    fn default() -> Self {
        Self {
            pace: 1.0,
            last_up: None,
            quiet_since: None,
            last_throttle: None,
        }
    }
}

impl Pacing {
    /// SlowDown at `now` to an upload started at `started`: the new pace, if it changed.
    pub(super) fn throttled(&mut self, started: Instant, now: Instant) -> Option<f64> {
        self.quiet_since = Some(now);
        self.last_throttle = Some(now);
        if self.last_up.is_some_and(|t| started <= t) {
            return None;
        }
        // The environment's first SlowDown: the prefix is hot with other environments' writes
        // already, and each of them learns its pace alone; a new environment that only doubled
        // would be throttled twice more before it stopped adding to the overload (measured in the
        // fleet mode: with environments replaced every few minutes, those first SlowDowns were most
        // of all of them). A larger pace only costs freshness, which MAX_DELAY_MS bounds.
        let factor = if self.last_up.is_none() {
            FIRST_INCREASE
        } else {
            2.0
        };
        self.last_up = Some(now);
        let up = (self.pace * factor).min(MAX_PACE);
        (up != self.pace).then(|| {
            self.pace = up;
            up
        })
    }

    /// A step back toward 1 for every quiet [`RELAX_EVERY`], and when to look again.
    pub(super) fn relax(&mut self, now: Instant) -> (Option<f64>, Option<Instant>) {
        let Some(since) = self.quiet_since.filter(|_| self.pace > 1.0) else {
            return (None, None);
        };
        if now.duration_since(since) < RELAX_EVERY {
            return (None, Some(since + RELAX_EVERY));
        }
        let rate = 1.0 / self.pace + RELAX_RATE;
        let cooled = self
            .last_throttle
            .is_some_and(|t| now.duration_since(t) >= RESET_AFTER);
        self.pace = if rate >= 1.0 || cooled {
            1.0
        } else {
            1.0 / rate
        };
        self.quiet_since = Some(now);
        let next = (self.pace > 1.0).then_some(now + RELAX_EVERY);
        (Some(self.pace), next)
    }
}
