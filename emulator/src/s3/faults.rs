//! Fault injection in front of the S3 protocol layer: failed PUTs (500), throttling (503 SlowDown,
//! every k-th PUT or past a per-prefix request rate), refusals (403 AccessDenied, a KMS denial) for
//! the next N writes or during a window, an outage window, added latency, connection resets, and
//! uploads cut by a freeze of the environment. A "PUT" here is an object write (PutObject or
//! UploadPart); a "write" is any request of S3's PUT/COPY/POST/DELETE price class on an object
//! (PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload).

use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// What a refusal looks like (UG "Troubleshoot access denied (403 Forbidden) errors").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// The role lacks `s3:PutObject`, an explicit deny, or a policy not yet propagated.
    #[default]
    AccessDenied,
    /// SSE-KMS and the role may not use the key: S3 answers 403 AccessDenied naming
    /// `kms:GenerateDataKey` (spec §5).
    Kms,
}

/// What the S3 endpoint should get wrong. Change it at any time through [`super::S3Endpoint::faults`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// The next N object writes answer 500 InternalError.
    pub fail_next_puts: u32,
    /// Every k-th object write answers 503 SlowDown.
    pub slowdown_every: Option<u32>,
    /// Every request inside this window (from the endpoint's start) answers 503 ServiceUnavailable.
    pub outage: Option<(Duration, Duration)>,
    /// Every request answers 503 ServiceUnavailable until this is cleared.
    pub outage_now: bool,
    /// Added before every request is handled.
    pub latency: Duration,
    /// The next N object writes have their connection closed without an answer.
    pub reset_next_puts: u32,
    /// Every k-th object write (of those no other fault takes) is stored, then its connection is
    /// closed without the answer: a reply lost on the way back. S3 did the work; the client
    /// cannot tell, and sends it again (an idempotent PUT: the same key, the same bytes).
    pub lose_reply_every: Option<u32>,
    /// The next N writes are refused with `refusal`.
    pub refuse_next_writes: u32,
    /// Every write inside this window (from the endpoint's start) is refused with `refusal`.
    pub refuse_window: Option<(Duration, Duration)>,
    pub refusal: Refusal,
    /// S3's per-prefix request rate (UG "Optimizing Amazon S3 performance": at least 3,500
    /// PUT/COPY/POST/DELETE per second per partitioned prefix): writes to one prefix (the key up to
    /// its last `/`) above this many per second answer 503 SlowDown. A token bucket that holds one
    /// second's worth.
    pub prefix_write_rate: Option<f64>,
    /// The next N object writes are treated as bodies still being sent: if the environment freezes
    /// within `freeze_cut_wait` of their arrival (the extension called `next` with the upload in
    /// flight) and stays frozen past the socket timeout, they meet what such a body meets on S3 —
    /// 400 RequestTimeout and a closed connection, read by the extension after the thaw. A thaw
    /// before the socket timeout, or no freeze at all, lets them through.
    pub freeze_cut_next_writes: u32,
    pub freeze_cut_wait: Duration,
    /// Answer UploadPart without the part's `x-amz-checksum-*` header, as some S3-compatible
    /// stores do (S3 itself echoes it: API Reference, UploadPart, Response Syntax). A client that
    /// builds CompleteMultipartUpload from the echoed checksums then lists none, and S3's rule for
    /// a COMPOSITE upload refuses it (400 InvalidRequest).
    pub omit_part_checksums: bool,
}

/// The per-prefix token buckets of [`Faults::prefix_write_rate`].
#[derive(Debug, Default)]
pub(crate) struct PrefixBuckets {
    /// Tokens and the time they were counted at, by prefix.
    buckets: HashMap<String, (f64, Duration)>,
}

