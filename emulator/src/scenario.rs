//! Scenario files: a whole run described as data (TOML or JSON) — the function's settings, the
//! extensions' environment, the workload, S3 faults over time, and what the verdict expects — so a
//! failure mode is a file anyone can run (`lambda-emulator run --scenario FILE`) and a test can load.
//!
//! ```toml
//! name = "refused-then-allowed"
//! buckets = ["logs"]
//! [env]
//! ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET = "logs"
//! [workload]
//! invocations = 20
//! [[faults]]
//! at_invoke = 1
//! refuse_next_writes = 6
//! [expect]
//! tolerate = []
//! ```

use crate::emulator::{Emulator, EmulatorBuilder};
use crate::expect::Expect;
use crate::platform::lifecycle::{InvokeScript, ShutdownScript};
use crate::report::Report;
use crate::s3::{Faults, Refusal, S3Endpoint, Timeouts};
use crate::settings::Function;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A run described as data. Every field has a default; unknown fields are an error.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Buckets created on the S3 endpoint before the run (and read by the verdict).
    pub buckets: Vec<String>,
    /// Variables of the function's configuration, given to every extension.
    pub env: BTreeMap<String, String>,
    /// The emulated function and platform: the model the `run` command's flags parse into too.
    pub function: Function,
    pub workload: Workload,
    pub s3: S3Settings,
    /// S3 faults, each applied before an invoke or at a time.
    pub faults: Vec<FaultEdit>,
    pub expect: Expect,
}

/// What the function does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    pub invocations: u64,
    /// Function lines per invocation, and bytes per line.
    pub lines: usize,
    pub line_bytes: usize,
    pub duration_ms: u64,
    /// Frozen time between invocations.
    pub gap_ms: u64,
    /// Function lines Lambda still holds at SHUTDOWN.
    pub late_lines: usize,
    /// Function lines the runtime writes after SHUTDOWN, over `straggler_window_ms`.
    pub stragglers: usize,
    pub straggler_window_ms: u64,
    /// Managed Instances: invocations at once.
    pub concurrency: usize,
}

impl Default for Workload {
    fn default() -> Self {
        let i = InvokeScript::default();
        Self {
            invocations: 10,
            lines: i.lines,
            line_bytes: i.line_bytes,
            duration_ms: i.duration.as_millis() as u64,
            gap_ms: 10,
            late_lines: 0,
            stragglers: 0,
            straggler_window_ms: ShutdownScript::default().straggler_window.as_millis() as u64,
            concurrency: 4,
        }
    }
}

/// The S3 endpoint's time limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    pub socket_timeout_ms: u64,
    pub idle_timeout_ms: u64,
}

impl Default for S3Settings {
    fn default() -> Self {
        let t = Timeouts::default();
        Self {
            socket_timeout_ms: t.socket.as_millis() as u64,
            idle_timeout_ms: t.idle.as_millis() as u64,
        }
    }
}

/// A change to the S3 faults (see [`Faults`] for what each does), applied before invoke
/// `at_invoke` (1-based; 0, the default, is before init) or `at_ms` after the run started.
/// Fields left out keep their current value.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultEdit {
    pub at_invoke: u64,
    pub at_ms: Option<u64>,
    pub fail_next_puts: Option<u32>,
    pub slowdown_every: Option<u32>,
    /// `[start, end]` in ms from the endpoint's start.
    pub outage_ms: Option<[u64; 2]>,
    pub outage_now: Option<bool>,
    pub latency_ms: Option<u64>,
    pub reset_next_puts: Option<u32>,
    /// Every k-th object write is stored and its answer lost (0 ends it).
    pub lose_reply_every: Option<u32>,
    pub refuse_next_writes: Option<u32>,
    pub refuse_window_ms: Option<[u64; 2]>,
    pub refusal: Option<Refusal>,
    pub prefix_write_rate: Option<f64>,
    pub freeze_cut_next_writes: Option<u32>,
    pub freeze_cut_wait_ms: Option<u64>,
    pub omit_part_checksums: Option<bool>,
    /// Clears every fault first.
    pub clear: bool,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn window(w: [u64; 2]) -> (Duration, Duration) {
    (ms(w[0]), ms(w[1]))
}

impl FaultEdit {
    /// Applies this change to `f`.
    pub fn apply(&self, f: &mut Faults) {
        if self.clear {
            *f = Faults::default();
        }
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = self.$field { f.$field = v; })* };
        }
        set!(
            fail_next_puts,
            outage_now,
            reset_next_puts,
            refuse_next_writes,
            refusal,
            freeze_cut_next_writes,
            omit_part_checksums
        );
        if let Some(v) = self.slowdown_every {
            f.slowdown_every = (v > 0).then_some(v);
        }
        if let Some(v) = self.lose_reply_every {
            f.lose_reply_every = (v > 0).then_some(v);
        }
        if let Some(w) = self.outage_ms {
            f.outage = Some(window(w));
        }
        if let Some(v) = self.latency_ms {
            f.latency = ms(v);
        }
        if let Some(w) = self.refuse_window_ms {
            f.refuse_window = Some(window(w));
        }
        if let Some(v) = self.prefix_write_rate {
            f.prefix_write_rate = (v > 0.0).then_some(v);
        }
        if let Some(v) = self.freeze_cut_wait_ms {
            f.freeze_cut_wait = ms(v);
        }
    }
}

