//! The pure core of batching: the buffer and the three thresholds (bytes, invokes, elapsed time).
//! No actix, no I/O; time is passed in.
//!
//! The bytes counter is exact: it is the size of the NDJSON body that will be shipped (each record
//! plus its newline). Bytes are checked on every record; invokes and elapsed time on every INVOKE
//! and on every timer tick. Any threshold reached seals a batch; sealing an empty buffer only
//! restarts the window (the Go sample ships nothing then either).

use crate::config::Thresholds;
use bytes::Bytes;
use std::time::Instant;

/// Why a batch was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealReason {
    Bytes,
    Invokes,
    Elapsed,
    Shutdown,
}

impl SealReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SealReason::Bytes => "bytes",
            SealReason::Invokes => "invokes",
            SealReason::Elapsed => "elapsed",
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

/// Buffer plus counters.
#[derive(Debug)]
pub struct Batcher {
    thresholds: Thresholds,
    records: Vec<Bytes>,
    body_bytes: u64,
    invokes: u64,
    window_start: Instant,
}

impl Batcher {
    pub fn new(thresholds: Thresholds, now: Instant) -> Self {
        Self {
            thresholds,
            records: Vec::new(),
            body_bytes: 0,
            invokes: 0,
            window_start: now,
        }
    }

    /// Adds one record; seals when the body reaches the bytes threshold.
    pub fn push(&mut self, raw: Bytes, now: Instant) -> Option<Batch> {
        self.body_bytes += raw.len() as u64 + 1;
        self.records.push(raw);
        (self.body_bytes >= self.thresholds.bytes.get())
            .then(|| self.seal(SealReason::Bytes, now))
            .flatten()
    }

    /// An INVOKE arrived: count it, then check the invokes and time thresholds.
    pub fn on_invoke(&mut self, now: Instant) -> Option<Batch> {
        self.count_invoke();
        self.check(now)
    }

    /// Counts an invocation without checking (Managed Instances count `platform.start` records and
    /// check on the timer).
    pub fn count_invoke(&mut self) {
        self.invokes += 1;
    }

    /// Checks the invokes and time thresholds.
    pub fn check(&mut self, now: Instant) -> Option<Batch> {
        if self.invokes >= self.thresholds.invokes.get() {
            return self.seal(SealReason::Invokes, now);
        }
        self.on_tick(now)
    }

    /// A timer tick while the environment runs: check the time threshold.
    pub fn on_tick(&mut self, now: Instant) -> Option<Batch> {
        if now.saturating_duration_since(self.window_start) >= self.thresholds.elapsed {
            return self.seal(SealReason::Elapsed, now);
        }
        None
    }

    /// Seals whatever is buffered (shutdown).
    pub fn seal_all(&mut self, now: Instant) -> Option<Batch> {
        self.seal(SealReason::Shutdown, now)
    }

    pub fn buffered_bytes(&self) -> u64 {
        self.body_bytes
    }

    fn seal(&mut self, reason: SealReason, now: Instant) -> Option<Batch> {
        self.invokes = 0;
        self.window_start = now;
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
    fn bytes_threshold_counts_the_exact_ndjson_body() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(30, 100, 60_000), t0);
        // 9 + 1 newline = 10 bytes per record: the third reaches 30 exactly.
        assert!(b.push(rec(9), t0).is_none());
        assert!(b.push(rec(9), t0).is_none());
        let batch = b.push(rec(9), t0).unwrap();
        assert_eq!(batch.records.len(), 3);
        assert_eq!(batch.body_bytes, 30);
        assert_eq!(batch.reason, SealReason::Bytes);
        assert_eq!(b.buffered_bytes(), 0);
        assert!(b.push(rec(28), t0).is_none(), "29 bytes: below");
    }

    #[test]
    fn invokes_threshold_counts_invokes_since_the_last_seal() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(1_000_000, 3, 60_000), t0);
        b.push(rec(5), t0);
        assert!(b.on_invoke(t0).is_none());
        assert!(b.on_invoke(t0).is_none());
        let batch = b.on_invoke(t0).unwrap();
        assert_eq!(
            (batch.records.len(), batch.reason),
            (1, SealReason::Invokes)
        );
        assert!(b.on_invoke(t0).is_none(), "the count restarted");
    }

    #[test]
    fn elapsed_threshold_fires_on_invoke_or_tick_and_an_empty_window_only_restarts() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(1_000_000, 100, 100), t0);
        assert!(
            b.on_tick(t0 + Duration::from_millis(150)).is_none(),
            "empty: nothing to ship"
        );
        b.push(rec(5), t0 + Duration::from_millis(160));
        assert!(
            b.on_tick(t0 + Duration::from_millis(200)).is_none(),
            "the window restarted at 150"
        );
        let batch = b.on_tick(t0 + Duration::from_millis(250)).unwrap();
        assert_eq!(batch.reason, SealReason::Elapsed);
        b.push(rec(5), t0 + Duration::from_millis(260));
        assert_eq!(
            b.on_invoke(t0 + Duration::from_millis(400)).unwrap().reason,
            SealReason::Elapsed
        );
    }

    #[test]
    fn counted_invokes_seal_at_the_next_check() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(1_000_000, 2, 60_000), t0);
        b.push(rec(3), t0);
        b.count_invoke();
        assert!(b.check(t0).is_none());
        b.count_invoke();
        assert_eq!(b.check(t0).unwrap().reason, SealReason::Invokes);
    }

    #[test]
    fn seal_all_takes_everything_and_nothing_when_empty() {
        let t0 = Instant::now();
        let mut b = Batcher::new(thresholds(1_000_000, 100, 60_000), t0);
        assert!(b.seal_all(t0).is_none());
        b.push(rec(1), t0);
        b.push(rec(2), t0);
        let batch = b.seal_all(t0).unwrap();
        assert_eq!(batch.records, vec![rec(1), rec(2)]);
        assert_eq!(batch.body_bytes, 5);
        assert_eq!(batch.reason, SealReason::Shutdown);
    }
}
