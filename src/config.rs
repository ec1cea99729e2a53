//! Configuration from environment variables: every variable is a constant here, parsed once through
//! the [`Env`] seam (tests pass a map and never touch the process environment) into types that cannot
//! be misused.
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
pub const ENV_KEY_TEMPLATE: &str = "ADAPTIVE_BATCHING_EXTENSION_KEY_TEMPLATE";
pub const ENV_SSE: &str = "ADAPTIVE_BATCHING_EXTENSION_SSE";
pub const ENV_SSE_KMS_KEY_ID: &str = "ADAPTIVE_BATCHING_EXTENSION_SSE_KMS_KEY_ID";
pub const ENV_STORAGE_CLASS: &str = "ADAPTIVE_BATCHING_EXTENSION_STORAGE_CLASS";
pub const ENV_METRICS: &str = "ADAPTIVE_BATCHING_EXTENSION_METRICS";
pub const ENV_SHIP_AT: &str = "ADAPTIVE_BATCHING_EXTENSION_SHIP_AT";
pub const ENV_NEXT_WAIT_MS: &str = "ADAPTIVE_BATCHING_EXTENSION_NEXT_WAIT_MS";
pub const ENV_MAX_DELAY_MS: &str = "ADAPTIVE_BATCHING_EXTENSION_MAX_DELAY_MS";
pub const ENV_PROFILE: &str = "ADAPTIVE_BATCHING_EXTENSION_PROFILE";
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

