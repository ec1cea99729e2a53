//! The configuration's sections: each is exactly the settings one consumer takes, parsed by its own
//! function, with every value derived from the variables computed here, once.
//!
//! | section | consumer |
//! |---|---|
//! | [`S3Settings`], [`ObjectSettings`] | the S3 sink: the client, and how every object is written |
//! | [`Subscription`] | the Telemetry or Logs API subscription, and the listener's port |
//! | [`IntakeSettings`] | the intake core that BatchActor drives |
//! | [`ShipperSettings`] | ShipperActor and its ship policy |
//! | [`LifecycleSettings`] | LifecycleActor |
//! | [`Emf`] | the EMF lines (`METRICS=emf`) |

use super::rules;
use super::values::{boolean, compression, listener_port, log_types, one_of, whole_number};
use super::*;
use crate::encode::{Compression, Format};
use crate::metrics::Emf;
use crate::object_key::KeyTemplate;
use std::path::PathBuf;

/// Where objects go and how the S3 client reaches the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: BucketName,
    pub force_path_style: bool,
    pub create_bucket: bool,
    /// `AWS_CA_BUNDLE`: read and checked at start, where a bad file is an init error.
    pub ca_bundle: Option<PathBuf>,
}

/// How every object is written: encryption, storage class, and who wrote it (user metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSettings {
    /// `AES256` or `aws:kms`; `None` leaves the bucket's default encryption.
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub storage_class: Option<String>,
    pub function_name: String,
    pub function_version: String,
}

/// The API that delivers the records, with its schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogsApi {
    /// Logs API 2020-08-15 with schema 2021-03-18 (which adds `platform.runtimeDone`).
    Logs,
    /// Telemetry API 2022-07-01: schema 2022-12-13, or 2025-01-29 (required on Managed Instances).
    Telemetry { managed_instances: bool },
}

/// A subscription request (its body is built in `lambda::requests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub api: LogsApi,
    pub types: Vec<LogType>,
    pub buffering: Buffering,
    /// Our listener's port; the URI names `sandbox.localdomain`, as Lambda documents.
    pub port: u16,
}

/// What the intake core is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeSettings {
    pub thresholds: Thresholds,
    /// A buffer this large is sealed at once, ship point or not (memory).
    pub max_object_bytes: u64,
    /// The freshness bound: how long the time threshold may grow while S3 throttles.
    pub max_delay: Duration,
    pub format: Format,
    /// NDJSON's compression, or Parquet's page codec.
    pub compression: Compression,
    pub key_template: KeyTemplate,
    /// `AWS_LAMBDA_FUNCTION_VERSION`, for `{version}`.
    pub function_version: String,
    pub function_name: String,
    /// Whether `platform` records are subscribed (else no report will ever come).
    pub platform_records: bool,
    /// Lambda Managed Instances: invocations counted from `platform.start`, thresholds on the timer.
    pub managed_instances: bool,
    /// When the invokes and time thresholds are checked: at INVOKE, or at runtimeDone.
    pub ship_at: ShipAt,
    /// How often the thresholds are checked while the environment runs.
    pub tick: Duration,
    /// What the records lose before they are buffered (`PROCESSING_RULES`); empty: nothing.
    pub rules: crate::rules::Rules,
}

/// How often the thresholds are checked: a tenth of the time threshold, between 10 ms and 1 s. On
/// Managed Instances the tick also carries the invocations threshold: at most 100 ms.
pub fn tick(elapsed: Duration, managed_instances: bool) -> Duration {
    let most = if managed_instances {
        Duration::from_millis(100)
    } else {
        Duration::from_secs(1)
    };
    (elapsed / 10).clamp(Duration::from_millis(10), most)
}

/// What ShipperActor and its ship policy are configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipperSettings {
    /// Bytes of sealed batches held in memory before the newest go to disk.
    pub max_memory: u64,
    /// The largest object the intake seals.
    pub max_object: u64,
    /// The largest merged body: a single PutObject, within half the memory bound.
    pub merge_limit: u64,
    pub spill_dir: PathBuf,
    pub spill_max_bytes: u64,
    /// A SnapStart init: nothing is merged until the restore (see the ship policy), and any batch
    /// on disk may come from the snapshot, whose keys every restored copy shares.
    pub snap_start: bool,
}

impl ShipperSettings {
    /// The bounds derived from the memory bound and the bytes threshold: the largest object is the
    /// threshold, or half the memory bound if larger, so the open buffer and the batches in flight
    /// stay near `max_memory`; a merge stays a single PutObject within half of it.
    pub fn new(max_memory: u64, bytes_threshold: u64, spill_dir: PathBuf) -> Self {
        Self {
            max_memory,
            max_object: bytes_threshold.max(max_memory / 2),
            merge_limit: (max_memory / 2)
                .clamp(1024 * 1024, crate::sealed::MULTIPART_THRESHOLD as u64),
            spill_dir,
            spill_max_bytes: DEFAULT_SPILL_MAX_BYTES,
            snap_start: false,
        }
    }
}

/// What LifecycleActor is configured with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleSettings {
    /// Managed Instances: no INVOKE names the last request; SHUTDOWN waits for every open one.
    pub managed_instances: bool,
    /// How long `next` may wait for uploads after an INVOKE (`None`: not at all; `Duration::MAX`:
    /// until the invoke's deadline).
    pub next_wait: Option<Duration>,
    /// Ask the intake for this invoke's runtimeDone before `next` (`SHIP_AT=end-of-invoke`).
    pub awaits_runtime_done: bool,
}

