//! Object keys, in the Go sample's layout:
//! `YYYY-MM-DD-<environment id>/<function name, lower case>-<unix ms>-<uuid v4>.log`.
//! The date and milliseconds are the batch's seal time in UTC; the environment id is a v4 UUID made
//! once per process; the last UUID makes every key unique. Pure: time and ids are passed in.

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub fn object_key(
    sealed_at: DateTime<Utc>,
    environment_id: Uuid,
    function_name: &str,
    batch_id: Uuid,
) -> String {
    format!(
        "{}-{}/{}-{}-{}.log",
        sealed_at.format("%Y-%m-%d"),
        environment_id,
        function_name.to_lowercase(),
        sealed_at.timestamp_millis(),
        batch_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_samples_layout_with_fixed_time_and_ids() {
        let at = DateTime::from_timestamp_millis(1_795_807_110_456).unwrap();
        let env = Uuid::parse_str("2f9935c2-1111-4222-8333-444444444444").unwrap();
        let batch = Uuid::parse_str("52f63032-aaaa-4bbb-8ccc-dddddddddddd").unwrap();
        assert_eq!(
            object_key(at, env, "Demo-Fn", batch),
            "2026-11-27-2f9935c2-1111-4222-8333-444444444444/demo-fn-1795807110456-52f63032-aaaa-4bbb-8ccc-dddddddddddd.log"
        );
    }
}
