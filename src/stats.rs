//! Counters the actors share for the shutdown summary. Plain atomics: they are metrics, not state
//! any decision depends on.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counters {
    /// Records accepted from Lambda.
    pub received: AtomicU64,
    /// Records confirmed written to S3.
    pub shipped: AtomicU64,
    /// Objects confirmed written to S3.
    pub objects: AtomicU64,
    /// Failed write attempts (each retried or kept).
    pub failed_attempts: AtomicU64,
    /// Deliveries that were not a JSON array, and array elements that were not records.
    pub malformed: AtomicU64,
    /// Deliveries over the body limit (answered 413).
    pub oversized: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
