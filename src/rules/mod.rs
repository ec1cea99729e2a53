//! Processing rules: what the function's lines lose before they leave it — lines excluded,
//! lines not included, sequences masked, requests sampled out, platform record types dropped.
//! Pure: Intake asks, per record, what to ship ([`Rules::apply`]) and counts what the answer says.
//!
//! * Text rules see the text of `function` and `extension` records only: for a plain-text record
//!   its line; for a JSON record (the JSON log format, Managed Instances) every string value, keys
//!   kept, and a masked record keeps everything but the strings that changed ([`strings`]).
//!   Platform records are never touched by them.
//! * Rules apply in order: a mask rewrites what later rules see; the first rule that drops a record
//!   is the one it is counted against.
//! * `sample` decides per request: FNV-1a of the request id, modulo `keep_one_in`, is 0 for a kept
//!   request, so one request's lines are kept or dropped together and every environment agrees. A
//!   JSON record's own `requestId` names its request; a plain-text line belongs to the request
//!   last started (on demand an environment runs one request at a time). A line with no request
//!   (init) and a line at WARN or above are never sampled out.
//! * Patterns are Rust `regex` syntax, matched in time linear in the line whatever the pattern
//!   (finite automata, no backtracking); the limits are in [`parse`].
//! * Speed: most lines match no rule, and one pass of an alternation of the dropping and masking
//!   patterns says so; only a line it matches is searched rule by rule (a set says which match).
//!   Both are built on first use; each pattern alone is compiled at init, where its errors go.

mod parse;
mod strings;
#[cfg(test)]
mod tests;

pub use parse::{
    MAX_COMPILED_BYTES, MAX_NAME_CHARS, MAX_PATTERN_CHARS, MAX_RULES, PLATFORM_TYPES, RuleError,
    Spec, What,
};

use bytes::Bytes;
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::borrow::Cow;
use std::ops::Range;

/// What a rule did to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Dropped by `exclude_at_match`, `include_at_match` or `exclude_platform_types`.
    Excluded,
    /// Dropped by `sample`.
    SampledOut,
    /// Changed by `mask_sequences` (and still shipped, unless a later rule drops it).
    Masked,
}

/// The levels `sample` never drops, as the runtimes and the JSON log format write them.
const SEVERE: [&str; 5] = ["WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"];

/// Compiled rules, in order. Equal when written the same.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    specs: Vec<Spec>,
    compiled: Vec<Compiled>,
    /// The patterns of the rules that drop or change what matches (all text rules but
    /// `include_at_match`, which usually match) as one alternation: one pass says whether any of
    /// them matches a line, which for most lines is no, where one search per rule would take a
    /// pass each. `None` with no such rule, or when patterns share a group name (then each rule
    /// searches alone).
    ///
    /// Built on first use, not at init: each pattern is compiled at init (its errors fail init),
    /// and compiling them twice more would add to the cold start (about half a millisecond more
    /// for 20 rules, on top of their 0.6 ms alone).
    any: std::sync::OnceLock<Option<Regex>>,
    /// Every text rule's pattern: for a line some rule matches, one pass says which (a pass per
    /// rule would cost as many passes as rules). Built on first use too.
    set: std::sync::OnceLock<Option<RegexSet>>,
    /// Each rule's pattern in `set`.
    in_set: Vec<Option<usize>>,
}

impl PartialEq for Rules {
    fn eq(&self, other: &Self) -> bool {
        self.specs == other.specs
    }
}
impl Eq for Rules {}

#[derive(Debug, Clone)]
enum Compiled {
    Exclude(Regex),
    Include(Regex),
    Mask(Regex, String),
    Sample(Option<Regex>, u64),
    Types(Vec<String>),
}

/// A text record's strings: the literal each came from, and its text now.
struct Strings<'a> {
    items: Vec<(Range<usize>, Cow<'a, str>, bool)>,
    level: Option<Cow<'a, str>>,
    request_id: Option<Cow<'a, str>>,
}

