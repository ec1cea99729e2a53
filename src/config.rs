//! Configuration from environment variables: every variable is a constant here, parsed once through
//! the [`Env`] seam (tests pass a map and never touch the process environment) into types that cannot
//! be misused. [`Config`] is a set of sections, one per consumer (`sections.rs`): each is exactly the
//! settings struct its consumer takes, with every value derived from the variables computed there.
//!
//! Rules (the README's configuration table says the same):
//! * the bucket is required and must follow S3's bucket naming rules, else [`ConfigError`]
//!   (reported to Lambda through `init/error`);
//! * numbers that do not parse or are out of range fall back to the default with one warning naming
//!   the variable, the value and the default (the Go sample's behaviour, made visible); the bytes rate
//!   above 100 MiB is clamped with a warning;
//! * `LOG_TYPES` falls back to the default on anything but a non-empty JSON array of strings, drops
//!   unknown entries and duplicates, and warns once per case;
//! * booleans accept `true`/`false` (any case); anything else is a [`ConfigError`], since guessing
//!   the intent of a typo in a switch is worse than saying so at deploy time;
//! * an unknown log level falls back to `info` with a warning.
//!
//! This module knows nothing of actix, awc or the AWS SDK.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::time::Duration;

pub const ENV_S3_BUCKET: &str = "ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET";
pub const ENV_SHIP_RATE_BYTES: &str = "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_BYTES";
pub const ENV_SHIP_RATE_INVOKES: &str = "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_INVOKES";
pub const ENV_SHIP_RATE_MILLISECONDS: &str = "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_MILLISECONDS";
pub const ENV_LOG_TYPES: &str = "ADAPTIVE_BATCHING_EXTENSION_LOG_TYPES";
pub const ENV_LISTENER_PORT: &str = "ADAPTIVE_BATCHING_EXTENSION_LISTENER_PORT";
pub const ENV_S3_FORCE_PATH_STYLE: &str = "ADAPTIVE_BATCHING_EXTENSION_S3_FORCE_PATH_STYLE";
pub const ENV_CREATE_BUCKET: &str = "ADAPTIVE_BATCHING_EXTENSION_CREATE_BUCKET";
pub const ENV_LOG_LEVEL: &str = "ADAPTIVE_BATCHING_EXTENSION_LOG_LEVEL";
pub const ENV_API: &str = "ADAPTIVE_BATCHING_EXTENSION_API";
pub const ENV_BUFFER_MAX_ITEMS: &str = "ADAPTIVE_BATCHING_EXTENSION_BUFFER_MAX_ITEMS";
pub const ENV_BUFFER_MAX_BYTES: &str = "ADAPTIVE_BATCHING_EXTENSION_BUFFER_MAX_BYTES";
pub const ENV_BUFFER_TIMEOUT_MS: &str = "ADAPTIVE_BATCHING_EXTENSION_BUFFER_TIMEOUT_MS";
pub const ENV_COMPRESSION: &str = "ADAPTIVE_BATCHING_EXTENSION_COMPRESSION";
pub const ENV_COMPRESSION_LEVEL: &str = "ADAPTIVE_BATCHING_EXTENSION_COMPRESSION_LEVEL";
pub const ENV_FORMAT: &str = "ADAPTIVE_BATCHING_EXTENSION_FORMAT";
pub const ENV_KEY_TEMPLATE: &str = "ADAPTIVE_BATCHING_EXTENSION_KEY_TEMPLATE";
pub const ENV_SSE: &str = "ADAPTIVE_BATCHING_EXTENSION_SSE";
pub const ENV_SSE_KMS_KEY_ID: &str = "ADAPTIVE_BATCHING_EXTENSION_SSE_KMS_KEY_ID";
pub const ENV_STORAGE_CLASS: &str = "ADAPTIVE_BATCHING_EXTENSION_STORAGE_CLASS";
pub const ENV_METRICS: &str = "ADAPTIVE_BATCHING_EXTENSION_METRICS";
pub const ENV_SHIP_AT: &str = "ADAPTIVE_BATCHING_EXTENSION_SHIP_AT";
pub const ENV_NEXT_WAIT_MS: &str = "ADAPTIVE_BATCHING_EXTENSION_NEXT_WAIT_MS";
pub const ENV_MAX_DELAY_MS: &str = "ADAPTIVE_BATCHING_EXTENSION_MAX_DELAY_MS";
pub const ENV_PROFILE: &str = "ADAPTIVE_BATCHING_EXTENSION_PROFILE";
pub const ENV_PROCESSING_RULES: &str = "ADAPTIVE_BATCHING_EXTENSION_PROCESSING_RULES";
/// The default freshness bound, in multiples of `SHIP_RATE_MILLISECONDS`.
pub const DEFAULT_MAX_DELAY_FACTOR: u64 = 3;