impl Scenario {
    /// Reads a scenario: TOML, or JSON for a `.json` file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        let mut s: Scenario = parsed.map_err(|e| format!("{}: {e}", path.display()))?;
        if s.name.is_empty() {
            s.name = path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        s.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(f) = self
            .faults
            .iter()
            .find(|f| f.at_invoke > self.workload.invocations)
        {
            return Err(format!(
                "a fault is set at invoke {} of {}",
                f.at_invoke, self.workload.invocations
            ));
        }
        Ok(())
    }

    /// A builder for this scenario, launching the extensions of `extensions_dir`; the faults at
    /// invoke 0 are in place from the start.
    pub fn builder(&self, extensions_dir: &Path) -> EmulatorBuilder {
        let mut faults = Faults::default();
        for e in self
            .faults
            .iter()
            .filter(|e| e.at_invoke == 0 && e.at_ms.is_none())
        {
            e.apply(&mut faults);
        }
        let mut b = EmulatorBuilder::new(extensions_dir)
            .function(self.function.clone())
            .s3_timeouts(Timeouts {
                socket: ms(self.s3.socket_timeout_ms),
                idle: ms(self.s3.idle_timeout_ms),
            })
            .s3_faults(faults)
            .expect(self.expect.clone());
        for bucket in &self.buckets {
            b = b.bucket(bucket);
        }
        for (k, v) in &self.env {
            b = b.env(k, v);
        }
        b
    }

    /// Runs the workload on `emu` (built from [`Self::builder`]): init, the invocations with the
    /// faults applied as scheduled, SHUTDOWN; returns the report and its verdict.
    pub async fn run(&self, emu: &mut Emulator) -> Report {
        let w = &self.workload;
        let started = Instant::now();
        let timed: Vec<tokio::task::JoinHandle<()>> = self
            .faults
            .iter()
            .filter_map(|e| e.at_ms.map(|at| (at, e.clone())))
            .map(|(at, e)| {
                let s3: S3Endpoint = emu.s3().clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until((started + ms(at)).into()).await;
                    s3.faults(|f| e.apply(f));
                })
            })
            .collect();
        let invoke = InvokeScript {
            lines: w.lines,
            line_bytes: w.line_bytes,
            duration: ms(w.duration_ms),
        };
        if emu.init().await.is_ok() {
            if self.function.managed_instances {
                emu.invoke_concurrently(w.invocations, w.concurrency, invoke)
                    .await;
            } else {
                for n in 1..=w.invocations {
                    emu.idle(ms(w.gap_ms)).await;
                    for e in self
                        .faults
                        .iter()
                        .filter(|e| e.at_invoke == n && e.at_ms.is_none())
                    {
                        emu.s3().faults(|f| e.apply(f));
                    }
                    emu.invoke(invoke).await;
                }
            }
            emu.idle(ms(w.gap_ms)).await;
            emu.shutdown_with(&ShutdownScript {
                late_lines: w.late_lines,
                stragglers: w.stragglers,
                straggler_window: ms(w.straggler_window_ms),
            })
            .await;
        }
        for t in timed {
            t.abort();
        }
        emu.report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_scenario_reads_with_defaults_and_json_says_the_same() {
        let toml = r#"
            name = "refusals"
            buckets = ["logs"]
            [env]
            B = "logs"
            [workload]
            invocations = 20
            [[faults]]
            at_invoke = 1
            refuse_next_writes = 6
            refusal = "kms"
            [[faults]]
            at_ms = 500
            clear = true
            [expect]
            tolerate = ["dropped-by-lambda"]
            max_post_runtime_p99_ms = 5.0
        "#;
        let s: Scenario = toml::from_str(toml).unwrap();
        assert_eq!(s.workload.invocations, 20);
        assert_eq!(s.workload.lines, 5, "a default");
        assert_eq!(s.function.timeout_ms, 3000);
        assert_eq!(s.faults[0].refusal, Some(Refusal::Kms));
        assert_eq!(
            s.expect.tolerate,
            vec![crate::expect::Tolerate::DroppedByLambda]
        );
        let json = r#"{"name":"refusals","buckets":["logs"],"env":{"B":"logs"},"workload":{"invocations":20},
            "faults":[{"at_invoke":1,"refuse_next_writes":6,"refusal":"kms"},{"at_ms":500,"clear":true}],
            "expect":{"tolerate":["dropped-by-lambda"],"max_post_runtime_p99_ms":5.0}}"#;
        assert_eq!(serde_json::from_str::<Scenario>(json).unwrap(), s);
        assert!(
            toml::from_str::<Scenario>("[workload]\ninvocatons = 3").is_err(),
            "a typo is an error"
        );
    }

    #[test]
    fn fault_edits_change_only_what_they_name() {
        let mut f = Faults {
            fail_next_puts: 3,
            ..Faults::default()
        };
        FaultEdit {
            latency_ms: Some(300),
            refuse_window_ms: Some([100, 200]),
            slowdown_every: Some(0),
            ..FaultEdit::default()
        }
        .apply(&mut f);
        assert_eq!(f.fail_next_puts, 3);
        assert_eq!(f.latency, ms(300));
        assert_eq!(f.refuse_window, Some((ms(100), ms(200))));
        assert_eq!(f.slowdown_every, None);
        FaultEdit {
            clear: true,
            ..FaultEdit::default()
        }
        .apply(&mut f);
        assert_eq!(f, Faults::default());
    }
}
