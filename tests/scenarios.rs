//! The emulator's scenario files (`emulator/scenarios/`), run against the release binary: each
//! asserts its own expectations through the emulator's line-exact verdict (every function line in
//! S3 exactly once, no invoke paying for S3, as the file says).

use crate::support::{NAME, free_port, layer};
use lambda_emulator::{Report, Scenario};

/// Runs `emulator/scenarios/<name>.toml` on the extension; returns the report after asserting that
/// the verdict passed.
pub async fn scenario(name: &str) -> (Report, lambda_emulator::Emulator) {
    scenario_with(name, &[]).await
}

/// [`scenario`], with variables added to the file's.
pub async fn scenario_with(
    name: &str,
    vars: &[(&str, &str)],
) -> (Report, lambda_emulator::Emulator) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("emulator/scenarios")
        .join(format!("{name}.toml"));
    let s = Scenario::load(&path).unwrap();
    let l = layer();
    let mut b = s.builder(&l.extensions).env(
        "ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT",
        free_port().to_string(),
    );
    for (k, v) in vars {
        b = b.env(*k, *v);
    }
    let mut emu = b.start().await.unwrap();
    let report = s.run(&mut emu).await;
    assert!(
        report.init_failures.is_empty(),
        "{:?}",
        report.init_failures
    );
    assert!(
        report.verdict.passed,
        "{name}: {:?}\n{}\n{}",
        report.verdict.failures,
        report.to_table(),
        emu.extension_output(NAME).join("\n")
    );
    // Every line is in S3, or is one the scenario's rules were expected to drop.
    let r = &report.verdict.rules;
    assert_eq!(
        report.verdict.lines_found + r.absent_as_expected + r.optional_absent,
        report.verdict.lines_emitted
    );
    (report, emu)
}

#[tokio::test]
async fn steady() {
    let (r, _) = scenario("steady").await;
    assert_eq!(r.verdict.lines_emitted, 1000);
}

#[tokio::test]
async fn idle_connections_closed() {
    let (r, _) = scenario("idle-connections-closed").await;
    assert_eq!(r.verdict.lines_emitted, 24);
}

#[tokio::test]
async fn stragglers() {
    let (r, _) = scenario("stragglers").await;
    assert_eq!(r.verdict.lines_emitted, 5 * 3 + 3 + 20);
    assert_eq!(r.verdict.lost.after_ack, 0);
}

/// The extension's `ship failed` log lines with `cause`.
fn failures(emu: &lambda_emulator::Emulator, cause: &str) -> Vec<serde_json::Value> {
    crate::support::log_lines(emu)
        .into_iter()
        .filter(|l| l["msg"] == "ship failed" && l["cause"] == cause)
        .collect()
}

#[tokio::test]
async fn refused_then_allowed() {
    let (r, emu) = scenario("refused-then-allowed").await;
    assert_eq!(r.s3.injected_faults, 6);
    assert!(r.invocations.post_runtime_ms.p99 <= 5.0);
    // One line for the cause, saying what to fix.
    let lines = failures(&emu, "AccessDenied");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]["what_now"]
            .as_str()
            .unwrap()
            .contains("s3:PutObject")
    );
}

#[tokio::test]
async fn kms_denied() {
    let (r, emu) = scenario("kms-denied").await;
    assert_eq!(r.s3.injected_faults, 4);
    let lines = failures(&emu, "kms");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]["what_now"]
            .as_str()
            .unwrap()
            .contains("kms:GenerateDataKey")
    );
    assert!(
        emu.s3()
            .objects("logs")
            .iter()
            .all(|o| o.server_side_encryption.as_deref() == Some("aws:kms"))
    );
}

#[tokio::test]
async fn multipart_20mib() {
    let (r, emu) = scenario("multipart-20mib").await;
    let big: Vec<_> = emu
        .s3()
        .objects("logs")
        .into_iter()
        .filter(|o| o.multipart)
        .collect();
    assert!(!big.is_empty(), "a body above 16 MiB went up in parts");
    for o in &big {
        assert!(
            o.checksums["crc32"].ends_with(&format!("-{}", o.etag.rsplit('-').next().unwrap()))
        );
    }
    assert_eq!(r.s3.by_operation.get("AbortMultipartUpload"), None);
}

#[tokio::test]
async fn slowdown_every_5th() {
    let (r, emu) = scenario("slowdown-every-5th").await;
    assert!(r.s3.injected_faults >= 1);
    crate::support::assert_no_key_rewritten_differently(&emu);
}

