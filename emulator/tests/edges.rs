//! Lambda's edges an extension must survive (spec §1.3, §2.3, §3.5, §1.5): INVOKE without
//! `tracing`, the runtimes' text format, JSON-format extension lines, delivery bodies past
//! `maxBytes`, a straggler wave after SHUTDOWN; and the verdict and scenario files on top.

use crate::support::{extensions, function_messages, of_kind, of_type};
use lambda_emulator::{InvokeScript, Scenario, ShutdownScript};
use serde_json::Value;
use std::time::Duration;

fn script(lines: usize, line_bytes: usize) -> InvokeScript {
    InvokeScript {
        lines,
        line_bytes,
        duration: Duration::from_millis(10),
    }
}

#[tokio::test]
async fn invoke_events_carry_tracing_only_when_the_function_is_traced() {
    let fx = extensions(&["traced"]);
    let mut traced = fx.builder().start().await.unwrap();
    traced.invoke(script(1, 50)).await;
    traced.shutdown(0).await;
    let fx2 = extensions(&["plain"]);
    let mut plain = fx2
        .builder()
        .with(|f| f.tracing = false)
        .start()
        .await
        .unwrap();
    plain.invoke(script(1, 50)).await;
    plain.shutdown(0).await;
    let invoke = |fx: &crate::support::Fixture, name: &str| -> Value {
        of_kind(&fx.journal(name), "event")
            .into_iter()
            .find(|e| e["body"]["eventType"] == "INVOKE")
            .unwrap()["body"]
            .clone()
    };
    let t = invoke(&fx, "traced");
    assert_eq!(t["tracing"]["type"], "X-Amzn-Trace-Id");
    let p = invoke(&fx2, "plain");
    assert!(p.get("tracing").is_none(), "{p}");
    assert!(p["deadlineMs"].is_i64() && p["requestId"].is_string());
}

#[tokio::test]
async fn text_function_lines_are_in_the_runtimes_format_with_their_request_id() {
    let fx = extensions(&["ext"]);
    let mut emu = fx.builder().start().await.unwrap();
    let inv = emu.invoke(script(3, 60)).await;
    emu.shutdown(0).await;
    let records = fx.records("ext");
    let lines: Vec<&str> = of_type(&records, "function")
        .iter()
        .map(|r| r["record"].as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (line, message) in lines.iter().zip(emu.function_lines()) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "{line}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(fields[0]).is_ok(),
            "{line}"
        );
        assert_eq!(
            (fields[1], fields[2], fields[3]),
            (inv.request_id.as_str(), "INFO", message.as_str())
        );
    }
}

#[tokio::test]
async fn under_the_json_log_format_extension_lines_come_back_as_objects() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .with(|f| f.json_logs = Some(true))
        .env("TINY_SAY", r#"{"level":"info","msg":"hello"}|plain words"#)
        .start()
        .await
        .unwrap();
    emu.invoke(script(1, 50)).await;
    emu.shutdown(0).await;
    let records = fx.records("ext");
    let ext: Vec<&Value> = of_type(&records, "extension");
    assert_eq!(ext.len(), 2, "{records:?}");
    assert_eq!(
        ext[0]["record"],
        serde_json::json!({"level": "info", "msg": "hello"})
    );
    assert_eq!(ext[1]["record"]["message"], "plain words");
    assert_eq!(ext[1]["record"]["level"], "INFO");
}

#[tokio::test]
async fn a_delivery_may_carry_more_than_max_bytes_by_up_to_one_record() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        // 25 ms batches of at most 262144 bytes, and 100 KB lines written at once.
        .env("TINY_BUFFERING", "1000,262144,25")
        .start()
        .await
        .unwrap();
    emu.invoke(InvokeScript {
        lines: 12,
        line_bytes: 100_000,
        duration: Duration::from_millis(2),
    })
    .await;
    emu.shutdown(0).await;
    let sizes: Vec<usize> = of_kind(&fx.journal("ext"), "delivery")
        .iter()
        .map(|d| d["body"].to_string().len())
        .collect();
    let biggest = *sizes.iter().max().unwrap();
    assert!(biggest > 262_144, "{sizes:?}");
    assert!(biggest < 2 * 262_144 + 4096, "{sizes:?}");
    assert_eq!(
        function_messages(&fx.records("ext")),
        emu.function_lines(),
        "every line, in order"
    );
}

#[tokio::test]
async fn stragglers_arrive_after_shutdown_and_after_the_last_report() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        // Time after SHUTDOWN for the wave (200 ms) to arrive.
        .env("TINY_SHUTDOWN_WAIT_MS", "700")
        .start()
        .await
        .unwrap();
    let last = emu.invoke(script(2, 60)).await;
    emu.shutdown_with(&ShutdownScript {
        stragglers: 5,
        ..ShutdownScript::default()
    })
    .await;
    let journal = fx.journal("ext");
    let shutdown_at = of_kind(&journal, "event")
        .iter()
        .find(|e| e["body"]["eventType"] == "SHUTDOWN")
        .unwrap()["t_ms"]
        .as_u64()
        .unwrap();
    let records = fx.records("ext");
    let report_pos = records
        .iter()
        .position(|r| r["type"] == "platform.report" && r["record"]["requestId"] == last.request_id)
        .expect("the last report");
    let stragglers: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r["record"]
                .as_str()
                .is_some_and(|s| s.contains("straggler "))
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(stragglers.len(), 5);
    assert!(stragglers.iter().all(|i| *i > report_pos));
    for r in stragglers.iter().map(|i| &records[*i]) {
        let line = r["record"].as_str().unwrap();
        assert!(
            line.contains(&last.request_id),
            "the last request's: {line}"
        );
    }
    let deliveries: Vec<Value> = of_kind(&journal, "delivery")
        .into_iter()
        .filter(|d| d["body"].to_string().contains("straggler "))
        .collect();
    assert!(
        deliveries
            .iter()
            .all(|d| d["t_ms"].as_u64().unwrap() >= shutdown_at)
    );
}

#[tokio::test]
async fn a_scenario_file_drives_the_run_and_its_verdict_counts_every_line() {
    let fx = extensions(&["ext"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.toml");
    std::fs::write(
        &path,
        r#"
        description = "the tiny extension acknowledges every line and ships none"
        buckets = ["logs"]
        [workload]
        invocations = 4
        lines = 3
        late_lines = 2
        [[faults]]
        at_invoke = 2
        latency_ms = 1
        [expect]
        tolerate = ["lost-after-ack"]
        max_objects = 0
        "#,
    )
    .unwrap();
    let scenario = Scenario::load(&path).unwrap();
    assert_eq!(scenario.name, "tiny");
    let mut emu = scenario
        .builder(&fx.extensions)
        .env("TINY_JOURNAL_DIR", fx.journals.to_string_lossy())
        .start()
        .await
        .unwrap();
    let report = scenario.run(&mut emu).await;
    let v = &report.verdict;
    assert_eq!(report.invocations.success, 4);
    assert_eq!((v.lines_emitted, v.lines_found), (14, 0));
    assert_eq!(v.lost.after_ack, 14, "{v:?}");
    assert!(v.passed, "{:?}", v.failures);
    assert_eq!(emu.s3().faults_now().latency, Duration::from_millis(1));
}

#[test]
fn the_shipped_scenarios_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if let Err(e) = Scenario::load(&path) {
            panic!("{e}");
        }
        n += 1;
    }
    assert!(n >= 5, "{n} scenarios in {}", dir.display());
}
