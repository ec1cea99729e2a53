//! The pure core of batching: the open buffer and the three thresholds (bytes, invokes, elapsed
//! time). No actix, no I/O; time is passed in.
//!
//! Thresholds are **triggers**, as in the Go sample: at a ship point, when any threshold is met,
//! everything buffered becomes one batch. The bytes threshold never cuts a batch: 600 KB buffered at
//! a ship point is one object, not 150. The ship points (see the actors) are INVOKE, the timer while
//! the environment runs (a long invocation), `platform.runtimeDone` with `SHIP_AT=end-of-invoke`,
//! and SHUTDOWN. One bound is not a trigger but a memory limit: a buffer that reaches
//! `max_object_bytes` is sealed at once, whatever the ship points say.
//!
//! The bytes counter is exact: it is the size of the NDJSON body that will be shipped (each record
//! plus its newline), before any compression. Lines of extensions (the `extension` log type, our
//! own log lines among them) never make a buffer due by themselves: they ship with the next batch
//! that other records make due, or at shutdown, so an idle environment does not ship its own
//! "shipped" lines for ever.

use crate::config::Thresholds;
use bytes::Bytes;
use std::time::Instant;

/// Why a batch was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealReason {
    Bytes,
    Invokes,
    Elapsed,
    /// The buffer reached the largest object memory allows.
    Size,
    Shutdown,
}

impl SealReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SealReason::Bytes => "bytes",
            SealReason::Invokes => "invokes",
            SealReason::Elapsed => "elapsed",
            SealReason::Size => "size",
            SealReason::Shutdown => "shutdown",
        }
    }
}

/// The records of one object, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<Bytes>,
    /// Exact size of the NDJSON body.
    pub body_bytes: u64,
    pub reason: SealReason,
}

/// Which thresholds a ship point checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipPoint {
    /// INVOKE, `runtimeDone` in end-of-invoke mode, the timer on Managed Instances: all three.
    All,
    /// The timer in a classic environment: bytes and elapsed time (invokes are counted by INVOKE).
    Timer,
}

/// The spread of paced thresholds: ±25 %.
pub const SPREAD: f64 = 0.25;

/// Buffer plus counters.
#[derive(Debug)]
pub struct Batcher {
    thresholds: Thresholds,
    /// The longest the time threshold may grow to when paced (the freshness bound).
    max_delay: std::time::Duration,
    /// How much less often to ship (≥ 1): the thresholds are multiplied by it, the time
    /// threshold at most up to `max_delay` (S3 throttles; see [`crate::ship_policy::Pacing`]).
    pace: f64,
    /// This window's spread of the paced thresholds (1 when not paced): see [`Self::with_jitter`].
    spread: f64,
    jitter: Option<crate::random::Xorshift>,
    /// A buffer this large is sealed at once (memory), at least the bytes threshold.
    max_object_bytes: u64,
    records: Vec<Bytes>,
    body_bytes: u64,
    /// The buffer holds a record that is not an extension's line.
    due_able: bool,
    invokes: u64,
    window_start: Instant,
}

impl Batcher {
    pub fn new(thresholds: Thresholds, max_object_bytes: u64, now: Instant) -> Self {
        Self {
            max_object_bytes: max_object_bytes.max(thresholds.bytes.get()),
            max_delay: thresholds.elapsed,
            pace: 1.0,
            spread: 1.0,
            jitter: None,
            thresholds,
            records: Vec::new(),
            body_bytes: 0,
            due_able: false,
            invokes: 0,
            window_start: now,
        }
    }

    /// The freshness bound: how long the time threshold may grow when paced (at least the
    /// threshold itself).
    pub fn with_max_delay(mut self, max_delay: std::time::Duration) -> Self {
        self.max_delay = max_delay.max(self.thresholds.elapsed);
        self
    }