#[tokio::test]
async fn freeze_cuts_uploads() {
    let (r, emu) = scenario("freeze-cuts-uploads").await;
    let cut: Vec<_> = emu
        .s3()
        .requests()
        .into_iter()
        .filter(|q| q.injected == Some(lambda_emulator::s3::Injected::FreezeCut))
        .collect();
    assert_eq!(cut.len(), 3, "three uploads were cut by a freeze");
    // Each was sent again after the thaw, under the same key, and landed once.
    for q in &cut {
        let key = q.key.clone().unwrap();
        assert!(emu.s3().object("logs", &key).is_some(), "{key} retried");
    }
    crate::support::assert_no_key_rewritten_differently(&emu);
    assert!(r.invocations.post_runtime_ms.p99 <= 5.0);
}

#[tokio::test]
async fn slow_s3() {
    let (r, _) = scenario("slow-s3").await;
    assert!(
        r.invocations.post_runtime_ms.p99 <= 5.0,
        "S3's 300 ms never reach the function's bill"
    );
}

#[tokio::test]
async fn throttled_small_spill() {
    let (r, emu) = scenario("throttled-small-spill").await;
    assert_eq!(r.verdict.lines_emitted, 2400);
    let s = crate::support::summary(&emu);
    assert_eq!(s["accounted"], true, "{s}");
    assert_eq!(s["lost"], 0, "{s}");
    assert_eq!(s["refused"], 0, "{s}");
}

#[tokio::test]
async fn lost_replies_throttled() {
    let (r, emu) = scenario("lost-replies-throttled").await;
    assert_eq!(r.verdict.lines_emitted, 1600);
    let lost_replies = emu
        .s3()
        .requests()
        .into_iter()
        .filter(|q| q.injected == Some(lambda_emulator::s3::Injected::ReplyLost))
        .count();
    assert!(lost_replies >= 1, "some replies were lost");
    crate::support::assert_no_key_rewritten_differently(&emu);
    let s = crate::support::summary(&emu);
    assert_eq!(s["accounted"], true, "{s}");
    assert_eq!(s["lost"], 0, "{s}");
}

#[tokio::test]
async fn processing_rules() {
    let (r, emu) = scenario("processing-rules").await;
    let v = &r.verdict;
    assert_eq!(v.lines_emitted, 1000);
    // Line n says text (n - 1) % 7: the health check is the 3rd, the sampled debug line the 2nd.
    let every_7th_from = |k: usize| (k..=1000).step_by(7).count();
    assert_eq!(v.rules.absent_as_expected, every_7th_from(3));
    assert_eq!(v.rules.present_but_expected_absent, 0);
    assert_eq!(
        v.rules.optional_absent + v.rules.optional_present,
        every_7th_from(2)
    );
    assert!(v.rules.optional_absent > 0 && v.rules.optional_present > 0);
    assert!(v.rules.forbidden_found.iter().all(|(_, n)| *n == 0));
    assert_eq!(v.rules.forbidden_found.len(), 4);
    // The README's ready rules are the scenario's first five, as written.
    let scenario = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("emulator/scenarios/processing-rules.toml"),
    )
    .unwrap();
    let readme = include_str!("../README.md");
    let ready = readme
        .split("<!-- ready rules -->\n```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n]\n```").next())
        .unwrap();
    let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
    let rules_json = scenario.split("'''").nth(1).unwrap();
    assert_eq!(
        parse(rules_json).as_array().unwrap()[..5],
        parse(&format!("{ready}\n]")).as_array().unwrap()[..]
    );

    // The extension's own account agrees, rule by rule.
    let s = crate::support::summary(&emu);
    assert_eq!(s["accounted"], true, "{s}");
    assert_eq!(s["lost"], 0, "{s}");
    let platform_dropped = 2 * 200;
    assert_eq!(
        s["filtered"],
        (v.rules.absent_as_expected + v.rules.optional_absent + platform_dropped) as u64,
        "{s}"
    );
    let rule_lines: Vec<(String, u64, u64, u64)> = crate::support::log_lines(&emu)
        .into_iter()
        .filter(|l| l["msg"] == "processing rule")
        .map(|l| {
            (
                l["rule"].as_str().unwrap().to_string(),
                l["excluded"].as_u64().unwrap(),
                l["sampled_out"].as_u64().unwrap(),
                l["masked"].as_u64().unwrap(),
            )
        })
        .collect();
    let n = |k| every_7th_from(k) as u64;
    let sampled = v.rules.optional_absent as u64;
    assert_eq!(
        rule_lines,
        [
            ("aws_access_key_ids".to_string(), 0, 0, n(7)),
            ("card_numbers".to_string(), 0, 0, n(7)),
            ("email_addresses".to_string(), 0, 0, n(4)),
            ("bearer_tokens".to_string(), 0, 0, n(6)),
            ("health_checks".to_string(), n(3), 0, 0),
            ("debug".to_string(), 0, sampled, 0),
            ("platform_noise".to_string(), platform_dropped as u64, 0, 0),
        ]
    );
    // With METRICS=emf, one EMF line per rule says the same, under the dimension Rule.
    let emf: Vec<(String, f64, f64, f64)> = crate::support::log_lines(&emu)
        .into_iter()
        .filter(|l| l["_aws"].is_object() && l["Rule"].is_string())
        .map(|l| {
            assert_eq!(
                l["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                serde_json::json!([["FunctionName", "Rule"]])
            );
            (
                l["Rule"].as_str().unwrap().to_string(),
                l["RecordsExcluded"].as_f64().unwrap(),
                l["RecordsSampledOut"].as_f64().unwrap(),
                l["RecordsMasked"].as_f64().unwrap(),
            )
        })
        .collect();
    let as_emf: Vec<(String, f64, f64, f64)> = rule_lines
        .iter()
        .map(|(r, e, s, m)| (r.clone(), *e as f64, *s as f64, *m as f64))
        .collect();
    assert_eq!(emf, as_emf);
    // Masked lines still say everything else; the platform keeps its reports.
    let all: String = emu
        .s3()
        .objects("logs")
        .iter()
        .map(|o| String::from_utf8(o.body.to_vec()).unwrap())
        .collect();
    assert_eq!(
        all.matches("key [AWS_ACCESS_KEY_ID] card [CARD_NUMBER]")
            .count() as u64,
        n(7)
    );
    assert_eq!(all.matches("Bearer [TOKEN]").count() as u64, n(6));
    assert_eq!(all.matches("\"type\":\"platform.report\"").count(), 200);
    assert_eq!(all.matches("\"type\":\"platform.start\"").count(), 0);
    assert_eq!(
        all.matches("WARN slow DEBUG path").count(),
        every_7th_from(5)
    );
}

