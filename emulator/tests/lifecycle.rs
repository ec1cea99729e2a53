//! The simulated function, freeze, held records, shutdown, crashes and resets (spec §1.5, §1.6, §4).

use crate::support::{extensions, function_messages, of_kind, of_type};
use lambda_emulator::process::process_state;
use lambda_emulator::{InvokeScript, InvokeStatus, Script};
use serde_json::Value;
use std::time::Duration;

fn small() -> InvokeScript {
    InvokeScript {
        lines: 2,
        line_bytes: 40,
        duration: Duration::from_millis(5),
    }
}

/// Index in the journal of the first delivery that contains `platform.report` of `request_id`.
fn report_delivery(journal: &[Value], request_id: &str) -> Option<usize> {
    journal.iter().position(|e| {
        e["kind"] == "delivery"
            && e["answered"] == 200
            && e["body"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["type"] == "platform.report" && r["record"]["requestId"] == request_id)
    })
}

#[tokio::test]
async fn the_report_is_never_delivered_before_the_extensions_next() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .env("TINY_SLOW_NEXT_MS", "100")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(emu.invoke(small()).await.request_id);
        }
        v
    };
    emu.shutdown(0).await;
    let journal = fx.journal("ext");
    for id in &ids {
        let invoke_at = journal
            .iter()
            .position(|e| e["kind"] == "event" && e["body"]["requestId"] == *id)
            .unwrap();
        // The next-call that ends invoke `id` is the first one journaled after its event.
        let next_at = invoke_at
            + journal[invoke_at..]
                .iter()
                .position(|e| e["kind"] == "next-call")
                .unwrap();
        let report_at = report_delivery(&journal, id)
            .expect("every report is delivered, at the latest after SHUTDOWN");
        assert!(
            report_at > next_at,
            "report of {id} at {report_at}, next at {next_at}"
        );
    }
    let post = emu.report().invocations.post_runtime_ms;
    assert_eq!(post.count, 5);
    // 100 ms from INVOKE less the function's 5 ms (and any lag of a loaded machine).
    assert!(post.p50 >= 50.0, "{post:?}");
}

#[tokio::test]
async fn frozen_extensions_are_really_stopped_and_thawed_for_the_next_event() {
    let fx = extensions(&["ext"]);
    let mut emu = fx.builder().start().await.unwrap();
    emu.init().await.unwrap();
    let (_, pid) = emu.extension_pids()[0].clone();
    assert_eq!(process_state(pid), Some('T'), "frozen after init");
    emu.invoke(small()).await;
    assert_eq!(process_state(pid), Some('T'), "frozen after the invoke");
    let delivered_while_frozen = of_kind(&fx.journal("ext"), "delivery").len();
    emu.idle(Duration::from_millis(200)).await;
    assert_eq!(
        of_kind(&fx.journal("ext"), "delivery").len(),
        delivered_while_frozen,
        "nothing is delivered while frozen"
    );
    let second = emu.invoke(small()).await;
    assert_eq!(second.status, InvokeStatus::Success);
    emu.shutdown(0).await;
    let report = emu.report();
    assert_eq!(report.extensions[0].exit_code, Some(0));
}

#[tokio::test]
async fn held_records_go_before_or_after_the_next_invoke_as_the_seed_says() {
    let run = |seed| async move {
        let fx = extensions(&["ext"]);
        let mut emu = fx.builder().with(|f| f.seed = seed).start().await.unwrap();
        emu.init().await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..12 {
            ids.push(emu.invoke(small()).await);
        }
        emu.shutdown(0).await;
        (fx, ids)
    };
    let (fx, invokes) = run(42).await;
    let order: Vec<Option<bool>> = invokes.iter().map(|i| i.held_records_first).collect();
    assert!(
        order.contains(&Some(true)) && order.contains(&Some(false)),
        "both orders occur: {order:?}"
    );
    let (_, again) = run(42).await;
    assert_eq!(
        order,
        again
            .iter()
            .map(|i| i.held_records_first)
            .collect::<Vec<_>>(),
        "reproducible from the seed"
    );
    // Where the records went first, the extension saw report(N-1) before INVOKE(N).
    let journal = fx.journal("ext");
    for w in invokes.windows(2) {
        if w[1].held_records_first == Some(true) {
            let report_at = report_delivery(&journal, &w[0].request_id).unwrap();
            let invoke_at = journal
                .iter()
                .position(|e| e["kind"] == "event" && e["body"]["requestId"] == w[1].request_id)
                .unwrap();
            assert!(report_at < invoke_at);
        }
    }
}

