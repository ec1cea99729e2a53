//! SnapStart: recognising a restored environment and keeping keys unique across the copies restored
//! from one snapshot. Pure: clocks and ids are passed in.
//!
//! Everything in the process — its environment id, its buffered records, its timers — is in the
//! snapshot, and every environment restored from it starts with the same copy. So after a restore
//! the extension takes a new environment id (its later keys cannot collide with another copy's), and
//! the records buffered before the snapshot are sealed under a key that every copy derives alike:
//! however many copies ship them, they become one object, rewritten with the same content.

use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// How far the wall clock may drift from the monotonic clock between two ticks before we take it
/// for a restore: NTP slews by milliseconds, a restore jumps by the snapshot's age.
pub const JUMP: Duration = Duration::from_secs(5);

/// Whether the wall clock moved by more than [`JUMP`] apart from the monotonic clock between two
/// readings (the monotonic clock of a snapshot does not count the time it spent on disk).
pub fn wall_clock_jumped(before: (SystemTime, Instant), now: (SystemTime, Instant)) -> bool {
    let mono = now.1.saturating_duration_since(before.1);
    let wall = match now.0.duration_since(before.0) {
        Ok(d) => d,
        // The wall clock went back: that is a jump too if it is large.
        Err(e) => return e.duration() + mono > JUMP,
    };
    wall.abs_diff(mono) > JUMP
}

/// The batch id of the `seq`-th batch sealed by environment `environment_id`, the same in every
/// copy restored from one snapshot (a version 8, "custom", UUID).
pub fn batch_id_before_snapshot(environment_id: Uuid, seq: u64) -> Uuid {
    let mut bytes = *environment_id.as_bytes();
    for (b, s) in bytes[8..].iter_mut().zip(seq.to_be_bytes()) {
        *b ^= s;
    }
    Uuid::new_v8(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_jump_is_a_restore_and_ordinary_time_is_not() {
        let (w, m) = (SystemTime::now(), Instant::now());
        let later = (w + Duration::from_secs(60), m + Duration::from_secs(60));
        assert!(
            !wall_clock_jumped((w, m), later),
            "both clocks moved together"
        );
        assert!(wall_clock_jumped(
            (w, m),
            (
                w + Duration::from_secs(3600),
                m + Duration::from_millis(100)
            )
        ));
        assert!(wall_clock_jumped(
            (w, m),
            (w - Duration::from_secs(30), m + Duration::from_millis(100))
        ));
        assert!(
            !wall_clock_jumped((w, m), (w + Duration::from_secs(2), m)),
            "a small step is a clock adjustment"
        );
    }

    #[test]
    fn pre_snapshot_batch_ids_are_deterministic_and_distinct() {
        let env = Uuid::parse_str("2f9935c2-1111-4222-8333-444444444444").unwrap();
        assert_eq!(
            batch_id_before_snapshot(env, 7),
            batch_id_before_snapshot(env, 7)
        );
        assert_ne!(
            batch_id_before_snapshot(env, 7),
            batch_id_before_snapshot(env, 8)
        );
        assert_eq!(batch_id_before_snapshot(env, 7).get_version_num(), 8);
    }
}
