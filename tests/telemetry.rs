//! Issue 5 under the emulator: the same records land through either API, JSON log format, records
//! arriving after the next INVOKE and after SHUTDOWN, Managed Instances with concurrent invocations,
//! a SnapStart restore, and Lambda's own drops.

use crate::support::*;
use bytes::Bytes;
use lambda_emulator::{InvokeStatus, Script};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

fn subscribed_path(emu: &lambda_emulator::Emulator) -> String {
    emu.api_calls()
        .into_iter()
        .find(|c| c.method == "PUT")
        .map(|c| c.path)
        .expect("a subscription")
}

fn whole_run(invocations: u64, late_lines: usize) -> Script {
    Script {
        invocations,
        invoke: script(4, 150, 10),
        gap: Duration::from_millis(2),
        late_lines,
        stragglers: 0,
        concurrency: 1,
    }
}

#[tokio::test]
async fn the_same_records_land_through_either_api() {
    for (api, path) in [
        (None, "/2022-07-01/telemetry"),
        (Some("logs"), "/2020-08-15/logs"),
        (Some("telemetry"), "/2022-07-01/telemetry"),
    ] {
        let l = layer();
        let mut b = l.function().with(|f| f.seed = 9);
        if let Some(api) = api {
            b = b.env("ADAPTIVE_BATCHING_EXTENSION_API", api);
        }
        let mut emu = b.start().await.unwrap();
        let report = emu.run(&whole_run(30, 3)).await;
        assert_eq!(report.invocations.success, 30, "{api:?}");
        assert_eq!(subscribed_path(&emu), path);
        assert_shipped_exactly_once(&emu);
        assert_no_key_rewritten_differently(&emu);
        // Records of invoke N arrived both before and after INVOKE N+1 was released (seeded).
        let order: BTreeSet<Option<bool>> = emu
            .invokes()
            .iter()
            .skip(1)
            .map(|i| i.held_records_first)
            .collect();
        assert!(
            order.contains(&Some(true)) && order.contains(&Some(false)),
            "{order:?}"
        );
        assert_eq!(summary(&emu)["accounted"], true);
    }
}

#[tokio::test]
async fn json_log_format_records_are_shipped_as_the_objects_lambda_sent() {
    let l = layer();
    let mut emu = l
        .function()
        .with(|f| f.json_logs = Some(true))
        .start()
        .await
        .unwrap();
    emu.run(&whole_run(10, 2)).await;
    assert_shipped_exactly_once(&emu);
    let functions: Vec<Value> = shipped_lines(&emu)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "function")
        .collect();
    assert_eq!(functions.len(), 42);
    assert!(
        functions
            .iter()
            .all(|f| f["record"].is_object() && f["record"]["message"].is_string())
    );
}

#[tokio::test]
async fn managed_instances_with_concurrent_invocations_ship_everything() {
    let l = layer();
    let mut emu = ship_rates(
        l.function().with(|f| f.managed_instances = true),
        100_000_000,
        5,
        3_600_000,
    )
    .start()
    .await
    .unwrap();
    let report = emu
        .run(&Script {
            invocations: 20,
            invoke: script(3, 120, 200),
            gap: Duration::from_millis(5),
            late_lines: 0,
            stragglers: 0,
            concurrency: 2,
        })
        .await;
    assert!(
        report.init_failures.is_empty(),
        "registered for SHUTDOWN only: {:?}",
        emu.extension_output(NAME)
    );
    assert_eq!(report.invocations.success, 20);
    assert_eq!(subscribed_path(&emu), "/2022-07-01/telemetry");
    assert_shipped_exactly_once(&emu);
    // The invocations threshold, counted from platform.start and checked on the timer, shipped
    // during the run (there is no INVOKE event on Managed Instances).
    let shutdown_at = report.shutdowns[0].released_ms;
    let during = emu
        .s3()
        .writes()
        .iter()
        .filter(|w| w.at_ms < shutdown_at)
        .count();
    assert!(during >= 2, "{during} objects before SHUTDOWN");
    // Concurrent invocations' JSON lines keep their requestId in S3.
    let ids: BTreeSet<String> = emu.invokes().iter().map(|i| i.request_id.clone()).collect();
    for line in shipped_lines(&emu) {
        let r: Value = serde_json::from_str(&line).unwrap();
        if r["type"] == "function" {
            assert!(ids.contains(r["record"]["requestId"].as_str().unwrap()));
        }
    }
    assert_eq!(summary(&emu)["accounted"], true);
}

