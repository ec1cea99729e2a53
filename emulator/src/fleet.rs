//! `lambda-emulator fleet`: many execution environments at once, as Lambda runs a busy function —
//! each its own extension process, Runtime/Telemetry API, freeze cycle and `/tmp` — starting and
//! spinning down over the run, all writing to one S3 endpoint whose per-prefix request rate is
//! limited (scaled down, so that this machine can drive it). It reports PUT/s in total and per
//! prefix over time, SlowDown responses, freshness (a line's emission to its object's arrival), the
//! line-exact verdict over every environment, and the CPU and memory of each environment's
//! extension; [`svg`] plots PUT/s and freshness over time.

mod measure;
mod plot;
mod progress;
pub use plot::svg;

use crate::emulator::EmulatorBuilder;
use crate::expect::Expect;
use crate::measurements::{ExtensionReport, Stats, invocation_summary};
use crate::platform::lifecycle::{InvokeRecord, InvokeScript};
use crate::rng::SeededRng;
use crate::s3::operation_class::classify;
use crate::s3::{Faults, S3Endpoint, S3RequestRecord, StoredObject, WriteRecord, prefix_of};
use crate::verdict::{self, Verdict};
use progress::Progress;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a fleet runs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub extensions_dir: PathBuf,
    /// Environments alive at once; each is replaced by a new one when it spins down.
    pub environments: usize,
    /// How long new environments keep starting; the run ends when the last one's life does.
    pub duration: Duration,
    /// How long an environment lives before its SHUTDOWN (±25 %, from the seed; the first of each
    /// slot 25–125 %). Environments still alive at `duration` live out their lifetime: shut down
    /// together, a throttled prefix would refuse their final rounds at once (CI's fleet lost 125
    /// lines that way), which is a fleet being deleted, not one running.
    pub lifetime: Duration,
    /// One invoke per environment every this (the environment is frozen in between).
    pub invoke_every: Duration,
    pub invoke: InvokeScript,
    /// Variables for every extension; `{env}` becomes the environment's number, `{port}` a port
    /// of its own (for a listener: every environment is a separate sandbox on Lambda).
    pub env: Vec<(String, String)>,
    pub function_name: String,
    pub bucket: String,
    /// S3's per-prefix write limit, scaled: writes/s per prefix before SlowDown.
    pub prefix_write_rate: Option<f64>,
    /// The time series' resolution.
    pub interval: Duration,
    /// SlowDown is counted apart before this (S3 and the extensions settle).
    pub warmup: Duration,
    /// The first port `{port}` hands out (environment n: this + n % 20,000); below the
    /// ephemeral ports, whose bind an outgoing connection may hold.
    pub port_base: u16,
    pub seed: u64,
    pub expect: Expect,
    /// Write each environment's extension output to `<dir>/env-<n>.log`.
    pub log_dir: Option<PathBuf>,
    /// A progress line on stderr this often (none: quiet).
    pub progress_every: Option<Duration>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            extensions_dir: PathBuf::from("/opt/extensions"),
            environments: 20,
            duration: Duration::from_secs(60),
            lifetime: Duration::from_secs(20),
            invoke_every: Duration::from_millis(500),
            invoke: InvokeScript {
                lines: 5,
                line_bytes: 200,
                duration: Duration::from_millis(5),
            },
            env: Vec::new(),
            function_name: "fleet-function".into(),
            bucket: "logs".into(),
            prefix_write_rate: None,
            interval: Duration::from_secs(1),
            warmup: Duration::from_secs(10),
            port_base: 12000,
            seed: 1,
            expect: Expect::default(),
            log_dir: None,
            progress_every: None,
        }
    }
}

