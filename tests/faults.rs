//! The fault suite: S3, the network and the environment misbehave; every test asserts the exact
//! records in S3 — none lost, none duplicated (or exactly the duplicates the at-least-once contract
//! allows) — and a clean exit before the deadline.

use crate::support::*;
use bytes::Bytes;
use lambda_emulator::s3::Faults;
use lambda_emulator::{Emulator, Script};
use std::collections::BTreeMap;
use std::time::Duration;

fn run(invocations: u64) -> Script {
    Script {
        invocations,
        invoke: script(4, 150, 10),
        gap: Duration::from_millis(5),
        late_lines: 2,
        stragglers: 0,
        concurrency: 1,
    }
}

/// Exit 0 before the deadline, every record accounted for, nothing left behind.
fn assert_clean(emu: &Emulator) {
    let ext = emu
        .report()
        .extensions
        .last()
        .cloned()
        .expect("an extension ran");
    assert_eq!(ext.exit_code, Some(0), "{:?}", emu.extension_output(NAME));
    assert!(!ext.killed_at_deadline);
    let s = summary(emu);
    assert_eq!(s["accounted"], true, "{s}");
    assert_eq!(s["refused"], 0, "{s}");
    // The extension's own lines carry no credential and no record content.
    let c = emu.s3().credentials();
    for line in emu.extension_output(NAME) {
        assert!(
            !line.contains(&c.secret_access_key) && !line.contains(&c.session_token),
            "{line}"
        );
        assert!(
            !line.contains("invoke 0000"),
            "a record's content in a log line: {line}"
        );
    }
}