    /// While paced, each window's thresholds are spread uniformly over ±[`SPREAD`] of the paced
    /// value. Environments that start together (a burst of cold starts) run the same schedule; paced
    /// alike, they would ship in the same second and a prefix's 1-second burst would throttle them
    /// all again (measured in the fleet mode: SlowDown stayed at 12 % with the average rate at 70 %
    /// of the limit). Unpaced, the thresholds are exactly the configured ones.
    pub fn with_jitter(mut self, seed: u64) -> Self {
        self.jitter = Some(crate::random::Xorshift::new(seed));
        self
    }

    /// Ships `pace` times less often (1: as configured).
    pub fn set_pace(&mut self, pace: f64) {
        self.pace = pace.max(1.0);
        self.respread();
    }

    /// A new window's spread.
    fn respread(&mut self) {
        self.spread = match &mut self.jitter {
            Some(rng) if self.pace > 1.0 => 1.0 + SPREAD * (2.0 * rng.unit() - 1.0),
            _ => 1.0,
        };
    }

    /// Adds one record (`extension_line`: of the `extension` log type). Seals only when the buffer
    /// reaches the largest object allowed.
    pub fn push(&mut self, raw: Bytes, extension_line: bool, now: Instant) -> Option<Batch> {
        self.body_bytes += raw.len() as u64 + 1;
        self.records.push(raw);
        self.due_able |= !extension_line;
        (self.body_bytes >= self.max_object_bytes)
            .then(|| self.seal(SealReason::Size, now))
            .flatten()
    }

    /// An INVOKE arrived: count it, then check every threshold.
    pub fn on_invoke(&mut self, now: Instant) -> Option<Batch> {
        self.count_invoke();
        self.check(ShipPoint::All, now)
    }

    /// Counts an invocation without checking (end-of-invoke mode checks at runtimeDone; Managed
    /// Instances count `platform.start` records and check on the timer).
    pub fn count_invoke(&mut self) {
        self.invokes += 1;
    }

    /// A ship point: seals everything buffered when a threshold `at` checks is met. A threshold met
    /// with nothing due (an empty buffer, or extensions' lines only) restarts the window.
    pub fn check(&mut self, at: ShipPoint, now: Instant) -> Option<Batch> {
        let t = &self.thresholds;
        let pace = (self.pace * self.spread).max(1.0);
        let paced = |n: u64| (n as f64 * pace).ceil() as u64;
        let elapsed = t
            .elapsed
            .mul_f64(pace)
            .min(self.max_delay.mul_f64(self.spread.min(1.0)));
        let reason = if at == ShipPoint::All && self.invokes >= paced(t.invokes.get()) {
            SealReason::Invokes
        } else if self.body_bytes >= paced(t.bytes.get()) {
            SealReason::Bytes
        } else if now.saturating_duration_since(self.window_start) >= elapsed {
            SealReason::Elapsed
        } else {
            return None;
        };
        if !self.due_able {
            self.invokes = 0;
            self.window_start = now;
            self.respread();
            return None;
        }
        self.seal(reason, now)
    }

    /// Seals whatever is buffered, extensions' lines included (shutdown, a SnapStart restore).
    pub fn seal_all(&mut self, now: Instant) -> Option<Batch> {
        self.seal(SealReason::Shutdown, now)
    }

    pub fn buffered_bytes(&self) -> u64 {
        self.body_bytes
    }