impl Rules {
    /// The rules of `text` (the variable's value), compiled.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        Self::compile(parse::specs(text)?)
    }

    /// `specs`, compiled; a pattern that does not compile, or compiles too large, is an error.
    pub fn compile(specs: Vec<Spec>) -> Result<Self, RuleError> {
        let mut compiled = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let regex = spec
                .what
                .pattern()
                .map(|p| {
                    RegexBuilder::new(p)
                        .size_limit(MAX_COMPILED_BYTES)
                        .build()
                        .map_err(|e| RuleError {
                            index: Some(index),
                            name: Some(spec.name.clone()),
                            reason: pattern_error(p, &e),
                        })
                })
                .transpose()?;
            compiled.push(match (&spec.what, regex) {
                (What::ExcludeAtMatch { .. }, Some(re)) => Compiled::Exclude(re),
                (What::IncludeAtMatch { .. }, Some(re)) => Compiled::Include(re),
                (
                    What::MaskSequences {
                        replace_placeholder,
                        ..
                    },
                    Some(re),
                ) => Compiled::Mask(re, replace_placeholder.clone()),
                (What::Sample { keep_one_in, .. }, re) => Compiled::Sample(re, *keep_one_in),
                (What::ExcludePlatformTypes { record_types }, _) => {
                    Compiled::Types(record_types.clone())
                }
                // A text rule always has its pattern (parse requires it).
                (_, None) => Compiled::Types(Vec::new()),
            });
        }
        let mut next = 0;
        let in_set = specs
            .iter()
            .map(|spec| {
                spec.what.pattern().map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        Ok(Self {
            specs,
            compiled,
            any: Default::default(),
            set: Default::default(),
            in_set,
        })
    }

    /// The alternation of the dropping and masking rules' patterns (see [`Rules::any`]).
    fn any(&self) -> Option<&Regex> {
        self.any
            .get_or_init(|| {
                let droppers: Vec<String> = self
                    .specs
                    .iter()
                    .filter(|s| !matches!(s.what, What::IncludeAtMatch { .. }))
                    .filter_map(|s| s.what.pattern())
                    .map(|p| format!("(?:{p})"))
                    .collect();
                // Each pattern compiled within its limit alone; these within theirs together.
                // Failing (patterns sharing a group name) only costs speed.
                (!droppers.is_empty())
                    .then(|| {
                        RegexBuilder::new(&droppers.join("|"))
                            .size_limit(MAX_COMPILED_BYTES * droppers.len())
                            .build()
                            .ok()
                    })
                    .flatten()
            })
            .as_ref()
    }

    /// Every text rule's pattern as a set (see [`Rules::set`]).
    fn set(&self) -> Option<&RegexSet> {
        self.set
            .get_or_init(|| {
                let all: Vec<&str> = self.specs.iter().filter_map(|s| s.what.pattern()).collect();
                (!all.is_empty())
                    .then(|| {
                        RegexSetBuilder::new(&all)
                            .size_limit(MAX_COMPILED_BYTES * all.len())
                            .build()
                            .ok()
                    })
                    .flatten()
            })
            .as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The rules' names, in order (they name the counters).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.iter().map(|s| s.name.as_str())
    }

    pub fn specs(&self) -> &[Spec] {
        &self.specs
    }

    /// What to ship of the record `raw` (`text`, the same bytes), of type `record_type`, whose
    /// `record` value lies at `value`; `None` when a rule drops it. `current_request` is the
    /// request a plain-text line belongs to. `tally` hears each rule's effect, by the rule's index.
    pub fn apply(
        &self,
        raw: &Bytes,
        text: &str,
        record_type: &str,
        value: Range<usize>,
        current_request: Option<&str>,
        tally: &mut dyn FnMut(usize, Effect),
    ) -> Option<Bytes> {
        if record_type.starts_with("platform.") {
            let dropped_by = self.compiled.iter().position(
                |c| matches!(c, Compiled::Types(types) if types.iter().any(|t| t == record_type)),
            );
            return match dropped_by {
                Some(i) => {
                    tally(i, Effect::Excluded);
                    None
                }
                None => Some(raw.clone()),
            };
        }
        if record_type != "function" && record_type != "extension" {
            return Some(raw.clone());
        }
        let Some(json) = text.get(value.clone()) else {
            return Some(raw.clone());
        };
        let mut strings = Strings::of(json);
        // Whether a rule that drops or changes lines matches this one: for most lines, no.
        let none_match = self
            .any()
            .is_some_and(|any| !strings.items.iter().any(|(_, t, _)| any.is_match(t)));
        // Which rules match, from one pass of the set; again after a mask changes the line.
        let mut hits: Option<[bool; MAX_RULES]> = None;
        let mut changed = false;
        for (i, rule) in self.compiled.iter().enumerate() {
            let include = matches!(rule, Compiled::Include(_));
            let mut matched = |re: &Regex, strings: &Strings| match (self.set(), self.in_set[i]) {
                _ if none_match && !include => false,
                (Some(set), Some(k)) if !none_match => {
                    hits.get_or_insert_with(|| set_hits(set, strings))[k]
                }
                _ => strings.items.iter().any(|(_, t, _)| re.is_match(t)),
            };
            match rule {
                Compiled::Exclude(re) if matched(re, &strings) => {
                    tally(i, Effect::Excluded);
                    return None;
                }
                Compiled::Include(re) if !matched(re, &strings) => {
                    tally(i, Effect::Excluded);
                    return None;
                }
                Compiled::Mask(re, placeholder)
                    if matched(re, &strings) && strings.mask(re, placeholder) =>
                {
                    changed = true;
                    hits = None;
                    tally(i, Effect::Masked);
                }
                Compiled::Sample(re, one_in) => {
                    let request = strings.request_id.as_deref().or(current_request);
                    let sampled_out = re.as_ref().is_none_or(|re| matched(re, &strings))
                        && request.is_some_and(|id| !kept(id, *one_in))
                        && !strings.severe();
                    if sampled_out {
                        tally(i, Effect::SampledOut);
                        return None;
                    }
                }
                _ => {}
            }
        }
        if !changed {
            return Some(raw.clone());
        }
        let mut out = String::with_capacity(text.len() + 16);
        out.push_str(&text[..value.start]);
        out.push_str(&strings.rewrite(json));
        out.push_str(&text[value.end..]);
        Some(Bytes::from(out))
    }
}

