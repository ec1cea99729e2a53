//! What a run is expected to do: the failures it tolerates and bounds on its figures. A leaf: the
//! settings, the CLI and scenario files carry it, the verdict applies it.

use serde::{Deserialize, Serialize};

/// What a run may get wrong without failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tolerate {
    /// Lines the extension acknowledged (200) that are not in S3.
    LostAfterAck,
    /// Lines Lambda dropped (reported in `platform.logsDropped`).
    DroppedByLambda,
    /// Lines the extension never acknowledged (still held, or refused, at the end).
    Unacknowledged,
    /// Lines found in S3 more than once.
    Duplicate,
    /// Objects that are not NDJSON of Lambda records.
    BadObject,
    /// Invokes that timed out.
    Timeout,
    /// Extension processes that exited before SHUTDOWN.
    Crash,
    /// Extension processes killed at the shutdown deadline.
    Kill,
}

impl Tolerate {
    pub const ALL: [Tolerate; 8] = [
        Tolerate::LostAfterAck,
        Tolerate::DroppedByLambda,
        Tolerate::Unacknowledged,
        Tolerate::Duplicate,
        Tolerate::BadObject,
        Tolerate::Timeout,
        Tolerate::Crash,
        Tolerate::Kill,
    ];

    /// The kebab-case name (as in `--tolerate` and scenario files).
    pub fn name(self) -> &'static str {
        match self {
            Tolerate::LostAfterAck => "lost-after-ack",
            Tolerate::DroppedByLambda => "dropped-by-lambda",
            Tolerate::Unacknowledged => "unacknowledged",
            Tolerate::Duplicate => "duplicate",
            Tolerate::BadObject => "bad-object",
            Tolerate::Timeout => "timeout",
            Tolerate::Crash => "crash",
            Tolerate::Kill => "kill",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.name()).collect();
                format!("unknown tolerance {s:?}; one of {}", names.join(", "))
            })
    }
}

/// What a run is expected to do: the tolerated failures and bounds on its figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Expect {
    pub tolerate: Vec<Tolerate>,
    /// Post-runtime duration p99 over successful invokes, at most.
    pub max_post_runtime_p99_ms: Option<f64>,
    /// PUT-class S3 requests per MB of logs in S3, at most.
    pub max_puts_per_mb: Option<f64>,
    pub min_objects: Option<usize>,
    pub max_objects: Option<usize>,
    /// Lines processing rules must drop: a function line containing one of these is expected
    /// absent from S3 (not lost), and a failure if it is there.
    pub absent_lines: Vec<String>,
    /// Lines processing rules may drop (sampled): absent is not lost, present is fine.
    pub optional_lines: Vec<String>,
    /// Strings no object in S3 may contain (what processing rules mask): each is counted.
    pub forbidden: Vec<String>,
}
