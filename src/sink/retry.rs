//! The retry policy as a type: exponential backoff with full jitter, bounded by a deadline.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First retry waits up to this.
    pub base: Duration,
    /// No wait is longer.
    pub cap: Duration,
    /// Attempts per shipping opportunity, the first included.
    pub attempts: u32,
}

/// 4 attempts, waits up to 100, 200, 400 ms: under a second in all, so a shipping opportunity
/// (an INVOKE, the shutdown) is not held long by a failing S3; the batch is kept for the next one.
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(2),
    attempts: 4,
};

impl Backoff {
    /// The wait before retry number `retry` (1-based): uniform in [0, min(cap, base·2^(retry-1))]
    /// ("full jitter"), given `unit` uniform in [0, 1). `None` when no attempt is left or the wait
    /// would end past `deadline`.
    pub fn delay(
        &self,
        retry: u32,
        unit: f64,
        now: Instant,
        deadline: Option<Instant>,
    ) -> Option<Duration> {
        if retry >= self.attempts {
            return None;
        }
        let ceiling = self
            .base
            .saturating_mul(1u32 << (retry - 1).min(20))
            .min(self.cap);
        let wait = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        match deadline {
            Some(d) if now + wait >= d => None,
            _ => Some(wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_grows_and_is_capped_and_bounded() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(300),
            attempts: 4,
        };
        let now = Instant::now();
        assert_eq!(b.delay(1, 0.999_999, now, None).unwrap().as_millis(), 99);
        assert_eq!(b.delay(2, 0.5, now, None), Some(Duration::from_millis(100)));
        assert_eq!(
            b.delay(3, 1.0, now, None),
            Some(Duration::from_millis(300)),
            "capped"
        );
        assert_eq!(b.delay(4, 0.5, now, None), None, "no fifth attempt");
        assert_eq!(b.delay(1, 0.0, now, None), Some(Duration::ZERO));
        assert_eq!(
            b.delay(2, 1.0, now, Some(now + Duration::from_millis(150))),
            None,
            "would pass the deadline"
        );
    }
}
