//! The extension's cost to the function, measured under the emulated Lambda platform: cold start
//! (spawn → first `next`), peak RSS, CPU time, post-runtime duration p50/p99, records per second.
//! Scenarios: steady (1000 invokes × 5 lines × 200 B, with each `SHIP_AT`), bursty (40 × 2000 ×
//! 300 B) and big records (50 × 20 × 50 KB). Each runs `ABE_RUNS` times (3); the table shows medians.
//!
//! `cargo build --profile dist -p adaptive-batching-extension && cargo bench --bench end_to_end`
//! measures the layer's build (`ABE_BINARY` selects another, for example the release profile's).

use lambda_emulator::{EmulatorBuilder, InvokeScript, Script};
use std::path::PathBuf;
use std::time::Duration;

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

/// Name, invocations, what each does, frozen gap (ms), extra environment.
type Scenario = (
    &'static str,
    u64,
    InvokeScript,
    u64,
    &'static [(&'static str, &'static str)],
);

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
    let steady = InvokeScript {
        lines: 5,
        line_bytes: 200,
        duration: Duration::from_millis(5),
    };
    let scenarios: [Scenario; 4] = [
        ("steady", 1000, steady, 2, &[]),
        (
            "steady, SHIP_AT=end-of-invoke",
            1000,
            steady,
            2,
            &[("ADAPTIVE_BATCHING_EXTENSION_SHIP_AT", "end-of-invoke")],
        ),
        (
            "bursty",
            40,
            InvokeScript {
                lines: 2000,
                line_bytes: 300,
                duration: Duration::from_millis(50),
            },
            20,
            &[],
        ),
        (
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
    ];
    println!("{} ({runs} runs each, medians)", bin.display());
    println!(
        "| scenario | cold start ms | peak RSS MiB | CPU ms | post-runtime p50 ms | p99 ms | records/s | objects |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, invocations, invoke, gap_ms, env) in scenarios {
        let mut rows: Vec<[f64; 7]> = Vec::new();
        for _ in 0..runs {
            rows.push(run(&bin, invocations, invoke, gap_ms, env).await);
        }
        let m = |i: usize| median(rows.iter().map(|r| r[i]).collect());
        println!(
            "| {name} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} |",
            m(0),
            m(1),
            m(2),
            m(3),
            m(4),
            m(5),
            m(6)
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One run: cold start, peak RSS (MiB), CPU ms, post-runtime p50 and p99, records/s, objects.
async fn run(
    bin: &std::path::Path,
    invocations: u64,
    invoke: InvokeScript,
    gap_ms: u64,
    env: &[(&str, &str)],
) -> [f64; 7] {
    let dir = tempfile::tempdir().expect("tempdir");
    let ext = dir.path().join("extensions");
    std::fs::create_dir_all(&ext).expect("mkdir");
    std::os::unix::fs::symlink(bin, ext.join("adaptive-batching-extension")).expect("symlink");
    let mut b = EmulatorBuilder::new(&ext)
        .bucket("logs")
        .env("ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET", "logs")
        .env(
            "ADAPTIVE_BATCHING_EXTENSION_SPILL_DIR",
            dir.path().join("spill").to_string_lossy(),
        )
        .env("ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT", "48123")
        .invoke_timeout(Duration::from_secs(10));
    for (k, v) in env {
        b = b.env(*k, *v);
    }
    let mut emu = b.start().await.expect("emulator");
    let script = Script {
        invocations,
        invoke,
        gap: Duration::from_millis(gap_ms),
        late_lines: 0,
        stragglers: 0,
        concurrency: 1,
    };
    let report = emu.run(&script).await;
    let e = &report.extensions[0];
    let post = &report.invocations.post_runtime_ms;
    [
        e.cold_start_ms.unwrap_or(0.0),
        e.peak_rss_kb.unwrap_or(0) as f64 / 1024.0,
        e.cpu_ms.unwrap_or(0.0),
        post.p50,
        post.p99,
        report.records.delivered as f64 / (report.duration_ms / 1000.0),
        report.s3.objects as f64,
    ]
}
