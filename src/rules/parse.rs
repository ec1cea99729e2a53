//! `ADAPTIVE_BATCHING_EXTENSION_PROCESSING_RULES` read into rules, or the reason it cannot be: the
//! rule's index and name, and what is wrong, for `init/error`. Datadog's three rule types keep
//! Datadog's shape (`type`, `name`, `pattern`, `replace_placeholder`), so a team moving from
//! `DD_LOGS_CONFIG_PROCESSING_RULES` pastes its rules as they are; two are ours (`sample`,
//! `exclude_platform_types`). Fields a rule does not take are an error, not ignored: a misspelt
//! `replace_placeholder` would otherwise mask with nothing.

use serde_json::{Map, Value};

/// At most this many rules: each is a pass over every function line.
pub const MAX_RULES: usize = 50;
/// At most this many characters in a pattern.
pub const MAX_PATTERN_CHARS: usize = 1_000;
/// At most this many bytes of compiled automaton per pattern (`regex`'s own default is 10 MiB):
/// large counted repetitions of Unicode classes are what reach it.
pub const MAX_COMPILED_BYTES: usize = 1 << 20;
/// At most this many characters in a rule's name (it is a metric dimension).
pub const MAX_NAME_CHARS: usize = 64;

/// The record types Lambda's Telemetry and Logs APIs send that `exclude_platform_types` may name.
pub const PLATFORM_TYPES: [&str; 15] = [
    "platform.initStart",
    "platform.initRuntimeDone",
    "platform.initReport",
    "platform.start",
    "platform.runtimeDone",
    "platform.report",
    "platform.restoreStart",
    "platform.restoreRuntimeDone",
    "platform.restoreReport",
    "platform.extension",
    "platform.telemetrySubscription",
    "platform.logsSubscription",
    "platform.logsDropped",
    "platform.fault",
    "platform.end",
];

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// Drop the record when the pattern matches.
    ExcludeAtMatch { pattern: String },
    /// Drop the record unless the pattern matches.
    IncludeAtMatch { pattern: String },
    /// Replace every match with the placeholder (`$1`, `${name}` name groups).
    MaskSequences {
        pattern: String,
        replace_placeholder: String,
    },
    /// Of the records that match (every function and extension record without a pattern), keep
    /// the requests one in `keep_one_in` selects.
    Sample {
        pattern: Option<String>,
        keep_one_in: u64,
    },
    /// Drop platform records of these types.
    ExcludePlatformTypes { record_types: Vec<String> },
}

impl What {
    pub fn pattern(&self) -> Option<&str> {
        match self {
            What::ExcludeAtMatch { pattern }
            | What::IncludeAtMatch { pattern }
            | What::MaskSequences { pattern, .. } => Some(pattern),
            What::Sample { pattern, .. } => pattern.as_deref(),
            What::ExcludePlatformTypes { .. } => None,
        }
    }
}

/// Why the rules cannot be used: `index` and `name` say which rule (no index: the whole value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", at(.index, .name))]
pub struct RuleError {
    pub index: Option<usize>,
    pub name: Option<String>,
    pub reason: String,
}

fn at(index: &Option<usize>, name: &Option<String>) -> String {
    match (index, name) {
        (None, _) => String::new(),
        (Some(i), None) => format!("rule [{i}]: "),
        (Some(i), Some(n)) => format!("rule [{i}] {n:?}: "),
    }
}

const TYPES: &str =
    "exclude_at_match, include_at_match, mask_sequences, sample or exclude_platform_types";

/// The rules of `text`, a JSON array of rule objects.
pub fn specs(text: &str) -> Result<Vec<Spec>, RuleError> {
    let whole = |reason: String| RuleError {
        index: None,
        name: None,
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        whole(format!(
            "is not valid JSON ({e}); expected a JSON array of rules"
        ))
    })?;
    let Value::Array(items) = value else {
        return Err(whole("must be a JSON array of rules".into()));
    };
    if items.len() > MAX_RULES {
        return Err(whole(format!(
            "has {} rules; at most {MAX_RULES} are accepted",
            items.len()
        )));
    }
    let mut out: Vec<Spec> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let spec = spec(item).map_err(|(name, reason)| RuleError {
            index: Some(index),
            name,
            reason,
        })?;
        if out.iter().any(|s| s.name == spec.name) {
            return Err(RuleError {
                index: Some(index),
                name: Some(spec.name),
                reason: "the name is already used by an earlier rule; names must be unique (they name the rule's counters)".into(),
            });
        }
        out.push(spec);
    }
    Ok(out)
}

