//! Request bodies of the Lambda APIs, as plain values. The subscription (its settings are the
//! configuration's `Subscription` section) is the one seam between the Logs API (the Go sample's)
//! and the Telemetry API.

#[cfg(test)]
use crate::config::LogType;
pub use crate::config::{LogsApi, Subscription};
use serde_json::{Value, json};

pub const EXTENSIONS_API: &str = "2020-01-01";
pub const REGISTER_PATH: &str = "/2020-01-01/extension/register";
pub const NEXT_PATH: &str = "/2020-01-01/extension/event/next";
pub const INIT_ERROR_PATH: &str = "/2020-01-01/extension/init/error";
pub const EXIT_ERROR_PATH: &str = "/2020-01-01/extension/exit/error";

impl LogsApi {
    pub fn path(self) -> &'static str {
        match self {
            LogsApi::Logs => "/2020-08-15/logs",
            LogsApi::Telemetry { .. } => "/2022-07-01/telemetry",
        }
    }

    pub fn schema(self) -> &'static str {
        match self {
            LogsApi::Logs => "2021-03-18",
            LogsApi::Telemetry {
                managed_instances: false,
            } => "2022-12-13",
            LogsApi::Telemetry {
                managed_instances: true,
            } => "2025-01-29",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            LogsApi::Logs => "logs",
            LogsApi::Telemetry { .. } => "telemetry",
        }
    }
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
            buffering: crate::config::DEFAULT_BUFFERING,
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

    #[test]
    fn telemetry_subscription_schema_depends_on_managed_instances() {
        let mut s = Subscription {
            api: LogsApi::Telemetry {
                managed_instances: false,
            },
            types: vec![LogType::Function],
            buffering: crate::config::DEFAULT_BUFFERING,
            port: 4321,
        };
        assert_eq!(s.body()["schemaVersion"], "2022-12-13");
        assert_eq!(s.api.path(), "/2022-07-01/telemetry");
        s.api = LogsApi::Telemetry {
            managed_instances: true,
        };
        assert_eq!(s.body()["schemaVersion"], "2025-01-29");
        assert_eq!(
            s.body()["destination"]["URI"],
            "http://sandbox.localdomain:4321"
        );
    }
}
