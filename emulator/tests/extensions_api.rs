//! Launch, registration, init and the documented errors of the Extensions API (spec §1).

use crate::support::{call, extensions, of_kind};
use lambda_emulator::InvokeScript;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test]
async fn launches_each_executable_with_a_clean_lambda_environment() {
    let fx = extensions(&["alpha", "beta"]);
    let mut emu = fx
        .builder()
        .with(|f| f.name = "my-fn".to_string())
        .with(|f| f.memory_mb = 256)
        .with(|f| f.region = "eu-west-1".to_string())
        .env("CUSTOM", "1")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    for name in ["alpha", "beta"] {
        let start = &of_kind(&fx.journal(name), "start")[0]["env"];
        let keys: BTreeSet<&str> = start
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = [
            "AWS_LAMBDA_RUNTIME_API",
            "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_INITIALIZATION_TYPE",
            "AWS_LAMBDA_LOG_FORMAT",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_S3",
            "TZ",
            "TMPDIR",
            "LANG",
            "PATH",
            "CUSTOM",
            "TINY_JOURNAL_DIR",
        ]
        .into();
        // Exactly these: nothing of the host's own environment (its AWS_* included) leaks in.
        assert_eq!(keys, expected);
        assert_eq!(
            start["AWS_LAMBDA_RUNTIME_API"],
            emu.runtime_api().to_string()
        );
        // The environment's own /tmp.
        assert_eq!(start["TMPDIR"], emu.tmp_dir().to_string_lossy().as_ref());
        assert_eq!(start["AWS_LAMBDA_FUNCTION_NAME"], "my-fn");
        assert_eq!(start["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
        assert_eq!(start["AWS_REGION"], "eu-west-1");
        assert_eq!(start["AWS_ENDPOINT_URL_S3"], emu.s3().url());
        assert_eq!(
            start["AWS_ACCESS_KEY_ID"],
            emu.s3().credentials().access_key_id
        );
        assert!(emu.runtime_api().ip().is_loopback());
    }
    emu.shutdown(0).await;
}

#[tokio::test]
async fn init_waits_for_a_slow_registration_and_account_id_only_when_asked() {
    let fx = extensions(&["fast", "slow"]);
    let mut emu = fx
        .builder()
        .env("TINY_SLEEP_BEFORE_REGISTER_MS@slow", "400")
        .env("TINY_ACCEPT_FEATURE@fast", "accountId")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let fast = &of_kind(&fx.journal("fast"), "register")[0];
    let slow = &of_kind(&fx.journal("slow"), "register")[0];
    // Registration stayed open until the slow one registered (else it would be RegistrationClosed).
    assert_eq!(slow["status"], 200);
    assert_eq!(fast["status"], 200);
    assert_eq!(fast["body"]["accountId"], "123456789012");
    assert!(slow["body"].get("accountId").is_none());
    assert_eq!(slow["body"]["functionName"], "emulated-function");
    assert_eq!(slow["body"]["functionVersion"], "$LATEST");
    let id = fast["identifier"].as_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "identifier is a UUID: {id}"
    );
    emu.shutdown(0).await;
}

#[tokio::test]
async fn init_is_bounded_and_names_the_extension_that_never_registered() {
    let fx = extensions(&["sleepy"]);
    let mut emu = fx
        .builder()
        .env("TINY_SLEEP_BEFORE_REGISTER_MS", "30000")
        .with(|f| f.init_timeout_ms = 300)
        .start()
        .await
        .unwrap();
    let err = emu.init().await.unwrap_err();
    assert_eq!(err.error_type, "Sandbox.Timeout");
    assert_eq!(err.extension.as_deref(), Some("sleepy"));
    // The environment was torn down: the process is gone.
    assert!(emu.extension_pids().is_empty());
}

#[tokio::test]
async fn init_error_fails_init_with_the_extensions_error_type() {
    let fx = extensions(&["broken"]);
    let mut emu = fx
        .builder()
        .env("TINY_INIT_ERROR", "Extension.ConfigInvalid")
        .start()
        .await
        .unwrap();
    let err = emu.init().await.unwrap_err();
    assert_eq!(err.error_type, "Extension.InitError");
    assert_eq!(err.extension.as_deref(), Some("broken"));
    assert_eq!(
        err.extension_error_type.as_deref(),
        Some("Extension.ConfigInvalid")
    );
    assert_eq!(err.message.as_deref(), Some("tiny: asked to fail"));
    let answer = &of_kind(&fx.journal("broken"), "init-error")[0];
    assert_eq!(answer["status"], 202);
    assert_eq!(answer["body"]["status"], "OK");
    assert_eq!(emu.report().init_failures.len(), 1);
}

#[tokio::test]
async fn documented_403_errors_of_the_extensions_api() {
    // A second, slow extension keeps registration open while the prober calls.
    let fx = extensions(&["prober", "slow"]);
    let mut emu = fx
        .builder()
        .env("TINY_PROBE@prober", "1")
        .env("TINY_SLEEP_BEFORE_REGISTER_MS@slow", "1500")
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let probes: Vec<(String, u64, String)> = of_kind(&fx.journal("prober"), "probe")
        .into_iter()
        .map(|p| {
            (
                p["label"].as_str().unwrap().to_string(),
                p["status"].as_u64().unwrap(),
                p["body"]["errorType"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expect = |label: &str, status: u64, t: &str| {
        assert!(
            probes.contains(&(label.to_string(), status, t.to_string())),
            "{label}: {probes:?}"
        );
    };
    expect("empty-name", 403, "Extension.InvalidExtensionName");
    expect("bad-event", 403, "Extension.InvalidEventType");
    expect("configuration-keys", 403, "InvalidRequestFormat");
    expect(
        "next-without-id",
        403,
        "Extension.MissingExtensionIdentifier",
    );
    expect("next-bad-id", 403, "Extension.InvalidExtensionIdentifier");
    expect(
        "next-unknown-id",
        403,
        "Extension.UnknownExtensionIdentifier",
    );
    expect("internal-shutdown", 403, "Extension.InvalidEventType");
    expect("register-twice", 403, "Extension.InvalidExtensionState");
    expect("error-without-type", 403, "Extension.MissingHeader");

    // After init, registration and subscriptions are closed.
    let (status, body) = call(
        emu.runtime_api(),
        "POST",
        "/2020-01-01/extension/register",
        &[("Lambda-Extension-Name", "late")],
        r#"{"events":["INVOKE"]}"#,
    )
    .await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (403, Some("Extension.RegistrationClosed"))
    );
    let id = of_kind(&fx.journal("prober"), "register")[0]["identifier"]
        .as_str()
        .unwrap()
        .to_string();
    let sub = r#"{"schemaVersion":"2022-12-13","types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4321"}}"#;
    let (status, body) = call(
        emu.runtime_api(),
        "PUT",
        "/2022-07-01/telemetry",
        &[("Lambda-Extension-Identifier", &id)],
        sub,
    )
    .await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (403, Some("Telemetry.SubscriptionClosed"))
    );
    let (status, body) = call(
        emu.runtime_api(),
        "PUT",
        "/2020-08-15/logs",
        &[("Lambda-Extension-Identifier", &id)],
        sub,
    )
    .await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (403, Some("Logs.SubscriptionClosed"))
    );
    emu.shutdown(0).await;
}

#[tokio::test]
async fn invoke_and_shutdown_events_carry_epoch_millisecond_deadlines() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .with(|f| f.timeout_ms = 3_000)
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    let inv = emu
        .invoke(InvokeScript {
            lines: 1,
            line_bytes: 50,
            duration: Duration::from_millis(5),
        })
        .await;
    emu.shutdown(0).await;
    let events: Vec<Value> = of_kind(&fx.journal("ext"), "event")
        .into_iter()
        .map(|e| e["body"].clone())
        .collect();
    assert_eq!(events.len(), 2);
    let invoke = &events[0];
    assert_eq!(invoke["eventType"], "INVOKE");
    assert_eq!(invoke["requestId"], inv.request_id);
    assert_eq!(
        invoke["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:123456789012:function:emulated-function"
    );
    assert_eq!(invoke["tracing"]["type"], "X-Amzn-Trace-Id");
    let journaled_at = of_kind(&fx.journal("ext"), "event")[0]["t_ms"]
        .as_i64()
        .unwrap();
    let deadline = invoke["deadlineMs"].as_i64().unwrap();
    // An epoch-millisecond deadline about the function timeout after the event.
    assert!(
        (2_000..=3_100).contains(&(deadline - journaled_at)),
        "deadline {deadline} vs now {journaled_at}"
    );
    let shutdown = &events[1];
    assert_eq!(shutdown["eventType"], "SHUTDOWN");
    assert_eq!(shutdown["shutdownReason"], "spindown");
    let report = emu.report();
    assert_eq!(shutdown["deadlineMs"], report.shutdowns[0].deadline_ms);
    let in_ms = shutdown["deadlineMs"].as_i64().unwrap()
        - of_kind(&fx.journal("ext"), "event")[1]["t_ms"]
            .as_i64()
            .unwrap();
    assert!(
        (1_000..=1_700).contains(&in_ms),
        "SHUTDOWN deadline {in_ms} ms ahead"
    );
    assert_eq!(report.extensions[0].exit_code, Some(0));
}

#[tokio::test]
async fn shutdown_reason_can_be_upper_case() {
    let fx = extensions(&["ext"]);
    let mut emu = fx
        .builder()
        .with(|f| f.upper_case_reason = true)
        .start()
        .await
        .unwrap();
    emu.init().await.unwrap();
    emu.shutdown(0).await;
    let events = of_kind(&fx.journal("ext"), "event");
    assert_eq!(events[0]["body"]["shutdownReason"], "SPINDOWN");
}