/// Every record line of the spill directory's files (each file starts with a header line).
fn spilled_lines(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .flat_map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .skip(1)
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn slowdown_on_every_third_put() {
    let l = layer();
    let mut emu = l
        .function()
        .env("ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_INVOKES", "2")
        .s3_faults(Faults {
            slowdown_every: Some(3),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    let report = emu.run(&run(20)).await;
    assert!(report.s3.injected_faults > 0);
    assert_shipped_exactly_once(&emu);
    assert_no_key_rewritten_differently(&emu);
    assert_clean(&emu);
}

#[tokio::test]
async fn an_outage_over_most_of_the_run_spills_then_recovers() {
    let l = layer();
    let mut emu = l
        .function()
        .env("ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_INVOKES", "2")
        .env("ADAPTIVE_BATCHING_EXTENSION_MAX_BUFFER_BYTES", "4096")
        .s3_faults(Faults {
            outage: Some((Duration::ZERO, Duration::from_millis(1500))),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    let mut script = run(40);
    script.gap = Duration::from_millis(30);
    let report = emu.run(&script).await;
    assert!(report.s3.injected_faults > 0);
    assert_shipped_exactly_once(&emu);
    assert_no_key_rewritten_differently(&emu);
    let s = summary(&emu);
    assert!(
        s["spilled"].as_u64().unwrap() > 0,
        "the outage outlasted memory: {s}"
    );
    assert_eq!(
        (s["kept_on_disk"].as_u64(), s["lost"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
    assert!(
        spilled_lines(&l.spill).is_empty(),
        "the disk is empty once everything shipped"
    );
    assert_clean(&emu);
}

#[tokio::test]
async fn three_hundred_milliseconds_per_put() {
    let l = layer();
    let mut emu = l
        .function()
        .s3_faults(Faults {
            latency: Duration::from_millis(300),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    emu.run(&run(12)).await;
    assert_shipped_exactly_once(&emu);
    assert_clean(&emu);
}

#[tokio::test]
async fn connection_resets() {
    let l = layer();
    let mut emu = l
        .function()
        .env("ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_INVOKES", "2")
        .s3_faults(Faults {
            reset_next_puts: 5,
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    let report = emu.run(&run(16)).await;
    assert_eq!(report.s3.injected_faults, 5);
    assert_shipped_exactly_once(&emu);
    assert_no_key_rewritten_differently(&emu);
    assert_clean(&emu);
}

#[tokio::test]
async fn shutdown_during_an_upload_keeps_what_did_not_make_it_on_disk() {
    let l = layer();
    let mut emu = l
        .function()
        .env("ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_INVOKES", "1")
        .s3_faults(Faults {
            latency: Duration::from_millis(900),
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    for _ in 0..3 {
        emu.invoke(script(3, 100, 5)).await;
    }
    emu.shutdown(2).await;
    let ext = emu.report().extensions[0].clone();
    assert_eq!(ext.exit_code, Some(0));
    assert!(
        !ext.killed_at_deadline,
        "exited before the deadline although S3 was slow"
    );
    // Each record Lambda delivered is in S3 or kept in the spill directory, exactly once.
    let mut landed = shipped_lines(&emu);
    landed.extend(spilled_lines(&l.spill));
    landed.sort();
    let mut delivered = delivered_records(&emu);
    delivered.sort();
    assert_eq!(landed, delivered);
    assert_eq!(summary(&emu)["accounted"], true);
}

#[tokio::test]
async fn sigkill_mid_run_then_a_new_process_ships_the_spill_first() {
    let l = layer();
    let mut emu = l
        .function()
        .env("ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_INVOKES", "1")
        .s3_faults(Faults {
            outage_now: true,
            ..Faults::default()
        })
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    for _ in 0..4 {
        emu.invoke(script(3, 100, 5)).await;
    }
    // Every failed batch was written to disk at the invoke that shipped it.
    let on_disk = spilled_lines(&l.spill);
    assert!(!on_disk.is_empty());
    let (_, pid) = emu.extension_pids()[0].clone();
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    emu.s3().faults(|f| f.outage_now = false);
    // The next invoke finds the crash, resets and starts a new process in the same /tmp.
    emu.invoke(script(3, 100, 5)).await;
    emu.invoke(script(3, 100, 5)).await;
    emu.shutdown(0).await;
    let shipped = shipped_lines(&emu);
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for line in &shipped {
        *counts.entry(line).or_default() += 1;
    }
    assert!(counts.values().all(|n| *n == 1), "nothing shipped twice");
    for line in &on_disk {
        assert!(
            counts.contains_key(line),
            "a spilled record was recovered and shipped: {line}"
        );
    }
    let s = summary(&emu);
    assert_eq!(
        s["recovered"].as_u64().unwrap() as usize,
        on_disk.len(),
        "{s}"
    );
    // Records acknowledged after the last seal died with the killed process: the documented limit.
    assert_eq!(emu.report().extensions.len(), 2);
    assert_clean(&emu);
}

#[tokio::test]
async fn a_delivery_lambda_repeats_is_shipped_twice_at_least_once() {
    let l = layer();
    let mut emu = l.function().start().await.unwrap();
    emu.init().await.unwrap();
    let body = Bytes::from_static(
        br#"[{"time":"2026-11-27T00:00:00.000Z","type":"function","record":"redelivered line\n"}]"#,
    );
    let (_, statuses) = emu
        .invoke_with_raw_deliveries(script(2, 100, 200), NAME, vec![body.clone(), body])
        .await;
    assert_eq!(statuses, vec![Some(200), Some(200)]);
    emu.shutdown(0).await;
    let shipped = shipped_lines(&emu);
    // The extension does not deduplicate: a delivery Lambda sends twice lands twice.
    assert_eq!(
        shipped
            .iter()
            .filter(|l| l.contains("redelivered line"))
            .count(),
        2
    );
    assert_clean(&emu);
}

/// The final round is bounded by the deadline even when its last batch is slow to encode (20 MB at
/// zstd level 19, with a shutdown budget of 400 ms): the extension exits before the deadline, and
/// what it could not ship is counted, never silently gone. (Before: the final encode had no
/// deadline and the extension was killed at the deadline, without a summary.)
#[tokio::test]
async fn a_final_batch_too_slow_to_encode_still_exits_before_the_deadline() {
    let l = layer();
    let mut emu = ship_rates(l.function(), 104_857_600, 100_000, 600_000)
        .env(
            "ADAPTIVE_BATCHING_EXTENSION_MAX_BUFFER_BYTES",
            (64u64 << 20).to_string(),
        )
        .env("ADAPTIVE_BATCHING_EXTENSION_COMPRESSION", "zstd")
        .env("ADAPTIVE_BATCHING_EXTENSION_COMPRESSION_LEVEL", "19")
        .with(|f| f.timeout_ms = 20_000)
        .with(|f| f.shutdown_budget_ms = 400)
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    for _ in 0..10 {
        emu.invoke(script(200, 10_000, 50)).await;
    }
    emu.shutdown(0).await;
    let ext = emu.report().extensions[0].clone();
    assert!(!ext.killed_at_deadline, "killed at the deadline");
    assert_eq!(ext.exit_code, Some(0));
    let s = summary(&emu);
    assert_eq!(s["accounted"], true, "{s}");
    assert_eq!(
        s["shipped"].as_u64().unwrap()
            + s["kept_on_disk"].as_u64().unwrap()
            + s["lost"].as_u64().unwrap(),
        s["received"].as_u64().unwrap(),
        "{s}"
    );
}
