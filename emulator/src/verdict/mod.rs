//! The verdict of a run, line by line: every function line the emulator wrote carries a unique
//! marker ([`markers`]); after the run every object in the endpoint's buckets is read
//! ([`objects`]) and each line is found, or not, exactly once. A lost line is told apart by what
//! Lambda knew of it: acknowledged by the extension (a 200 for its delivery: the extension's loss),
//! dropped by Lambda and reported in `platform.logsDropped` (the extension fell behind), or never
//! acknowledged (still held by Lambda at the end, or refused). Beside the lines: objects that are
//! not NDJSON of records, invoke timeouts, crashes, kills at the shutdown deadline, post-runtime
//! duration and the S3 requests it cost.

pub mod objects;
pub mod parquet;
pub mod rules;

pub use crate::expect::{Expect, Tolerate};
pub use crate::markers::{self, marker};

use crate::delivery::SubscriberStats;
use crate::measurements::{ExtensionReport, InvocationSummary, Stats};
use crate::s3::operation_class::classify;
use crate::s3::{S3RequestRecord, StoredObject, WriteRecord};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Lost lines, by what Lambda knew of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Lost {
    pub total: usize,
    pub after_ack: usize,
    pub dropped_by_lambda: usize,
    pub unacknowledged: usize,
    /// A few lost markers, for a person to look for.
    pub examples: Vec<String>,
}

impl Lost {
    /// Counts the lost line `marker` by what Lambda knew of it.
    fn count(&mut self, marker: &str, acked: &HashSet<String>, dropped: &HashSet<String>) {
        self.total += 1;
        if acked.contains(marker) {
            self.after_ack += 1;
        } else if dropped.contains(marker) {
            self.dropped_by_lambda += 1;
        } else {
            self.unacknowledged += 1;
        }
        if self.examples.len() < 5 {
            self.examples.push(marker.to_string());
        }
    }
}

/// The verdict of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Verdict {
    pub lines_emitted: usize,
    pub lines_found: usize,
    pub lost: Lost,
    /// Extra copies: a line found three times counts 2.
    pub duplicated: usize,
    /// Keys S3 stored twice with different content (a retry must rewrite the same bytes).
    pub keys_rewritten_differently: usize,
    pub objects: usize,
    pub objects_not_ndjson: usize,
    pub bad_lines: usize,
    /// The first problem of the first bad object: `key: line n: why`.
    pub first_bad_object: Option<String>,
    pub invoke_timeouts: usize,
    pub crashes: usize,
    pub kills: usize,
    pub post_runtime_ms: Stats,
    /// PUT/COPY/POST/LIST-class requests (S3's $0.005 per 1,000 class), failed ones included.
    pub put_requests: usize,
    /// Bytes of NDJSON in S3 after decompression.
    pub log_bytes: usize,
    /// `put_requests` per 10^6 bytes of `log_bytes`.
    pub puts_per_mb: f64,
    /// What the scenario's processing rules were expected to do, and did.
    pub rules: rules::RuleChecks,
    /// What failed and was not tolerated, or missed an expectation; empty when the run passed.
    pub failures: Vec<String>,
    pub passed: bool,
}

/// What the verdict is made from.
pub struct Inputs<'a> {
    pub run_id: &'a str,
    pub function_lines: &'a [String],
    pub subscribers: &'a [SubscriberStats],
    pub objects: &'a [StoredObject],
    /// Every successful write, in order (a key written twice appears twice).
    pub writes: &'a [WriteRecord],
    pub requests: &'a [S3RequestRecord],
    pub invocations: &'a InvocationSummary,
    pub extensions: &'a [ExtensionReport],
}

impl Verdict {
    /// The verdict's line of a report's table (a run's and a fleet's).
    pub fn headline(&self) -> String {
        format!(
            "verdict: {}; lines emitted {}, found {}, lost {} (after ack {}, dropped by Lambda {}, unacknowledged {}), duplicated {}, keys rewritten differently {}",
            if self.passed { "PASS" } else { "FAIL" },
            self.lines_emitted,
            self.lines_found,
            self.lost.total,
            self.lost.after_ack,
            self.lost.dropped_by_lambda,
            self.lost.unacknowledged,
            self.duplicated,
            self.keys_rewritten_differently
        )
    }

