//! What the platform emits, and how each subscriber sees it.
//!
//! The platform emits one [`Event`]; every subscriber renders it through its own [`View`] (Logs API
//! or Telemetry API, schema version, log format), because the same moment looks different on each
//! API: the Logs API has `platform.end` and gets `platform.runtimeDone` only with schema `2021-03-18`,
//! the Telemetry API has the `platform.init*` events, and under the JSON log format Telemetry
//! `function` records are objects (spec §2.4, §3.3–3.5).

use crate::clock::iso_ms;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::SystemTime;

/// Which of the two mutually exclusive log APIs a subscriber used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiKind {
    Logs,
    Telemetry,
}

/// The three subscribable categories of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Platform,
    Function,
    Extension,
}

impl Category {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "platform" => Some(Self::Platform),
            "function" => Some(Self::Function),
            "extension" => Some(Self::Extension),
            _ => None,
        }
    }

    pub fn of_type(record_type: &str) -> Self {
        match record_type {
            "function" => Self::Function,
            "extension" => Self::Extension,
            _ => Self::Platform,
        }
    }
}

/// The metrics of a `platform.report`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportMetrics {
    pub duration_ms: f64,
    pub billed_duration_ms: u64,
    pub memory_size_mb: u64,
    pub max_memory_used_mb: u64,
    pub init_duration_ms: Option<f64>,
    /// SnapStart: the first report after a restore.
    pub restore_duration_ms: Option<f64>,
    /// Managed Instances report only `durationMs` (spec §5.1).
    pub managed_instances: bool,
}

/// One line the simulated function writes.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionLine {
    pub request_id: Option<String>,
    pub message: String,
    /// The function runs with `LogFormat: JSON`.
    pub json: bool,
}

/// Something the platform records at one moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    InitStart {
        initialization_type: String,
        phase: &'static str,
        function_name: String,
        function_version: String,
    },
    InitRuntimeDone {
        initialization_type: String,
        phase: &'static str,
        status: &'static str,
    },
    InitReport {
        initialization_type: String,
        phase: &'static str,
        duration_ms: f64,
    },
    /// SnapStart: the environment is being restored from a snapshot (Telemetry only).
    RestoreStart {
        function_name: String,
        function_version: String,
    },
    RestoreRuntimeDone,
    RestoreReport {
        duration_ms: f64,
    },
    Start {
        request_id: String,
        version: String,
    },
    RuntimeDone {
        request_id: String,
        status: &'static str,
        duration_ms: f64,
        produced_bytes: u64,
    },
    /// Logs API only.
    End {
        request_id: String,
    },
    Report {
        request_id: String,
        status: &'static str,
        error_type: Option<String>,
        metrics: ReportMetrics,
    },
    ExtensionState {
        name: String,
        state: &'static str,
        events: Vec<String>,
    },
    Subscription {
        api: ApiKind,
        name: String,
        state: &'static str,
        types: Vec<String>,
    },
    LogsDropped {
        records: u64,
        bytes: u64,
        reason: String,
    },
    Function(FunctionLine),
    /// One line an extension wrote to stdout or stderr; `json`: the function's log format is JSON.
    ExtensionLog {
        line: String,
        json: bool,
    },
}

/// How one subscriber sees events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub api: ApiKind,
    pub schema: String,
}

/// The Logs API schema that adds `platform.runtimeDone`.
pub const LOGS_SCHEMA_WITH_RUNTIME_DONE: &str = "2021-03-18";

