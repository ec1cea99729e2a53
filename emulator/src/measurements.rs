//! What a run measured, per part: order statistics of durations, per extension process the cold
//! start (spawn → first `next`), the post-runtime duration per invoke (`runtimeDone` → its
//! `next`), SHUTDOWN → exit, peak RSS (`VmHWM`, sampled every 20 ms) and CPU time (from `wait4`);
//! invocations; records emitted, delivered and dropped; S3 requests and objects. The verdict and
//! the report read these; they import neither.

use crate::platform::lifecycle::{InvokeRecord, InvokeStatus};
use crate::platform::state::Proc;
use crate::s3::S3Endpoint;
use serde::Serialize;
use std::collections::BTreeMap;

/// Order statistics of a set of durations, in milliseconds (nearest rank).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Self {
            count: v.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: v[v.len() - 1],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ExtensionReport {
    pub name: String,
    pub generation: u32,
    pub pid: i32,
    pub cold_start_ms: Option<f64>,
    pub post_runtime_ms: Stats,
    pub shutdown_to_exit_ms: Option<f64>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub killed_at_deadline: bool,
    pub crashed: bool,
    pub peak_rss_kb: Option<i64>,
    pub cpu_ms: Option<f64>,
}

impl ExtensionReport {
    pub(crate) fn of(p: &Proc) -> Self {
        let post: Vec<f64> = p
            .post_runtime
            .iter()
            .map(|d| crate::clock::ms(*d))
            .collect();
        Self {
            name: p.name.clone(),
            generation: p.generation,
            pid: p.pid,
            cold_start_ms: p.first_next_at.map(|t| crate::clock::ms(t - p.spawned_at)),
            post_runtime_ms: Stats::of(&post),
            shutdown_to_exit_ms: match (p.shutdown_at, &p.exit) {
                (Some(s), Some(e)) => Some(crate::clock::ms(e.at.saturating_duration_since(s))),
                _ => None,
            },
            exit_code: p.exit.as_ref().and_then(|e| e.code),
            exit_signal: p.exit.as_ref().and_then(|e| e.signal),
            killed_at_deadline: p.killed_at_deadline,
            crashed: p.crashed,
            // Sampled VmHWM; wait4's ru_maxrss only when no sample was taken.
            peak_rss_kb: p
                .peak_rss_kb
                .map(|k| k as i64)
                .or(p.exit.as_ref().map(|e| e.max_rss_kb)),
            cpu_ms: p.exit.as_ref().map(|e| e.cpu_ms),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct InvocationSummary {
    pub total: usize,
    pub success: usize,
    pub timeout: usize,
    pub error: usize,
    pub init_failed: usize,
    /// `runtimeDone` → the last INVOKE extension's `next`, over successful invokes.
    pub post_runtime_ms: Stats,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RecordTotals {
    pub emitted: u64,
    pub delivered: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct S3Summary {
    pub requests: usize,
    pub by_operation: BTreeMap<String, usize>,
    pub injected_faults: usize,
    pub writes: usize,
    pub objects: usize,
    pub object_bytes: usize,
}

pub(crate) fn invocation_summary(invokes: &[InvokeRecord]) -> InvocationSummary {
    let count = |s: InvokeStatus| invokes.iter().filter(|i| i.status == s).count();
    let post: Vec<f64> = invokes.iter().filter_map(|i| i.post_runtime_ms).collect();
    InvocationSummary {
        total: invokes.len(),
        success: count(InvokeStatus::Success),
        timeout: count(InvokeStatus::Timeout),
        error: count(InvokeStatus::Error),
        init_failed: count(InvokeStatus::InitFailed),
        post_runtime_ms: Stats::of(&post),
    }
}

pub(crate) fn s3_summary(s3: &S3Endpoint, buckets: &[String]) -> S3Summary {
    let requests = s3.requests();
    let mut by_operation = BTreeMap::new();
    for r in &requests {
        *by_operation.entry(r.operation.clone()).or_insert(0) += 1;
    }
    let objects: Vec<_> = buckets.iter().flat_map(|b| s3.objects(b)).collect();
    S3Summary {
        requests: requests.len(),
        by_operation,
        injected_faults: requests.iter().filter(|r| r.injected.is_some()).count(),
        writes: s3.writes().len(),
        objects: objects.len(),
        object_bytes: objects.iter().map(|o| o.size).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::Stats;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(
            Stats::of(&v),
            Stats {
                count: 100,
                p50: 50.0,
                p99: 99.0,
                max: 100.0
            }
        );
        assert_eq!(Stats::of(&[3.0]).p99, 3.0);
        assert_eq!(Stats::of(&[]).count, 0);
    }
}
