//! `TINY_PROBE`: the Extensions API called wrongly in documented ways, each answer journaled.

use super::{Journal, body_json, http, own_name};
use serde_json::json;

/// One wrong call to make: label, method, path, headers, body.
type Probe<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, String)>, String);

/// Calls the Extensions API wrongly in documented ways and journals each answer (`kind: probe`).
pub(crate) fn probe_before_register(api: &str, journal: &Journal) {
    let reg = "/2020-01-01/extension/register";
    let cases: Vec<Probe> = vec![
        (
            "empty-name",
            "POST",
            reg,
            vec![("Lambda-Extension-Name", String::new())],
            json!({"events": ["INVOKE"]}).to_string(),
        ),
        (
            "bad-event",
            "POST",
            reg,
            vec![("Lambda-Extension-Name", own_name())],
            json!({"events": ["BOGUS"]}).to_string(),
        ),
        (
            "configuration-keys",
            "POST",
            reg,
            vec![("Lambda-Extension-Name", own_name())],
            json!({"events": ["INVOKE"], "configurationKeys": ["x"]}).to_string(),
        ),
        (
            "next-without-id",
            "GET",
            "/2020-01-01/extension/event/next",
            vec![],
            String::new(),
        ),
        (
            "next-bad-id",
            "GET",
            "/2020-01-01/extension/event/next",
            vec![("Lambda-Extension-Identifier", "not-a-uuid".into())],
            String::new(),
        ),
        (
            "next-unknown-id",
            "GET",
            "/2020-01-01/extension/event/next",
            vec![(
                "Lambda-Extension-Identifier",
                "0a1b2c3d-0000-4000-8000-000000000000".into(),
            )],
            String::new(),
        ),
        (
            "internal-shutdown",
            "POST",
            reg,
            vec![("Lambda-Extension-Name", "not-a-launched-file".into())],
            json!({"events": ["SHUTDOWN"]}).to_string(),
        ),
    ];
    for (label, method, path, headers, body) in cases {
        let (status, _, b) = http(api, method, path, &headers, body.as_bytes()).expect("probe");
        journal.write(
            json!({"kind": "probe", "label": label, "status": status, "body": body_json(&b)}),
        );
    }
}

pub(crate) fn probe_after_register(api: &str, journal: &Journal, name: &str, id: &str) {
    let (status, _, b) = http(
        api,
        "POST",
        "/2020-01-01/extension/register",
        &[("Lambda-Extension-Name", name.to_string())],
        br#"{"events":["INVOKE"]}"#,
    )
    .expect("probe");
    journal.write(json!({"kind": "probe", "label": "register-twice", "status": status, "body": body_json(&b)}));
    let (status, _, b) = http(
        api,
        "POST",
        "/2020-01-01/extension/exit/error",
        &[("Lambda-Extension-Identifier", id.to_string())],
        b"",
    )
    .expect("probe");
    journal.write(json!({"kind": "probe", "label": "error-without-type", "status": status, "body": body_json(&b)}));
}
