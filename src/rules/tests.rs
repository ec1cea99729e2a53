use super::*;
use crate::lambda::records::layout;

/// What the rules ship of `element` (a delivered record) and what each rule did.
fn run(
    rules: &Rules,
    element: &str,
    request: Option<&str>,
) -> (Option<String>, Vec<(usize, Effect)>) {
    let raw = Bytes::from(element.to_string());
    let (t, value) = layout(element).expect("a record");
    let mut effects = Vec::new();
    let out = rules.apply(&raw, element, &t, value, request, &mut |i, e| {
        effects.push((i, e))
    });
    (out.map(|b| String::from_utf8(b.to_vec()).unwrap()), effects)
}

fn rules(json: &str) -> Rules {
    Rules::parse(json).expect("valid rules")
}

fn line(text: &str) -> String {
    format!(
        r#"{{"time":"2026-12-07T10:00:00.000Z","type":"function","record":{}}}"#,
        serde_json::Value::from(text)
    )
}

const KEYS_AND_CARDS: &str = r#"[
  {"type":"mask_sequences","name":"aws-keys","pattern":"(?:AKIA|ASIA)[0-9A-Z]{16}","replace_placeholder":"[AWS_KEY]"},
  {"type":"mask_sequences","name":"cards","pattern":"\\b(?:\\d[ -]?){12,15}(\\d{4})\\b","replace_placeholder":"[CARD ending $1]"}
]"#;

#[test]
fn masks_a_plain_text_line_and_keeps_the_rest_of_the_record_as_sent() {
    let r = rules(KEYS_AND_CARDS);
    let (out, effects) = run(
        &r,
        &line("\tkey=AKIAIOSFODNN7EXAMPLE card 4111 1111 1111 1111 ok\n"),
        None,
    );
    assert_eq!(
        out.unwrap(),
        line("\tkey=[AWS_KEY] card [CARD ending 1111] ok\n")
    );
    assert_eq!(effects, [(0, Effect::Masked), (1, Effect::Masked)]);
    // A line no rule changes is the exact bytes received, escapes and all.
    let untouched = r#"{"time":"t","type":"function","record":"caf\u00e9 \"quoted\"\n"}"#;
    assert_eq!(
        run(&r, untouched, None),
        (Some(untouched.to_string()), vec![])
    );
}

#[test]
fn masks_every_string_value_of_a_json_record_keeping_keys_numbers_and_order() {
    let r = rules(KEYS_AND_CARDS);
    let element = r#"{"time":"t","type":"function","record":{"timestamp":"2026-12-07T10:00:00Z","level":"INFO","AKIAIOSFODNN7EXAMPLE":1,"message":"using AKIAIOSFODNN7EXAMPLE","n":1.50,"nested":{"k":["ASIAIOSFODNN7EXAMPLE"]},"requestId":"r1"}}"#;
    let (out, effects) = run(&r, element, None);
    let out = out.unwrap();
    assert_eq!(
        out,
        r#"{"time":"t","type":"function","record":{"timestamp":"2026-12-07T10:00:00Z","level":"INFO","AKIAIOSFODNN7EXAMPLE":1,"message":"using [AWS_KEY]","n":1.50,"nested":{"k":["[AWS_KEY]"]},"requestId":"r1"}}"#
    );
    assert!(serde_json::from_str::<serde_json::Value>(&out).is_ok());
    assert_eq!(effects, [(0, Effect::Masked)]);
}

#[test]
fn exclude_and_include_drop_what_they_say_and_platform_records_are_not_text() {
    let r = rules(
        r#"[{"type":"exclude_at_match","name":"health","pattern":"GET /health"},
            {"type":"include_at_match","name":"only-app","pattern":"^app:"}]"#,
    );
    assert_eq!(
        run(&r, &line("GET /health 200"), None),
        (None, vec![(0, Effect::Excluded)])
    );
    assert_eq!(
        run(&r, &line("noise"), None),
        (None, vec![(1, Effect::Excluded)])
    );
    let kept = line("app: order placed");
    assert_eq!(run(&r, &kept, None), (Some(kept.clone()), vec![]));
    // Neither a platform record nor a wrapped malformed one is a line the rules read.
    let start = r#"{"time":"t","type":"platform.start","record":{"requestId":"GET /health"}}"#;
    assert_eq!(run(&r, start, None), (Some(start.into()), vec![]));
    let odd = r#"{"time":"t","type":"extension.malformed","record":"GET /health"}"#;
    assert_eq!(run(&r, odd, None), (Some(odd.into()), vec![]));
    // An extension's lines are.
    let ext = r#"{"time":"t","type":"extension","record":"GET /health"}"#;
    assert_eq!(run(&r, ext, None).0, None);
}