/// `FORMAT=parquet` through every scenario file (issue 22): the verdict, which reads each Parquet
/// object's records with the `parquet` crate, passes with nothing lost; every object is a Parquet
/// file under a `.parquet` key, none fell back to NDJSON.
macro_rules! with_parquet {
    ($($test:ident => $file:literal),* $(,)?) => {
        mod with_parquet {
            use super::*;
            $(
                #[tokio::test]
                async fn $test() {
                    let vars = [("ADAPTIVE_BATCHING_EXTENSION_FORMAT", "parquet")];
                    let (r, emu) = scenario_with($file, &vars).await;
                    assert!(r.verdict.lines_found > 0);
                    assert_parquet_objects(&emu);
                }
            )*

            #[test]
            fn every_scenario_file_is_run() {
                let mut files: Vec<String> = std::fs::read_dir(
                    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("emulator/scenarios"),
                )
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().replace(".toml", ""))
                .collect();
                files.sort();
                let mut run = vec![$($file),*];
                run.sort();
                assert_eq!(files, run);
            }
        }
    };
}

with_parquet! {
    freeze_cuts_uploads => "freeze-cuts-uploads",
    idle_connections_closed => "idle-connections-closed",
    kms_denied => "kms-denied",
    lost_replies_throttled => "lost-replies-throttled",
    multipart_20mib => "multipart-20mib",
    processing_rules => "processing-rules",
    refused_then_allowed => "refused-then-allowed",
    slow_s3 => "slow-s3",
    slowdown_every_5th => "slowdown-every-5th",
    steady => "steady",
    stragglers => "stragglers",
    throttled_defaults_20mb => "throttled-defaults-20mb",
    throttled_small_spill => "throttled-small-spill",
}

/// Every object is a Parquet file, typed and keyed as one, and the summary counts no fallback.
fn assert_parquet_objects(emu: &lambda_emulator::Emulator) {
    let objects = emu.s3().objects("logs");
    assert!(!objects.is_empty());
    for o in objects {
        assert!(o.key.ends_with(".parquet"), "{}", o.key);
        assert_eq!(
            o.content_type.as_deref(),
            Some("application/vnd.apache.parquet")
        );
        assert_eq!(o.content_encoding, None);
        assert!(o.body.starts_with(b"PAR1") && o.body.ends_with(b"PAR1"));
    }
    let s = crate::support::summary(emu);
    assert_eq!(s["parquet_fallbacks"], 0, "{s}");
    assert_eq!(s["accounted"], true, "{s}");
}