/// One interval of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub t_s: f64,
    pub active_environments: usize,
    /// PUT-class requests per second, all prefixes.
    pub puts_per_s: f64,
    /// The busiest prefix's PUT-class requests per second.
    pub max_prefix_puts_per_s: f64,
    pub slowdowns_per_s: f64,
    /// Freshness of the lines whose object arrived in this interval.
    pub freshness_p50_ms: Option<f64>,
    pub freshness_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    pub environments_started: usize,
    pub duration_s: f64,
    pub prefix_write_rate: Option<f64>,
    /// PUT-class requests (failed ones too) and SlowDown answers.
    pub puts: usize,
    pub slowdowns: usize,
    pub slowdown_ratio: f64,
    /// The same between the warm-up and the end of the run's duration (the steady phase; after
    /// it, environments only wind down).
    pub slowdown_ratio_after_warmup: f64,
    pub max_prefix_puts_per_s: f64,
    pub prefixes: usize,
    /// The busiest prefixes: (prefix, PUT-class requests).
    pub top_prefixes: Vec<(String, usize)>,
    /// A line's emission to its object's first write.
    pub freshness_ms: Stats,
    /// The stored objects' sizes, as stored (compressed if they are).
    pub object_bytes: Stats,
    pub verdict: Verdict,
    /// Per environment's extension process.
    pub cpu_ms_per_environment: Stats,
    pub peak_rss_kb_per_environment: Stats,
    /// The emulator itself (all environments, the S3 endpoint).
    pub emulator_cpu_ms: f64,
    pub emulator_peak_rss_kb: Option<u64>,
    pub series: Vec<Point>,
}

/// What one environment left behind.
struct Outcome {
    started: Instant,
    ended: Instant,
    function_lines: Vec<String>,
    emitted_at: HashMap<String, Instant>,
    subscribers: Vec<crate::delivery::SubscriberStats>,
    invokes: Vec<InvokeRecord>,
    extensions: Vec<ExtensionReport>,
}

fn substitute(value: &str, env: usize, port: u16) -> String {
    value
        .replace("{env}", &env.to_string())
        .replace("{port}", &port.to_string())
}

/// Runs one environment from `start` for `lifetime`.
async fn environment(
    cfg: Arc<FleetConfig>,
    s3: S3Endpoint,
    fleet_id: String,
    n: usize,
    lifetime: Duration,
) -> std::io::Result<Outcome> {
    let port = cfg.port_base + (n % 20_000) as u16;
    let mut b = EmulatorBuilder::new(&cfg.extensions_dir)
        .shared_s3(s3)
        .run_id(format!("{fleet_id}e{n}"))
        .bucket(&cfg.bucket)
        .with(|f| {
            f.name = cfg.function_name.clone();
            f.timeout_ms = 10_000;
            f.seed = cfg.seed.wrapping_add(n as u64);
        });
    for (k, v) in &cfg.env {
        b = b.env(k, substitute(v, n, port));
    }
    let mut emu = b.start().await?;
    let started = Instant::now();
    if emu.init().await.is_ok() {
        while started.elapsed() + cfg.invoke_every < lifetime {
            let next = Instant::now() + cfg.invoke_every;
            emu.invoke(cfg.invoke).await;
            tokio::time::sleep_until(next.into()).await;
        }
        emu.shutdown(0).await;
    }
    let report = emu.report();
    if let Some(dir) = &cfg.log_dir {
        let lines: Vec<String> = report
            .extensions
            .iter()
            .flat_map(|e| emu.extension_output(&e.name))
            .collect();
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join(format!("env-{n}.log")), lines.join("\n"));
    }
    Ok(Outcome {
        started,
        ended: Instant::now(),
        function_lines: emu.function_lines().to_vec(),
        emitted_at: emu.line_emitted_at(),
        subscribers: emu.subscribers(),
        invokes: emu.invokes().to_vec(),
        extensions: report.extensions,
    })
}

