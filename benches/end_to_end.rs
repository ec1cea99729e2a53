//! The extension's cost to the function, measured under the emulated Lambda platform: cold start
//! (spawn → first `next`), peak RSS, CPU time, post-runtime duration p50/p99, records per second.
//! Three scenarios: steady (1000 invokes × 5 lines × 200 B), bursty (40 × 2000 × 300 B) and big
//! records (50 × 20 × 50 KB).
//!
//! `cargo build --release -p adaptive-batching-extension && cargo bench --bench end_to_end`
//! (`ABE_BINARY` selects another build, for example the `dist` profile's.)

use lambda_emulator::{EmulatorBuilder, InvokeScript, Script};
use std::path::PathBuf;
use std::time::Duration;

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("ABE_BINARY") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    PathBuf::from(target)
        .join("release")
        .join("adaptive-batching-extension")
}

#[tokio::main(flavor = "current_thread")]
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
    let scenarios = [
        (
            "steady",
            1000,
            InvokeScript {
                lines: 5,
                line_bytes: 200,
                duration: Duration::from_millis(5),
            },
            2,
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
        ),
    ];
    println!(
        "| scenario | cold start ms | peak RSS MB | CPU ms | post-runtime p50 ms | p99 ms | records/s | objects |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, invocations, invoke, gap_ms) in scenarios {
        let dir = tempfile::tempdir().expect("tempdir");
        let ext = dir.path().join("extensions");
        std::fs::create_dir_all(&ext).expect("mkdir");
        std::os::unix::fs::symlink(&bin, ext.join("adaptive-batching-extension")).expect("symlink");
        let mut emu = EmulatorBuilder::new(&ext)
            .bucket("logs")
            .env("ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET", "logs")
            .env(
                "ADAPTIVE_BATCHING_EXTENSION_SPILL_DIR",
                dir.path().join("spill").to_string_lossy(),
            )
            .env("ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT", "48123")
            .invoke_timeout(Duration::from_secs(10))
            .start()
            .await
            .expect("emulator");
        let script = Script {
            invocations,
            invoke,
            gap: Duration::from_millis(gap_ms),
            late_lines: 0,
            concurrency: 1,
        };
        let report = emu.run(&script).await;
        let e = &report.extensions[0];
        let post = &report.invocations.post_runtime_ms;
        let records = report.records.delivered as f64;
        println!(
            "| {name} | {:.1} | {:.1} | {:.0} | {:.2} | {:.2} | {:.0} | {} |",
            e.cold_start_ms.unwrap_or(0.0),
            e.peak_rss_kb.unwrap_or(0) as f64 / 1024.0,
            e.cpu_ms.unwrap_or(0.0),
            post.p50,
            post.p99,
            records / (report.duration_ms / 1000.0),
            report.s3.objects
        );
    }
}