    fn seal(&mut self, reason: SealReason, now: Instant) -> Option<Batch> {
        self.invokes = 0;
        self.window_start = now;
        self.respread();
        self.due_able = false;
        if self.records.is_empty() {
            return None;
        }
        let records = std::mem::take(&mut self.records);
        let body_bytes = std::mem::replace(&mut self.body_bytes, 0);
        Some(Batch {
            records,
            body_bytes,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU64;
    use std::time::Duration;

    fn thresholds(bytes: u64, invokes: u64, ms: u64) -> Thresholds {
        Thresholds {
            bytes: NonZeroU64::new(bytes).unwrap(),
            invokes: NonZeroU64::new(invokes).unwrap(),
            elapsed: Duration::from_millis(ms),
        }
    }

    fn rec(n: usize) -> Bytes {
        Bytes::from(vec![b'x'; n])
    }

    #[test]
    fn the_bytes_threshold_is_a_trigger_at_a_ship_point_never_a_cut() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(30, 100, 60_000), 1 << 20, t0);
        // 9 + 1 newline = 10 bytes per record: 150 records are 1,500 bytes, far past 30.
        for _ in 0..150 {
            assert!(
                b.push(rec(9), false, t0).is_none(),
                "no cut between ship points"
            );
        }
        assert_eq!(b.buffered_bytes(), 1500);
        let batch = b.on_invoke(t0).unwrap();
        assert_eq!(
            batch.records.len(),
            150,
            "one object holds everything buffered"
        );
        assert_eq!(batch.body_bytes, 1500);
        assert_eq!(batch.reason, SealReason::Bytes);
        b.push(rec(18), false, t0);
        assert!(b.check(ShipPoint::Timer, t0).is_none(), "19 bytes: below");
        b.push(rec(10), false, t0);
        assert_eq!(
            b.check(ShipPoint::Timer, t0).unwrap().body_bytes,
            30,
            "exactly the threshold, at the timer"
        );
    }

    #[test]
    fn the_largest_object_is_sealed_at_once_for_memory() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(30, 100, 60_000), 100, t0);
        for _ in 0..9 {
            assert!(b.push(rec(9), false, t0).is_none());
        }
        let batch = b.push(rec(9), false, t0).unwrap();
        assert_eq!((batch.records.len(), batch.reason), (10, SealReason::Size));
        // The bound is never below the bytes threshold.
        let mut b = Batcher::new(thresholds(500, 100, 60_000), 100, t0);
        for _ in 0..49 {
            assert!(b.push(rec(9), false, t0).is_none());
        }
        assert_eq!(b.push(rec(9), false, t0).unwrap().body_bytes, 500);
    }

    #[test]
    fn invokes_threshold_counts_invokes_since_the_last_seal_and_only_at_all_points() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(1_000_000, 3, 60_000), 1 << 20, t0);
        b.push(rec(5), false, t0);
        assert!(b.on_invoke(t0).is_none());
        b.count_invoke();
        b.count_invoke();
        assert!(
            b.check(ShipPoint::Timer, t0).is_none(),
            "the classic timer ignores invokes"
        );
        let batch = b.check(ShipPoint::All, t0).unwrap();
        assert_eq!(
            (batch.records.len(), batch.reason),
            (1, SealReason::Invokes)
        );
        assert!(b.on_invoke(t0).is_none(), "the count restarted");
    }

    #[test]
    fn elapsed_threshold_fires_at_invoke_or_timer_and_an_empty_window_only_restarts() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = Batcher::new(thresholds(1_000_000, 100, 100), 1 << 20, t0);
        assert!(
            b.check(ShipPoint::Timer, ms(150)).is_none(),
            "empty: nothing to ship"
        );
        b.push(rec(5), false, ms(160));
        assert!(
            b.check(ShipPoint::Timer, ms(200)).is_none(),
            "the window restarted at 150"
        );
        assert_eq!(
            b.check(ShipPoint::Timer, ms(250)).unwrap().reason,
            SealReason::Elapsed
        );
        b.push(rec(5), false, ms(260));
        assert_eq!(b.on_invoke(ms(400)).unwrap().reason, SealReason::Elapsed);
    }

    #[test]
    fn extension_lines_alone_never_make_a_buffer_due_but_ship_with_the_rest() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = Batcher::new(thresholds(10, 1, 100), 1 << 20, t0);
        b.push(rec(50), true, t0);
        assert!(
            b.on_invoke(ms(500)).is_none(),
            "our own 'shipped' line alone"
        );
        assert!(b.check(ShipPoint::Timer, ms(1000)).is_none());
        b.push(rec(3), false, ms(1001));
        let batch = b.on_invoke(ms(1002)).unwrap();
        assert_eq!(batch.records, vec![rec(50), rec(3)]);
        b.push(rec(50), true, ms(1003));
        assert_eq!(b.seal_all(ms(1004)).unwrap().reason, SealReason::Shutdown);
    }

    #[test]
    fn a_pace_ships_less_often_and_the_time_threshold_stops_at_the_freshness_bound() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = Batcher::new(thresholds(100, 2, 1000), 1 << 20, t0)
            .with_max_delay(Duration::from_millis(2500));
        b.set_pace(4.0);
        for _ in 0..39 {
            b.push(rec(9), false, t0);
        }
        assert!(
            b.check(ShipPoint::Timer, t0).is_none(),
            "390 bytes: below 4 × 100"
        );
        b.push(rec(9), false, t0);
        assert_eq!(
            b.check(ShipPoint::Timer, t0).unwrap().reason,
            SealReason::Bytes
        );
        b.push(rec(1), false, t0);
        for _ in 0..7 {
            assert!(b.on_invoke(t0).is_none(), "invokes: 4 × 2");
        }
        assert_eq!(b.on_invoke(t0).unwrap().reason, SealReason::Invokes);
        b.push(rec(1), false, t0);
        assert!(b.check(ShipPoint::Timer, ms(2400)).is_none());
        assert_eq!(
            b.check(ShipPoint::Timer, ms(2500)).unwrap().reason,
            SealReason::Elapsed,
            "4 × 1 s, but never more than the 2.5 s bound"
        );
        b.set_pace(1.0);
        b.push(rec(1), false, ms(2500));
        assert_eq!(
            b.check(ShipPoint::Timer, ms(3500)).unwrap().reason,
            SealReason::Elapsed
        );
    }

    /// Invokes until the batcher ships (one record per invoke).
    fn invokes_per_window(b: &mut Batcher, t0: Instant) -> u64 {
        (1..=1000)
            .find(|_| {
                b.push(rec(1), false, t0);
                b.on_invoke(t0).is_some()
            })
            .unwrap()
    }

    #[test]
    fn paced_windows_are_spread_a_quarter_either_way_and_unpaced_ones_are_exact() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(1_000_000, 20, 60_000), 1 << 20, t0).with_jitter(7);
        let unpaced: Vec<u64> = (0..20).map(|_| invokes_per_window(&mut b, t0)).collect();
        assert_eq!(unpaced, vec![20; 20]);
        b.set_pace(4.0);
        let paced: Vec<u64> = (0..200).map(|_| invokes_per_window(&mut b, t0)).collect();
        let (lo, hi) = (*paced.iter().min().unwrap(), *paced.iter().max().unwrap());
        assert!(lo >= 60 && hi <= 100, "80 ± 25 %: {lo}..{hi}");
        assert!(hi - lo >= 30, "spread over most of the range: {lo}..{hi}");
        // The time threshold is spread below the freshness bound, never above it.
        let mut b = Batcher::new(thresholds(1_000_000, 1000, 1000), 1 << 20, t0)
            .with_max_delay(Duration::from_millis(2000))
            .with_jitter(7);
        b.set_pace(8.0);
        for _ in 0..50 {
            b.push(rec(1), false, t0);
            assert!(
                b.check(ShipPoint::Timer, t0 + Duration::from_millis(1499))
                    .is_none()
            );
            assert!(b.seal_all(t0).is_some());
        }
        b.push(rec(1), false, t0);
        assert!(
            b.check(ShipPoint::Timer, t0 + Duration::from_millis(2000))
                .is_some()
        );
    }

    #[test]
    fn seal_all_takes_everything_and_nothing_when_empty() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(1_000_000, 100, 60_000), 1 << 20, t0);
        assert!(b.seal_all(t0).is_none());
        b.push(rec(1), false, t0);
        b.push(rec(2), false, t0);
        let batch = b.seal_all(t0).unwrap();
        assert_eq!(batch.records, vec![rec(1), rec(2)]);
        assert_eq!(batch.body_bytes, 5);
        assert_eq!(batch.reason, SealReason::Shutdown);
    }
}
