//! The settings that need more than one variable or a rule of their own: the thresholds, the API,
//! when to ship, the waits, the key template, encryption, the spill directory, the Telemetry
//! buffering and the processing rules. The sections (`sections.rs`) are built from these.

use super::values::{bounded, one_of, whole_number};
use super::*;

/// The three triggers: bytes (at most 100 MiB), invokes and elapsed time.
pub(super) fn thresholds(env: &dyn Env, warnings: &mut Vec<String>) -> Thresholds {
    let mut bytes = whole_number(env, ENV_SHIP_RATE_BYTES, DEFAULT_SHIP_RATE_BYTES, warnings);
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
        warnings,
    );
    let ms = whole_number(
        env,
        ENV_SHIP_RATE_MILLISECONDS,
        DEFAULT_SHIP_RATE_MILLISECONDS,
        warnings,
    );
    Thresholds {
        bytes,
        invokes,
        elapsed: Duration::from_millis(ms.get()),
    }
}

/// Telemetry (the default, in the schema Managed Instances need there) or the legacy Logs API,
/// which Managed Instances do not have.
pub(super) fn api(
    env: &dyn Env,
    managed_instances: bool,
    warnings: &mut Vec<String>,
) -> Result<LogsApi, ConfigError> {
    Ok(
        match env.get(ENV_API).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("telemetry") => LogsApi::Telemetry { managed_instances },
            Some("logs") if managed_instances => {
                warnings.push(format!(
                "{ENV_API} \"logs\": Lambda Managed Instances have no Logs API; using the Telemetry API"
            ));
                LogsApi::Telemetry { managed_instances }
            }
            Some("logs") => LogsApi::Logs,
            Some(_) => {
                return Err(ConfigError::InvalidApi {
                    value: env.get(ENV_API).unwrap_or_default(),
                });
            }
        },
    )
}

/// When the invokes and time thresholds are checked; end-of-invoke needs runtimeDone.
pub(super) fn ship_at(
    env: &dyn Env,
    managed_instances: bool,
    log_types: &[LogType],
    warnings: &mut Vec<String>,
) -> Result<ShipAt, ConfigError> {
    Ok(
        match one_of(env, ENV_SHIP_AT, &["next-invoke", "end-of-invoke"])?.as_deref() {
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
        },
    )
}

/// How long `next` may wait for uploads (0: never), at most [`MAX_NEXT_WAIT_MS`].
pub(super) fn next_wait(env: &dyn Env, warnings: &mut Vec<String>) -> Duration {
    Duration::from_millis(
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
    )
}

/// The freshness bound while S3 throttles: at least the time threshold `ms`.
pub(super) fn max_delay(env: &dyn Env, ms: u64, warnings: &mut Vec<String>) -> Duration {
    match env.get(ENV_MAX_DELAY_MS) {
        None => Duration::from_millis(ms.saturating_mul(DEFAULT_MAX_DELAY_FACTOR)),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(n) if n >= ms => Duration::from_millis(n),
            _ => {
                warnings.push(format!(
                    "{ENV_MAX_DELAY_MS} must be a whole number of milliseconds at least {ENV_SHIP_RATE_MILLISECONDS} ({}), got {raw:?}; using {} ({DEFAULT_MAX_DELAY_FACTOR} × {ENV_SHIP_RATE_MILLISECONDS})",
                    ms,
                    ms.saturating_mul(DEFAULT_MAX_DELAY_FACTOR)
                ));
                Duration::from_millis(ms.saturating_mul(DEFAULT_MAX_DELAY_FACTOR))
            }
        },
    }
}

