//! The report of a run, as JSON and as a table: the [`crate::measurements`] of its parts, what
//! the platform recorded (init failures, fatal errors, shutdowns) and the line-exact
//! [`crate::verdict`]. The top of the emulator's layers: nothing below imports it.

pub use crate::measurements::{ExtensionReport, InvocationSummary, RecordTotals, S3Summary, Stats};

use crate::delivery::SubscriberStats;
use crate::platform::lifecycle::{InitFailure, ShutdownRecord};
use crate::platform::state::Fatal;
use crate::settings::Mode;
use serde::Serialize;
use std::fmt::Write;

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
        self.write_run(&mut t);
        self.write_extensions(&mut t);
        self.write_traffic(&mut t);
        self.write_verdict(&mut t);
        t
    }

    /// The run, its failures and the invocations.
    fn write_run(&self, t: &mut String) {
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
    }

    /// One row per extension process.
    fn write_extensions(&self, t: &mut String) {
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
    }

    /// Records delivered per subscriber, and S3's requests.
    fn write_traffic(&self, t: &mut String) {
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
    }

    /// The verdict and why.
    fn write_verdict(&self, t: &mut String) {
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
        if let Some(line) = v.rules.line() {
            let _ = writeln!(t, "  {line}");
        }
        if let Some(b) = &v.first_bad_object {
            let _ = writeln!(t, "  first bad object: {b}");
        }
        if !v.lost.examples.is_empty() {
            let _ = writeln!(t, "  lost, for example: {}", v.lost.examples.join(" "));
        }
        for f in &v.failures {
            let _ = writeln!(t, "  FAILED: {f}");
        }
    }
}