#[tokio::test]
async fn a_snapstart_restore_takes_a_new_environment_id_and_ships_nothing_twice() {
    let l = layer();
    let mut emu = l
        .function()
        .with(|f| f.snap_start = true)
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    emu.restore().await;
    for _ in 0..5 {
        assert_eq!(
            emu.invoke(script(3, 100, 10)).await.status,
            InvokeStatus::Success
        );
    }
    emu.shutdown(0).await;
    assert_shipped_exactly_once(&emu);
    assert_no_key_rewritten_differently(&emu);
    let objects = objects(&emu);
    let envs: BTreeSet<&str> = objects
        .keys()
        .map(|k| k.split('/').next().unwrap())
        .collect();
    assert_eq!(
        envs.len(),
        2,
        "one environment id before the snapshot, a new one after: {envs:?}"
    );
    // The object holding what the snapshot buffered has a key every restored copy derives alike
    // (a version-8 batch id) and holds exactly the records from before platform.restoreStart.
    let (key, lines) = objects
        .iter()
        .find(|(k, _)| {
            let uuid = k
                .rsplit('-')
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("-");
            uuid::Uuid::parse_str(uuid.trim_end_matches(".log")).map(|u| u.get_version_num())
                == Ok(8)
        })
        .expect("a pre-snapshot object");
    let types: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        types.contains(&"platform.initStart".to_string()),
        "{key}: {types:?}"
    );
    assert!(
        !types
            .iter()
            .any(|t| t.starts_with("platform.restore") || t == "platform.start"),
        "{key}: {types:?}"
    );
    assert_eq!(summary(&emu)["restores"], 1);
    assert!(
        log_lines(&emu)
            .iter()
            .any(|l| l["msg"] == "restored from a snapshot"
                && l["detected_by"] == "platform.restoreStart")
    );
}

#[tokio::test]
async fn lambdas_own_drops_are_shipped_counted_and_logged() {
    let l = layer();
    let mut emu = l.function().start().await.unwrap();
    emu.init().await.unwrap();
    emu.invoke(script(2, 100, 10)).await;
    let dropped = Bytes::from_static(
        br#"[{"time":"2026-11-27T00:00:00.000Z","type":"platform.logsDropped","record":{"reason":"Consumer seems to have fallen behind as it has not acknowledged receipt of logs.","droppedRecords":7,"droppedBytes":700}}]"#,
    );
    let (_, statuses) = emu
        .invoke_with_raw_deliveries(script(2, 100, 200), NAME, vec![dropped])
        .await;
    assert_eq!(statuses, vec![Some(200)]);
    emu.shutdown(0).await;
    assert!(
        shipped_lines(&emu)
            .iter()
            .any(|l| l.contains("platform.logsDropped") && l.contains("\"droppedRecords\":7"))
    );
    assert_eq!(summary(&emu)["lambda_dropped"], 7);
    let warning = log_lines(&emu)
        .into_iter()
        .find(|l| {
            l["msg"]
                .as_str()
                .unwrap_or("")
                .starts_with("Lambda dropped records")
        })
        .unwrap();
    assert_eq!(warning["total"], 7);
}

#[tokio::test]
async fn on_managed_instances_the_extensions_own_lines_never_make_a_ship_by_themselves() {
    let l = layer();
    let mut emu = l
        .function()
        .with(|f| f.managed_instances = true)
        .env(
            "ADAPTIVE_BATCHING_EXTENSION_LOG_TYPES",
            r#"["platform","function","extension"]"#,
        )
        .env("ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_MILLISECONDS", "100")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    emu.invoke_concurrently(4, 2, script(3, 100, 20)).await;
    // Everything the invokes made, and the "shipped" lines that came back, settle...
    emu.idle(Duration::from_millis(600)).await;
    let settled = emu.s3().writes().len();
    // ...then an idle environment ships nothing more: its own log lines wait for real records.
    emu.idle(Duration::from_millis(1000)).await;
    assert_eq!(
        emu.s3().writes().len(),
        settled,
        "no object of our own lines alone"
    );
    emu.shutdown(0).await;
    assert_shipped_exactly_once(&emu);
}