/// The API that delivers records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The Telemetry API (AWS's recommendation; the only one on Managed Instances).
    Telemetry,
    /// The legacy Logs API, the Go sample's.
    Logs,
}

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

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bucket: BucketName,
    pub thresholds: Thresholds,
    pub log_types: Vec<LogType>,
    pub listener_port: u16,
    pub force_path_style: bool,
    pub create_bucket: bool,
    pub log_level: LogLevel,
    /// `AWS_LAMBDA_FUNCTION_NAME`, lower-cased for object keys.
    pub function_name: String,
    pub api: Api,
    pub buffering: Buffering,
    /// Running on Lambda Managed Instances: SHUTDOWN only, no freeze, thresholds on the timer.
    pub managed_instances: bool,
    /// Bytes of sealed batches held in memory before they spill to disk.
    pub max_buffer_bytes: u64,
    pub compression: crate::encode::Compression,
    pub key_template: crate::object_key::KeyTemplate,
    /// `AES256` or `aws:kms`.
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub storage_class: Option<String>,
    /// Emit CloudWatch embedded-metric-format lines.
    pub emf_metrics: bool,
    pub function_version: String,
    pub spill_dir: std::path::PathBuf,
    pub spill_max_bytes: u64,
    /// `AWS_CA_BUNDLE`: read and checked at start, where a bad file is an init error.
    pub ca_bundle: Option<std::path::PathBuf>,
    pub ship_at: ShipAt,
    /// How long `next` may wait for uploads after an INVOKE (0: not at all, the default).
    pub next_wait: Duration,
    /// The freshness bound: how long the time threshold may grow while S3 throttles.
    pub max_delay: Duration,
    /// `economy` when that profile was chosen.
    pub profile: Option<&'static str>,
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
        let bucket = match env.get(ENV_S3_BUCKET) {
            None => return Err(ConfigError::MissingBucket),
            Some(v) if v.is_empty() => return Err(ConfigError::MissingBucket),
            Some(v) => BucketName::parse(&v).map_err(|reason| ConfigError::InvalidBucket {
                value: v.clone(),
                reason,
            })?,
        };
        let mut bytes = whole_number(
            env,
            ENV_SHIP_RATE_BYTES,
            DEFAULT_SHIP_RATE_BYTES,
            &mut warnings,
        );
        if bytes.get() > MAX_SHIP_RATE_BYTES {
            warnings.push(format!(
                "{ENV_SHIP_RATE_BYTES} {} is above the maximum of {MAX_SHIP_RATE_BYTES} bytes (100 MiB); using {MAX_SHIP_RATE_BYTES}",
                bytes.get()
            ));
            bytes = NonZeroU64::new(MAX_SHIP_RATE_BYTES).expect("the maximum is not zero");
        }
        let invokes = whole_number(
            env,
            ENV_SHIP_RATE_INVOKES,
            DEFAULT_SHIP_RATE_INVOKES,
            &mut warnings,
        );
        let ms = whole_number(
            env,
            ENV_SHIP_RATE_MILLISECONDS,
            DEFAULT_SHIP_RATE_MILLISECONDS,
            &mut warnings,
        );
        let log_types = log_types(env.get(ENV_LOG_TYPES), &mut warnings);
        let listener_port = listener_port(env.get(ENV_LISTENER_PORT), &mut warnings);
        let custom_endpoint = env
            .get(ENV_ENDPOINT_URL_S3)
            .or_else(|| env.get(ENV_ENDPOINT_URL))
            .is_some_and(|v| !v.is_empty());
        let force_path_style = boolean(env, ENV_S3_FORCE_PATH_STYLE, custom_endpoint)?;
        let create_bucket = boolean(env, ENV_CREATE_BUCKET, true)?;
        let log_level = log_level(env.get(ENV_LOG_LEVEL), &mut warnings);
        let function_name = env
            .get(ENV_FUNCTION_NAME)
            .unwrap_or_default()
            .to_lowercase();
        let managed_instances =
            env.get(ENV_INITIALIZATION_TYPE).as_deref() == Some(MANAGED_INSTANCES);
        let api = match env.get(ENV_API).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("telemetry") => Api::Telemetry,
            Some("logs") if managed_instances => {
                warnings.push(format!(
                    "{ENV_API} \"logs\": Lambda Managed Instances have no Logs API; using the Telemetry API"
                ));
                Api::Telemetry
            }
            Some("logs") => Api::Logs,
            Some(_) => {
                return Err(ConfigError::InvalidApi {
                    value: env.get(ENV_API).unwrap_or_default(),
                });
            }
        };
        let compression = compression(env, &mut warnings)?;
        let key_template = match env.get(ENV_KEY_TEMPLATE).filter(|t| !t.is_empty()) {
            None => crate::object_key::KeyTemplate::default_with(compression.suffix()),
            Some(t) => crate::object_key::KeyTemplate::parse(&t).map_err(|reason| {
                ConfigError::InvalidTemplate {
                    value: t.clone(),
                    reason,
                }
            })?,
        };
        let sse = one_of(env, ENV_SSE, &["AES256", "aws:kms"])?;
        let sse_kms_key_id = env.get(ENV_SSE_KMS_KEY_ID).filter(|k| !k.is_empty());
        if sse_kms_key_id.is_some() && sse.as_deref() != Some("aws:kms") {
            return Err(ConfigError::Invalid {
                var: ENV_SSE,
                value: sse.unwrap_or_default(),
                accepted: format!("\"aws:kms\" when {ENV_SSE_KMS_KEY_ID} is set"),
            });
        }
        let storage_class = one_of(env, ENV_STORAGE_CLASS, &STORAGE_CLASSES)?;
        let emf_metrics = matches!(
            one_of(env, ENV_METRICS, &["emf", "none"])?.as_deref(),
            Some("emf")
        );
        let ship_at = match one_of(env, ENV_SHIP_AT, &["next-invoke", "end-of-invoke"])?.as_deref()
        {
            Some("end-of-invoke") if managed_instances => {
                warnings.push(format!(
                    "{ENV_SHIP_AT} \"end-of-invoke\": Lambda Managed Instances have no INVOKE event and no runtimeDone; thresholds are checked on a timer"
                ));
                ShipAt::NextInvoke
            }
            Some("end-of-invoke") if !log_types.contains(&LogType::Platform) => {
                warnings.push(format!(
                    "{ENV_SHIP_AT} \"end-of-invoke\" needs \"platform\" in {ENV_LOG_TYPES} (it waits for platform.runtimeDone); using \"next-invoke\""
                ));
                ShipAt::NextInvoke
            }
            Some("end-of-invoke") => ShipAt::EndOfInvoke,
            _ => ShipAt::NextInvoke,
        };
        let next_wait = Duration::from_millis(
            match env
                .get(ENV_NEXT_WAIT_MS)
                .map(|raw| (raw.trim().parse::<u64>(), raw))
            {
                None => 0,
                Some((Ok(n), _)) if n <= MAX_NEXT_WAIT_MS => n,
                Some((Ok(n), _)) => {
                    warnings.push(format!(
                        "{ENV_NEXT_WAIT_MS} {n} is above the maximum of {MAX_NEXT_WAIT_MS} ms; using {MAX_NEXT_WAIT_MS}"
                    ));
                    MAX_NEXT_WAIT_MS
                }
                Some((Err(_), raw)) => {
                    warnings.push(format!(
                        "{ENV_NEXT_WAIT_MS} must be a whole number of milliseconds, got {raw:?}; using the default 0 (next never waits for S3)"
                    ));
                    0
                }
            },
        );
        let max_delay = match env.get(ENV_MAX_DELAY_MS) {
            None => Duration::from_millis(ms.get().saturating_mul(DEFAULT_MAX_DELAY_FACTOR)),
            Some(raw) => match raw.trim().parse::<u64>() {
                Ok(n) if n >= ms.get() => Duration::from_millis(n),
                _ => {
                    warnings.push(format!(
                        "{ENV_MAX_DELAY_MS} must be a whole number of milliseconds at least {ENV_SHIP_RATE_MILLISECONDS} ({}), got {raw:?}; using {} ({DEFAULT_MAX_DELAY_FACTOR} × {ENV_SHIP_RATE_MILLISECONDS})",
                        ms.get(),
                        ms.get().saturating_mul(DEFAULT_MAX_DELAY_FACTOR)
                    ));
                    Duration::from_millis(ms.get().saturating_mul(DEFAULT_MAX_DELAY_FACTOR))
                }
            },
        };
        let function_version = env
            .get(ENV_FUNCTION_VERSION)
            .unwrap_or_else(|| "$LATEST".into());
        let memory_mb = env.get(ENV_MEMORY_SIZE).and_then(|v| v.parse().ok());
        let max_buffer_bytes = whole_number(
            env,
            ENV_MAX_BUFFER_BYTES,
            default_max_buffer_bytes(memory_mb),
            &mut warnings,
        )
        .get();
        let spill_max_bytes = whole_number(
            env,
            ENV_SPILL_MAX_BYTES,
            DEFAULT_SPILL_MAX_BYTES,
            &mut warnings,
        )
        .get();
        let spill_dir = match env.get(ENV_SPILL_DIR).filter(|d| !d.is_empty()) {
            Some(d) => std::path::PathBuf::from(d),
            None => std::path::PathBuf::from(
                env.get(ENV_TMPDIR)
                    .filter(|d| !d.is_empty())
                    .unwrap_or_else(|| "/tmp".into()),
            )
            .join(DEFAULT_SPILL_SUBDIR),
        };
        let [items, bytes_range, timeout] = BUFFER_RANGES;
        let buffering = Buffering {
            max_items: bounded(
                env,
                ENV_BUFFER_MAX_ITEMS,
                DEFAULT_BUFFERING.max_items,
                items,
                &mut warnings,
            ),
            max_bytes: bounded(
                env,
                ENV_BUFFER_MAX_BYTES,
                DEFAULT_BUFFERING.max_bytes,
                bytes_range,
                &mut warnings,
            ),
            timeout_ms: bounded(
                env,
                ENV_BUFFER_TIMEOUT_MS,
                DEFAULT_BUFFERING.timeout_ms,
                timeout,
                &mut warnings,
            ),
        };
        Ok(Parsed {
            config: Config {
                bucket,
                thresholds: Thresholds {
                    bytes,
                    invokes,
                    elapsed: Duration::from_millis(ms.get()),
                },
                log_types,
                listener_port,
                force_path_style,
                create_bucket,
                log_level,
                function_name,
                api,
                buffering,
                managed_instances,
                max_buffer_bytes,
                compression,
                key_template,
                sse,
                sse_kms_key_id,
                storage_class,
                emf_metrics,
                function_version,
                spill_dir,
                spill_max_bytes,
                ca_bundle: env
                    .get(ENV_CA_BUNDLE)
                    .filter(|p| !p.is_empty())
                    .map(std::path::PathBuf::from),
                ship_at,
                next_wait,
                max_delay,
                profile: None,
            },
            warnings,
        })
    }
}

