//! The extension's cost to the function, measured under the emulated Lambda platform: cold start
//! (spawn → first `next`), peak RSS, CPU time, post-runtime duration p50/p99, objects and PUT
//! requests per GB of logs, and the emulator's verdict (lines lost, duplicated). Scenarios: steady
//! (1000 invokes × 5 lines × 200 B, with each `SHIP_AT`), bursty (40 × 2000 × 300 B), big records
//! (50 × 20 × 50 KB), and 100 small invokes under S3 faults (300 ms per request, SlowDown on every
//! 5th PUT, 403 for the first 6 writes, uploads cut by a freeze), and scenario files of
//! `emulator/scenarios/` (14 s of SlowDown with a 2 MiB spill bound, or with a full /tmp; lost
//! replies while throttled; the defaults with 20 MB in 15 s throttled). Each runs `ABE_RUNS` times (3);
//! the table shows medians; `ABE_ONLY=<part of a name>` runs one.
//!
//! `cargo build --profile dist -p adaptive-batching-extension && cargo bench --bench end_to_end`
//! measures the layer's build (`ABE_BINARY` selects another, for example the release profile's).

use lambda_emulator::s3::{Faults, Timeouts};
use lambda_emulator::{EmulatorBuilder, InvokeScript, Script};
use std::path::PathBuf;
use std::time::Duration;

/// 20 rules of every type: the README's ready rules and one more mask, 10 exclusions, an inclusion
/// every line passes, a sample and two platform exclusions.
const TWENTY_RULES: &str = r#"[
  {"type":"mask_sequences","name":"aws_access_key_ids","pattern":"\\b(?:AKIA|ASIA)[0-9A-Z]{16}\\b","replace_placeholder":"[AWS_ACCESS_KEY_ID]"},
  {"type":"mask_sequences","name":"card_numbers","pattern":"\\b(?:[0-9]{16}|[0-9]{4}(?: [0-9]{4}){3}|[0-9]{4}(?:-[0-9]{4}){3})\\b","replace_placeholder":"[CARD_NUMBER]"},
  {"type":"mask_sequences","name":"email_addresses","pattern":"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}","replace_placeholder":"[EMAIL]"},
  {"type":"mask_sequences","name":"bearer_tokens","pattern":"(?i)(bearer\\s+)[A-Za-z0-9._~+/-]+=*","replace_placeholder":"${1}[TOKEN]"},
  {"type":"exclude_at_match","name":"health_checks","pattern":"GET /(?:health|healthz|ping)\\b"},
  {"type":"mask_sequences","name":"ipv4","pattern":"\\b(?:[0-9]{1,3}\\.){3}[0-9]{1,3}\\b","replace_placeholder":"[IP]"},
  {"type":"exclude_at_match","name":"x0","pattern":"ELB-HealthChecker"},
  {"type":"exclude_at_match","name":"x1","pattern":"kube-probe"},
  {"type":"exclude_at_match","name":"x2","pattern":"favicon\\.ico"},
  {"type":"exclude_at_match","name":"x3","pattern":"heartbeat"},
  {"type":"exclude_at_match","name":"x4","pattern":"Googlebot"},
  {"type":"exclude_at_match","name":"x5","pattern":"status=304"},
  {"type":"exclude_at_match","name":"x6","pattern":"cache warm"},
  {"type":"exclude_at_match","name":"x7","pattern":"^OPTIONS "},
  {"type":"exclude_at_match","name":"x8","pattern":"robots\\.txt"},
  {"type":"exclude_at_match","name":"x9","pattern":"keep-alive"},
  {"type":"include_at_match","name":"invokes","pattern":"invoke [0-9]+"},
  {"type":"sample","name":"debug","pattern":"\\bDEBUG\\b","keep_one_in":10},
  {"type":"exclude_platform_types","name":"starts","record_types":["platform.start"]},
  {"type":"exclude_platform_types","name":"done","record_types":["platform.runtimeDone"]}
]"#;

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("ABE_BINARY") {
        return PathBuf::from(p);
    }
    // The layer's build: what users run.
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    PathBuf::from(target)
        .join("dist")
        .join("adaptive-batching-extension")
}

/// One workload: invocations of a script, a frozen gap, extra environment, S3 faults.
struct Scenario {
    name: &'static str,
    invocations: u64,
    invoke: InvokeScript,
    gap_ms: u64,
    env: &'static [(&'static str, &'static str)],
    faults: Faults,
    /// S3's socket timeout, scaled down where a freeze must outlast it.
    socket_timeout: Duration,
    /// A scenario file of `emulator/scenarios/` (faults over time, its own workload and
    /// environment) run in place of the fields above.
    file: Option<&'static str>,
    /// `SPILL_DIR` on a full filesystem (a 256 KiB tmpfs filled up: needs root, else skipped).
    full_tmp: bool,
}

