//! The emulator's scenario files (`emulator/scenarios/`), run against the release binary: each
//! asserts its own expectations through the emulator's line-exact verdict (every function line in
//! S3 exactly once, no invoke paying for S3, as the file says).

use crate::support::{NAME, free_port, layer};
use lambda_emulator::{Report, Scenario};

/// Runs `emulator/scenarios/<name>.toml` on the extension; returns the report after asserting that
/// the verdict passed.
pub async fn scenario(name: &str) -> (Report, lambda_emulator::Emulator) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("emulator/scenarios")
        .join(format!("{name}.toml"));
    let s = Scenario::load(&path).unwrap();
    let l = layer();
    let mut emu = s
        .builder(&l.extensions)
        .env(
            "ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT",
            free_port().to_string(),
        )
        .start()
        .await
        .unwrap();
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
    assert_eq!(report.verdict.lines_found, report.verdict.lines_emitted);
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
