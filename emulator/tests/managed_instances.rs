//! Lambda Managed Instances mode (spec §5.1).

use crate::support::{extensions, function_messages, of_kind, of_type};
use lambda_emulator::InvokeScript;
use lambda_emulator::process::process_state;
use std::time::Duration;

#[tokio::test]
async fn invoke_registration_is_refused() {
    let fx = extensions(&["invoke"]);
    let mut emu = fx
        .builder()
        .with(|f| f.managed_instances = true)
        .env("TINY_SCHEMA", "2025-01-29")
        .start()
        .await
        .unwrap();
    // The extension cannot register at all, exits, and init fails.
    let err = emu.init().await.unwrap_err();
    assert_eq!(err.extension.as_deref(), Some("invoke"));
    assert_eq!(err.error_type, "Extension.Crash");
    let reg = &of_kind(&fx.journal("invoke"), "register")[0];
    assert_eq!(reg["status"], 403);
    assert_eq!(reg["body"]["errorType"], "Extension.InvalidEventType");
}

#[tokio::test]
async fn the_logs_api_and_older_telemetry_schemas_are_refused() {
    let fx = extensions(&["logs", "old-schema", "ok"]);
    let mut emu = fx
        .builder()
        .with(|f| f.managed_instances = true)
        .env("TINY_EVENTS", "SHUTDOWN")
        .env("TINY_API@logs", "logs")
        .env("TINY_SCHEMA", "2025-01-29")
        .env("TINY_SCHEMA@old-schema", "2022-12-13")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let logs = &of_kind(&fx.journal("logs"), "subscribe")[0];
    assert_eq!(
        logs["status"], 404,
        "the Logs API is not mounted on Managed Instances"
    );
    let old = &of_kind(&fx.journal("old-schema"), "subscribe")[0];
    assert_eq!(
        (old["status"].as_u64(), old["body"]["errorType"].as_str()),
        (Some(400), Some("ValidationError"))
    );
    assert_eq!(of_kind(&fx.journal("ok"), "subscribe")[0]["status"], 200);
    emu.shutdown(0).await;
}

#[tokio::test]
async fn concurrent_invocations_without_runtime_done_or_freeze() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .with(|f| f.managed_instances = true)
        .env("TINY_EVENTS", "SHUTDOWN")
        .env("TINY_SCHEMA", "2025-01-29")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let (_, pid) = emu.extension_pids()[0].clone();
    assert_ne!(
        process_state(pid),
        Some('T'),
        "no freeze on Managed Instances"
    );
    let invokes = emu
        .invoke_concurrently(
            6,
            3,
            InvokeScript {
                lines: 4,
                line_bytes: 60,
                duration: Duration::from_millis(150),
            },
        )
        .await;
    assert_ne!(process_state(pid), Some('T'));
    emu.shutdown(0).await;
    assert_eq!(invokes.len(), 6);
    let records = fx.records("ext");
    assert!(of_type(&records, "platform.runtimeDone").is_empty());
    let reports = of_type(&records, "platform.report");
    assert_eq!(reports.len(), 6);
    assert_eq!(
        reports[0]["record"]["metrics"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["durationMs"]
    );
    // Invocations overlapped: a second start came before the first report.
    let types: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    let first_report = types.iter().position(|t| *t == "platform.report").unwrap();
    assert!(
        types[..first_report]
            .iter()
            .filter(|t| **t == "platform.start")
            .count()
            >= 2,
        "{types:?}"
    );
    // JSON lines carry their requestId, so interleaved records stay attributable.
    for f in of_type(&records, "function") {
        let id = f["record"]["requestId"].as_str().unwrap();
        assert!(invokes.iter().any(|i| i.request_id == id));
    }
    let mut got = function_messages(&records);
    let mut want = emu.function_lines().to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // No INVOKE event ever reached the extension.
    assert!(
        of_kind(&fx.journal("ext"), "event")
            .iter()
            .all(|e| e["body"]["eventType"] == "SHUTDOWN")
    );
}
