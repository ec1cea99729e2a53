//! Logs API and Telemetry API: subscription rules, record shapes, batching, one request in flight,
//! retries, drops (spec §2, §3).

use crate::support::{extensions, function_messages, of_kind, of_type};
use lambda_emulator::{DeliveryFailure, InvokeScript};
use serde_json::Value;
use std::time::Duration;

fn script(lines: usize, line_bytes: usize) -> InvokeScript {
    InvokeScript {
        lines,
        line_bytes,
        duration: Duration::from_millis(10),
    }
}

fn subscribe_answers(fx: &crate::support::Fixture, name: &str) -> Vec<(u64, String)> {
    of_kind(&fx.journal(name), "subscribe")
        .into_iter()
        .map(|s| {
            (
                s["status"].as_u64().unwrap(),
                s["body"]["errorType"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn subscriptions_are_validated() {
    let fx = extensions(&["items", "types", "schema", "both", "twice"]);
    let mut emu = fx
        .builder()
        .env("TINY_BUFFERING@items", "999,262144,25")
        .env("TINY_TYPES@types", "[]")
        .env("TINY_SCHEMA@schema", "omit")
        .env("TINY_SUBSCRIBE_BOTH@both", "1")
        .env("TINY_SUBSCRIBE_TWICE@twice", "1")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    assert_eq!(
        subscribe_answers(&fx, "items"),
        vec![(400, "ValidationError".into())]
    );
    assert_eq!(
        subscribe_answers(&fx, "types"),
        vec![(400, "ValidationError".into())]
    );
    assert_eq!(
        subscribe_answers(&fx, "schema"),
        vec![(400, "ValidationError".into())]
    );
    // One API per extension: the Logs API after the Telemetry API is refused.
    assert_eq!(
        subscribe_answers(&fx, "both"),
        vec![(200, String::new()), (400, "Logs.ValidationError".into())]
    );
    // Subscribing twice is idempotent, and Lambda says so.
    assert_eq!(
        subscribe_answers(&fx, "twice"),
        vec![(200, String::new()), (200, String::new())]
    );
    emu.invoke(script(1, 20)).await;
    emu.shutdown(0).await;
    let states: Vec<String> = of_type(&fx.records("twice"), "platform.telemetrySubscription")
        .iter()
        .filter(|r| r["record"]["name"] == "twice")
        .map(|r| r["record"]["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, vec!["Subscribed", "Already subscribed"]);
    let subs = emu.subscribers();
    assert_eq!(
        subs.iter().filter(|s| s.extension == "twice").count(),
        1,
        "one subscription, not two"
    );
}

#[tokio::test]
async fn telemetry_records_of_an_invoke_arrive_as_json_arrays_in_order() {
    let fx = extensions(&["ext"]);
    let mut emu = fx.builder().start().await.unwrap();
    emu.init().await.unwrap();
    let a = emu.invoke(script(3, 40)).await;
    emu.shutdown(0).await;
    let records = fx.records("ext");
    for r in &records {
        assert!(
            r["time"].as_str().unwrap().ends_with('Z') && r["time"].as_str().unwrap().len() == 24,
            "{r}"
        );
    }
    let types: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    // Init events were replayed to the subscriber, then the invoke's events in order.
    assert_eq!(types[0], "platform.initStart");
    let of_invoke: Vec<&str> = records
        .iter()
        .filter(|r| r["record"]["requestId"] == a.request_id || r["type"] == "function")
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        of_invoke,
        vec![
            "platform.start",
            "function",
            "function",
            "function",
            "platform.runtimeDone",
            "platform.report"
        ]
    );
    assert!(
        !types.contains(&"platform.end"),
        "platform.end is Logs API only"
    );
    assert_eq!(function_messages(&records), emu.function_lines());
    let report = of_type(&records, "platform.report")[0];
    assert_eq!(report["record"]["status"], "success");
    assert!(
        report["record"]["metrics"]["initDurationMs"].is_number(),
        "the first report after init carries initDurationMs"
    );
}

#[tokio::test]
async fn logs_api_gets_runtime_done_only_with_schema_2021_03_18_and_text_lines() {
    let fx = extensions(&["new", "old"]);
    let mut emu = fx
        .builder()
        .env("TINY_API", "logs")
        .env("TINY_SCHEMA@old", "2020-08-15")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    emu.invoke(script(2, 30)).await;
    emu.shutdown(0).await;
    let new = fx.records("new");
    let old = fx.records("old");
    assert_eq!(of_type(&new, "platform.runtimeDone").len(), 1);
    assert!(of_type(&old, "platform.runtimeDone").is_empty());
    assert_eq!(of_type(&new, "platform.end").len(), 1);
    assert!(
        of_type(&new, "platform.initStart").is_empty(),
        "init events are Telemetry only"
    );
    let line = of_type(&new, "function")[0]["record"].as_str().unwrap();
    assert!(line.ends_with('\n'));
    assert_eq!(of_type(&new, "platform.logsSubscription").len(), 2);
}

#[tokio::test]
async fn json_log_format_makes_telemetry_function_records_objects() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .with(|f| f.json_logs = Some(true))
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let a = emu.invoke(script(2, 30)).await;
    emu.shutdown(0).await;
    let records = fx.records("ext");
    for f in of_type(&records, "function") {
        assert!(f["record"].is_object(), "{f}");
        assert_eq!(f["record"]["requestId"], a.request_id);
        assert_eq!(f["record"]["level"], "INFO");
    }
    assert_eq!(function_messages(&records), emu.function_lines());
}

#[tokio::test]
async fn max_items_and_max_bytes_bound_every_batch_and_one_request_is_in_flight() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .env("TINY_LISTENER_DELAY_MS", "5")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    // 2500 short lines: maxItems (1000) closes batches; then 400 lines of 2 KB: maxBytes (256 KiB) does.
    emu.invoke(InvokeScript {
        lines: 2500,
        line_bytes: 20,
        duration: Duration::from_millis(50),
    })
    .await;
    emu.invoke(InvokeScript {
        lines: 400,
        line_bytes: 2000,
        duration: Duration::from_millis(50),
    })
    .await;
    emu.shutdown(0).await;
    let deliveries = of_kind(&fx.journal("ext"), "delivery");
    let sizes: Vec<(usize, usize)> = deliveries
        .iter()
        .map(|d| {
            (
                d["body"].as_array().unwrap().len(),
                d["body"].to_string().len(),
            )
        })
        .collect();
    assert!(sizes.iter().all(|(n, _)| *n <= 1000), "{sizes:?}");
    assert!(
        sizes.iter().any(|(n, _)| *n == 1000),
        "some batch was closed by maxItems: {sizes:?}"
    );
    // A batch stays under maxBytes plus the one record that crossed it.
    assert!(sizes.iter().all(|(_, b)| *b <= 262_144 + 4096), "{sizes:?}");
    assert!(
        deliveries.iter().all(|d| d["concurrent"] == 1),
        "one request in flight per subscriber"
    );
    assert_eq!(function_messages(&fx.records("ext")), emu.function_lines());
}

#[tokio::test]
async fn timeout_ms_sends_a_partial_batch_while_the_function_runs() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .env("TINY_BUFFERING", "1000,262144,100")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    // Lines at ~333 ms and ~666 ms of a 1 s function: the first 100 ms window closes long before the end.
    emu.invoke(InvokeScript {
        lines: 2,
        line_bytes: 20,
        duration: Duration::from_millis(1000),
    })
    .await;
    emu.shutdown(0).await;
    let journal = fx.journal("ext");
    let first = of_kind(&journal, "delivery")
        .into_iter()
        .find(|d| d["body"].to_string().contains("line 0001"))
        .unwrap();
    assert!(
        !first["body"].to_string().contains("line 0002"),
        "a partial batch, not the whole invoke"
    );
    let records = fx.records("ext");
    let done = of_type(&records, "platform.runtimeDone")[0]["time"]
        .as_str()
        .unwrap()
        .to_string();
    let done_ms = chrono::DateTime::parse_from_rfc3339(&done)
        .unwrap()
        .timestamp_millis();
    assert!(
        first["t_ms"].as_i64().unwrap() < done_ms,
        "delivered before the runtime finished"
    );
}

#[tokio::test]
async fn a_failing_listener_gets_the_same_batch_again_until_it_accepts() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .env("TINY_LISTENER_FAIL", "4")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    for _ in 0..3 {
        emu.invoke(script(3, 30)).await;
    }
    emu.shutdown(0).await;
    let journal = fx.journal("ext");
    let deliveries = of_kind(&journal, "delivery");
    let failed: Vec<&Value> = deliveries.iter().filter(|d| d["answered"] == 500).collect();
    assert_eq!(failed.len(), 4);
    // Each retry resends the batch that failed.
    assert_eq!(failed[0]["body"], failed[1]["body"]);
    assert_eq!(deliveries[4]["body"], failed[0]["body"]);
    assert_eq!(
        function_messages(&fx.records("ext")),
        emu.function_lines(),
        "every line delivered exactly once"
    );
    let stats = &emu.subscribers()[0];
    assert_eq!(stats.failed_posts, 4);
    assert_eq!(stats.dropped, 0);
}

#[tokio::test]
async fn past_the_memory_cap_records_are_dropped_and_reported() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        // A slow consumer: 200 ms per delivery while the function writes 60 KB in 100 ms.
        .env("TINY_LISTENER_DELAY_MS", "200")
        // Time after SHUTDOWN for the slow listener to receive the rest, the drop notice included.
        .env("TINY_SHUTDOWN_WAIT_MS", "1300")
        .with(|f| f.subscriber_buffer_cap = 16 * 1024)
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    emu.invoke(InvokeScript {
        lines: 300,
        line_bytes: 200,
        duration: Duration::from_millis(100),
    })
    .await;
    emu.shutdown(0).await;
    let records = fx.records("ext");
    let stats = &emu.subscribers()[0];
    assert!(stats.dropped > 0);
    let notices = of_type(&records, "platform.logsDropped");
    let reported: u64 = notices
        .iter()
        .map(|n| n["record"]["droppedRecords"].as_u64().unwrap())
        .sum();
    assert_eq!(reported, stats.dropped, "every dropped record is reported");
    assert_eq!(
        notices[0]["record"]["reason"],
        lambda_emulator::delivery::SLOW_CONSUMER_REASON
    );
    let delivered = function_messages(&records);
    assert!(delivered.len() < emu.function_lines().len());
    assert!(delivered.iter().all(|l| emu.function_lines().contains(l)));
}

#[tokio::test]
async fn drop_mode_drops_a_failed_batch_with_a_reason() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .env("TINY_LISTENER_FAIL", "1")
        .with(|f| f.delivery_failure = Some(DeliveryFailure::Drop))
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    emu.invoke(script(2, 30)).await;
    emu.invoke(script(2, 30)).await;
    emu.shutdown(0).await;
    let records = fx.records("ext");
    let notice = of_type(&records, "platform.logsDropped")[0];
    assert!(
        notice["record"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("could not send events: listener answered 500")
    );
    assert_eq!(
        notice["record"]["droppedRecords"].as_u64(),
        Some(emu.subscribers()[0].dropped)
    );
}