/// A whole number ≥ 1, or the default with a warning.
fn whole_number(env: &dyn Env, var: &str, default: u64, warnings: &mut Vec<String>) -> NonZeroU64 {
    let fallback = NonZeroU64::new(default).expect("defaults are not zero");
    let Some(raw) = env.get(var) else {
        return fallback;
    };
    match raw.trim().parse::<u64>().ok().and_then(NonZeroU64::new) {
        Some(n) if raw.trim() == raw => n,
        _ => {
            warnings.push(format!("{var} must be a whole number of at least 1, got {raw:?}; using the default {default}"));
            fallback
        }
    }
}

/// One of `accepted` (as written there, matched case-insensitively), or unset.
fn one_of(
    env: &dyn Env,
    var: &'static str,
    accepted: &[&str],
) -> Result<Option<String>, ConfigError> {
    let Some(raw) = env.get(var).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    match accepted.iter().find(|a| a.eq_ignore_ascii_case(&raw)) {
        Some(a) => Ok(Some(a.to_string())),
        None => Err(ConfigError::Invalid {
            var,
            value: raw,
            accepted: format!(
                "one of {}",
                accepted
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// `COMPRESSION` and its level: gzip 1–9 (6), zstd 1–19 (3); a level out of range is clamped.
fn compression(
    env: &dyn Env,
    warnings: &mut Vec<String>,
) -> Result<crate::encode::Compression, ConfigError> {
    use crate::encode::Compression;
    let kind = one_of(env, ENV_COMPRESSION, &["none", "gzip", "zstd"])?;
    Ok(match kind.as_deref() {
        None | Some("none") => Compression::None,
        Some("gzip") => Compression::Gzip(bounded(env, ENV_COMPRESSION_LEVEL, 6, (1, 9), warnings)),
        _ => Compression::Zstd(bounded(env, ENV_COMPRESSION_LEVEL, 3, (1, 19), warnings) as i32),
    })
}

/// A whole number within AWS's `(min, max)`: out of range → the nearest bound, unparsable → the
/// default; each with a warning.
fn bounded(
    env: &dyn Env,
    var: &str,
    default: u32,
    (min, max): (u32, u32),
    warnings: &mut Vec<String>,
) -> u32 {
    let Some(raw) = env.get(var) else {
        return default;
    };
    match raw.parse::<i64>() {
        Ok(n) if n < i64::from(min) => {
            warnings.push(format!(
                "{var} {n} is below the minimum of {min}; using {min}"
            ));
            min
        }
        Ok(n) if n > i64::from(max) => {
            warnings.push(format!(
                "{var} {n} is above the maximum of {max}; using {max}"
            ));
            max
        }
        Ok(n) => n as u32,
        Err(_) => {
            warnings.push(format!("{var} must be a whole number from {min} to {max}, got {raw:?}; using the default {default}"));
            default
        }
    }
}

fn boolean(env: &dyn Env, var: &'static str, default: bool) -> Result<bool, ConfigError> {
    match env.get(var) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ConfigError::InvalidBool { var, value: v }),
    }
}

fn listener_port(raw: Option<String>, warnings: &mut Vec<String>) -> u16 {
    let Some(raw) = raw else {
        return DEFAULT_LISTENER_PORT;
    };
    match raw.parse::<u16>() {
        Ok(p) if p != 0 && p != RESERVED_PORT => p,
        _ => {
            warnings.push(format!(
                "{ENV_LISTENER_PORT} must be a port from 1 to 65535 other than {RESERVED_PORT} (Lambda's), got {raw:?}; using the default {DEFAULT_LISTENER_PORT}"
            ));
            DEFAULT_LISTENER_PORT
        }
    }
}

fn log_types(raw: Option<String>, warnings: &mut Vec<String>) -> Vec<LogType> {
    let default = DEFAULT_LOG_TYPES.to_vec();
    let Some(raw) = raw else { return default };
    let fallback = |why: &str, warnings: &mut Vec<String>| {
        warnings.push(format!(
            "{ENV_LOG_TYPES} {why}, got {raw:?}; using the default [\"platform\",\"function\"]"
        ));
        DEFAULT_LOG_TYPES.to_vec()
    };
    let items: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(&raw) {
        Ok(serde_json::Value::Array(items)) if !items.is_empty() => items,
        Ok(serde_json::Value::Array(_)) => return fallback("is an empty array", warnings),
        Ok(_) => return fallback("must be a JSON array of strings", warnings),
        Err(_) => return fallback("is not valid JSON", warnings),
    };
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    let mut duplicates = false;
    for item in &items {
        match item.as_str().and_then(LogType::parse) {
            Some(t) if out.contains(&t) => duplicates = true,
            Some(t) => out.push(t),
            None => unknown.push(item.to_string()),
        }
    }
    if !unknown.is_empty() {
        warnings.push(format!(
            "{ENV_LOG_TYPES} entries {} are not \"platform\", \"function\" or \"extension\"; ignoring them",
            unknown.join(", ")
        ));
    }
    if duplicates {
        warnings.push(format!(
            "{ENV_LOG_TYPES} {raw:?} lists a type more than once; subscribing once"
        ));
    }
    if out.is_empty() {
        return fallback("names no known log type", warnings);
    }
    out
}

fn log_level(raw: Option<String>, warnings: &mut Vec<String>) -> LogLevel {
    match raw.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("info") => LogLevel::Info,
        Some("error") => LogLevel::Error,
        Some("warn") | Some("warning") => LogLevel::Warn,
        Some("debug") => LogLevel::Debug,
        Some(_) => {
            warnings.push(format!(
                "{ENV_LOG_LEVEL} must be one of error, warn, info, debug, got {:?}; using info",
                raw.unwrap_or_default()
            ));
            LogLevel::Info
        }
    }
}

mod unknown;

#[cfg(test)]
mod tests;
