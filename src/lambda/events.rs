//! Events returned by `event/next` (spec §1.3).

use serde::Deserialize;

/// An event of the Extensions API. Unknown fields are ignored; `tracing` may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "eventType", rename_all = "UPPERCASE")]
pub enum NextEvent {
    Invoke {
        #[serde(rename = "requestId")]
        request_id: String,
        /// Epoch milliseconds at which the invoke times out.
        #[serde(rename = "deadlineMs")]
        deadline_ms: i64,
    },
    Shutdown {
        /// `spindown`, `timeout`, `failure` (any case; unknown values kept).
        #[serde(rename = "shutdownReason", default)]
        shutdown_reason: String,
        /// Epoch milliseconds at which Lambda kills the process.
        #[serde(rename = "deadlineMs")]
        deadline_ms: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_invoke_without_and_with_tracing() {
        let with = r#"{"eventType":"INVOKE","deadlineMs":1700000060123,"requestId":"3da1f2dc-3222-475e-9205-e2e6c6318895","invokedFunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:ExtensionTest","tracing":{"type":"X-Amzn-Trace-Id","value":"Root=1-5f35ae12-0c0fec141ab77a00bc047aa2;Parent=2be948a625588e32;Sampled=1"}}"#;
        let without = r#"{"eventType":"INVOKE","deadlineMs":1700000060123,"requestId":"r","invokedFunctionArn":"arn"}"#;
        assert_eq!(
            serde_json::from_str::<NextEvent>(with).unwrap(),
            NextEvent::Invoke {
                request_id: "3da1f2dc-3222-475e-9205-e2e6c6318895".into(),
                deadline_ms: 1_700_000_060_123
            }
        );
        assert!(matches!(
            serde_json::from_str::<NextEvent>(without).unwrap(),
            NextEvent::Invoke { .. }
        ));
    }

    #[test]
    fn parses_shutdown_in_either_case() {
        for reason in ["spindown", "SPINDOWN", "timeout", "somethingNew"] {
            let e: NextEvent = serde_json::from_str(&format!(
                r#"{{"eventType":"SHUTDOWN","shutdownReason":"{reason}","deadlineMs":1700000062000}}"#
            ))
            .unwrap();
            assert_eq!(
                e,
                NextEvent::Shutdown {
                    shutdown_reason: reason.into(),
                    deadline_ms: 1_700_000_062_000
                }
            );
        }
    }
}
