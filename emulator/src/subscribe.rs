//! Validation of Logs API and Telemetry API subscription requests (spec §2.2, §3.1).
//!
//! Ranges are the RIE schema's: `maxItems` 1000–10000, `maxBytes` 262144–1048576,
//! `timeoutMs` 25–30000; anything outside is a 400, as the spec asks of an emulator.

use crate::http::ApiError;
use crate::records::{ApiKind, Category};
use serde_json::Value;
use std::time::Duration;

pub const TELEMETRY_SCHEMAS: [&str; 3] = ["2022-07-01", "2022-12-13", "2025-01-29"];
pub const MANAGED_INSTANCES_SCHEMA: &str = "2025-01-29";
pub const LOGS_SCHEMAS: [&str; 2] = ["2020-08-15", "2021-03-18"];

/// How Lambda batches records for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffering {
    pub max_items: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
}

impl Default for Buffering {
    /// The documented defaults (10,000 items, 256 KiB, 1 s).
    fn default() -> Self {
        Self {
            max_items: 10_000,
            max_bytes: 262_144,
            timeout: Duration::from_millis(1000),
        }
    }
}

/// A validated subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub api: ApiKind,
    pub schema: String,
    pub types: Vec<Category>,
    pub buffering: Buffering,
    /// The port of the destination URI: the emulator delivers to 127.0.0.1 on it, since
    /// `sandbox.localdomain` does not resolve off Lambda.
    pub port: u16,
    pub path: String,
    /// `POST`, or `PUT` when a Logs API subscriber asked for it.
    pub method: http::Method,
}

/// Parses and validates a subscription body.
pub fn validate(
    api: ApiKind,
    managed_instances: bool,
    body: &[u8],
) -> Result<Subscription, ApiError> {
    let invalid = |m: String| {
        let t = match api {
            ApiKind::Logs => "Logs.ValidationError",
            ApiKind::Telemetry => "ValidationError",
        };
        ApiError::bad_request(t, m)
    };
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("request body is not valid JSON: {e}")))?;
    let schema = schema(api, managed_instances, &v).map_err(invalid)?;
    let types = types(v.get("types")).map_err(invalid)?;
    let buffering = buffering(v.get("buffering")).map_err(invalid)?;

    let dest = v
        .get("destination")
        .ok_or_else(|| invalid("destination is required".into()))?;
    match dest.get("protocol").and_then(Value::as_str) {
        Some("HTTP") => {}
        Some("TCP") => {
            return Err(invalid(
                "destination.protocol TCP is not supported by the emulator; use HTTP".into(),
            ));
        }
        other => {
            return Err(invalid(format!(
                "destination.protocol must be \"HTTP\" or \"TCP\", got {other:?}"
            )));
        }
    }
    let uri = dest
        .get("URI")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("destination.URI is required".into()))?;
    let (port, path) = parse_destination(uri).map_err(invalid)?;
    let method = match (api, dest.get("method").and_then(Value::as_str)) {
        (ApiKind::Logs, Some("PUT")) => http::Method::PUT,
        _ => http::Method::POST,
    };
    Ok(Subscription {
        api,
        schema,
        types,
        buffering,
        port,
        path,
        method,
    })
}

/// `schemaVersion`: required by the Telemetry API, and one the API (and Managed Instances) accept.
fn schema(api: ApiKind, managed_instances: bool, v: &Value) -> Result<String, String> {
    let schema = match (api, v.get("schemaVersion")) {
        (ApiKind::Telemetry, None) => return Err("schemaVersion is required".into()),
        (ApiKind::Logs, None) => LOGS_SCHEMAS[0].to_string(),
        (_, Some(Value::String(s))) => s.clone(),
        (_, Some(other)) => {
            return Err(format!("schemaVersion must be a string, got {other}"));
        }
    };
    let accepted: &[&str] = match api {
        ApiKind::Telemetry if managed_instances => &[MANAGED_INSTANCES_SCHEMA],
        ApiKind::Telemetry => &TELEMETRY_SCHEMAS,
        ApiKind::Logs => &LOGS_SCHEMAS,
    };
    if !accepted.contains(&schema.as_str()) {
        return Err(format!(
            "schemaVersion {schema:?} is not supported; accepted: {}",
            accepted.join(", ")
        ));
    }
    Ok(schema)
}

/// `types`: a non-empty array of log categories (duplicates count once).
fn types(types: Option<&Value>) -> Result<Vec<Category>, String> {
    match types {
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut out = Vec::new();
            for item in items {
                let c = item.as_str().and_then(Category::parse).ok_or_else(|| {
                    format!("types: {item} is not one of \"platform\", \"function\", \"extension\"")
                })?;
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            Ok(out)
        }
        Some(Value::Array(_)) => Err("types should not be empty".into()),
        _ => Err("types is required and must be an array".into()),
    }
}

