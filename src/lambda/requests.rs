//! Request bodies of the Lambda APIs, as plain values. The subscription is the one seam between the
//! Logs API (the Go sample's) and the Telemetry API (a later issue).

use crate::config::LogType;
use serde_json::{Value, json};

pub const EXTENSIONS_API: &str = "2020-01-01";
pub const REGISTER_PATH: &str = "/2020-01-01/extension/register";
pub const NEXT_PATH: &str = "/2020-01-01/extension/event/next";
pub const INIT_ERROR_PATH: &str = "/2020-01-01/extension/init/error";
pub const EXIT_ERROR_PATH: &str = "/2020-01-01/extension/exit/error";

/// The API that delivers the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogsApi {
    /// Logs API 2020-08-15 with schema 2021-03-18 (which adds `platform.runtimeDone`).
    Logs,
}

impl LogsApi {
    pub fn path(self) -> &'static str {
        match self {
            LogsApi::Logs => "/2020-08-15/logs",
        }
    }

    pub fn schema(self) -> &'static str {
        match self {
            LogsApi::Logs => "2021-03-18",
        }
    }
}

/// How Lambda should batch deliveries to us: the documented minima, so records arrive quickly
/// and in small pieces (Datadog and OTel use the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffering {
    pub max_items: u32,
    pub max_bytes: u32,
    pub timeout_ms: u32,
}

pub const DEFAULT_BUFFERING: Buffering = Buffering {
    max_items: 1000,
    max_bytes: 262_144,
    timeout_ms: 25,
};

/// A subscription request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub api: LogsApi,
    pub types: Vec<LogType>,
    pub buffering: Buffering,
    /// Our listener's port; the URI names `sandbox.localdomain`, as Lambda documents.
    pub port: u16,
}

impl Subscription {
    pub fn body(&self) -> Value {
        json!({
            "schemaVersion": self.api.schema(),
            "types": self.types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "buffering": {
                "maxItems": self.buffering.max_items,
                "maxBytes": self.buffering.max_bytes,
                "timeoutMs": self.buffering.timeout_ms,
            },
            "destination": {"protocol": "HTTP", "URI": format!("http://sandbox.localdomain:{}", self.port)},
        })
    }
}

/// `{"events": [...]}` for register.
pub fn register_body(invoke: bool) -> Value {
    if invoke {
        json!({"events": ["INVOKE", "SHUTDOWN"]})
    } else {
        json!({"events": ["SHUTDOWN"]})
    }
}

/// The optional body of `init/error` and `exit/error`.
pub fn error_body(error_type: &str, message: &str) -> Value {
    json!({"errorMessage": message, "errorType": error_type})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_subscription_body() {
        let s = Subscription {
            api: LogsApi::Logs,
            types: vec![LogType::Platform, LogType::Function],
            buffering: DEFAULT_BUFFERING,
            port: 1234,
        };
        assert_eq!(
            s.body(),
            json!({"schemaVersion":"2021-03-18","types":["platform","function"],
                   "buffering":{"maxItems":1000,"maxBytes":262144,"timeoutMs":25},
                   "destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:1234"}})
        );
        assert_eq!(s.api.path(), "/2020-08-15/logs");
    }
}
