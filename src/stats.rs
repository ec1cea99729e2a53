//! Counters the actors share for the shutdown summary. Plain atomics: metrics, but for one value a
//! decision reads — [`Counters::buffered`], the log bytes BatchActor holds, which ShipperActor's
//! memory bound covers too.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes of records BatchActor holds: its open buffer and batches sealed but not yet queued at
    /// ShipperActor (being encoded). Added as records arrive, taken off as their batch is queued.
    pub buffered: AtomicU64,
    /// Records accepted from Lambda.
    pub received: AtomicU64,
    /// Records confirmed written to S3.
    pub shipped: AtomicU64,
    /// Objects confirmed written to S3.
    pub objects: AtomicU64,
    /// Bytes of logs (NDJSON before compression) confirmed written to S3.
    pub shipped_bytes: AtomicU64,
    /// S3 requests made (PUT-class: what S3 bills per 1,000), failed ones too.
    pub put_requests: AtomicU64,
    /// Failed write attempts (each retried or kept).
    pub failed_attempts: AtomicU64,
    /// Deliveries that were not a JSON array, and array elements that were not records.
    pub malformed: AtomicU64,
    /// Deliveries over the body limit (answered 413).
    pub oversized: AtomicU64,
    /// Records Lambda says it dropped before they reached us (`platform.logsDropped`).
    pub lambda_dropped: AtomicU64,
    /// SnapStart restores seen.
    pub restores: AtomicU64,
    /// Records written to the spill directory (memory short, or an upload failed).
    pub spilled: AtomicU64,
    /// Records found in the spill directory at start (spilled by a previous process).
    pub recovered: AtomicU64,
    /// Records refused: no room in memory or on disk.
    pub refused: AtomicU64,
    /// Records handed to the shipper (sealed by this process).
    pub sealed: AtomicU64,
    /// Records S3 rejected three times, or whose request could not be built: set aside on disk.
    pub rejected: AtomicU64,
    /// Records whose spill file could not be read back: set aside on disk.
    pub unreadable: AtomicU64,
    /// Records refused after the final seal (answered 503: Lambda counts them undelivered).
    pub late_refused: AtomicU64,
    /// The most log bytes held in memory at once (buffered, being encoded, held for upload): the
    /// ship policy's account of what MAX_BUFFER_BYTES bounds.
    pub peak_held_bytes: AtomicU64,
    /// At the end: records still owned, in memory (lost with the process) and on disk.
    pub unshipped_in_memory: AtomicU64,
    pub still_spilled: AtomicU64,
    /// Records the processing rules dropped (excluded or sampled out): received, never shipped,
    /// not lost.
    pub filtered: AtomicU64,
    /// Batches that went as NDJSON because Parquet could not hold them (`FORMAT=parquet`).
    pub format_fallbacks: AtomicU64,
    /// Per processing rule, in the rules' order: what it did.
    pub rules: Box<[RuleCounts]>,
}

/// What one processing rule did.
#[derive(Debug, Default)]
pub struct RuleCounts {
    pub name: String,
    pub excluded: AtomicU64,
    pub sampled_out: AtomicU64,
    pub masked: AtomicU64,
}

impl Counters {
    /// Counters with one [`RuleCounts`] per rule name.
    pub fn with_rules<'a>(names: impl Iterator<Item = &'a str>) -> Self {
        Self {
            rules: names
                .map(|name| RuleCounts {
                    name: name.to_string(),
                    ..RuleCounts::default()
                })
                .collect(),
            ..Self::default()
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        // Never below zero, whatever the order of the updates.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(n))
        });
    }
}

/// At most one report per period: counts what happened in between.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<std::time::Instant>,
    unreported: u64,
}

impl Throttle {
    /// Adds `n`; returns the count to report when a report is due (`period` after the last one).
    pub fn note(
        &mut self,
        n: u64,
        now: std::time::Instant,
        period: std::time::Duration,
    ) -> Option<u64> {
        self.unreported += n;
        if self.last.is_some_and(|t| now.duration_since(t) < period) {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn throttle_reports_at_most_once_a_period_with_the_count() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(t.note(1, t0, s), Some(1));
        assert_eq!(t.note(2, t0 + Duration::from_millis(10), s), None);
        assert_eq!(t.note(3, t0 + Duration::from_millis(500), s), None);
        assert_eq!(t.note(1, t0 + Duration::from_millis(1001), s), Some(6));
    }
}