/// Which of the set's patterns match any of the strings.
fn set_hits(set: &RegexSet, strings: &Strings) -> [bool; MAX_RULES] {
    let mut hits = [false; MAX_RULES];
    for (_, t, _) in &strings.items {
        for k in set.matches(t).iter() {
            hits[k] = true;
        }
    }
    hits
}

impl<'a> Strings<'a> {
    fn of(json: &'a str) -> Self {
        let mut s = Strings {
            items: Vec::new(),
            level: None,
            request_id: None,
        };
        // A plain-text record is one string: no scan for others.
        if json.starts_with('"') {
            s.items.push((0..json.len(), strings::decode(json), false));
            return s;
        }
        let mut key: Option<Cow<str>> = None;
        for lit in strings::literals(json) {
            let text = strings::decode(&json[lit.range.clone()]);
            if lit.key {
                key = (lit.depth == 1).then_some(text);
                continue;
            }
            match key.take().as_deref() {
                Some("level") if lit.depth == 1 => s.level = Some(text.clone()),
                Some("requestId") if lit.depth == 1 => s.request_id = Some(text.clone()),
                _ => {}
            }
            s.items.push((lit.range, text, false));
        }
        s
    }

    /// Masks every match of `re` in every string; whether any changed.
    fn mask(&mut self, re: &Regex, placeholder: &str) -> bool {
        let mut hit = false;
        for (_, text, changed) in &mut self.items {
            let masked = match re.replace_all(text, placeholder) {
                Cow::Owned(m) => Some(m),
                Cow::Borrowed(_) => None,
            };
            if let Some(m) = masked {
                *text = Cow::Owned(m);
                *changed = true;
                hit = true;
            }
        }
        hit
    }

    /// WARN or above: a JSON record's `level`, else a level word anywhere in the line.
    fn severe(&self) -> bool {
        if let Some(level) = &self.level {
            return SEVERE.iter().any(|s| s.eq_ignore_ascii_case(level));
        }
        self.items.iter().any(|(_, t, _)| {
            t.split(|c: char| !c.is_ascii_alphabetic())
                .any(|word| SEVERE.contains(&word))
        })
    }

    /// `json` with each changed string written anew and everything else as it was.
    fn rewrite(&self, json: &str) -> String {
        let mut out = String::with_capacity(json.len() + 16);
        let mut at = 0;
        for (range, text, changed) in &self.items {
            if *changed {
                out.push_str(&json[at..range.start]);
                out.push_str(&strings::encode(text));
                at = range.end;
            }
        }
        out.push_str(&json[at..]);
        out
    }
}

/// Whether `sample` keeps the request `id`, one in `one_in`: FNV-1a (64-bit) of its bytes.
pub fn kept(id: &str, one_in: u64) -> bool {
    crate::hash::fnv1a(id.as_bytes()).is_multiple_of(one_in.max(1))
}

/// One line for a pattern that does not compile: `regex` explains over several lines.
fn pattern_error(pattern: &str, e: &regex::Error) -> String {
    match e {
        regex::Error::CompiledTooBig(_) => format!(
            "the pattern {pattern:?} compiles to more than {MAX_COMPILED_BYTES} bytes of automaton; use a smaller repetition count or a narrower class"
        ),
        _ => {
            let text = e.to_string();
            let reason = text
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or(text.trim());
            format!("the pattern {pattern:?} does not compile: {reason}")
        }
    }
}
