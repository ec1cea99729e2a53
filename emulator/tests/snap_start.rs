//! SnapStart: restore events after init (spec §5.2).

use crate::support::{extensions, of_type};
use lambda_emulator::InvokeScript;
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn a_restore_emits_restore_events_to_telemetry_only_and_marks_the_next_report() {
    let fx = extensions(&["tele", "logs"]);
    let mut emu = fx
        .builder()
        .with(|f| f.snap_start = true)
        .env("TINY_API@logs", "logs")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    emu.restore().await;
    let first = emu
        .invoke(InvokeScript {
            lines: 1,
            line_bytes: 20,
            duration: Duration::from_millis(5),
        })
        .await;
    emu.shutdown(0).await;
    let tele = fx.records("tele");
    let types: Vec<&str> = tele.iter().map(|r| r["type"].as_str().unwrap()).collect();
    let at = |t: &str| {
        types
            .iter()
            .position(|x| *x == t)
            .unwrap_or_else(|| panic!("{t} missing: {types:?}"))
    };
    assert!(at("platform.initReport") < at("platform.restoreStart"));
    assert!(at("platform.restoreStart") < at("platform.restoreRuntimeDone"));
    assert!(at("platform.restoreRuntimeDone") < at("platform.restoreReport"));
    assert!(at("platform.restoreReport") < at("platform.start"));
    assert_eq!(
        of_type(&tele, "platform.initStart")[0]["record"]["initializationType"],
        "snap-start"
    );
    let report: &Value = of_type(&tele, "platform.report")
        .into_iter()
        .find(|r| r["record"]["requestId"] == first.request_id)
        .unwrap();
    assert!(report["record"]["metrics"]["restoreDurationMs"].is_number());
    assert!(
        report["record"]["metrics"].get("initDurationMs").is_none(),
        "a restored environment ran no init"
    );
    let logs = fx.records("logs");
    assert!(
        logs.iter()
            .all(|r| !r["type"].as_str().unwrap().starts_with("platform.restore")),
        "Telemetry only"
    );
    assert!(!of_type(&logs, "platform.report").is_empty());
}
