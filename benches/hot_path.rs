//! The hot path, delivery → batch → object body, in MB/s of delivered bytes, next to the raw speed
//! of the same compressor on the same NDJSON bytes (compression is the physical limit).
//!
//! `cargo bench --bench hot_path`
//!
//! `rules/*`: the same path through Intake (where processing rules apply), with no rules, the
//! README's masks plus one (5), and 20 of every type, on lines of which every 7th carries an access
//! key id and a card number.

use adaptive_batching_extension::batch::Batcher;
use adaptive_batching_extension::config::{Config, Thresholds};
use adaptive_batching_extension::encode::{self, Compression};
use adaptive_batching_extension::intake::{Action, Event, Intake, Now};
use adaptive_batching_extension::lambda::records::parse_delivery;
use adaptive_batching_extension::stats::Counters;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::io::Write;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

/// A Telemetry delivery of 1000 function lines of about 200 bytes, as Lambda sends them; with
/// `secrets`, every 7th carries an access key id and a card number.
fn delivery(secrets: bool) -> Bytes {
    let records: Vec<String> = (0..1000)
        .map(|i| {
            let secret = if secrets && i % 7 == 6 {
                " key AKIAIOSFODNN7EXAMPLE card 4111 1111 1111 1111"
            } else {
                ""
            };
            format!(
                r#"{{"time":"2026-11-27T12:00:00.{:03}Z","type":"function","record":"2026-11-27T12:00:00.{:03}Z\t6f7f0961-f834-4211-8a7a-f6fe80b88d56\tINFO\tprocessed order {i} for customer {} in {} ms with status OK{secret}"}}"#,
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

const MASKS: [&str; 5] = [
    r#"{"type":"mask_sequences","name":"aws_access_key_ids","pattern":"\\b(?:AKIA|ASIA)[0-9A-Z]{16}\\b","replace_placeholder":"[AWS_ACCESS_KEY_ID]"}"#,
    r#"{"type":"mask_sequences","name":"card_numbers","pattern":"\\b(?:[0-9]{16}|[0-9]{4}(?: [0-9]{4}){3}|[0-9]{4}(?:-[0-9]{4}){3})\\b","replace_placeholder":"[CARD_NUMBER]"}"#,
    r#"{"type":"mask_sequences","name":"email_addresses","pattern":"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}","replace_placeholder":"[EMAIL]"}"#,
    r#"{"type":"mask_sequences","name":"bearer_tokens","pattern":"(?i)(bearer\\s+)[A-Za-z0-9._~+/-]+=*","replace_placeholder":"${1}[TOKEN]"}"#,
    r#"{"type":"mask_sequences","name":"ipv4","pattern":"\\b(?:[0-9]{1,3}\\.){3}[0-9]{1,3}\\b","replace_placeholder":"[IP]"}"#,
];

/// 20 rules of every type: the 5 masks, 10 exclusions, an inclusion every line passes, 2 samples,
/// 2 platform exclusions.
fn mixed_rules() -> String {
    let mut rules: Vec<String> = MASKS.iter().map(|r| r.to_string()).collect();
    for (i, p) in [
        "GET /health",
        "GET /ping",
        "ELB-HealthChecker",
        "kube-probe",
        r"favicon\\.ico",
        "heartbeat",
        "^START RequestId",
        "Googlebot",
        "status=304",
        "cache warm",
    ]
    .iter()
    .enumerate()
    {
        rules.push(format!(
            r#"{{"type":"exclude_at_match","name":"exclude_{i}","pattern":"{p}"}}"#
        ));
    }
    rules.push(r#"{"type":"include_at_match","name":"levels","pattern":"\\t(?:INFO|WARN|ERROR|DEBUG)\\t"}"#.into());
    rules.push(
        r#"{"type":"sample","name":"debug","pattern":"\\tDEBUG\\t","keep_one_in":10}"#.into(),
    );
    rules.push(
        r#"{"type":"sample","name":"status_ok","pattern":"status OK$","keep_one_in":1}"#.into(),
    );
    rules.push(
        r#"{"type":"exclude_platform_types","name":"starts","record_types":["platform.start"]}"#
            .into(),
    );
    rules.push(r#"{"type":"exclude_platform_types","name":"done","record_types":["platform.runtimeDone"]}"#.into());
    format!("[{}]", rules.join(","))
}

/// An intake configured with `rules`, thresholds that never trigger by themselves.
fn intake(rules: &str) -> Intake {
    let mut env = std::collections::HashMap::new();
    env.insert(
        "ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET".to_string(),
        "logs".to_string(),
    );
    env.insert(
        "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_BYTES".to_string(),
        "104857600".to_string(),
    );
    env.insert(
        "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_INVOKES".to_string(),
        "1".to_string(),
    );
    env.insert(
        "ADAPTIVE_BATCHING_EXTENSION_PROCESSING_RULES".to_string(),
        rules.to_string(),
    );
    let settings = Config::from_env(&env).unwrap().config.intake;
    let counters = std::sync::Arc::new(Counters::with_rules(settings.rules.names()));
    Intake::new(settings, uuid::Uuid::nil(), counters, 1, Now::read())
}

/// Parse a delivery, take it through the intake (rules included), seal it at INVOKE, encode it.
fn through_intake(intake: &mut Intake, body: &Bytes) -> Bytes {
    let d = parse_delivery(body, chrono::Utc::now()).unwrap();
    let now = Now::read();
    intake.handle(Event::Records(d.records), now);
    let mut out = Bytes::new();
    for a in intake.handle(Event::Invoke, now) {
        if let Action::Ship { sealing, .. } = a {
            out = encode::body(&sealing.records, sealing.body_bytes, Compression::None);
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let body = delivery(false);
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

    let secrets = delivery(true);
    let mut rules = c.benchmark_group("rules");
    rules.throughput(Throughput::Elements(1000));
    let five = format!("[{}]", MASKS.join(","));
    for (name, text, lines) in [
        ("none", String::new(), &secrets),
        ("5_masks", five.clone(), &secrets),
        // The same masks on lines none of them matches: most of a function's lines.
        ("5_masks_no_secrets", five, &body),
        ("20_mixed", mixed_rules(), &secrets),
    ] {
        let mut intake = intake(&text);
        rules.bench_function(name, |b| {
            b.iter(|| through_intake(&mut intake, black_box(lines)))
        });
    }
    rules.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
