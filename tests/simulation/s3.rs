//! A modelled S3: objects by key, and what each request meets — throttling, refusals, rejections,
//! a 5xx that may or may not have stored the object, an answer lost after the object was stored,
//! and requests that stall past the client's time limit (stored late, or never). It checks two of
//! the invariants at every write: no key is ever rewritten with other content, and no record is
//! stored under two keys.

use adaptive_batching_extension::random::Xorshift;
use adaptive_batching_extension::ship_policy::{Failure, Refusal};
use std::collections::BTreeMap;
use std::time::Duration;

/// How often each fault happens, per request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub throttle: f64,
    pub refuse: f64,
    pub reject: f64,
    pub unsendable: f64,
    /// A 500: stored or not, half and half.
    pub server_error: f64,
    /// Stored, but the answer never arrives (the client's time limit ends the attempt).
    pub lost_reply: f64,
    /// The request stalls past the client's time limit; it is stored late, or never.
    pub stall: f64,
    /// Windows (from the start) inside which every write is throttled or refused.
    pub throttled_from_to: Option<(Duration, Duration)>,
    pub refused_from_to: Option<(Duration, Duration)>,
}

/// What one request comes to.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// When the client hears back (or gives up), after the request was sent.
    pub answered_after: Duration,
    /// What the client hears: `None` is success.
    pub failure: Option<Failure>,
    /// Whether (and after how long) S3 stores the object.
    pub stored_after: Option<Duration>,
}

#[derive(Debug, Default, Clone)]
pub struct S3 {
    pub objects: BTreeMap<String, Vec<u8>>,
    /// Which key each record was stored under.
    pub record_keys: BTreeMap<u64, String>,
    pub puts: u64,
    pub violations: Vec<String>,
}

impl Faults {
    /// The fate of a request sent at `at`, with the client's time limit `timeout`.
    pub fn decide(&self, rng: &mut Xorshift, at: Duration, timeout: Duration) -> Outcome {
        let latency = Duration::from_millis(5 + rng.below(150));
        let within = |w: Option<(Duration, Duration)>| w.is_some_and(|(a, b)| at >= a && at < b);
        let answered = |failure| Outcome {
            answered_after: latency,
            failure,
            stored_after: None,
        };
        if within(self.refused_from_to) || rng.chance(self.refuse) {
            return answered(Some(Failure::Refused(Refusal::AccessDenied)));
        }
        if within(self.throttled_from_to) || rng.chance(self.throttle) {
            return answered(Some(Failure::Throttled));
        }
        if rng.chance(self.unsendable) {
            return Outcome {
                answered_after: Duration::ZERO,
                failure: Some(Failure::Unsendable),
                stored_after: None,
            };
        }
        if rng.chance(self.reject) {
            return answered(Some(Failure::Rejected));
        }
        if rng.chance(self.server_error) {
            return Outcome {
                answered_after: latency,
                failure: Some(Failure::Transient),
                stored_after: rng.chance(0.5).then_some(latency / 2),
            };
        }
        if rng.chance(self.lost_reply) {
            return Outcome {
                answered_after: timeout,
                failure: Some(Failure::Transient),
                stored_after: Some(latency),
            };
        }
        if rng.chance(self.stall) {
            return Outcome {
                answered_after: timeout,
                failure: Some(Failure::Transient),
                stored_after: rng
                    .chance(0.5)
                    .then(|| timeout + Duration::from_millis(rng.below(5000))),
            };
        }
        Outcome {
            answered_after: latency,
            failure: None,
            stored_after: Some(latency),
        }
    }
}

/// The record ids of an NDJSON body of the simulation (`r<id> …` lines).
pub fn records_of(body: &[u8]) -> Vec<u64> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let l = std::str::from_utf8(l).ok()?;
            l.strip_prefix('r')?.split(' ').next()?.parse().ok()
        })
        .collect()
}

impl S3 {
    /// Stores `body` under `key`, checking that the key keeps its content and that no record is
    /// stored under two keys.
    pub fn store(&mut self, key: &str, body: &[u8]) {
        if let Some(prev) = self.objects.get(key)
            && prev != body
        {
            self.violations
                .push(format!("{key} rewritten with other content"));
        }
        for r in records_of(body) {
            match self.record_keys.get(&r) {
                Some(k) if k != key => self
                    .violations
                    .push(format!("record r{r} stored under {k} and {key}")),
                _ => {
                    self.record_keys.insert(r, key.to_string());
                }
            }
        }
        self.objects.insert(key.to_string(), body.to_vec());
    }
}