/// A tmpfs mounted and filled to its last byte, unmounted when dropped.
struct FullTmp(tempfile::TempDir);

impl FullTmp {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let mut f = std::fs::File::create(dir.path().join("filler")).ok()?;
        let block = vec![0u8; 4096];
        while std::io::Write::write_all(&mut f, &block).is_ok() {}
        Some(Self(dir))
    }
}

impl Drop for FullTmp {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass other flags: run only for bench.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let bin = binary();
    assert!(
        bin.exists(),
        "build the extension first: {} is missing",
        bin.display()
    );
    let runs: usize = std::env::var("ABE_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let only = std::env::var("ABE_ONLY").ok();
    let steady = InvokeScript {
        lines: 5,
        line_bytes: 200,
        duration: Duration::from_millis(5),
    };
    let bursty = InvokeScript {
        lines: 2000,
        line_bytes: 300,
        duration: Duration::from_millis(50),
    };
    let small = InvokeScript {
        lines: 5,
        line_bytes: 200,
        duration: Duration::from_millis(20),
    };
    let plain = |name, invocations, invoke, gap_ms, env| Scenario {
        name,
        invocations,
        invoke,
        gap_ms,
        env,
        faults: Faults::default(),
        socket_timeout: Duration::from_secs(20),
        file: None,
        full_tmp: false,
    };
    let from_file = |name, file| Scenario {
        file: Some(file),
        ..plain(name, 0, small, 0, &[])
    };
    let faulty = |name, faults| Scenario {
        faults,
        ..plain(name, 100, small, 20, &[])
    };
    let scenarios = [
        plain("steady", 1000, steady, 2, &[]),
        plain(
            "steady, SHIP_AT=end-of-invoke",
            1000,
            steady,
            2,
            &[("ADAPTIVE_BATCHING_EXTENSION_SHIP_AT", "end-of-invoke")],
        ),
        // Issue 21: the steady row with 20 processing rules of every type.
        plain(
            "steady, 20 processing rules",
            1000,
            steady,
            2,
            &[("ADAPTIVE_BATCHING_EXTENSION_PROCESSING_RULES", TWENTY_RULES)],
        ),
        // Issue 22: the steady row as Parquet files, and the economy profile's 1 MiB objects
        // with each format (the thresholds the README recommends for Parquet).
        plain(
            "steady, FORMAT=parquet",
            1000,
            steady,
            2,
            &[("ADAPTIVE_BATCHING_EXTENSION_FORMAT", "parquet")],
        ),
        plain(
            "bursty, PROFILE=economy",
            40,
            bursty,
            20,
            &[("ADAPTIVE_BATCHING_EXTENSION_PROFILE", "economy")],
        ),
        plain(
            "bursty, PROFILE=economy, FORMAT=parquet",
            40,
            bursty,
            20,
            &[
                ("ADAPTIVE_BATCHING_EXTENSION_PROFILE", "economy"),
                ("ADAPTIVE_BATCHING_EXTENSION_FORMAT", "parquet"),
            ],
        ),
        plain("bursty", 40, bursty, 20, &[]),
        plain(
            "big records",
            50,
            InvokeScript {
                lines: 20,
                line_bytes: 50_000,
                duration: Duration::from_millis(20),
            },
            20,
            &[],
        ),
        faulty(
            "S3 +300 ms",
            Faults {
                latency: Duration::from_millis(300),
                ..Faults::default()
            },
        ),
        faulty(
            "SlowDown every 5th PUT",
            Faults {
                slowdown_every: Some(5),
                ..Faults::default()
            },
        ),
        faulty(
            "403 for the first 6 writes",
            Faults {
                refuse_next_writes: 6,
                ..Faults::default()
            },
        ),
        Scenario {
            // Frozen 500 ms after each invoke, past a 300 ms socket timeout.
            socket_timeout: Duration::from_millis(300),
            ..faulty(
                "freeze mid-upload (3 uploads cut)",
                Faults {
                    freeze_cut_next_writes: 3,
                    freeze_cut_wait: Duration::from_secs(1),
                    ..Faults::default()
                },
            )
        },
        // Issue 19: 14 s of SlowDown on every write while 1,200 invokes ship one object each,
        // with 32 KiB of memory and 2 MiB of disk for what waits.
        from_file(
            "SlowDown 14 s, 32 KiB memory, 2 MiB spill",
            "throttled-small-spill",
        ),
        // 10 s of SlowDown on every 2nd write and a lost reply on every 3rd S3 stores.
        from_file(
            "SlowDown and lost replies 10 s, 64 KiB memory",
            "lost-replies-throttled",
        ),
        // The first row's run with the spill directory on a full /tmp: refusals, counted.
        Scenario {
            full_tmp: true,
            ..from_file(
                "SlowDown 14 s, 32 KiB memory, full /tmp",
                "throttled-small-spill",
            )
        },
        // Defaults under load: 20 MB in about 15 s, SlowDown on every write for the first 12 s.
        from_file(
            "defaults, 20 MB in 15 s, SlowDown 12 s",
            "throttled-defaults-20mb",
        ),
    ];
    println!("{} ({runs} runs each, medians)", bin.display());
    println!(
        "| scenario | cold start ms | peak RSS MiB | CPU ms | post-runtime p50 ms | p99 ms | objects | PUTs per GB | lines lost | duplicated |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for sc in scenarios
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| s.name.contains(o)))
    {
        let mut rows: Vec<[f64; 9]> = Vec::new();
        for _ in 0..runs {
            rows.push(run(&bin, sc).await);
        }
        let m = |i: usize| median(rows.iter().map(|r| r[i]).collect());
        println!(
            "| {} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
            sc.name,
            m(0),
            m(1),
            m(2),
            m(3),
            m(4),
            m(5),
            m(6),
            m(7),
            m(8)
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One run: cold start, peak RSS (MiB), CPU ms, post-runtime p50 and p99, objects, PUT-class
/// requests per GB of logs, lines lost and duplicated (the emulator's verdict).
async fn run(bin: &std::path::Path, sc: &Scenario) -> [f64; 9] {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = if sc.full_tmp {
        match FullTmp::mount() {
            Some(f) => Some(f),
            None => {
                eprintln!("{}: cannot mount a tmpfs (root only); skipped", sc.name);
                return [f64::NAN; 9];
            }
        }
    } else {
        None
    };
    let spill_dir = full.as_ref().map(|f| f.0.path().join("spill"));
    let ext = dir.path().join("extensions");
    std::fs::create_dir_all(&ext).expect("mkdir");
    std::os::unix::fs::symlink(bin, ext.join("adaptive-batching-extension")).expect("symlink");
    let mut b = EmulatorBuilder::new(&ext)
        .bucket("logs")
        .env("ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET", "logs")
        .env("ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT", "48123")
        .with(|f| f.timeout_ms = 10_000)
        .s3_faults(sc.faults.clone())
        .s3_timeouts(Timeouts {
            socket: sc.socket_timeout,
            idle: Duration::from_secs(20),
        });
    for (k, v) in sc.env {
        b = b.env(*k, *v);
    }
    if let Some(file) = sc.file {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("emulator/scenarios")
            .join(format!("{file}.toml"));
        let s = lambda_emulator::Scenario::load(&path).expect("a scenario file");
        let mut b = s
            .builder(&ext)
            .env("ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT", "48123");
        if let Some(d) = &spill_dir {
            b = b.env(
                "ADAPTIVE_BATCHING_EXTENSION_SPILL_DIR",
                d.display().to_string(),
            );
        }
        let mut emu = b.start().await.expect("emulator");
        return row(&s.run(&mut emu).await);
    }
    let mut emu = b.start().await.expect("emulator");
    let gap = if sc.socket_timeout < Duration::from_secs(1) {
        sc.socket_timeout + Duration::from_millis(200)
    } else {
        Duration::from_millis(sc.gap_ms)
    };
    let script = Script {
        invocations: sc.invocations,
        invoke: sc.invoke,
        gap,
        late_lines: 0,
        stragglers: 0,
        concurrency: 1,
    };
    row(&emu.run(&script).await)
}

/// A run's figures, in the table's order.
fn row(report: &lambda_emulator::Report) -> [f64; 9] {
    let e = &report.extensions[0];
    let post = &report.invocations.post_runtime_ms;
    let v = &report.verdict;
    [
        e.cold_start_ms.unwrap_or(0.0),
        e.peak_rss_kb.unwrap_or(0) as f64 / 1024.0,
        e.cpu_ms.unwrap_or(0.0),
        post.p50,
        post.p99,
        v.objects as f64,
        v.puts_per_mb * 1000.0,
        v.lost.total as f64,
        v.duplicated as f64,
    ]
}
