//! The extension's own health as CloudWatch embedded metric format (EMF) lines: JSON on stdout that
//! CloudWatch Logs turns into metrics. Pure: the values and the time are passed in.
//!
//! Namespace `AdaptiveBatchingExtension`, dimension `FunctionName`. One line per shipped object
//! (`RecordsShipped`, `BytesShipped`, `UploadMilliseconds`, `Retries`) and one at shutdown
//! (`RecordsReceived`, `RecordsShipped`, `Spilled`, `Refused`, `Malformed`, `LambdaDropped`,
//! `RecordsFiltered`, …), with one more per processing rule, dimensions `FunctionName` and `Rule`
//! (`RecordsExcluded`, `RecordsSampledOut`, `RecordsMasked`). When the `extension` log type is
//! subscribed these lines come back to us; they are recognised by [`is_own_metrics_record`] and
//! never shipped.

use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "AdaptiveBatchingExtension";

/// One EMF line: `metrics` are (name, value, unit).
pub fn emf_line(function_name: &str, timestamp_ms: i64, metrics: &[(&str, f64, &str)]) -> String {
    emf_line_with(function_name, &[], timestamp_ms, metrics)
}

/// One EMF line with more dimensions than `FunctionName` (name, value): a processing rule's line
/// has `Rule`, so CloudWatch keeps one series per rule.
pub fn emf_line_with(
    function_name: &str,
    dimensions: &[(&str, &str)],
    timestamp_ms: i64,
    metrics: &[(&str, f64, &str)],
) -> String {
    let mut names = vec!["FunctionName"];
    names.extend(dimensions.iter().map(|(n, _)| *n));
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [names], "Metrics": definitions}],
        }),
    );
    root.insert("FunctionName".into(), json!(function_name));
    for (name, value) in dimensions {
        root.insert((*name).into(), json!(value));
    }
    for (name, value, _) in metrics {
        root.insert((*name).into(), json!(value));
    }
    Value::Object(root).to_string()
}

/// Where EMF lines go: stdout, which Lambda sends to CloudWatch Logs. The one place either actor's
/// lines (an object shipped, the shutdown summary) are printed; everything else here is pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emf {
    function_name: String,
}

impl Emf {
    /// Lines with `function_name` as the `FunctionName` dimension.
    pub fn new(function_name: String) -> Self {
        Self { function_name }
    }

    /// Prints one line of `metrics` (name, value, unit), stamped now.
    pub fn print(&self, metrics: &[(&str, f64, &str)]) {
        self.print_with(&[], metrics);
    }

    /// Prints one line of `metrics` with more `dimensions` (name, value), stamped now.
    pub fn print_with(&self, dimensions: &[(&str, &str)], metrics: &[(&str, f64, &str)]) {
        println!(
            "{}",
            emf_line_with(
                &self.function_name,
                dimensions,
                chrono::Utc::now().timestamp_millis(),
                metrics
            )
        );
    }
}

/// Whether a delivered record is one of our own EMF lines coming back as an `extension` record.
pub fn is_own_metrics_record(raw: &[u8]) -> bool {
    let has = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    has(b"\"type\":\"extension\"") && has(b"_aws") && has(NAMESPACE.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The EMF specification's required fields.
    fn assert_valid_emf(line: &str) {
        let v: Value = serde_json::from_str(line).unwrap();
        let aws = &v["_aws"];
        assert!(aws["Timestamp"].is_i64());
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert!(!directives.is_empty());
        for d in directives {
            assert!(d["Namespace"].as_str().is_some_and(|n| !n.is_empty()));
            for set in d["Dimensions"].as_array().unwrap() {
                for dim in set.as_array().unwrap() {
                    assert!(
                        v.get(dim.as_str().unwrap()).is_some_and(Value::is_string),
                        "dimension {dim} is a top-level string"
                    );
                }
            }
            for m in d["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                assert!(v[name].is_number(), "metric {name} is a top-level number");
            }
        }
    }

    #[test]
    fn lines_follow_the_emf_specification() {
        let line = emf_line(
            "demo-fn",
            1_700_000_000_000,
            &[
                ("RecordsShipped", 19.0, "Count"),
                ("UploadMilliseconds", 4.0, "Milliseconds"),
            ],
        );
        assert_valid_emf(&line);
        assert!(line.contains(r#""FunctionName":"demo-fn""#));
        let rule = emf_line_with(
            "demo-fn",
            &[("Rule", "aws-keys")],
            1_700_000_000_000,
            &[("RecordsMasked", 7.0, "Count")],
        );
        assert_valid_emf(&rule);
        assert!(rule.contains(r#""Dimensions":[["FunctionName","Rule"]]"#));
        assert!(rule.contains(r#""Rule":"aws-keys""#));
    }

    #[test]
    fn our_lines_are_recognised_when_they_come_back() {
        let line = emf_line("f", 1, &[("Refused", 0.0, "Count")]);
        let as_text =
            serde_json::to_string(&json!({"time": "t", "type": "extension", "record": line}))
                .unwrap();
        assert!(is_own_metrics_record(as_text.as_bytes()));
        let as_object = format!(r#"{{"time":"t","type":"extension","record":{line}}}"#);
        assert!(is_own_metrics_record(as_object.as_bytes()));
        assert!(!is_own_metrics_record(
            br#"{"time":"t","type":"function","record":"_aws AdaptiveBatchingExtension"}"#
        ));
        assert!(!is_own_metrics_record(
            br#"{"time":"t","type":"extension","record":"registered"}"#
        ));
    }
}
