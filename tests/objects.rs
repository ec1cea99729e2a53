//! Issue 7 at the emulator's S3 endpoint: compression, key templates, encryption, storage class,
//! checksums and user metadata on every object.

use crate::support::*;
use lambda_emulator::Script;
use std::io::Read;
use std::time::Duration;

fn run() -> Script {
    Script {
        invocations: 12,
        invoke: script(4, 150, 10),
        gap: Duration::from_millis(2),
        late_lines: 1,
        stragglers: 0,
        concurrency: 1,
    }
}

/// Decompresses a body as its Content-Encoding says.
fn plain(o: &lambda_emulator::s3::StoredObject) -> String {
    let mut out = Vec::new();
    match o.content_encoding.as_deref() {
        Some("gzip") => {
            flate2::read::GzDecoder::new(&o.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::decode_all(&o.body[..]).unwrap(),
        None => out = o.body.to_vec(),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn gzip_objects_under_a_hive_template_with_sse_kms_storage_class_checksums_and_metadata() {
    let l = layer();
    let mut emu = l
        .function()
        .env("ADAPTIVE_BATCHING_EXTENSION_COMPRESSION", "gzip")
        .env(
            "ADAPTIVE_BATCHING_EXTENSION_KEY_TEMPLATE",
            "logs/function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/{uuid}.ndjson.gz",
        )
        .env("ADAPTIVE_BATCHING_EXTENSION_SSE", "aws:kms")
        .env("ADAPTIVE_BATCHING_EXTENSION_SSE_KMS_KEY_ID", "alias/logs")
        .env("ADAPTIVE_BATCHING_EXTENSION_STORAGE_CLASS", "standard_ia")
        .start()
        .await
        .unwrap();
    emu.run(&run()).await;
    let objects = emu.s3().objects(BUCKET);
    assert!(objects.len() > 1);
    let mut lines: Vec<String> = Vec::new();
    for o in &objects {
        let parts: Vec<&str> = o.key.split('/').collect();
        assert_eq!(parts[0], "logs");
        assert_eq!(parts[1], "function=demo-fn");
        assert!(
            parts[2].starts_with("dt=2") && parts[2].len() == 13,
            "{}",
            o.key
        );
        assert!(
            parts[3].starts_with("hour=") && parts[3].len() == 7,
            "{}",
            o.key
        );
        assert!(
            uuid::Uuid::parse_str(parts[4].trim_end_matches(".ndjson.gz")).is_ok(),
            "{}",
            o.key
        );
        assert_eq!(o.content_type.as_deref(), Some("application/x-ndjson"));
        assert_eq!(o.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(o.server_side_encryption.as_deref(), Some("aws:kms"));
        assert_eq!(o.sse_kms_key_id.as_deref(), Some("alias/logs"));
        assert_eq!(o.storage_class.as_deref(), Some("STANDARD_IA"));
        assert!(
            o.checksums.contains_key("crc32"),
            "a CRC32 the endpoint verified: {:?}",
            o.checksums
        );
        let text = plain(o);
        let n = text.lines().count();
        assert_eq!(o.metadata["record-count"], n.to_string());
        assert_eq!(o.metadata["function-name"], "demo-fn");
        assert_eq!(o.metadata["function-version"], "$LATEST");
        assert_eq!(o.metadata["extension-version"], env!("CARGO_PKG_VERSION"));
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(
            o.metadata["first-record-time"],
            first["time"].as_str().unwrap()
        );
        assert_eq!(
            o.metadata["last-record-time"],
            last["time"].as_str().unwrap()
        );
        // {dt} and {hour} come from the batch's first record.
        let t = first["time"].as_str().unwrap();
        assert_eq!(parts[2], format!("dt={}", &t[..10]));
        assert_eq!(parts[3], format!("hour={}", &t[11..13]));
        lines.extend(text.lines().map(str::to_string));
    }
    let mut delivered = delivered_records(&emu);
    delivered.sort();
    lines.sort();
    assert_eq!(
        lines, delivered,
        "the bodies decompress to exactly the delivered records"
    );
}

#[tokio::test]
async fn zstd_objects_keep_the_samples_layout_with_a_zst_suffix() {
    let l = layer();
    let mut emu = l
        .function()
        .env("ADAPTIVE_BATCHING_EXTENSION_COMPRESSION", "zstd")
        .env("ADAPTIVE_BATCHING_EXTENSION_COMPRESSION_LEVEL", "30")
        .start()
        .await
        .unwrap();
    emu.run(&run()).await;
    let mut lines: Vec<String> = Vec::new();
    for o in emu.s3().objects(BUCKET) {
        assert!(
            o.key.ends_with(".log.zst") && o.key.contains("/demo-fn-"),
            "{}",
            o.key
        );
        assert_eq!(o.content_encoding.as_deref(), Some("zstd"));
        lines.extend(plain(&o).lines().map(str::to_string));
    }
    let mut delivered = delivered_records(&emu);
    delivered.sort();
    lines.sort();
    assert_eq!(lines, delivered);
    let warning = log_lines(&emu)
        .into_iter()
        .find(|l| l["msg"] == "configuration")
        .unwrap();
    assert_eq!(
        warning["warning"],
        "ADAPTIVE_BATCHING_EXTENSION_COMPRESSION_LEVEL 30 is above the maximum of 19; using 19"
    );
}

#[tokio::test]
async fn a_template_without_uuid_is_an_init_error_that_says_why() {
    let l = layer();
    let message = config_error(l.function().env(
        "ADAPTIVE_BATCHING_EXTENSION_KEY_TEMPLATE",
        "logs/{yyyy}/{epoch_ms}.log",
    ))
    .await;
    assert!(
        message.starts_with(
            "ADAPTIVE_BATCHING_EXTENSION_KEY_TEMPLATE \"logs/{yyyy}/{epoch_ms}.log\" has no {uuid}"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn emf_lines_validate_and_never_land_in_s3() {
    let l = layer();
    let mut emu = l
        .function()
        .env("ADAPTIVE_BATCHING_EXTENSION_METRICS", "emf")
        .env(
            "ADAPTIVE_BATCHING_EXTENSION_LOG_TYPES",
            r#"["platform","function","extension"]"#,
        )
        .start()
        .await
        .unwrap();
    emu.run(&run()).await;
    let emf: Vec<serde_json::Value> = emu
        .extension_output(NAME)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    let objects = emu.s3().writes().len();
    assert_eq!(
        emf.len(),
        objects + 1,
        "one line per shipped object and one at shutdown"
    );
    for line in &emf {
        // The EMF specification's required fields.
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].is_i64());
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "AdaptiveBatchingExtension");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["FunctionName"]])
        );
        assert_eq!(line["FunctionName"], "demo-fn");
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(line[m["Name"].as_str().unwrap()].is_number(), "{m}");
        }
    }
    assert!(emf.last().unwrap()["RecordsReceived"].as_f64().unwrap() > 0.0);
    // Extension records were shipped (our log lines), but none of the EMF lines.
    let shipped = shipped_lines(&emu);
    assert!(shipped.iter().any(|l| l.contains("\"type\":\"extension\"")));
    assert!(
        shipped.iter().all(|l| !l.contains("_aws")),
        "no EMF line in S3"
    );
}