#[test]
fn rules_apply_in_order_so_a_mask_changes_what_later_rules_see() {
    let r = rules(
        r#"[{"type":"mask_sequences","name":"tokens","pattern":"Bearer [A-Za-z0-9._-]+","replace_placeholder":"Bearer [TOKEN]"},
            {"type":"exclude_at_match","name":"masked","pattern":"\\[TOKEN\\]"}]"#,
    );
    assert_eq!(
        run(&r, &line("Authorization: Bearer abc.def"), None),
        (None, vec![(0, Effect::Masked), (1, Effect::Excluded)])
    );
}

#[test]
fn sample_keeps_whole_requests_one_in_n_and_never_drops_warnings_or_init_lines() {
    let r = rules(r#"[{"type":"sample","name":"debug","pattern":"DEBUG","keep_one_in":4}]"#);
    let ids: Vec<String> = (0..400).map(|i| format!("req-{i}")).collect();
    let kept_ids: Vec<&String> = ids.iter().filter(|id| kept(id, 4)).collect();
    // FNV-1a spreads ids evenly: about a quarter are kept.
    assert!((70..130).contains(&kept_ids.len()), "{}", kept_ids.len());
    for id in &ids {
        let debug = run(&r, &line("DEBUG cache miss"), Some(id)).0;
        let other = run(&r, &line("DEBUG again"), Some(id)).0;
        assert_eq!(debug.is_some(), kept(id, 4));
        assert_eq!(
            debug.is_some(),
            other.is_some(),
            "one request's lines go together"
        );
        assert!(
            run(&r, &line("DEBUG then ERROR: disk full"), Some(id))
                .0
                .is_some()
        );
        assert!(
            run(&r, &line("info only"), Some(id)).0.is_some(),
            "no match: kept"
        );
    }
    assert!(run(&r, &line("DEBUG during init"), None).0.is_some());
    // A JSON record's own requestId and level decide, not the request last started.
    let dropped = ids.iter().find(|id| !kept(id, 4)).unwrap();
    let json = |level: &str| {
        format!(
            r#"{{"time":"t","type":"function","record":{{"level":"{level}","message":"DEBUG x","requestId":"{dropped}"}}}}"#
        )
    };
    let kept_id = kept_ids[0].as_str();
    assert_eq!(
        run(&r, &json("INFO"), Some(kept_id)),
        (None, vec![(0, Effect::SampledOut)])
    );
    assert!(run(&r, &json("warn"), Some(kept_id)).0.is_some());
    // Known values of FNV-1a 64: "a" is 0xaf63dc4c8601ec8c.
    assert!(kept("a", 0xaf63dc4c8601ec8c) && kept("a", 4) && !kept("a", 3));
}

#[test]
fn exclude_platform_types_drops_those_types_only() {
    let r = rules(
        r#"[{"type":"exclude_platform_types","name":"noise","record_types":["platform.start","platform.runtimeDone"]}]"#,
    );
    let start = r#"{"time":"t","type":"platform.start","record":{"requestId":"r"}}"#;
    let report = r#"{"time":"t","type":"platform.report","record":{"requestId":"r"}}"#;
    assert_eq!(run(&r, start, None), (None, vec![(0, Effect::Excluded)]));
    assert_eq!(run(&r, report, None), (Some(report.into()), vec![]));
    assert_eq!(
        run(&r, &line("platform.start"), None).0,
        Some(line("platform.start"))
    );
}

fn error(json: &str) -> String {
    Rules::parse(json).expect_err("invalid rules").to_string()
}

#[test]
fn invalid_rules_say_which_rule_and_why() {
    assert_eq!(
        error(r#"{"type":"sample"}"#),
        "must be a JSON array of rules"
    );
    assert!(
        error("[{").starts_with("is not valid JSON ("),
        "{}",
        error("[{")
    );
    assert_eq!(
        error(
            r#"[{"type":"exclude_at_match","name":"a","pattern":"x"},{"type":"drop","name":"b","pattern":"y"}]"#
        ),
        r#"rule [1] "b": unknown type "drop"; accepted: exclude_at_match, include_at_match, mask_sequences, sample or exclude_platform_types"#
    );
    assert_eq!(
        error(
            r#"[{"type":"mask_sequences","name":"keys","pattern":"AKIA[","replace_placeholder":"x"}]"#
        ),
        r#"rule [0] "keys": the pattern "AKIA[" does not compile: unclosed character class"#
    );
    assert_eq!(
        error(r#"[{"type":"mask_sequences","name":"keys","pattern":"AKIA"}]"#),
        r#"rule [0] "keys": mask_sequences needs a "replace_placeholder" (a string, which may be empty)"#
    );
    assert_eq!(
        error(
            r#"[{"type":"mask_sequences","name":"keys","pattern":"AKIA","replace_placholder":"x"}]"#
        ),
        r#"rule [0] "keys": mask_sequences needs a "replace_placeholder" (a string, which may be empty)"#
    );
    assert_eq!(
        error(
            r#"[{"type":"exclude_at_match","name":"a","pattern":"x","replace_placeholder":"y"}]"#
        ),
        r#"rule [0] "a": exclude_at_match takes no field "replace_placeholder" (it takes "type", "name", "pattern")"#
    );
    assert_eq!(
        error(r#"[{"type":"exclude_at_match","pattern":"x"}]"#),
        r#"rule [0]: needs a "name": a string of 1 to 64 characters"#
    );
    assert_eq!(
        error(
            r#"[{"type":"exclude_at_match","name":"a","pattern":"x"},{"type":"exclude_at_match","name":"a","pattern":"y"}]"#
        ),
        r#"rule [1] "a": the name is already used by an earlier rule; names must be unique (they name the rule's counters)"#
    );
    assert_eq!(
        error(r#"[{"type":"sample","name":"s","keep_one_in":0}]"#),
        r#"rule [0] "s": sample needs "keep_one_in": a whole number from 1 to 1000000 (1 keeps every request)"#
    );
    assert!(
        error(r#"[{"type":"exclude_platform_types","name":"p","record_types":["platform.begin"]}]"#)
            .starts_with(r#"rule [0] "p": "record_types" has "platform.begin", which is not a platform record type; accepted: platform.initStart,"#)
    );
    // Unicode general categories are built in; scripts are not.
    assert!(
        Rules::parse(r#"[{"type":"exclude_at_match","name":"l","pattern":"\\p{L}+ (?i)straße"}]"#)
            .is_ok()
    );
    let greek = error(r#"[{"type":"exclude_at_match","name":"g","pattern":"\\p{Greek}"}]"#);
    assert!(
        greek.starts_with(r#"rule [0] "g": the pattern "\\p{Greek}" does not compile: "#),
        "{greek}"
    );
    let many = format!(
        "[{}]",
        (0..51)
            .map(|i| format!(r#"{{"type":"exclude_at_match","name":"r{i}","pattern":"x"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(error(&many), "has 51 rules; at most 50 are accepted");
    let long = format!(
        r#"[{{"type":"exclude_at_match","name":"a","pattern":"{}"}}]"#,
        "x".repeat(1001)
    );
    assert_eq!(
        error(&long),
        r#"rule [0] "a": the "pattern" has 1001 characters; at most 1000 are accepted"#
    );
    assert!(
        error(r#"[{"type":"exclude_at_match","name":"big","pattern":"\\w{500}\\w{500}"}]"#)
            .starts_with(r#"rule [0] "big": the pattern "\\w{500}\\w{500}" compiles to more than 1048576 bytes"#)
    );
}

#[test]
fn a_pattern_that_backtracks_exponentially_elsewhere_is_linear_here() {
    // `(a+)+$` against "aaaa…b" takes exponential time in a backtracking engine.
    let r = rules(r#"[{"type":"exclude_at_match","name":"evil","pattern":"(a+)+$"}]"#);
    let hostile = line(&format!("{}b", "a".repeat(50_000)));
    assert_eq!(run(&r, &hostile, None).0, Some(hostile.clone()));
}

/// The README's ready rules, as written there.
pub(crate) fn readme_rules() -> String {
    let readme = include_str!("../../README.md");
    let block = readme
        .split("<!-- ready rules -->\n```json\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the README has its ready rules block");
    block.to_string()
}

#[test]
fn the_readmes_ready_rules_mask_and_drop_what_they_say() {
    let r = rules(&readme_rules());
    assert_eq!(
        r.names().collect::<Vec<_>>(),
        [
            "aws_access_key_ids",
            "card_numbers",
            "email_addresses",
            "bearer_tokens",
            "health_checks"
        ]
    );
    for (said, shipped) in [
        (
            "key AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A",
            Some("key [AWS_ACCESS_KEY_ID] and [AWS_ACCESS_KEY_ID]"),
        ),
        (
            "paid with 4111 1111 1111 1111, 5500-0000-0000-0004 or 4012888888881881",
            Some("paid with [CARD_NUMBER], [CARD_NUMBER] or [CARD_NUMBER]"),
        ),
        (
            "mail jane.doe+logs@example.co.uk now",
            Some("mail [EMAIL] now"),
        ),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc-_x== sent",
            Some("Authorization: Bearer [TOKEN] sent"),
        ),
        ("GET /health 200 1ms", None),
        ("GET /healthz", None),
        (
            "4111111111111111 first, card=4111-1111-1111-1111",
            Some("[CARD_NUMBER] first, card=[CARD_NUMBER]"),
        ),
        // What must stay: epoch milliseconds, request ids (also those with runs of 16 digits split
        // by hyphens, at the start or the end), a path that only starts alike.
        (
            "at 1733600000000 request 6f7f0961-f834-4211-8a7a-f6fe80b88d56 GET /healthy",
            Some("at 1733600000000 request 6f7f0961-f834-4211-8a7a-f6fe80b88d56 GET /healthy"),
        ),
        (
            "2026-12-08T00:24:13.123Z\t6f7f0961-f834-4211-8123-123456789012\tINFO\tdone",
            Some("2026-12-08T00:24:13.123Z\t6f7f0961-f834-4211-8123-123456789012\tINFO\tdone"),
        ),
        (
            "t\t12345678-1234-4123-a123-bcdef0123456\tINFO\tdone",
            Some("t\t12345678-1234-4123-a123-bcdef0123456\tINFO\tdone"),
        ),
        (
            "t\t12345678-1234-4123-8123-123456789012\tINFO\tdone",
            Some("t\t12345678-1234-4123-8123-123456789012\tINFO\tdone"),
        ),
    ] {
        assert_eq!(run(&r, &line(said), None).0, shipped.map(line), "{said}");
    }
}

/// Seeded runs over random lines (plain text and JSON, secrets, levels, requests, escapes) and
/// random rule lists: whatever the rules, each record is shipped valid with its envelope and keys
/// as sent, or dropped with exactly one rule's effect; no masked secret survives; a request's
/// lines with the same text go together; a WARN line is never sampled out.
#[test]
fn seeded_rules_keep_records_valid_and_account_for_every_drop() {
    use crate::random::Xorshift;
    const SECRET: &str = "AKIAIOSFODNN7EXAMPLE";
    let words = [
        "order",
        "GET /health",
        "DEBUG",
        "WARN",
        "ERROR",
        SECRET,
        "caf\u{e9}",
        "tab\there",
        "quote\"d",
        "back\\slash",
        "line\n",
        "1234 5678 9012 3456",
        "ok",
    ];
    let rule_kinds = [
        r#"{"type":"exclude_at_match","name":"N","pattern":"GET /health"}"#,
        r#"{"type":"include_at_match","name":"N","pattern":"order|ok|DEBUG"}"#,
        r#"{"type":"mask_sequences","name":"N","pattern":"AKIA[0-9A-Z]{16}","replace_placeholder":"[K]"}"#,
        r#"{"type":"mask_sequences","name":"N","pattern":"\\b(?:[0-9]{4}[ -]?){3}[0-9]{4}\\b","replace_placeholder":"$0$0"}"#,
        r#"{"type":"sample","name":"N","pattern":"DEBUG","keep_one_in":3}"#,
        r#"{"type":"sample","name":"N","keep_one_in":2}"#,
        r#"{"type":"exclude_platform_types","name":"N","record_types":["platform.start"]}"#,
    ];
    for seed in 1..=300u64 {
        let mut rng = Xorshift::new(seed);
        let count = 1 + rng.below(6) as usize;
        let chosen: Vec<usize> = (0..count)
            .map(|_| rng.below(rule_kinds.len() as u64) as usize)
            .collect();
        let text = format!(
            "[{}]",
            chosen
                .iter()
                .enumerate()
                .map(|(i, k)| rule_kinds[*k].replace("\"N\"", &format!("\"r{i}\"")))
                .collect::<Vec<_>>()
                .join(",")
        );
        let r = rules(&text);
        let masks_key = chosen.contains(&2);
        let mut decided: std::collections::HashMap<(String, String), bool> = Default::default();
        for n in 0..200 {
            let said: String = (0..1 + rng.below(4))
                .map(|_| words[rng.below(words.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ");
            let request = format!("req-{}", rng.below(8));
            let json = rng.chance(0.4);
            let element = if json {
                format!(
                    r#"{{"time":"t{n}","type":"function","record":{{"level":"{}","message":{},"n":1.50,"requestId":"{request}"}}}}"#,
                    // The JSON log format's level is what the line's words say.
                    match (said.contains("ERROR"), said.contains("WARN")) {
                        (true, _) => "ERROR",
                        (_, true) => "WARN",
                        _ => "INFO",
                    },
                    serde_json::Value::from(said.as_str())
                )
            } else {
                line(&said)
            };
            let (out, effects) = run(&r, &element, Some(&request));
            let drops = effects.iter().filter(|(_, e)| *e != Effect::Masked).count();
            match out {
                None => assert_eq!(drops, 1, "seed {seed}: {element} {effects:?}"),
                Some(out) => {
                    assert_eq!(drops, 0, "seed {seed}");
                    let v: serde_json::Value = serde_json::from_str(&out)
                        .unwrap_or_else(|e| panic!("seed {seed}: {e}: {out}"));
                    let sent: serde_json::Value = serde_json::from_str(&element).unwrap();
                    assert_eq!((&v["time"], &v["type"]), (&sent["time"], &sent["type"]));
                    if let Some(o) = sent["record"].as_object() {
                        let keys: Vec<&String> = o.keys().collect();
                        let out_keys: Vec<&String> =
                            v["record"].as_object().unwrap().keys().collect();
                        assert_eq!(keys, out_keys, "seed {seed}");
                        assert_eq!(v["record"]["n"].to_string(), "1.5");
                        assert!(out.contains(r#""n":1.50"#), "numbers as written");
                    }
                    if masks_key {
                        assert!(!out.contains(SECRET), "seed {seed}: {out}");
                    }
                    if effects.is_empty() {
                        assert_eq!(out, element, "untouched is the bytes sent");
                    }
                }
            }
            if effects.iter().any(|(_, e)| *e == Effect::SampledOut) {
                assert!(
                    !said.contains("WARN") && !said.contains("ERROR"),
                    "seed {seed}: {said}"
                );
            }
            // The same text of the same request is decided the same way.
            let kept = !effects.iter().any(|(_, e)| *e == Effect::SampledOut);
            let key = (request, format!("{json}{said}"));
            assert_eq!(*decided.entry(key).or_insert(kept), kept, "seed {seed}");
        }
    }
}
