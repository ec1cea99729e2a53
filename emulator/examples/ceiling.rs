//! The emulator's own ceiling, so a benchmark knows it is not measuring the emulator:
//! records per second it delivers to a listener that accepts at once, and S3 PUTs per second.
//!
//! `cargo run --release -p lambda-emulator --example ceiling`

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use lambda_emulator::s3::S3Endpoint;
use lambda_emulator::{EmulatorBuilder, InvokeScript};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tiny = std::env::current_exe()
        .ok()
        .and_then(|p| {
            p.parent()
                .and_then(|d| d.parent())
                .map(|d| d.join("tiny-extension"))
        })
        .filter(|p| p.exists())
        .expect("build tiny-extension first: cargo build --release -p lambda-emulator --bins");
    std::os::unix::fs::symlink(&tiny, dir.path().join("sink")).expect("symlink");

    for (lines, bytes) in [(200_000usize, 200usize), (20_000, 2_000)] {
        let mut emu = EmulatorBuilder::new(dir.path())
            .env("TINY_QUIET_DELIVERIES", "1")
            .env("TINY_BUFFERING", "10000,1048576,25")
            .with(|f| f.timeout_ms = 120_000)
            .with(|f| f.subscriber_buffer_cap = usize::MAX / 2)
            .start()
            .await
            .expect("start");
        emu.init().await.expect("init");
        // A zero-length function writes every line at once: delivery is the only limit.
        emu.invoke(InvokeScript {
            lines,
            line_bytes: bytes,
            duration: Duration::ZERO,
        })
        .await;
        let t = Instant::now();
        emu.shutdown(0).await;
        let s = &emu.subscribers()[0];
        let first = s.delivered_at_ms.first().copied().unwrap_or(0.0);
        let last = s.delivered_at_ms.last().copied().unwrap_or(0.0);
        let secs = (last - first) / 1000.0;
        println!(
            "delivery: {lines} lines x {bytes} B: {} records in {} POSTs over {:.3} s = {:.0} records/s, {:.1} MB/s (shutdown took {:?})",
            s.delivered,
            s.posts,
            secs,
            s.delivered as f64 / secs,
            s.delivered as f64 * bytes as f64 / secs / 1e6,
            t.elapsed()
        );
    }

    let ep = S3Endpoint::start("us-east-1").await.expect("s3");
    ep.create_bucket("bench");
    let c = ep.credentials();
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            Some(c.session_token.clone()),
            None,
            "bench",
        ))
        .endpoint_url(ep.url())
        .force_path_style(true)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(conf);
    for (size, concurrency) in [(4 * 1024usize, 1usize), (4 * 1024, 8), (1024 * 1024, 4)] {
        let n = 400usize;
        let body = vec![b'x'; size];
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..concurrency {
            let s3 = s3.clone();
            let body = body.clone();
            tasks.spawn(async move {
                for i in (w..n).step_by(concurrency) {
                    s3.put_object()
                        .bucket("bench")
                        .key(format!("k{i}"))
                        .body(ByteStream::from(body.clone()))
                        .send()
                        .await
                        .expect("put");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let secs = t.elapsed().as_secs_f64();
        println!(
            "s3: {n} PutObject of {size} B, {concurrency} at a time: {:.0} PUT/s, {:.1} MB/s",
            n as f64 / secs,
            (n * size) as f64 / secs / 1e6
        );
    }
}