/// What `PROFILE=economy` sets, unless the variable is set explicitly: objects of at least 1 MiB of
/// logs (gzip makes them about 8 times smaller), shipped at least every minute while the environment
/// runs, whatever the number of invokes. Measured (README, "Cost"): about 1,000 PUT requests per GB
/// of logs, against 200,000 or more at the sample's 4 KiB.
pub const ECONOMY: [(&str, &str); 4] = [
    (ENV_SHIP_RATE_BYTES, "1048576"),
    (ENV_SHIP_RATE_INVOKES, "100000"),
    (ENV_SHIP_RATE_MILLISECONDS, "60000"),
    (ENV_COMPRESSION, "gzip"),
];
/// The economy profile with `FORMAT=parquet`: the same thresholds, and no gzip, for a Parquet
/// file compresses its pages with zstd unless `COMPRESSION` says otherwise.
pub const ECONOMY_PARQUET: [(&str, &str); 3] = [ECONOMY[0], ECONOMY[1], ECONOMY[2]];
/// The longest `NEXT_WAIT_MS`: Lambda's longest function timeout.
pub const MAX_NEXT_WAIT_MS: u64 = 900_000;
pub const ENV_FUNCTION_VERSION: &str = "AWS_LAMBDA_FUNCTION_VERSION";
/// S3's storage classes for PutObject.
pub const STORAGE_CLASSES: [&str; 9] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
];
pub const ENV_MAX_BUFFER_BYTES: &str = "ADAPTIVE_BATCHING_EXTENSION_MAX_BUFFER_BYTES";
pub const ENV_SPILL_DIR: &str = "ADAPTIVE_BATCHING_EXTENSION_SPILL_DIR";
pub const ENV_SPILL_MAX_BYTES: &str = "ADAPTIVE_BATCHING_EXTENSION_SPILL_MAX_BYTES";
/// The temporary directory, when set (it is not on Lambda, where it is `/tmp`).
pub const ENV_TMPDIR: &str = "TMPDIR";
/// The function's memory in MB, which sizes the default memory bound.
pub const ENV_MEMORY_SIZE: &str = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE";
/// Under the environment's temporary directory: `/tmp` on Lambda (`TMPDIR` when set, as an
/// emulator gives each environment its own).
pub const DEFAULT_SPILL_SUBDIR: &str = "adaptive-batching-extension";
/// A quarter of Lambda's default 512 MB of /tmp.
pub const DEFAULT_SPILL_MAX_BYTES: u64 = 128 * 1024 * 1024;

/// The default memory bound for sealed batches: 1/16 of the function's memory (8 MiB at 128 MB),
/// between 1 MiB and 64 MiB. The extension shares the function's memory; 6 % leaves the function
/// its room while holding about 2,000 default-sized batches, far more than a short S3 hiccup makes.
pub fn default_max_buffer_bytes(memory_mb: Option<u64>) -> u64 {
    (memory_mb.unwrap_or(128) * 1024 * 1024 / 16).clamp(1024 * 1024, 64 * 1024 * 1024)
}