    pub fn of(i: &Inputs, expect: &Expect) -> Self {
        let run = i.run_id;
        let emitted: Vec<&str> = i
            .function_lines
            .iter()
            .flat_map(|l| markers::find(l, run))
            .collect();
        let in_texts = |texts: &mut dyn Iterator<Item = &String>| -> HashSet<String> {
            texts
                .flat_map(|t| markers::find(t, run))
                .map(str::to_string)
                .collect()
        };
        let acked = in_texts(&mut i.subscribers.iter().flat_map(|s| &s.delivered_records));
        let dropped = in_texts(&mut i.subscribers.iter().flat_map(|s| &s.dropped_records));

        let mut v = Verdict {
            lines_emitted: emitted.len(),
            objects: i.objects.len(),
            ..Verdict::default()
        };
        let expected = rules::Expected::of(i.function_lines, run, expect);
        let mut found: HashMap<&str, usize> = HashMap::new();
        let decoded: Vec<(&StoredObject, objects::Decoded)> = i
            .objects
            .iter()
            .map(|o| (o, objects::decode(&o.body, o.content_encoding.as_deref())))
            .collect();
        for (o, d) in &decoded {
            v.log_bytes += d.text.len();
            v.bad_lines += d.bad_lines;
            if let Some(p) = &d.problem {
                v.objects_not_ndjson += 1;
                v.first_bad_object
                    .get_or_insert_with(|| format!("{}: {p}", o.key));
            }
            for m in markers::find(&d.text, run) {
                *found.entry(m).or_default() += 1;
            }
        }
        v.rules
            .count_forbidden(expect, decoded.iter().map(|(_, d)| d.text.as_str()));
        for m in &emitted {
            // A line the rules were to drop, or could, is judged there; absent, it is not lost.
            let judged = expected.judged(m, found.contains_key(m), &mut v.rules);
            match found.get(m) {
                Some(n) => {
                    v.lines_found += 1;
                    v.duplicated += n - 1;
                }
                None if judged => {}
                None => v.lost.count(m, &acked, &dropped),
            }
        }
        let mut etags: HashMap<(&str, &str), &str> = HashMap::new();
        for w in i.writes {
            if let Some(prev) = etags.insert((w.bucket.as_str(), w.key.as_str()), w.etag.as_str())
                && prev != w.etag
            {
                v.keys_rewritten_differently += 1;
            }
        }
        v.invoke_timeouts = i.invocations.timeout;
        v.post_runtime_ms = i.invocations.post_runtime_ms.clone();
        v.crashes = i.extensions.iter().filter(|e| e.crashed).count();
        v.kills = i.extensions.iter().filter(|e| e.killed_at_deadline).count();
        v.put_requests = i
            .requests
            .iter()
            .filter(|r| classify(&r.operation).billed_as_put)
            .count();
        v.puts_per_mb = if v.log_bytes == 0 {
            0.0
        } else {
            v.put_requests as f64 / (v.log_bytes as f64 / 1e6)
        };
        v.judge(expect);
        v
    }

    fn judge(&mut self, expect: &Expect) {
        let ok = |t: Tolerate| expect.tolerate.contains(&t);
        let mut f = Vec::new();
        if self.keys_rewritten_differently > 0 {
            // Never tolerated: a reader could see either version.
            f.push(format!(
                "{} keys written twice with different content",
                self.keys_rewritten_differently
            ));
        }
        let l = &self.lost;
        for (n, t, what) in [
            (
                l.after_ack,
                Tolerate::LostAfterAck,
                "lines lost after the extension acknowledged them",
            ),
            (
                l.dropped_by_lambda,
                Tolerate::DroppedByLambda,
                "lines dropped by Lambda (platform.logsDropped)",
            ),
            (
                l.unacknowledged,
                Tolerate::Unacknowledged,
                "lines never acknowledged by the extension",
            ),
            (self.duplicated, Tolerate::Duplicate, "duplicated lines"),
            (
                self.objects_not_ndjson,
                Tolerate::BadObject,
                "objects that are not NDJSON of records",
            ),
            (self.invoke_timeouts, Tolerate::Timeout, "invoke timeouts"),
            (self.crashes, Tolerate::Crash, "crashes"),
            (self.kills, Tolerate::Kill, "kills at the shutdown deadline"),
        ] {
            if n > 0 && !ok(t) {
                f.push(format!("{n} {what} ({})", t.name()));
            }
        }
        if let Some(max) = expect.max_post_runtime_p99_ms
            && self.post_runtime_ms.p99 > max
        {
            f.push(format!(
                "post-runtime p99 {:.2} ms is above {max} ms",
                self.post_runtime_ms.p99
            ));
        }
        if let Some(max) = expect.max_puts_per_mb
            && self.puts_per_mb > max
        {
            f.push(format!(
                "{:.1} PUT requests per MB is above {max}",
                self.puts_per_mb
            ));
        }
        if let Some(min) = expect.min_objects
            && self.objects < min
        {
            f.push(format!("{} objects, expected at least {min}", self.objects));
        }
        if let Some(max) = expect.max_objects
            && self.objects > max
        {
            f.push(format!("{} objects, expected at most {max}", self.objects));
        }
        f.extend(self.rules.failures());
        self.passed = f.is_empty();
        self.failures = f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, body: &str) -> StoredObject {
        StoredObject {
            bucket: "b".into(),
            key: key.into(),
            body: bytes::Bytes::from(body.to_string()),
            size: body.len(),
            etag: String::new(),
            content_type: None,
            content_encoding: None,
            server_side_encryption: None,
            sse_kms_key_id: None,
            storage_class: None,
            metadata: Default::default(),
            checksums: Default::default(),
            multipart: false,
            last_modified: std::time::SystemTime::now(),
        }
    }