/// The key template, or the default with the format's and compression's suffix. A template
/// whose name ends as the other format's objects do is kept, with a warning.
pub(super) fn key_template(
    env: &dyn Env,
    format: crate::encode::Format,
    compression: crate::encode::Compression,
    warnings: &mut Vec<String>,
) -> Result<crate::object_key::KeyTemplate, ConfigError> {
    use crate::encode::Format;
    Ok(match env.get(ENV_KEY_TEMPLATE).filter(|t| !t.is_empty()) {
        None => crate::object_key::KeyTemplate::default_with(&format.suffix(compression)),
        Some(t) => crate::object_key::KeyTemplate::parse(&t).inspect(|_| {
            let ndjson_name = [".log", ".ndjson", ".json", ".gz", ".zst"].iter().any(|s| t.ends_with(s));
            let mismatch = match format {
                Format::Parquet => ndjson_name,
                Format::Ndjson => t.ends_with(".parquet"),
            };
            if mismatch {
                warnings.push(format!(
                    "{ENV_KEY_TEMPLATE} {t:?} names objects as another format does, but {ENV_FORMAT} is {}; keys are kept as the template says",
                    if format == Format::Parquet { "parquet" } else { "ndjson" }
                ));
            }
        }).map_err(|reason| {
            ConfigError::InvalidTemplate {
                value: t.clone(),
                reason,
            }
        })?,
    })
}

/// Server-side encryption and its KMS key, which needs `aws:kms`.
pub(super) fn encryption(env: &dyn Env) -> Result<(Option<String>, Option<String>), ConfigError> {
    let sse = one_of(env, ENV_SSE, &["AES256", "aws:kms"])?;
    let sse_kms_key_id = env.get(ENV_SSE_KMS_KEY_ID).filter(|k| !k.is_empty());
    if sse_kms_key_id.is_some() && sse.as_deref() != Some("aws:kms") {
        return Err(ConfigError::Invalid {
            var: ENV_SSE,
            value: sse.unwrap_or_default(),
            accepted: format!("\"aws:kms\" when {ENV_SSE_KMS_KEY_ID} is set"),
        });
    }
    Ok((sse, sse_kms_key_id))
}

/// `SPILL_DIR`, else the spill subdirectory of `TMPDIR` or `/tmp`.
pub(super) fn spill_dir(env: &dyn Env) -> std::path::PathBuf {
    match env.get(ENV_SPILL_DIR).filter(|d| !d.is_empty()) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::PathBuf::from(
            env.get(ENV_TMPDIR)
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "/tmp".into()),
        )
        .join(DEFAULT_SPILL_SUBDIR),
    }
}

/// The Telemetry API's buffering, each value within AWS's range.
pub(super) fn buffering(env: &dyn Env, warnings: &mut Vec<String>) -> Buffering {
    let [items, bytes_range, timeout] = BUFFER_RANGES;
    Buffering {
        max_items: bounded(
            env,
            ENV_BUFFER_MAX_ITEMS,
            DEFAULT_BUFFERING.max_items,
            items,
            warnings,
        ),
        max_bytes: bounded(
            env,
            ENV_BUFFER_MAX_BYTES,
            DEFAULT_BUFFERING.max_bytes,
            bytes_range,
            warnings,
        ),
        timeout_ms: bounded(
            env,
            ENV_BUFFER_TIMEOUT_MS,
            DEFAULT_BUFFERING.timeout_ms,
            timeout,
            warnings,
        ),
    }
}

/// `PROCESSING_RULES`: a JSON array of rules (`crate::rules`); unset, empty or `[]` is none. A rule
/// that cannot apply, for want of the log type it reads, is kept and warned about.
pub(super) fn processing_rules(
    env: &dyn Env,
    types: &[LogType],
    warnings: &mut Vec<String>,
) -> Result<crate::rules::Rules, ConfigError> {
    let Some(text) = env
        .get(ENV_PROCESSING_RULES)
        .filter(|t| !t.trim().is_empty())
    else {
        return Ok(crate::rules::Rules::default());
    };
    let rules = crate::rules::Rules::parse(&text).map_err(ConfigError::InvalidRules)?;
    let no_lines = !types.contains(&LogType::Function) && !types.contains(&LogType::Extension);
    for (i, spec) in rules.specs().iter().enumerate() {
        let platform = matches!(spec.what, crate::rules::What::ExcludePlatformTypes { .. });
        let (missing, needs) = if platform {
            (!types.contains(&LogType::Platform), "\"platform\"")
        } else {
            (no_lines, "\"function\" or \"extension\"")
        };
        if missing {
            warnings.push(format!(
                "{ENV_PROCESSING_RULES} rule [{i}] {:?} reads records of a type {ENV_LOG_TYPES} does not subscribe; add {needs} for it to apply",
                spec.name
            ));
        }
    }
    Ok(rules)
}