#[tokio::test]
async fn records_lambda_still_holds_are_delivered_after_shutdown() {
    let fx = extensions(&["ext"]);
    let mut emu = fx.builder().start().await.unwrap();
    emu.init().await.unwrap();
    let last = emu.invoke(small()).await;
    emu.shutdown(3).await;
    let journal = fx.journal("ext");
    let records = fx.records("ext");
    let late = function_messages(&records)
        .into_iter()
        .filter(|m| m.starts_with("late line"))
        .count();
    assert_eq!(late, 3);
    assert!(
        report_delivery(&journal, &last.request_id).is_some(),
        "the last report arrives after SHUTDOWN"
    );
    let shutdown_at = emu.report().shutdowns[0].released_ms;
    let stats = &emu.subscribers()[0];
    // The batch holding the last report was acknowledged after SHUTDOWN was released.
    let last_batch_at = *stats.delivered_at_ms.last().unwrap();
    assert!(last_batch_at >= shutdown_at);
    assert_eq!(function_messages(&records), emu.function_lines());
}

#[tokio::test]
async fn an_extension_that_ignores_shutdown_is_killed_at_the_deadline() {
    let fx = extensions(&["stubborn"]);
    let mut emu = fx
        .builder()
        .env("TINY_HANG_ON_SHUTDOWN", "1")
        .with(|f| f.shutdown_budget_ms = 300)
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    emu.invoke(small()).await;
    emu.shutdown(0).await;
    let ext = &emu.report().extensions[0];
    assert_eq!(ext.exit_signal, Some(libc::SIGKILL));
    assert!(ext.killed_at_deadline);
    let took = ext.shutdown_to_exit_ms.unwrap();
    assert!(took >= 300.0, "killed at, not before, the deadline: {took}");
    assert!(ext.peak_rss_kb.unwrap() > 0 && ext.cpu_ms.is_some());
}

#[tokio::test]
async fn sigterm_option_signals_the_extensions_at_shutdown() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .with(|f| f.sigterm = true)
        .env("TINY_SHUTDOWN_WAIT_MS", "1000")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    emu.shutdown(0).await;
    // The tiny extension keeps the default SIGTERM action, so it dies of it.
    assert_eq!(emu.report().extensions[0].exit_signal, Some(libc::SIGTERM));
}