impl Event {
    /// The `type` field, as this view names it; `None` when the view never receives this event.
    pub fn type_for(&self, view: &View) -> Option<&'static str> {
        let telemetry = view.api == ApiKind::Telemetry;
        Some(match self {
            Event::InitStart { .. } if telemetry => "platform.initStart",
            Event::InitRuntimeDone { .. } if telemetry => "platform.initRuntimeDone",
            Event::InitReport { .. } if telemetry => "platform.initReport",
            Event::RestoreStart { .. } if telemetry => "platform.restoreStart",
            Event::RestoreRuntimeDone if telemetry => "platform.restoreRuntimeDone",
            Event::RestoreReport { .. } if telemetry => "platform.restoreReport",
            Event::InitStart { .. }
            | Event::InitRuntimeDone { .. }
            | Event::InitReport { .. }
            | Event::RestoreStart { .. }
            | Event::RestoreRuntimeDone
            | Event::RestoreReport { .. } => {
                return None;
            }
            Event::Start { .. } => "platform.start",
            Event::RuntimeDone { .. }
                if telemetry || view.schema == LOGS_SCHEMA_WITH_RUNTIME_DONE =>
            {
                "platform.runtimeDone"
            }
            Event::RuntimeDone { .. } => return None,
            Event::End { .. } if !telemetry => "platform.end",
            Event::End { .. } => return None,
            Event::Report { .. } => "platform.report",
            Event::ExtensionState { .. } => "platform.extension",
            Event::Subscription {
                api: ApiKind::Logs, ..
            } => "platform.logsSubscription",
            Event::Subscription {
                api: ApiKind::Telemetry,
                ..
            } => "platform.telemetrySubscription",
            Event::LogsDropped { .. } => "platform.logsDropped",
            Event::Function(_) => "function",
            Event::ExtensionLog { .. } => "extension",
        })
    }

    /// The complete `{time,type,record}` JSON text this view receives, or `None`.
    pub fn render(&self, view: &View, time: SystemTime) -> Option<String> {
        let record_type = self.type_for(view)?;
        let record = self.record(view, time);
        // Built by hand so the keys keep Lambda's order (time, type, record).
        Some(format!(
            r#"{{"time":"{}","type":"{}","record":{}}}"#,
            iso_ms(time),
            record_type,
            record
        ))
    }

    /// `platform.report`'s record: Managed Instances report only the duration; `status` is the
    /// Telemetry API's (the Logs API has none).
    fn report_record(
        request_id: &str,
        status: &str,
        error_type: Option<&str>,
        metrics: &ReportMetrics,
        telemetry: bool,
    ) -> Value {
        let m = if metrics.managed_instances {
            json!({"durationMs": round3(metrics.duration_ms)})
        } else {
            let mut m = json!({
                "durationMs": round3(metrics.duration_ms),
                "billedDurationMs": metrics.billed_duration_ms,
                "memorySizeMB": metrics.memory_size_mb,
                "maxMemoryUsedMB": metrics.max_memory_used_mb,
            });
            if let Some(init) = metrics.init_duration_ms {
                m["initDurationMs"] = json!(round3(init));
            }
            if let Some(restore) = metrics.restore_duration_ms {
                m["restoreDurationMs"] = json!(round3(restore));
            }
            m
        };
        let mut r = json!({"requestId": request_id, "metrics": m});
        if telemetry {
            r["status"] = json!(status);
        }
        if let Some(e) = error_type {
            r["errorType"] = json!(e);
        }
        r
    }

    fn record(&self, view: &View, time: SystemTime) -> Value {
        let telemetry = view.api == ApiKind::Telemetry;
        match self {
            Event::InitStart {
                initialization_type,
                phase,
                function_name,
                function_version,
            } => json!({
                "initializationType": initialization_type, "phase": phase,
                "functionName": function_name, "functionVersion": function_version,
                "runtimeVersion": "provided:al2023.emulated",
            }),
            Event::InitRuntimeDone {
                initialization_type,
                phase,
                status,
            } => {
                json!({"initializationType": initialization_type, "phase": phase, "status": status})
            }
            Event::InitReport {
                initialization_type,
                phase,
                duration_ms,
            } => json!({
                "initializationType": initialization_type, "phase": phase,
                "metrics": {"durationMs": round3(*duration_ms)},
            }),
            Event::RestoreStart {
                function_name,
                function_version,
            } => json!({
                "runtimeVersion": "provided:al2023.emulated",
                "functionName": function_name,
                "functionVersion": function_version,
            }),
            Event::RestoreRuntimeDone => json!({"status": "success"}),
            Event::RestoreReport { duration_ms } => {
                json!({"status": "success", "metrics": {"durationMs": round3(*duration_ms)}})
            }
            Event::Start {
                request_id,
                version,
            } => json!({"requestId": request_id, "version": version}),
            Event::RuntimeDone {
                request_id,
                status,
                duration_ms,
                produced_bytes,
            } => {
                if telemetry {
                    json!({"requestId": request_id, "status": status,
                           "metrics": {"durationMs": round3(*duration_ms), "producedBytes": produced_bytes}})
                } else {
                    json!({"requestId": request_id, "status": status})
                }
            }
            Event::End { request_id } => json!({"requestId": request_id}),
            Event::Report {
                request_id,
                status,
                error_type,
                metrics,
            } => Self::report_record(
                request_id,
                status,
                error_type.as_deref(),
                metrics,
                telemetry,
            ),
            Event::ExtensionState {
                name,
                state,
                events,
            } => json!({"name": name, "state": state, "events": events}),
            Event::Subscription {
                name, state, types, ..
            } => json!({"name": name, "state": state, "types": types}),
            Event::LogsDropped {
                records,
                bytes,
                reason,
            } => {
                json!({"reason": reason, "droppedRecords": records, "droppedBytes": bytes})
            }
            Event::Function(line) => function_record(line, telemetry, time),
            Event::ExtensionLog { line, json } => extension_record(line, *json, telemetry, time),
        }
    }
}

