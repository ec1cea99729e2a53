//! Issue 22: the same 4 MiB batch as NDJSON+gzip, NDJSON+zstd and Parquet+zstd. Criterion
//! measures encode speed in MB/s of records (CPU per MB is its inverse); the object sizes are
//! printed first.
//!
//! `cargo bench --bench formats`
//!
//! `ABE_FORMATS_DUMP=<dir>` also writes the three objects there (for `benches/parquet_query.py`,
//! which has DuckDB report the bytes a column query reads). `ABE_RSS=<ndjson-gzip|ndjson-zstd|parquet>`
//! encodes the batch once instead and prints how much the peak resident set grew while encoding.

use adaptive_batching_extension::encode::{self, Compression};
use adaptive_batching_extension::parquet;
use bytes::Bytes;
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

/// About 4 MiB of what a function sends: per request a `platform.start`, ten text lines in the
/// runtimes' format, a `platform.runtimeDone` and a `platform.report`.
fn batch() -> Vec<Bytes> {
    let mut records = Vec::new();
    let mut size = 0;
    let mut n = 0u64;
    while size < 4 * 1024 * 1024 {
        let id = format!("6f7f0961-f834-4211-8a7a-{:012x}", n * 7919);
        let t = |k: u64| {
            format!(
                "2026-12-08T01:{:02}:{:02}.{:03}Z",
                n / 3600 % 60,
                n / 60 % 60,
                (n * 13 + k) % 1000
            )
        };
        let mut push = |r: String| {
            size += r.len() + 1;
            records.push(Bytes::from(r));
        };
        push(format!(
            r#"{{"time":"{}","type":"platform.start","record":{{"requestId":"{id}","version":"$LATEST","tracing":{{"spanId":"{:016x}","type":"X-Amzn-Trace-Id","value":"Root=1-6755a1b2-{:024x};Sampled=1"}}}}}}"#,
            t(0),
            n * 31,
            n * 7
        ));
        for line in 0..10u64 {
            push(format!(
                r#"{{"time":"{}","type":"function","record":"{}\t{id}\t{}\tprocessed order {} for customer {} in {} ms with status OK"}}"#,
                t(line + 1),
                t(line + 1),
                if line == 9 && n.is_multiple_of(10) {
                    "ERROR"
                } else {
                    "INFO"
                },
                n * 10 + line,
                (n * 7919 + line) % 100_000,
                (n + line) % 97
            ));
        }
        push(format!(
            r#"{{"time":"{}","type":"platform.runtimeDone","record":{{"requestId":"{id}","status":"success","metrics":{{"durationMs":{}.{:03},"producedBytes":0}}}}}}"#,
            t(11),
            n % 200,
            n * 17 % 1000
        ));
        push(format!(
            r#"{{"time":"{}","type":"platform.report","record":{{"requestId":"{id}","status":"success","metrics":{{"durationMs":{}.{:03},"billedDurationMs":{},"memorySizeMB":128,"maxMemoryUsedMB":{}}}}}}}"#,
            t(12),
            n % 200,
            n * 17 % 1000,
            n % 200 + 1,
            60 + n % 9
        ));
        n += 1;
    }
    records
}

fn size(records: &[Bytes]) -> u64 {
    records.iter().map(|r| r.len() as u64 + 1).sum()
}

fn encode_as(records: &[Bytes], name: &str) -> Vec<u8> {
    match name {
        "ndjson-gzip" => encode::body(records, size(records), Compression::Gzip(6)).to_vec(),
        "ndjson-zstd" => encode::body(records, size(records), Compression::Zstd(3)).to_vec(),
        _ => parquet::encode(records, Compression::Zstd(3)).expect("encodable"),
    }
}

const FORMATS: [(&str, &str); 3] = [
    ("ndjson-gzip", "ndjson.gz"),
    ("ndjson-zstd", "ndjson.zst"),
    ("parquet", "parquet"),
];

/// The resident set now and its peak since the last [`reset_peak`], in KiB (`/proc/self/status`).
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .expect("an RSS field")
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak to the current resident set (proc(5), `/proc/pid/clear_refs`, value 5).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
}

fn main() {
    let records = batch();
    let raw = size(&records);
    if let Ok(name) = std::env::var("ABE_RSS") {
        reset_peak();
        let (before, _) = rss_kib();
        let out = encode_as(&records, &name);
        let (_, peak) = rss_kib();
        println!(
            "{name}: {} records, {raw} bytes → {} bytes; resident {before} KiB before encoding, peak {peak} KiB while encoding (+{} KiB)",
            records.len(),
            out.len(),
            peak - before
        );
        return;
    }
    let dump = std::env::var("ABE_FORMATS_DUMP").ok();
    println!("{} records, {raw} bytes of NDJSON", records.len());
    for (name, ext) in FORMATS {
        let out = encode_as(&records, name);
        println!(
            "{name}: {} bytes ({:.1} % of the records)",
            out.len(),
            100.0 * out.len() as f64 / raw as f64
        );
        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir).expect("dump directory");
            std::fs::write(format!("{dir}/batch.{ext}"), &out).expect("dump");
        }
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(raw));
    for (name, _) in FORMATS {
        g.bench_function(name, |b| b.iter(|| encode_as(black_box(&records), name)));
    }
    g.finish();
    c.final_summary();
}
