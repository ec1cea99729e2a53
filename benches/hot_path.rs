//! The hot path, delivery → batch → object body, in MB/s of delivered bytes, next to the raw speed
//! of the same compressor on the same NDJSON bytes (compression is the physical limit).
//!
//! `cargo bench --bench hot_path`

use adaptive_batching_extension::batch::Batcher;
use adaptive_batching_extension::config::Thresholds;
use adaptive_batching_extension::encode::{self, Compression};
use adaptive_batching_extension::lambda::records::parse_delivery;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::io::Write;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

/// A Telemetry delivery of 1000 function lines of about 200 bytes, as Lambda sends them.
fn delivery() -> Bytes {
    let records: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                r#"{{"time":"2026-11-27T12:00:00.{:03}Z","type":"function","record":"2026-11-27T12:00:00.{:03}Z\t6f7f0961-f834-4211-8a7a-f6fe80b88d56\tINFO\tprocessed order {i} for customer {} in {} ms with status OK"}}"#,
                i % 1000,
                i % 1000,
                i * 7919 % 100_000,
                i % 97
            )
        })
        .collect();
    Bytes::from(format!("[{}]", records.join(",")))
}

fn thresholds() -> Thresholds {
    // One batch per delivery: the bytes threshold well above it.
    Thresholds {
        bytes: NonZeroU64::new(1 << 30).unwrap(),
        invokes: NonZeroU64::new(1 << 30).unwrap(),
        elapsed: Duration::from_secs(3600),
    }
}

/// Parse a delivery, batch its records, and encode the object body.
fn hot_path(body: &Bytes, compression: Compression) -> Bytes {
    let d = parse_delivery(body, chrono::Utc::now()).unwrap();
    let now = Instant::now();
    let mut b = Batcher::new(thresholds(), u64::MAX, now);
    for r in d.records {
        b.push(r.raw, false, now);
    }
    let batch = b.seal_all(now).unwrap();
    encode::body(&batch.records, batch.body_bytes, compression)
}

fn bench(c: &mut Criterion) {
    let body = delivery();
    let ndjson = {
        let d = parse_delivery(&body, chrono::Utc::now()).unwrap();
        let records: Vec<Bytes> = d.records.into_iter().map(|r| r.raw).collect();
        let size = records.iter().map(|r| r.len() as u64 + 1).sum();
        encode::ndjson(&records, size)
    };
    let mut g = c.benchmark_group("hot_path");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| parse_delivery(black_box(&body), chrono::Utc::now()).unwrap())
    });
    for (name, compression) in [
        ("none", Compression::None),
        ("gzip1", Compression::Gzip(1)),
        ("gzip6", Compression::Gzip(6)),
        ("zstd1", Compression::Zstd(1)),
        ("zstd3", Compression::Zstd(3)),
    ] {
        g.bench_function(format!("parse_batch_encode_{name}"), |b| {
            b.iter(|| hot_path(black_box(&body), compression))
        });
    }
    g.finish();
    let mut raw = c.benchmark_group("raw_compressor");
    raw.throughput(Throughput::Bytes(ndjson.len() as u64));
    raw.bench_function("gzip1", |b| {
        b.iter(|| {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(1));
            z.write_all(black_box(&ndjson)).unwrap();
            z.finish().unwrap()
        })
    });
    raw.bench_function("gzip6", |b| {
        b.iter(|| {
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            z.write_all(black_box(&ndjson)).unwrap();
            z.finish().unwrap()
        })
    });
    raw.bench_function("zstd1", |b| {
        b.iter(|| zstd::bulk::compress(black_box(&ndjson), 1).unwrap())
    });
    raw.bench_function("zstd3", |b| {
        b.iter(|| zstd::bulk::compress(black_box(&ndjson), 3).unwrap())
    });
    raw.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