/// Runs the fleet and measures it.
pub async fn run(cfg: FleetConfig) -> std::io::Result<FleetReport> {
    let cfg = Arc::new(cfg);
    let s3 = S3Endpoint::start("us-east-1").await?;
    s3.create_bucket(&cfg.bucket);
    s3.set_faults(Faults {
        prefix_write_rate: cfg.prefix_write_rate,
        ..Faults::default()
    });
    let fleet_id = uuid::Uuid::new_v4().simple().to_string()[..6].to_string();
    let began = Instant::now();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let next_env = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut slots = Vec::new();
    for slot in 0..cfg.environments {
        let (cfg, s3, fleet_id) = (cfg.clone(), s3.clone(), fleet_id.clone());
        let (outcomes, next_env) = (outcomes.clone(), next_env.clone());
        slots.push(tokio::spawn(async move {
            let mut rng = SeededRng::new(cfg.seed ^ (slot as u64 + 1).wrapping_mul(0x9e37_79b9));
            // Environments start within the first seconds, and the first of each slot lives a
            // quarter to a whole lifetime more or less, so that spindowns do not come together.
            let first_start = cfg.lifetime.min(Duration::from_secs(5)).mul_f64(rng.unit());
            tokio::time::sleep(first_start.min(cfg.duration)).await;
            let mut spread = 0.25 + rng.unit();
            // New environments start until the end of the run; each lives its whole life.
            while began.elapsed() + Duration::from_secs(1) < cfg.duration {
                let lifetime = cfg.lifetime.mul_f64(spread);
                spread = 0.75 + rng.unit() / 2.0;
                let n = next_env.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                match environment(cfg.clone(), s3.clone(), fleet_id.clone(), n, lifetime).await {
                    Ok(o) => crate::sync::lock(&outcomes).push(o),
                    Err(e) => eprintln!("lambda-emulator fleet: environment {n}: {e}"),
                }
            }
        }));
    }
    let progress = cfg.progress_every.map(|every| {
        let (cfg, s3, outcomes, next_env) =
            (cfg.clone(), s3.clone(), outcomes.clone(), next_env.clone());
        tokio::spawn(async move {
            let mut seen = Progress::default();
            loop {
                tokio::time::sleep(every).await;
                let started = next_env.load(std::sync::atomic::Ordering::SeqCst);
                let ended = crate::sync::lock(&outcomes);
                let lines = ended.iter().flat_map(|o| o.function_lines.iter());
                let line = seen.line(&cfg.bucket, &s3, began, started, ended.len(), lines);
                eprintln!("{line}");
            }
        })
    });
    for s in slots {
        let _ = s.await;
    }
    if let Some(p) = progress {
        p.abort();
    }
    let outcomes = std::mem::take(&mut *crate::sync::lock(&outcomes));
    Ok(measure::measure(&cfg, &s3, began, outcomes))
}

impl FleetReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_table(&self) -> String {
        use std::fmt::Write;
        let mut t = String::new();
        let v = &self.verdict;
        let _ = writeln!(
            t,
            "fleet: {} environments over {:.0} s; per-prefix limit {}",
            self.environments_started,
            self.duration_s,
            self.prefix_write_rate
                .map_or("none".to_string(), |r| format!("{r} writes/s"))
        );
        let _ = writeln!(
            t,
            "PUT requests {} ({:.1}/s), busiest prefix peak {:.1}/s over {} prefixes; SlowDown {} ({:.1} %; {:.1} % from the warm-up to the end of the run's duration)",
            self.puts,
            self.puts as f64 / self.duration_s.max(0.001),
            self.max_prefix_puts_per_s,
            self.prefixes,
            self.slowdowns,
            self.slowdown_ratio * 100.0,
            self.slowdown_ratio_after_warmup * 100.0
        );
        let f = &self.freshness_ms;
        let _ = writeln!(
            t,
            "freshness ms p50 {:.0} p99 {:.0} max {:.0} ({} lines)",
            f.p50, f.p99, f.max, f.count
        );
        let o = &self.object_bytes;
        let _ = writeln!(
            t,
            "objects {}, bytes p50 {:.0} p99 {:.0} max {:.0}",
            o.count, o.p50, o.p99, o.max
        );
        let _ = writeln!(t, "{}", v.headline());
        for fail in &v.failures {
            let _ = writeln!(t, "  FAILED: {fail}");
        }
        let (c, r) = (
            &self.cpu_ms_per_environment,
            &self.peak_rss_kb_per_environment,
        );
        let _ = writeln!(
            t,
            "per environment: CPU ms p50 {:.0} max {:.0}; peak RSS KiB p50 {:.0} max {:.0}; the emulator: CPU {:.0} ms, peak RSS {} KiB",
            c.p50,
            c.max,
            r.p50,
            r.max,
            self.emulator_cpu_ms,
            self.emulator_peak_rss_kb
                .map_or("-".into(), |k| k.to_string())
        );
        for (p, n) in &self.top_prefixes {
            let _ = writeln!(t, "  prefix {p:?}: {n} PUT requests");
        }
        t
    }
}