impl PrefixBuckets {
    /// Takes a token for a write to `key` at `now`; false when the prefix is over its rate.
    pub fn admit(&mut self, key: &str, rate: f64, now: Duration) -> bool {
        let burst = rate.max(1.0);
        let (tokens, at) = self
            .buckets
            .entry(prefix_of(key).to_string())
            .or_insert((burst, now));
        *tokens = (*tokens + (now.saturating_sub(*at)).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The partition a key's requests count against: the key up to and including its last `/` (S3
/// partitions by prefix and does not document where it cuts; the "folder" is the common reading).
pub fn prefix_of(key: &str) -> &str {
    key.rfind('/').map_or("", |i| &key[..=i])
}

/// What the fault layer did to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Injected {
    InternalError,
    SlowDown,
    /// 503 SlowDown because the key's prefix is over its request rate.
    PrefixSlowDown,
    Outage,
    ConnectionReset,
    AccessDenied,
    KmsDenied,
    /// A body cut by a freeze of the environment: 400 RequestTimeout (see
    /// [`Faults::freeze_cut_next_writes`]).
    FreezeCut,
    /// Stored, and the answer lost ([`Faults::lose_reply_every`]).
    ReplyLost,
}

/// What a request is, as far as faults go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    /// PutObject or UploadPart.
    pub put: bool,
    /// Any write of the PUT price class on an object.
    pub write: bool,
}

/// Decides the fate of one request; `put_seq` is the 1-based number of this object write.
pub(crate) fn decide(
    f: &mut Faults,
    kind: Kind,
    put_seq: u64,
    since_start: Duration,
) -> Option<Injected> {
    if f.outage_now
        || f.outage
            .is_some_and(|(a, b)| since_start >= a && since_start < b)
    {
        return Some(Injected::Outage);
    }
    if !kind.write {
        return None;
    }
    let refused = if f.refuse_next_writes > 0 {
        f.refuse_next_writes -= 1;
        true
    } else {
        f.refuse_window
            .is_some_and(|(a, b)| since_start >= a && since_start < b)
    };
    if refused {
        return Some(match f.refusal {
            Refusal::AccessDenied => Injected::AccessDenied,
            Refusal::Kms => Injected::KmsDenied,
        });
    }
    if !kind.put {
        return None;
    }
    if f.freeze_cut_next_writes > 0 {
        f.freeze_cut_next_writes -= 1;
        return Some(Injected::FreezeCut);
    }
    if f.reset_next_puts > 0 {
        f.reset_next_puts -= 1;
        return Some(Injected::ConnectionReset);
    }
    if f.fail_next_puts > 0 {
        f.fail_next_puts -= 1;
        return Some(Injected::InternalError);
    }
    if let Some(k) = f.slowdown_every
        && k > 0
        && put_seq.is_multiple_of(u64::from(k))
    {
        return Some(Injected::SlowDown);
    }
    if let Some(k) = f.lose_reply_every
        && k > 0
        && put_seq.is_multiple_of(u64::from(k))
    {
        return Some(Injected::ReplyLost);
    }
    None
}

/// S3's message for a body that stopped arriving (spec §3).
pub(crate) const REQUEST_TIMEOUT: &str = "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.";

/// The S3 error document for an injected failure: (status, code, message).
pub(crate) fn error_document(i: Injected) -> (u16, &'static str, &'static str) {
    match i {
        Injected::InternalError => (
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        Injected::SlowDown | Injected::PrefixSlowDown => {
            (503, "SlowDown", "Please reduce your request rate.")
        }
        Injected::AccessDenied => (403, "AccessDenied", "Access Denied"),
        Injected::KmsDenied => (
            403,
            "AccessDenied",
            "User: arn:aws:sts::123456789012:assumed-role/emulated-function-role/emulated-function is not authorized to perform: kms:GenerateDataKey on resource: arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000 because no identity-based policy allows the kms:GenerateDataKey action",
        ),
        Injected::Outage => (
            503,
            "ServiceUnavailable",
            "Service is unable to handle request.",
        ),
        Injected::FreezeCut => (400, "RequestTimeout", REQUEST_TIMEOUT),
        Injected::ConnectionReset | Injected::ReplyLost => (0, "", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUT: Kind = Kind {
        put: true,
        write: true,
    };
    const READ: Kind = Kind {
        put: false,
        write: false,
    };

    #[test]
    fn fail_next_puts_then_recover_and_slowdown_every_kth() {
        let mut f = Faults {
            fail_next_puts: 2,
            slowdown_every: Some(3),
            ..Default::default()
        };
        let got: Vec<_> = (1..=6)
            .map(|n| decide(&mut f, PUT, n, Duration::ZERO))
            .collect();
        assert_eq!(
            got,
            vec![
                Some(Injected::InternalError),
                Some(Injected::InternalError),
                Some(Injected::SlowDown),
                None,
                None,
                Some(Injected::SlowDown)
            ]
        );
        assert_eq!(
            decide(&mut f, READ, 0, Duration::ZERO),
            None,
            "reads are not PUTs"
        );
    }

    #[test]
    fn outage_window_covers_every_request_inside_it() {
        let mut f = Faults {
            outage: Some((Duration::from_secs(1), Duration::from_secs(2))),
            ..Default::default()
        };
        assert_eq!(decide(&mut f, READ, 0, Duration::from_millis(500)), None);
        assert_eq!(
            decide(&mut f, READ, 0, Duration::from_millis(1500)),
            Some(Injected::Outage)
        );
        assert_eq!(decide(&mut f, PUT, 1, Duration::from_millis(2000)), None);
    }

    #[test]
    fn refusals_cover_every_write_for_n_requests_or_a_window() {
        let create = Kind {
            put: false,
            write: true,
        };
        let mut f = Faults {
            refuse_next_writes: 2,
            refusal: Refusal::Kms,
            refuse_window: Some((Duration::from_secs(5), Duration::from_secs(6))),
            ..Default::default()
        };
        assert_eq!(
            decide(&mut f, create, 0, Duration::ZERO),
            Some(Injected::KmsDenied)
        );
        assert_eq!(decide(&mut f, READ, 0, Duration::ZERO), None, "reads pass");
        assert_eq!(
            decide(&mut f, PUT, 1, Duration::ZERO),
            Some(Injected::KmsDenied)
        );
        assert_eq!(decide(&mut f, PUT, 2, Duration::ZERO), None);
        assert_eq!(
            decide(&mut f, PUT, 3, Duration::from_millis(5500)),
            Some(Injected::KmsDenied)
        );
        assert_eq!(decide(&mut f, PUT, 4, Duration::from_secs(6)), None);
    }

    #[test]
    fn a_prefix_over_its_rate_is_throttled_and_recovers_with_time() {
        let mut b = PrefixBuckets::default();
        let t0 = Duration::from_secs(1);
        // 2 per second, a burst of 2.
        assert!(b.admit("a/1", 2.0, t0));
        assert!(b.admit("a/2", 2.0, t0));
        assert!(!b.admit("a/3", 2.0, t0), "the third in the same instant");
        assert!(b.admit("b/1", 2.0, t0), "another prefix has its own bucket");
        assert!(
            b.admit("a/4", 2.0, t0 + Duration::from_millis(500)),
            "one token back after 0.5 s"
        );
        assert!(!b.admit("a/5", 2.0, t0 + Duration::from_millis(500)));
        assert_eq!(prefix_of("logs/fn=x/dt=1/k.gz"), "logs/fn=x/dt=1/");
        assert_eq!(prefix_of("top.log"), "");
    }
}