/// `lambda-managed-instances` on Lambda Managed Instances (spec §5.1), `snap-start` for SnapStart
/// (spec §5.2; the Lambda Developer Guide's "Defined runtime environment variables").
pub const ENV_INITIALIZATION_TYPE: &str = "AWS_LAMBDA_INITIALIZATION_TYPE";
pub const MANAGED_INSTANCES: &str = "lambda-managed-instances";
pub const SNAP_START: &str = "snap-start";

pub const ENV_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";
pub const ENV_REGION: &str = "AWS_REGION";
/// The SDK's endpoint overrides: when either is set, path-style addressing is the default.
pub const ENV_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
pub const ENV_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// A PEM file of extra root certificates for S3 connections, as the AWS CLI and other SDKs read it.
pub const ENV_CA_BUNDLE: &str = "AWS_CA_BUNDLE";

pub const DEFAULT_SHIP_RATE_BYTES: u64 = 4096;
pub const DEFAULT_SHIP_RATE_INVOKES: u64 = 10;
pub const DEFAULT_SHIP_RATE_MILLISECONDS: u64 = 10_000;
pub const DEFAULT_LISTENER_PORT: u16 = 1234;
/// The sample's documented maximum for the bytes rate.
pub const MAX_SHIP_RATE_BYTES: u64 = 100 * 1024 * 1024;
/// Lambda's Runtime API port: never ours.
pub const RESERVED_PORT: u16 = 9001;

/// Where configuration comes from.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
    /// Every variable's name (to name the ones with the extension's prefix that nothing reads).
    fn names(&self) -> Vec<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// A bucket name that follows S3's naming rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketName(String);

impl BucketName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let b = s.as_bytes();
        if !(3..=63).contains(&b.len()) {
            return Err("must be 3 to 63 characters long".into());
        }
        if !b
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        {
            return Err("may contain only lower-case letters, digits, dots and hyphens".into());
        }
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return Err("must begin and end with a letter or a digit".into());
        }
        if s.contains("..") {
            return Err("must not contain two adjacent dots".into());
        }
        if s.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err("must not be formatted as an IP address".into());
        }
        for p in ["xn--", "sthree-", "amzn-s3-demo-"] {
            if s.starts_with(p) {
                return Err(format!("must not start with {p:?}"));
            }
        }
        for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
            if s.ends_with(suffix) {
                return Err(format!("must not end with {suffix:?}"));
            }
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A log category of the Logs/Telemetry API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogType {
    Platform,
    Function,
    Extension,
}

impl LogType {
    pub fn as_str(self) -> &'static str {
        match self {
            LogType::Platform => "platform",
            LogType::Function => "function",
            LogType::Extension => "extension",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "platform" => Some(LogType::Platform),
            "function" => Some(LogType::Function),
            "extension" => Some(LogType::Extension),
            _ => None,
        }
    }
}

pub const DEFAULT_LOG_TYPES: [LogType; 2] = [LogType::Platform, LogType::Function];

/// How Lambda batches deliveries to us. The defaults are the documented minima, so records arrive
/// quickly and in small pieces (Datadog and OTel use the same).
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
/// AWS's ranges for both APIs: (min, max) of maxItems, maxBytes, timeoutMs.
pub const BUFFER_RANGES: [(u32, u32); 3] = [(1000, 10_000), (262_144, 1_048_576), (25, 30_000)];

/// The extension's own log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

/// When a batch is shipped: any one threshold crossed seals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Bytes of the NDJSON body (records plus their newlines).
    pub bytes: NonZeroU64,
    /// INVOKE events since the last seal.
    pub invokes: NonZeroU64,
    /// Time since the last seal.
    pub elapsed: Duration,
}

/// The validated configuration: one section per consumer (see `sections.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub log_level: LogLevel,
    /// `economy` when that profile was chosen.
    pub profile: Option<&'static str>,
    pub s3: S3Settings,
    pub objects: ObjectSettings,
    pub subscription: Subscription,
    pub intake: IntakeSettings,
    pub shipper: ShipperSettings,
    pub lifecycle: LifecycleSettings,
    /// EMF lines, when `METRICS=emf`.
    pub metrics: Option<crate::metrics::Emf>,
}