fn buffering(v: Option<&Value>) -> Result<Buffering, String> {
    let mut b = Buffering::default();
    let Some(v) = v else { return Ok(b) };
    if !v.is_object() {
        return Err("buffering must be an object".into());
    }
    let field = |name: &str, min: u64, max: u64| -> Result<Option<u64>, String> {
        match v.get(name) {
            None => Ok(None),
            Some(x) => match x.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(format!(
                    "buffering.{name} must be a whole number between {min} and {max}, got {x}"
                )),
            },
        }
    };
    if let Some(n) = field("maxItems", 1_000, 10_000)? {
        b.max_items = n as usize;
    }
    if let Some(n) = field("maxBytes", 262_144, 1_048_576)? {
        b.max_bytes = n as usize;
    }
    if let Some(n) = field("timeoutMs", 25, 30_000)? {
        b.timeout = Duration::from_millis(n);
    }
    Ok(b)
}

/// `http://sandbox.localdomain:<port>[/path]` → (port, path).
fn parse_destination(uri: &str) -> Result<(u16, String), String> {
    let rest = uri
        .strip_prefix("http://")
        .ok_or_else(|| format!("destination.URI must start with http:// (got {uri:?})"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host != "sandbox.localdomain" && host != "sandbox" {
        return Err(format!(
            "destination.URI host must be sandbox.localdomain (got {host:?})"
        ));
    }
    let port = port.ok_or_else(|| "URI port is not provided".to_string())?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("destination.URI port {port:?} is not a port number"))?;
    if port == 0 || port == 9001 {
        return Err(format!("destination.URI port {port} is reserved"));
    }
    Ok((port, path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(extra: &str) -> Vec<u8> {
        format!(
            r#"{{"types":["platform","function"],"destination":{{"protocol":"HTTP","URI":"http://sandbox.localdomain:1234/lambda_logs"}}{extra}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn the_go_sample_subscription_is_accepted_with_default_schema() {
        let b = br#"{"types":["platform","function"],"buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1234","method":"POST","encoding":"JSON"}}"#;
        let s = validate(ApiKind::Logs, false, b).unwrap();
        assert_eq!(s.schema, "2020-08-15");
        assert_eq!(s.port, 1234);
        assert_eq!(s.path, "/");
        assert_eq!(
            s.buffering,
            Buffering {
                max_items: 1000,
                max_bytes: 262_144,
                timeout: Duration::from_millis(25)
            }
        );
    }

    #[test]
    fn buffering_out_of_range_is_a_400_naming_the_field() {
        for (field, bad) in [
            ("maxItems", "999"),
            ("maxItems", "10001"),
            ("maxBytes", "262143"),
            ("timeoutMs", "24"),
            ("timeoutMs", "30001"),
        ] {
            let e = validate(
                ApiKind::Logs,
                false,
                &body(&format!(r#","buffering":{{"{field}":{bad}}}"#)),
            )
            .unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(e.error_type, "Logs.ValidationError");
            assert!(e.message.contains(field), "{}", e.message);
        }
    }

    #[test]
    fn telemetry_requires_a_schema_and_managed_instances_require_2025_01_29() {
        let e = validate(ApiKind::Telemetry, false, &body("")).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.error_type.as_str()),
            (400, "ValidationError")
        );
        assert!(
            validate(
                ApiKind::Telemetry,
                false,
                &body(r#","schemaVersion":"2022-12-13""#)
            )
            .is_ok()
        );
        assert!(
            validate(
                ApiKind::Telemetry,
                true,
                &body(r#","schemaVersion":"2022-12-13""#)
            )
            .is_err()
        );
        assert!(
            validate(
                ApiKind::Telemetry,
                true,
                &body(r#","schemaVersion":"2025-01-29""#)
            )
            .is_ok()
        );
    }

    #[test]
    fn empty_or_unknown_types_and_bad_destinations_are_refused() {
        let e = validate(ApiKind::Logs, false, br#"{"types":[],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1"}}"#)
            .unwrap_err();
        assert!(e.message.contains("types should not be empty"));
        assert!(validate(ApiKind::Logs, false, br#"{"types":["bogus"],"destination":{"protocol":"HTTP","URI":"http://sandbox:1"}}"#).is_err());
        let no_port = validate(ApiKind::Logs, false, br#"{"types":["platform"],"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain"}}"#).unwrap_err();
        assert_eq!(no_port.message, "URI port is not provided");
        assert!(validate(ApiKind::Logs, false, br#"{"types":["platform"],"destination":{"protocol":"HTTP","URI":"http://localhost:8080"}}"#).is_err());
    }
}
