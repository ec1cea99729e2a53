//! Wall-clock helpers: Lambda speaks epoch milliseconds (`deadlineMs`) and ISO-8601 UTC with
//! millisecond precision (the `time` of every delivered record).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as Lambda puts them in `deadlineMs`.
pub fn epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the format of the RIE's telemetry `time` field.
pub fn iso_ms(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A duration in fractional milliseconds, the unit of every figure in the report.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_lambda() {
        let t = UNIX_EPOCH + Duration::from_millis(1_666_361_103_165);
        assert_eq!(iso_ms(t), "2022-10-21T14:05:03.165Z");
        assert_eq!(epoch_ms(t), 1_666_361_103_165);
    }
}
