//! Issue 21 under the emulator: processing rules, judged by the exact records that land in S3.
//! What each rule should leave of what Lambda delivered is worked out here, from the delivered
//! records, by an implementation of the documented semantics that shares no code with the
//! extension's (string replacement of the known secrets, an FNV-1a of its own).

use crate::support::*;
use lambda_emulator::Script;
use serde_json::Value;
use std::time::Duration;

const VAR: &str = "ADAPTIVE_BATCHING_EXTENSION_PROCESSING_RULES";

/// What the function says, line k of each invoke saying text k.
const TEXTS: [&str; 7] = [
    "order placed",
    "DEBUG cache lookup",
    "GET /health 200",
    "key AKIAIOSFODNN7EXAMPLE used",
    "WARN slow DEBUG path",
    "card 4111 1111 1111 1111 paid",
    "audit trail",
];

/// One rule of each type.
const RULES: &str = r#"[
  {"type": "mask_sequences", "name": "keys", "pattern": "\\b(?:AKIA|ASIA)[0-9A-Z]{16}\\b", "replace_placeholder": "[KEY]"},
  {"type": "mask_sequences", "name": "cards", "pattern": "\\b(?:[0-9]{16}|[0-9]{4}(?: [0-9]{4}){3}|[0-9]{4}(?:-[0-9]{4}){3})\\b", "replace_placeholder": "[CARD]"},
  {"type": "exclude_at_match", "name": "health", "pattern": "GET /health"},
  {"type": "include_at_match", "name": "first_six", "pattern": "line 000[1-6] "},
  {"type": "sample", "name": "debug", "pattern": "\\bDEBUG\\b", "keep_one_in": 2},
  {"type": "exclude_platform_types", "name": "noise", "record_types": ["platform.start", "platform.runtimeDone"]}
]"#;

/// FNV-1a, 64 bits, as the README specifies the sampling.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 14695981039346656037;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(1099511628211);
    }
    h
}

/// What the rules leave of the delivered records, in order; and the lines sampled out.
fn expected(delivered: &[String], json_logs: bool) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut sampled_out = 0;
    let mut last_started: Option<String> = None;
    for raw in delivered {
        let v: Value = serde_json::from_str(raw).unwrap();
        let t = v["type"].as_str().unwrap();
        if t == "platform.start" {
            last_started = v["record"]["requestId"].as_str().map(str::to_string);
        }
        if t == "platform.start" || t == "platform.runtimeDone" {
            continue;
        }
        if t != "function" {
            out.push(raw.clone());
            continue;
        }
        let (text, request, severe) = if json_logs {
            let r = &v["record"];
            (
                r["message"].as_str().unwrap().to_string(),
                r["requestId"].as_str().map(str::to_string),
                r["level"] != "INFO",
            )
        } else {
            let text = v["record"].as_str().unwrap().to_string();
            let severe = text.contains("WARN");
            (text, last_started.clone(), severe)
        };
        if text.contains("GET /health") || text.contains(" line 0007 ") {
            continue;
        }
        if text.contains("DEBUG")
            && !severe
            && request.is_some_and(|id| !fnv1a(&id).is_multiple_of(2))
        {
            sampled_out += 1;
            continue;
        }
        out.push(
            raw.replace("AKIAIOSFODNN7EXAMPLE", "[KEY]")
                .replace("4111 1111 1111 1111", "[CARD]"),
        );
    }
    (out, sampled_out)
}

async fn run_with_rules(json_logs: bool) {
    let l = layer();
    let mut emu = l
        .function()
        .env(VAR, RULES)
        .with(|f| f.line_texts = TEXTS.iter().map(|t| t.to_string()).collect())
        .with(|f| f.json_logs = Some(json_logs))
        .start()
        .await
        .unwrap();
    let invocations = 16;
    emu.run(&Script {
        invocations,
        invoke: script(7, 120, 5),
        gap: Duration::from_millis(2),
        late_lines: 0,
        stragglers: 0,
        concurrency: 1,
    })
    .await;
    let delivered = delivered_records(&emu);
    let (mut want, sampled_out) = expected(&delivered, json_logs);
    let mut shipped = shipped_lines(&emu);
    want.sort();
    shipped.sort();
    assert_eq!(shipped.len(), want.len());
    assert!(shipped == want, "S3 holds exactly what the rules leave");
    // Both kinds of DEBUG request happened: some kept, some sampled out.
    let debug_lines = (invocations * 2) as usize;
    assert!(
        sampled_out > 0 && sampled_out < debug_lines,
        "{sampled_out}"
    );
    let all = shipped.join("\n");
    assert!(!all.contains("AKIAIOSFODNN7EXAMPLE") && !all.contains("4111 1111 1111 1111"));
    assert_eq!(all.matches("[KEY] used").count(), invocations as usize);
    assert!(all.contains("\"type\":\"platform.report\""));

    let s = summary(&emu);
    assert_eq!(s["accounted"], true, "{s}");
    assert_eq!(s["lost"], 0, "{s}");
    let n = invocations;
    let rule = |name: &str| {
        log_lines(&emu)
            .into_iter()
            .find(|l| l["msg"] == "processing rule" && l["rule"] == name)
            .map(|l| {
                (
                    l["excluded"].clone(),
                    l["sampled_out"].clone(),
                    l["masked"].clone(),
                )
            })
            .unwrap()
    };
    let counts = |e: u64, s: u64, m: u64| (Value::from(e), Value::from(s), Value::from(m));
    assert_eq!(rule("keys"), counts(0, 0, n));
    assert_eq!(rule("cards"), counts(0, 0, n));
    assert_eq!(rule("health"), counts(n, 0, 0));
    assert_eq!(rule("first_six"), counts(n, 0, 0));
    assert_eq!(rule("debug"), counts(0, sampled_out as u64, 0));
    assert_eq!(rule("noise"), counts(2 * n, 0, 0));
    assert_eq!(s["filtered"], 4 * n + sampled_out as u64, "{s}");
}

#[tokio::test]
async fn each_rule_type_leaves_exactly_its_records_of_plain_text_lines() {
    run_with_rules(false).await;
}

#[tokio::test]
async fn each_rule_type_leaves_exactly_its_records_of_json_lines() {
    run_with_rules(true).await;
}

#[tokio::test]
async fn invalid_rules_fail_init_naming_the_rule_and_why() {
    let l = layer();
    for (rules, message) in [
        (
            r#"[{"type": "mask_sequences", "name": "keys""#,
            "ADAPTIVE_BATCHING_EXTENSION_PROCESSING_RULES is not valid JSON (EOF while parsing an object at line 1 column 42); expected a JSON array of rules",
        ),
        (
            r#"[{"type": "exclude_at_match", "name": "a", "pattern": "x"}, {"type": "redact", "name": "b", "pattern": "y"}]"#,
            r#"ADAPTIVE_BATCHING_EXTENSION_PROCESSING_RULES rule [1] "b": unknown type "redact"; accepted: exclude_at_match, include_at_match, mask_sequences, sample or exclude_platform_types"#,
        ),
        (
            r#"[{"type": "mask_sequences", "name": "cards", "pattern": "[0-9", "replace_placeholder": "[CARD]"}]"#,
            r#"ADAPTIVE_BATCHING_EXTENSION_PROCESSING_RULES rule [0] "cards": the pattern "[0-9" does not compile: unclosed character class"#,
        ),
    ] {
        assert_eq!(config_error(l.function().env(VAR, rules)).await, message);
    }
}
