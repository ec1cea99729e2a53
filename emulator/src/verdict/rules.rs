//! What the scenario says processing rules must do, checked in S3 without asking the extension:
//! which of the function's lines must be absent (`absent_lines`), which may be (`optional_lines`,
//! sampled), and which strings no object may contain (`forbidden`, masked). The expectation comes
//! from the scenario's author, who wrote the rules and the lines; the extension's own counters are
//! not read.

use super::Expect;
use crate::markers;
use serde::Serialize;
use std::collections::HashSet;

/// What the rules did, as S3 shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleChecks {
    /// Whether the scenario expects anything of the rules.
    pub expected: bool,
    /// Lines expected absent that are absent.
    pub absent_as_expected: usize,
    /// Lines expected absent that are in S3: a rule did not drop them.
    pub present_but_expected_absent: usize,
    /// Lines that may be absent (sampled), absent and present.
    pub optional_absent: usize,
    pub optional_present: usize,
    /// Each forbidden string and how many times the objects contain it.
    pub forbidden_found: Vec<(String, usize)>,
}

/// The markers of the lines the scenario expects absent, and of those it allows to be.
pub struct Expected {
    pub absent: HashSet<String>,
    pub optional: HashSet<String>,
}

impl Expected {
    /// The markers of `function_lines` that contain an `absent_lines` (or `optional_lines`) text.
    pub fn of(function_lines: &[String], run: &str, expect: &Expect) -> Self {
        let of = |texts: &[String]| -> HashSet<String> {
            function_lines
                .iter()
                .filter(|l| texts.iter().any(|t| l.contains(t.as_str())))
                .flat_map(|l| markers::find(l, run))
                .map(str::to_string)
                .collect()
        };
        Self {
            absent: of(&expect.absent_lines),
            optional: of(&expect.optional_lines),
        }
    }

    /// Whether the line `marker` is one the scenario expects absent or allows to be; counts it.
    pub fn judged(&self, marker: &str, found: bool, checks: &mut RuleChecks) -> bool {
        let (present, absent) = if self.absent.contains(marker) {
            (
                &mut checks.present_but_expected_absent,
                &mut checks.absent_as_expected,
            )
        } else if self.optional.contains(marker) {
            (&mut checks.optional_present, &mut checks.optional_absent)
        } else {
            return false;
        };
        *if found { present } else { absent } += 1;
        true
    }
}

impl RuleChecks {
    /// Counts each forbidden string in the objects' decoded `texts`.
    pub fn count_forbidden<'a>(&mut self, expect: &Expect, texts: impl Iterator<Item = &'a str>) {
        let texts: Vec<&str> = texts.collect();
        self.expected = !expect.absent_lines.is_empty()
            || !expect.optional_lines.is_empty()
            || !expect.forbidden.is_empty();
        self.forbidden_found = expect
            .forbidden
            .iter()
            .map(|f| {
                (
                    f.clone(),
                    texts.iter().map(|t| t.matches(f.as_str()).count()).sum(),
                )
            })
            .collect();
    }

    /// What failed: never tolerated, since a rule that does not apply is a leak.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.present_but_expected_absent > 0 {
            f.push(format!(
                "{} lines the scenario expects absent (dropped by the rules) are in S3",
                self.present_but_expected_absent
            ));
        }
        for (text, n) in &self.forbidden_found {
            if *n > 0 {
                f.push(format!("the forbidden string {text:?} is in S3 {n} times"));
            }
        }
        f
    }

    /// The report's line, when the scenario expects anything of the rules.
    pub fn line(&self) -> Option<String> {
        if !self.expected {
            return None;
        }
        let forbidden: Vec<String> = self
            .forbidden_found
            .iter()
            .map(|(t, n)| format!("{t:?} {n}"))
            .collect();
        Some(format!(
            "rules: lines expected absent {} absent, {} present; lines that may be absent {} absent, {} present; forbidden strings found: {}",
            self.absent_as_expected,
            self.present_but_expected_absent,
            self.optional_absent,
            self.optional_present,
            if forbidden.is_empty() {
                "none expected".into()
            } else {
                forbidden.join(", ")
            }
        ))
    }
}
