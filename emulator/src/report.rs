//! The measurements of a run, as JSON and as a table: per extension process the cold start (spawn →
//! first `next`), the post-runtime duration per invoke (`runtimeDone` → its `next`), SHUTDOWN → exit,
//! peak RSS (`VmHWM`, sampled every 20 ms) and CPU time (from `wait4`); records emitted, delivered and dropped; S3 requests and objects.

use crate::delivery::SubscriberStats;
use crate::platform::lifecycle::{InitFailure, InvokeRecord, InvokeStatus, ShutdownRecord};
use crate::platform::state::{Fatal, Proc};
use crate::s3::S3Endpoint;
use crate::settings::Mode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

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

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub seed: u64,
    pub duration_ms: f64,
    pub init_failures: Vec<InitFailure>,
    pub fatal_errors: Vec<Fatal>,
    pub invocations: InvocationSummary,
    pub extensions: Vec<ExtensionReport>,
    pub subscribers: Vec<SubscriberStats>,
    pub records: RecordTotals,
    pub s3: S3Summary,
    pub shutdowns: Vec<ShutdownRecord>,
    /// Line by line: what reached S3, what was lost and why, and what that cost.
    pub verdict: crate::verdict::Verdict,
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

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A human-readable table of the same figures.
    pub fn to_table(&self) -> String {
        let mut t = String::new();
        let i = &self.invocations;
        let _ = writeln!(
            t,
            "mode {:?}, seed {}, {:.0} ms",
            self.mode, self.seed, self.duration_ms
        );
        for f in &self.init_failures {
            let _ = writeln!(t, "INIT FAILED: {f}");
        }
        for f in &self.fatal_errors {
            let _ = writeln!(
                t,
                "fatal: {} {} {}",
                f.error_type,
                f.extension,
                f.extension_error_type.as_deref().unwrap_or("")
            );
        }
        let _ = writeln!(
            t,
            "invocations: {} (success {}, timeout {}, error {}, init failed {}); post-runtime ms p50 {:.2} p99 {:.2} max {:.2}",
            i.total,
            i.success,
            i.timeout,
            i.error,
            i.init_failed,
            i.post_runtime_ms.p50,
            i.post_runtime_ms.p99,
            i.post_runtime_ms.max
        );
        let _ = writeln!(
            t,
            "{:<32} {:>4} {:>10} {:>10} {:>10} {:>10} {:>12} {:>6} {:>10} {:>9}",
            "extension",
            "gen",
            "cold ms",
            "post p50",
            "post p99",
            "post max",
            "shutdown ms",
            "exit",
            "rss KiB",
            "cpu ms"
        );
        for e in &self.extensions {
            let exit = match (e.exit_code, e.exit_signal) {
                (Some(c), _) => c.to_string(),
                (_, Some(s)) => format!("sig{s}"),
                _ => "-".into(),
            };
            let _ = writeln!(
                t,
                "{:<32} {:>4} {:>10} {:>10.2} {:>10.2} {:>10.2} {:>12} {:>6} {:>10} {:>9}",
                e.name,
                e.generation,
                opt(e.cold_start_ms),
                e.post_runtime_ms.p50,
                e.post_runtime_ms.p99,
                e.post_runtime_ms.max,
                opt(e.shutdown_to_exit_ms),
                exit,
                e.peak_rss_kb
                    .map(|k| k.to_string())
                    .unwrap_or_else(|| "-".into()),
                opt(e.cpu_ms)
            );
        }
        let _ = writeln!(
            t,
            "records: emitted {}, delivered {}, dropped {}",
            self.records.emitted, self.records.delivered, self.records.dropped
        );
        for s in &self.subscribers {
            let _ = writeln!(
                t,
                "  {} (gen {}, {:?}): emitted {}, delivered {}, dropped {}, posts {} ({} failed)",
                s.extension,
                s.generation,
                s.api,
                s.emitted,
                s.delivered,
                s.dropped,
                s.posts,
                s.failed_posts
            );
        }
        let ops: Vec<String> = self
            .s3
            .by_operation
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            t,
            "s3: {} requests ({}), {} injected faults, {} writes, {} objects, {} bytes",
            self.s3.requests,
            ops.join(", "),
            self.s3.injected_faults,
            self.s3.writes,
            self.s3.objects,
            self.s3.object_bytes
        );
        let v = &self.verdict;
        let _ = writeln!(t, "{}", v.headline());
        let _ = writeln!(
            t,
            "  objects {} ({} not NDJSON of records), timeouts {}, crashes {}, kills {}, PUT requests {} ({:.2} per MB of {} log bytes)",
            v.objects,
            v.objects_not_ndjson,
            v.invoke_timeouts,
            v.crashes,
            v.kills,
            v.put_requests,
            v.puts_per_mb,
            v.log_bytes
        );
        if let Some(b) = &v.first_bad_object {
            let _ = writeln!(t, "  first bad object: {b}");
        }
        if !v.lost.examples.is_empty() {
            let _ = writeln!(t, "  lost, for example: {}", v.lost.examples.join(" "));
        }
        for f in &v.failures {
            let _ = writeln!(t, "  FAILED: {f}");
        }
        t
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