/// An environment with a profile's values for the variables it leaves unset.
struct Profiled<'a> {
    env: &'a dyn Env,
    defaults: &'static [(&'static str, &'static str)],
}

impl Env for Profiled<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.env.get(key).or_else(|| {
            self.defaults
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }
    fn names(&self) -> Vec<String> {
        self.env.names()
    }
}

/// When the invokes and time thresholds are checked at an invoke (the timer checks bytes and time
/// while the environment runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipAt {
    /// At the next INVOKE, as the sample does: the upload overlaps the next function run and costs
    /// no post-runtime duration, but logs wait for the next invocation.
    NextInvoke,
    /// At this invoke's `platform.runtimeDone`, before `next`: fresher logs, paid for in
    /// post-runtime duration (waiting for runtimeDone's delivery, and for the upload when one is due).
    EndOfInvoke,
}

/// A configuration the extension cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{ENV_S3_BUCKET} is required: set it to the name of the bucket that receives the logs")]
    MissingBucket,
    #[error("{ENV_S3_BUCKET} {value:?} is not a valid S3 bucket name: it {reason}")]
    InvalidBucket { value: String, reason: String },
    #[error("{var} must be \"true\" or \"false\", got {value:?}")]
    InvalidBool { var: &'static str, value: String },
    #[error("{ENV_API} must be \"telemetry\" or \"logs\", got {value:?}")]
    InvalidApi { value: String },
    #[error("{var} must be {accepted}, got {value:?}")]
    Invalid {
        var: &'static str,
        value: String,
        accepted: String,
    },
    #[error("{ENV_KEY_TEMPLATE} {value:?} {reason}")]
    InvalidTemplate { value: String, reason: String },
    /// The rule's index and name, and what is wrong with it.
    #[error("{ENV_PROCESSING_RULES} {0}")]
    InvalidRules(crate::rules::RuleError),
}

/// A configuration plus the warnings parsing it produced, to be logged once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    pub fn from_env(env: &dyn Env) -> Result<Parsed, ConfigError> {
        let (defaults, profile): (&'static [(&'static str, &'static str)], _) =
            match one_of(env, ENV_PROFILE, &["default", "economy"])?.as_deref() {
                Some("economy") if values::format(env)? == Format::Parquet => {
                    (&ECONOMY_PARQUET, Some("economy"))
                }
                Some("economy") => (&ECONOMY, Some("economy")),
                _ => (&[], None),
            };
        let profiled = Profiled { env, defaults };
        let mut parsed = Self::parse(&profiled)?;
        parsed.config.profile = profile;
        parsed.warnings.extend(unknown::warnings(&env.names()));
        Ok(parsed)
    }

    fn parse(env: &dyn Env) -> Result<Parsed, ConfigError> {
        let mut warnings = Vec::new();
        let w = &mut warnings;
        let s3 = sections::s3(env)?;
        let objects = sections::objects(env)?;
        let subscription = sections::subscription(env, w)?;
        let log_level = log_level(env.get(ENV_LOG_LEVEL), w);
        let thresholds = rules::thresholds(env, w);
        let format = values::format(env)?;
        let shipper = sections::shipper(env, thresholds.bytes.get(), format, w);
        let intake = sections::intake(
            env,
            thresholds,
            format,
            &subscription.types,
            shipper.max_object,
            w,
        )?;
        let lifecycle = sections::lifecycle(env, intake.ship_at, w);
        let metrics = sections::metrics(env)?;
        Ok(Parsed {
            config: Config {
                log_level,
                profile: None,
                s3,
                objects,
                subscription,
                intake,
                shipper,
                lifecycle,
                metrics,
            },
            warnings,
        })
    }
}

mod rules;
mod sections;
mod unknown;
mod values;

use crate::encode::Format;
pub use sections::{
    IntakeSettings, LifecycleSettings, LogsApi, ObjectSettings, S3Settings, ShipperSettings,
    Subscription, tick,
};
use values::{log_level, one_of};

#[cfg(test)]
mod tests;