#[tokio::test]
async fn exiting_before_shutdown_is_a_crash_that_resets_and_reinitialises() {
    let fx = extensions(&["crasher", "steady"]);
    let mut emu = fx
        .builder()
        .env("TINY_CRASH_AFTER_INVOKES@crasher", "2")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let first = emu.invoke(small()).await;
    let second = emu.invoke(small()).await;
    let third = emu.invoke(small()).await;
    emu.shutdown(0).await;
    assert_eq!(first.status, InvokeStatus::Success);
    assert_eq!(second.status, InvokeStatus::Error);
    assert_eq!(second.error_type.as_deref(), Some("Extension.Crash"));
    assert_eq!(
        third.status,
        InvokeStatus::Success,
        "re-initialised on the next invoke"
    );
    let report = emu.report();
    assert_eq!(report.fatal_errors[0].error_type, "Extension.Crash");
    assert_eq!(report.fatal_errors[0].extension, "crasher");
    let crasher: Vec<_> = report
        .extensions
        .iter()
        .filter(|e| e.name == "crasher")
        .collect();
    assert_eq!(crasher.len(), 2, "a new process after the reset");
    assert!(crasher[0].crashed && crasher[0].exit_code == Some(0));
    assert_eq!(crasher[1].generation, 2);
    // The other extension got SHUTDOWN with reason failure, then was started again.
    let reasons: Vec<String> = of_kind(&fx.journal("steady"), "event")
        .iter()
        .filter(|e| e["body"]["eventType"] == "SHUTDOWN")
        .map(|e| e["body"]["shutdownReason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, vec!["failure", "spindown"]);
    // The failed invoke's report says so.
    let failed: Vec<Value> = fx.records("steady");
    let report_of_second = of_type(&failed, "platform.report")
        .into_iter()
        .find(|r| r["record"]["requestId"] == second.request_id);
    if let Some(r) = report_of_second {
        assert_eq!(r["record"]["status"], "error");
    }
}

#[tokio::test]
async fn a_late_extension_times_the_invoke_out_and_gets_shutdown_timeout() {
    let fx = extensions(&["late"]);
    let mut emu = fx
        .builder()
        .env("TINY_SLOW_NEXT_MS", "700")
        .with(|f| f.timeout_ms = 300)
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let out = emu.invoke(small()).await;
    assert_eq!(out.status, InvokeStatus::Timeout);
    assert_eq!(out.error_type.as_deref(), Some("Sandbox.Timeout"));
    let events = of_kind(&fx.journal("late"), "event");
    let shutdown = events
        .iter()
        .find(|e| e["body"]["eventType"] == "SHUTDOWN")
        .unwrap();
    assert_eq!(shutdown["body"]["shutdownReason"], "timeout");
    let again = emu
        .invoke(InvokeScript {
            lines: 0,
            ..small()
        })
        .await;
    assert_eq!(
        again.status,
        InvokeStatus::Timeout,
        "the re-initialised extension is still late"
    );
    assert_eq!(
        emu.report().extensions.len(),
        2,
        "re-initialised with a new process"
    );
}

#[tokio::test]
async fn exit_error_fails_the_invoke_and_resets() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .env("TINY_EXIT_ERROR_AFTER_INVOKES", "1")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let out = emu.invoke(small()).await;
    assert_eq!(out.status, InvokeStatus::Error);
    assert_eq!(out.error_type.as_deref(), Some("Extension.ExitError"));
    assert_eq!(of_kind(&fx.journal("ext"), "exit-error")[0]["status"], 202);
    let fatal = &emu.report().fatal_errors[0];
    assert_eq!(
        fatal.extension_error_type.as_deref(),
        Some("Extension.TinyFailure")
    );
}

#[tokio::test]
async fn a_whole_script_reports_its_measurements() {
    let fx = extensions(&["ext"]);
    let mut emu = fx.builder().bucket("logs").start().await.unwrap();
    let report = emu
        .run(&Script {
            invocations: 20,
            invoke: small(),
            gap: Duration::from_millis(2),
            late_lines: 1,
            stragglers: 0,
            concurrency: 1,
        })
        .await;
    assert_eq!(report.invocations.total, 20);
    assert_eq!(report.invocations.success, 20);
    assert_eq!(report.invocations.post_runtime_ms.count, 20);
    let ext = &report.extensions[0];
    assert!(ext.cold_start_ms.unwrap() > 0.0);
    assert_eq!(ext.post_runtime_ms.count, 20);
    assert_eq!(ext.exit_code, Some(0));
    assert!(
        ext.shutdown_to_exit_ms.unwrap() >= 150.0,
        "the tiny extension waits 150 ms after SHUTDOWN"
    );
    assert!(ext.peak_rss_kb.unwrap() > 0);
    assert_eq!(
        report.records.emitted,
        report.records.delivered + report.records.dropped
    );
    assert_eq!(function_messages(&fx.records("ext")).len(), 41);
    let table = report.to_table();
    assert!(table.contains("invocations: 20 (success 20"), "{table}");
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["invocations"]["total"], 20);
    assert_eq!(json["extensions"][0]["name"], "ext");
}

#[test]
fn the_cli_runs_a_directory_and_prints_the_report() {
    let fx = extensions(&["cli-ext"]);
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
            .args(["run", "--extensions"])
            .arg(&fx.extensions)
            .args(["--invocations", "3", "--json", "--quiet", "--bucket", "b"])
            .args(extra)
            .output()
            .unwrap()
    };
    // The tiny extension acknowledges every line and ships none: the verdict fails the run.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["invocations"]["success"], 3);
    assert_eq!(report["extensions"][0]["exit_code"], 0);
    assert_eq!(report["verdict"]["lines_emitted"], 15);
    assert_eq!(report["verdict"]["lost"]["after_ack"], 15);
    assert_eq!(
        report["verdict"]["failures"][0],
        "15 lines lost after the extension acknowledged them (lost-after-ack)"
    );
    // Told to tolerate that, it passes.
    let out = run(&["--tolerate", "lost-after-ack"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
        .args(["run", "--extensions", "/nonexistent/dir", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1), "a failed init is a failed run");
    assert!(
        String::from_utf8_lossy(&bad.stdout)
            .contains("INIT FAILED: init failed: Extension.LaunchError")
    );
}
