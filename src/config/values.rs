//! Readers of one variable each: a whole number, one of a list, a bounded number, a switch, the
//! listener port, the log types, the log level, the compression. Each falls back or fails as the
//! module's rules say, naming the variable and the value.

use super::*;

/// A whole number ≥ 1, or the default with a warning.
pub(super) fn whole_number(
    env: &dyn Env,
    var: &str,
    default: u64,
    warnings: &mut Vec<String>,
) -> NonZeroU64 {
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
pub(super) fn one_of(
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

/// `FORMAT`: NDJSON objects (the default) or Parquet files.
pub(crate) fn format(env: &dyn Env) -> Result<crate::encode::Format, ConfigError> {
    use crate::encode::Format;
    Ok(
        match one_of(env, ENV_FORMAT, &["ndjson", "parquet"])?.as_deref() {
            Some("parquet") => Format::Parquet,
            _ => Format::Ndjson,
        },
    )
}

/// `COMPRESSION` and its level: gzip 1–9 (6), zstd 1–19 (3); a level out of range is clamped.
/// Unset, NDJSON objects are not compressed (the sample's) and Parquet pages are zstd's.
pub(super) fn compression(
    env: &dyn Env,
    format: crate::encode::Format,
    warnings: &mut Vec<String>,
) -> Result<crate::encode::Compression, ConfigError> {
    use crate::encode::{Compression, Format};
    let kind = one_of(env, ENV_COMPRESSION, &["none", "gzip", "zstd"])?;
    Ok(match kind.as_deref() {
        None if format == Format::Parquet => {
            Compression::Zstd(bounded(env, ENV_COMPRESSION_LEVEL, 3, (1, 19), warnings) as i32)
        }
        None | Some("none") => Compression::None,
        Some("gzip") => Compression::Gzip(bounded(env, ENV_COMPRESSION_LEVEL, 6, (1, 9), warnings)),
        _ => Compression::Zstd(bounded(env, ENV_COMPRESSION_LEVEL, 3, (1, 19), warnings) as i32),
    })
}

/// A whole number within AWS's `(min, max)`: out of range → the nearest bound, unparsable → the
/// default; each with a warning.
pub(super) fn bounded(
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

pub(super) fn boolean(
    env: &dyn Env,
    var: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match env.get(var) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(ConfigError::InvalidBool { var, value: v }),
    }
}

pub(super) fn listener_port(raw: Option<String>, warnings: &mut Vec<String>) -> u16 {
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

pub(super) fn log_types(raw: Option<String>, warnings: &mut Vec<String>) -> Vec<LogType> {
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

pub(super) fn log_level(raw: Option<String>, warnings: &mut Vec<String>) -> LogLevel {
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