fn function_record(line: &FunctionLine, telemetry: bool, time: SystemTime) -> Value {
    if !line.json {
        // The managed runtimes' text format: timestamp, request id, level, message, tab-separated
        // (spec §3.5); a line written outside a request has no id.
        let text = match &line.request_id {
            Some(id) => format!("{}\t{id}\tINFO\t{}", iso_ms(time), line.message),
            None => line.message.clone(),
        };
        // The Logs API documents function records as whole lines, newline included.
        return if telemetry {
            json!(text)
        } else {
            json!(format!("{text}\n"))
        };
    }
    let mut obj = json!({"timestamp": iso_ms(time), "level": "INFO", "message": line.message});
    if let Some(id) = &line.request_id {
        obj["requestId"] = json!(id);
    }
    // Telemetry (schema 2022-12-13 and later) delivers JSON lines as objects; the Logs API as text.
    if telemetry {
        obj
    } else {
        json!(format!("{obj}\n"))
    }
}

/// An extension's line. Under the JSON log format the Telemetry API delivers a line that is a JSON
/// object as that object, and wraps any other line as `{timestamp, level, message}` (spec §3.5:
/// observed for `function` records; extensions' lines go the same way, inferred).
fn extension_record(line: &str, json: bool, telemetry: bool, time: SystemTime) -> Value {
    if !(json && telemetry) {
        return json!(line);
    }
    match serde_json::from_str::<Value>(line) {
        Ok(obj @ Value::Object(_)) => obj,
        _ => json!({"timestamp": iso_ms(time), "level": "INFO", "message": line}),
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_597_926_692_123)
    }
    fn logs(schema: &str) -> View {
        View {
            api: ApiKind::Logs,
            schema: schema.into(),
        }
    }
    fn telemetry() -> View {
        View {
            api: ApiKind::Telemetry,
            schema: "2022-12-13".into(),
        }
    }

    #[test]
    fn logs_api_function_line_matches_the_documented_sample() {
        let ev = Event::Function(FunctionLine {
            request_id: None,
            message: "Hello World".into(),
            json: false,
        });
        assert_eq!(
            ev.render(&logs("2020-08-15"), at()).unwrap(),
            r#"{"time":"2020-08-20T12:31:32.123Z","type":"function","record":"Hello World\n"}"#
        );
    }

    #[test]
    fn runtime_done_only_for_telemetry_and_logs_schema_2021_03_18() {
        let ev = Event::RuntimeDone {
            request_id: "r".into(),
            status: "success",
            duration_ms: 1.0,
            produced_bytes: 0,
        };
        assert!(ev.render(&logs("2020-08-15"), at()).is_none());
        assert_eq!(
            ev.render(&logs("2021-03-18"), at()).unwrap(),
            r#"{"time":"2020-08-20T12:31:32.123Z","type":"platform.runtimeDone","record":{"requestId":"r","status":"success"}}"#
        );
        assert!(
            ev.render(&telemetry(), at())
                .unwrap()
                .contains(r#""producedBytes":0"#)
        );
    }

    #[test]
    fn end_is_logs_only_and_init_events_telemetry_only() {
        let end = Event::End {
            request_id: "r".into(),
        };
        assert!(end.render(&telemetry(), at()).is_none());
        assert!(end.render(&logs("2021-03-18"), at()).is_some());
        let init = Event::InitReport {
            initialization_type: "on-demand".into(),
            phase: "init",
            duration_ms: 3.0,
        };
        assert!(init.render(&logs("2021-03-18"), at()).is_none());
        assert!(init.render(&telemetry(), at()).is_some());
    }

    #[test]
    fn json_format_function_records_are_objects_on_telemetry_and_text_on_logs() {
        let line = FunctionLine {
            request_id: Some("abc".into()),
            message: "hi".into(),
            json: true,
        };
        let t = Event::Function(line.clone())
            .render(&telemetry(), at())
            .unwrap();
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["record"]["message"], "hi");
        assert_eq!(v["record"]["requestId"], "abc");
        let l = Event::Function(line)
            .render(&logs("2021-03-18"), at())
            .unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        assert!(v["record"].as_str().unwrap().ends_with("}\n"));
    }

    #[test]
    fn text_function_lines_carry_timestamp_request_id_and_level() {
        let ev = Event::Function(FunctionLine {
            request_id: Some("8476a536-e9f4-11e8-9739-2dfe598c3fcd".into()),
            message: "Hello".into(),
            json: false,
        });
        assert_eq!(
            ev.render(&telemetry(), at()).unwrap(),
            "{\"time\":\"2020-08-20T12:31:32.123Z\",\"type\":\"function\",\"record\":\"2020-08-20T12:31:32.123Z\\t8476a536-e9f4-11e8-9739-2dfe598c3fcd\\tINFO\\tHello\"}"
        );
    }

    #[test]
    fn json_format_extension_lines_are_objects_or_wrapped_on_telemetry() {
        let obj = Event::ExtensionLog {
            line: r#"{"level":"info","msg":"shipped"}"#.into(),
            json: true,
        };
        let v: Value = serde_json::from_str(&obj.render(&telemetry(), at()).unwrap()).unwrap();
        assert_eq!(v["record"], json!({"level": "info", "msg": "shipped"}));
        let text = Event::ExtensionLog {
            line: "plain".into(),
            json: true,
        };
        let v: Value = serde_json::from_str(&text.render(&telemetry(), at()).unwrap()).unwrap();
        assert_eq!(v["record"]["message"], "plain");
        assert_eq!(v["record"]["level"], "INFO");
        let v: Value =
            serde_json::from_str(&text.render(&logs("2021-03-18"), at()).unwrap()).unwrap();
        assert_eq!(v["record"], "plain", "the Logs API keeps text");
        let off = Event::ExtensionLog {
            line: "{}".into(),
            json: false,
        };
        let v: Value = serde_json::from_str(&off.render(&telemetry(), at()).unwrap()).unwrap();
        assert_eq!(v["record"], "{}");
    }

    #[test]
    fn managed_instances_report_has_duration_only() {
        let metrics = ReportMetrics {
            duration_ms: 2.5,
            billed_duration_ms: 3,
            memory_size_mb: 128,
            max_memory_used_mb: 40,
            init_duration_ms: None,
            restore_duration_ms: None,
            managed_instances: true,
        };
        let ev = Event::Report {
            request_id: "r".into(),
            status: "success",
            error_type: None,
            metrics,
        };
        let v: Value = serde_json::from_str(&ev.render(&telemetry(), at()).unwrap()).unwrap();
        assert_eq!(v["record"]["metrics"], json!({"durationMs": 2.5}));
        assert_eq!(v["record"]["status"], "success");
    }
}