pub(super) fn s3(env: &dyn Env) -> Result<S3Settings, ConfigError> {
    let bucket = match env.get(ENV_S3_BUCKET) {
        None => return Err(ConfigError::MissingBucket),
        Some(v) if v.is_empty() => return Err(ConfigError::MissingBucket),
        Some(v) => BucketName::parse(&v).map_err(|reason| ConfigError::InvalidBucket {
            value: v.clone(),
            reason,
        })?,
    };
    let custom_endpoint = env
        .get(ENV_ENDPOINT_URL_S3)
        .or_else(|| env.get(ENV_ENDPOINT_URL))
        .is_some_and(|v| !v.is_empty());
    Ok(S3Settings {
        bucket,
        force_path_style: boolean(env, ENV_S3_FORCE_PATH_STYLE, custom_endpoint)?,
        create_bucket: boolean(env, ENV_CREATE_BUCKET, true)?,
        ca_bundle: env
            .get(ENV_CA_BUNDLE)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
    })
}

pub(super) fn objects(env: &dyn Env) -> Result<ObjectSettings, ConfigError> {
    let (sse, sse_kms_key_id) = rules::encryption(env)?;
    Ok(ObjectSettings {
        sse,
        sse_kms_key_id,
        storage_class: one_of(env, ENV_STORAGE_CLASS, &STORAGE_CLASSES)?,
        function_name: function_name(env),
        function_version: function_version(env),
    })
}

pub(super) fn subscription(
    env: &dyn Env,
    warnings: &mut Vec<String>,
) -> Result<Subscription, ConfigError> {
    Ok(Subscription {
        api: rules::api(env, managed_instances(env), warnings)?,
        types: log_types(env.get(ENV_LOG_TYPES), warnings),
        buffering: rules::buffering(env, warnings),
        port: listener_port(env.get(ENV_LISTENER_PORT), warnings),
    })
}

/// The intake's settings, with the thresholds read first (the shipper's bounds need the bytes
/// one); `types` are the subscribed log types (end-of-invoke needs `platform`).
pub(super) fn intake(
    env: &dyn Env,
    thresholds: Thresholds,
    format: Format,
    types: &[LogType],
    max_object_bytes: u64,
    warnings: &mut Vec<String>,
) -> Result<IntakeSettings, ConfigError> {
    let managed_instances = managed_instances(env);
    let compression = compression(env, format, warnings)?;
    Ok(IntakeSettings {
        thresholds,
        max_object_bytes,
        max_delay: rules::max_delay(env, thresholds.elapsed.as_millis() as u64, warnings),
        key_template: rules::key_template(env, format, compression, warnings)?,
        format,
        compression,
        function_version: function_version(env),
        function_name: function_name(env),
        platform_records: types.contains(&LogType::Platform),
        managed_instances,
        ship_at: rules::ship_at(env, managed_instances, types, warnings)?,
        tick: tick(thresholds.elapsed, managed_instances),
        rules: rules::processing_rules(env, types, warnings)?,
    })
}

/// The shipper's bounds, from the function's memory and the bytes threshold.
pub(super) fn shipper(
    env: &dyn Env,
    bytes_threshold: u64,
    format: Format,
    warnings: &mut Vec<String>,
) -> ShipperSettings {
    let memory_mb = env.get(ENV_MEMORY_SIZE).and_then(|v| v.parse().ok());
    let max_memory = whole_number(
        env,
        ENV_MAX_BUFFER_BYTES,
        default_max_buffer_bytes(memory_mb),
        warnings,
    )
    .get();
    let derived = ShipperSettings::new(max_memory, bytes_threshold, rules::spill_dir(env));
    ShipperSettings {
        spill_max_bytes: whole_number(env, ENV_SPILL_MAX_BYTES, DEFAULT_SPILL_MAX_BYTES, warnings)
            .get(),
        snap_start: env.get(ENV_INITIALIZATION_TYPE).as_deref() == Some(SNAP_START),
        // Parquet files do not concatenate into one: while S3 throttles, each batch waits as
        // its own object.
        merge_limit: match format {
            Format::Ndjson => derived.merge_limit,
            Format::Parquet => 0,
        },
        ..derived
    }
}

pub(super) fn lifecycle(
    env: &dyn Env,
    ship_at: ShipAt,
    warnings: &mut Vec<String>,
) -> LifecycleSettings {
    let next_wait = rules::next_wait(env, warnings);
    LifecycleSettings {
        managed_instances: managed_instances(env),
        next_wait: match ship_at {
            // The invoke's lines are in S3 before its `next`, within its deadline.
            ShipAt::EndOfInvoke => Some(Duration::MAX),
            ShipAt::NextInvoke => Some(next_wait).filter(|w| !w.is_zero()),
        },
        awaits_runtime_done: ship_at == ShipAt::EndOfInvoke,
    }
}

pub(super) fn metrics(env: &dyn Env) -> Result<Option<Emf>, ConfigError> {
    Ok(
        match one_of(env, ENV_METRICS, &["emf", "none"])?.as_deref() {
            Some("emf") => Some(Emf::new(function_name(env))),
            _ => None,
        },
    )
}

/// `AWS_LAMBDA_FUNCTION_NAME`, lower-cased for object keys.
fn function_name(env: &dyn Env) -> String {
    env.get(ENV_FUNCTION_NAME)
        .unwrap_or_default()
        .to_lowercase()
}

fn function_version(env: &dyn Env) -> String {
    env.get(ENV_FUNCTION_VERSION)
        .unwrap_or_else(|| "$LATEST".into())
}

pub(super) fn managed_instances(env: &dyn Env) -> bool {
    env.get(ENV_INITIALIZATION_TYPE).as_deref() == Some(MANAGED_INSTANCES)
}