type Failure = (Option<String>, String);

fn spec(item: &Value) -> Result<Spec, Failure> {
    let Value::Object(fields) = item else {
        return Err((None, "must be a JSON object".into()));
    };
    let name = match fields.get("name") {
        Some(Value::String(n)) if !n.is_empty() && n.chars().count() <= MAX_NAME_CHARS => n.clone(),
        _ => {
            return Err((
                None,
                format!("needs a \"name\": a string of 1 to {MAX_NAME_CHARS} characters"),
            ));
        }
    };
    let fail = |reason: String| (Some(name.clone()), reason);
    let kind = match fields.get("type") {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err(fail(format!("needs a \"type\": one of {TYPES}"))),
    };
    let (what, allowed): (What, &[&str]) = match kind {
        "exclude_at_match" => (
            What::ExcludeAtMatch {
                pattern: pattern(fields).map_err(fail)?,
            },
            &["pattern"],
        ),
        "include_at_match" => (
            What::IncludeAtMatch {
                pattern: pattern(fields).map_err(fail)?,
            },
            &["pattern"],
        ),
        "mask_sequences" => (
            What::MaskSequences {
                pattern: pattern(fields).map_err(fail)?,
                replace_placeholder: match fields.get("replace_placeholder") {
                    Some(Value::String(p)) => p.clone(),
                    _ => return Err(fail("mask_sequences needs a \"replace_placeholder\" (a string, which may be empty)".into())),
                },
            },
            &["pattern", "replace_placeholder"],
        ),
        "sample" => (
            What::Sample {
                pattern: match fields.get("pattern") {
                    None => None,
                    Some(_) => Some(pattern(fields).map_err(fail)?),
                },
                keep_one_in: match fields.get("keep_one_in").and_then(Value::as_u64) {
                    Some(n @ 1..=1_000_000) => n,
                    _ => return Err(fail("sample needs \"keep_one_in\": a whole number from 1 to 1000000 (1 keeps every request)".into())),
                },
            },
            &["pattern", "keep_one_in"],
        ),
        "exclude_platform_types" => (
            What::ExcludePlatformTypes {
                record_types: platform_types(fields).map_err(fail)?,
            },
            &["record_types"],
        ),
        other => return Err(fail(format!("unknown type {other:?}; accepted: {TYPES}"))),
    };
    if let Some(extra) = fields
        .keys()
        .find(|k| !["type", "name"].contains(&k.as_str()) && !allowed.contains(&k.as_str()))
    {
        return Err(fail(format!(
            "{kind} takes no field {extra:?} (it takes \"type\", \"name\", {})",
            allowed
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Spec { name, what })
}

fn pattern(fields: &Map<String, Value>) -> Result<String, String> {
    match fields.get("pattern") {
        Some(Value::String(p)) if p.is_empty() => {
            Err("the \"pattern\" is empty; an empty pattern matches every record".into())
        }
        Some(Value::String(p)) if p.chars().count() > MAX_PATTERN_CHARS => Err(format!(
            "the \"pattern\" has {} characters; at most {MAX_PATTERN_CHARS} are accepted",
            p.chars().count()
        )),
        Some(Value::String(p)) => Ok(p.clone()),
        _ => Err("needs a \"pattern\" (a regular expression, as a string)".into()),
    }
}

fn platform_types(fields: &Map<String, Value>) -> Result<Vec<String>, String> {
    let accepted = PLATFORM_TYPES.join(", ");
    let Some(Value::Array(items)) = fields.get("record_types") else {
        return Err(format!(
            "exclude_platform_types needs \"record_types\": an array of record types from {accepted}"
        ));
    };
    let mut out = Vec::new();
    for item in items {
        match item.as_str() {
            Some(t) if PLATFORM_TYPES.contains(&t) => out.push(t.to_string()),
            _ => {
                return Err(format!(
                    "\"record_types\" has {item}, which is not a platform record type; accepted: {accepted}"
                ));
            }
        }
    }
    if out.is_empty() {
        return Err("\"record_types\" is empty; name at least one platform record type".into());
    }
    Ok(out)
}