    fn rec(m: &str) -> String {
        format!("{{\"time\":\"t\",\"type\":\"function\",\"record\":\"line {m} x\"}}")
    }

    #[test]
    fn each_line_is_found_once_or_classified_by_what_lambda_knew() {
        let run = "r1";
        let lines: Vec<String> = (1..=6)
            .map(|n| format!("line {}", marker(run, n)))
            .collect();
        let m = |n: u64| marker(run, n);
        let sub = SubscriberStats {
            delivered_records: (1..=4).map(|n| rec(&m(n))).collect(),
            dropped_records: vec![rec(&m(5))],
            ..SubscriberStats::default()
        };
        // 1 shipped once, 2 twice, 3 lost after a 200, 4 shipped, 5 dropped by Lambda, 6 never acked.
        let objects = vec![
            object("a", &format!("{}\n{}\n", rec(&m(1)), rec(&m(2)))),
            object("b", &format!("{}\n{}\n", rec(&m(2)), rec(&m(4)))),
            object("bad", "[1,2]"),
        ];
        let inputs = Inputs {
            run_id: run,
            function_lines: &lines,
            subscribers: &[sub],
            objects: &objects,
            writes: &[],
            requests: &[],
            invocations: &InvocationSummary::default(),
            extensions: &[],
        };
        let v = Verdict::of(&inputs, &Expect::default());
        assert_eq!((v.lines_emitted, v.lines_found, v.duplicated), (6, 3, 1));
        assert_eq!(
            (
                v.lost.total,
                v.lost.after_ack,
                v.lost.dropped_by_lambda,
                v.lost.unacknowledged
            ),
            (3, 1, 1, 1)
        );
        assert_eq!(v.lost.examples, vec![m(3), m(5), m(6)]);
        assert_eq!((v.objects, v.objects_not_ndjson), (3, 1));
        assert_eq!(
            v.first_bad_object.as_deref(),
            Some("bad: line 1: not a JSON object")
        );
        assert!(!v.passed);
        assert_eq!(v.failures.len(), 5, "{:?}", v.failures);
        let lenient = Expect {
            tolerate: vec![
                Tolerate::LostAfterAck,
                Tolerate::DroppedByLambda,
                Tolerate::Unacknowledged,
                Tolerate::Duplicate,
                Tolerate::BadObject,
            ],
            max_objects: Some(2),
            ..Expect::default()
        };
        let v = Verdict::of(&inputs, &lenient);
        assert_eq!(
            v.failures,
            vec!["3 objects, expected at most 2".to_string()]
        );
    }

    #[test]
    fn lines_the_scenario_expects_absent_and_forbidden_strings_are_judged_from_s3() {
        let run = "r2";
        let m = |n: u64| marker(run, n);
        let lines = vec![
            format!("line {} key AKIAIOSFODNN7EXAMPLE", m(1)),
            format!("line {} GET /health", m(2)),
            format!("line {} DEBUG", m(3)),
            format!("line {} GET /health", m(4)),
            format!("line {} plain", m(5)),
        ];
        let shipped = |n: u64, text: &str| {
            format!(
                "{{\"time\":\"t\",\"type\":\"function\",\"record\":\"line {} {text}\"}}",
                m(n)
            )
        };
        // 1 masked, 2 dropped, 3 sampled out, 4 wrongly shipped, 5 shipped.
        let body = [
            shipped(1, "key [KEY]"),
            shipped(4, "GET /health"),
            shipped(5, "plain"),
        ];
        let objects = vec![object("a", &(body.join("\n") + "\n"))];
        let inputs = Inputs {
            run_id: run,
            function_lines: &lines,
            subscribers: &[],
            objects: &objects,
            writes: &[],
            requests: &[],
            invocations: &InvocationSummary::default(),
            extensions: &[],
        };
        let expect = Expect {
            absent_lines: vec!["GET /health".into()],
            optional_lines: vec!["DEBUG".into()],
            forbidden: vec!["AKIAIOSFODNN7EXAMPLE".into(), "GET /health".into()],
            ..Expect::default()
        };
        let v = Verdict::of(&inputs, &expect);
        assert_eq!((v.lines_emitted, v.lines_found, v.lost.total), (5, 3, 0));
        assert_eq!(
            v.rules,
            rules::RuleChecks {
                expected: true,
                absent_as_expected: 1,
                present_but_expected_absent: 1,
                optional_absent: 1,
                optional_present: 0,
                forbidden_found: vec![
                    ("AKIAIOSFODNN7EXAMPLE".into(), 0),
                    ("GET /health".into(), 1)
                ],
            }
        );
        assert_eq!(
            v.failures,
            [
                "1 lines the scenario expects absent (dropped by the rules) are in S3",
                "the forbidden string \"GET /health\" is in S3 1 times"
            ]
        );
    }

    #[test]
    fn tolerances_parse_by_name() {
        for t in Tolerate::ALL {
            assert_eq!(Tolerate::parse(t.name()), Ok(t));
        }
        assert!(
            Tolerate::parse("loss")
                .unwrap_err()
                .contains("lost-after-ack")
        );
    }
}
