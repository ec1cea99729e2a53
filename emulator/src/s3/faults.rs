//! Fault injection in front of the S3 protocol layer: failed PUTs (500), throttling (503 SlowDown),
//! an outage window, added latency, connection resets. A "PUT" here is an object write
//! (PutObject or UploadPart): a PUT whose path names a key, not CreateBucket.

use serde::Serialize;
use std::time::Duration;

/// What the S3 endpoint should get wrong. Change it at any time through [`super::S3Endpoint::faults`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
}

/// What the fault layer did to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Injected {
    InternalError,
    SlowDown,
    Outage,
    ConnectionReset,
}

/// Decides the fate of one request; `put_seq` is the 1-based number of this object write.
pub(crate) fn decide(
    f: &mut Faults,
    is_put: bool,
    put_seq: u64,
    since_start: Duration,
) -> Option<Injected> {
    if f.outage_now
        || f.outage
            .is_some_and(|(a, b)| since_start >= a && since_start < b)
    {
        return Some(Injected::Outage);
    }
    if !is_put {
        return None;
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
    None
}

/// The S3 error document for an injected failure: (status, code, message).
pub(crate) fn error_document(i: Injected) -> (u16, &'static str, &'static str) {
    match i {
        Injected::InternalError => (
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        Injected::SlowDown => (503, "SlowDown", "Please reduce your request rate."),
        Injected::Outage => (
            503,
            "ServiceUnavailable",
            "Service is unable to handle request.",
        ),
        Injected::ConnectionReset => (0, "", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_puts_then_recover_and_slowdown_every_kth() {
        let mut f = Faults {
            fail_next_puts: 2,
            slowdown_every: Some(3),
            ..Default::default()
        };
        let got: Vec<_> = (1..=6)
            .map(|n| decide(&mut f, true, n, Duration::ZERO))
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
            decide(&mut f, false, 0, Duration::ZERO),
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
        assert_eq!(decide(&mut f, false, 0, Duration::from_millis(500)), None);
        assert_eq!(
            decide(&mut f, false, 0, Duration::from_millis(1500)),
            Some(Injected::Outage)
        );
        assert_eq!(decide(&mut f, true, 1, Duration::from_millis(2000)), None);
    }
}
