//! The shutdown summary: where every record went, read from the counters once the shipper has
//! answered the final flush. Pure; LifecycleActor logs it and prints its EMF line.

use crate::stats::Counters;

/// Every record is shipped, kept on disk for the next process, set aside (rejected or unreadable),
/// dropped by a processing rule, or lost with its reason; [`Summary::accounted`] says whether the counts add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub received: u64,
    pub recovered: u64,
    pub shipped: u64,
    pub objects: u64,
    pub spilled: u64,
    pub kept_on_disk: u64,
    pub rejected: u64,
    pub unreadable: u64,
    /// Refused for want of room: lost, and counted so.
    pub refused: u64,
    /// Dropped by the processing rules (excluded or sampled out): meant not to ship.
    pub filtered: u64,
    pub lost_in_memory: u64,
    pub lost_with_environment: u64,
    pub put_requests: u64,
    pub shipped_bytes: u64,
    /// The environment (and its /tmp) is discarded: what is on disk goes with it.
    pub discarded: bool,
}

impl Summary {
    /// The summary of `c`. A spindown (`discarded`) takes /tmp with the environment; a reset
    /// (timeout, failure) or a signal keeps it for the next process to ship.
    pub fn of(c: &Counters, discarded: bool) -> Self {
        let get = Counters::get;
        let received = get(&c.received);
        let filtered = get(&c.filtered);
        // Received, not dropped by a rule, but never handed to the shipper (a final batch still
        // being encoded at the deadline) is in memory too.
        let unsealed = received.saturating_sub(get(&c.sealed) + filtered);
        let on_disk = get(&c.still_spilled);
        let (kept_on_disk, lost_with_environment) = if discarded {
            (0, on_disk)
        } else {
            (on_disk, 0)
        };
        Self {
            received,
            recovered: get(&c.recovered),
            shipped: get(&c.shipped),
            objects: get(&c.objects),
            spilled: get(&c.spilled),
            kept_on_disk,
            rejected: get(&c.rejected),
            unreadable: get(&c.unreadable),
            refused: get(&c.refused),
            filtered,
            lost_in_memory: get(&c.unshipped_in_memory) + unsealed,
            lost_with_environment,
            put_requests: get(&c.put_requests),
            shipped_bytes: get(&c.shipped_bytes),
            discarded,
        }
    }

    /// Records lost, whatever the reason.
    pub fn lost(&self) -> u64 {
        self.lost_in_memory + self.lost_with_environment + self.refused
    }

    /// Whether every record received or recovered is shipped, kept, set aside, dropped by a rule
    /// or counted lost.
    pub fn accounted(&self) -> bool {
        self.received + self.recovered
            == self.shipped
                + self.kept_on_disk
                + self.rejected
                + self.unreadable
                + self.filtered
                + self.lost()
    }

    /// What these settings cost: S3 requests per GB of logs (S3 bills $0.005 per 1,000).
    pub fn puts_per_gb(&self) -> u64 {
        if self.shipped_bytes == 0 {
            0
        } else {
            (self.put_requests as f64 / (self.shipped_bytes as f64 / 1e9)).round() as u64
        }
    }

    /// The summary's EMF metrics (name, value, unit); `c` adds what Lambda and the parser dropped.
    pub fn emf_metrics(&self, c: &Counters) -> Vec<(&'static str, f64, &'static str)> {
        let n = |v: u64| v as f64;
        vec![
            ("RecordsReceived", n(self.received), "Count"),
            ("RecordsShipped", n(self.shipped), "Count"),
            ("Spilled", n(self.spilled), "Count"),
            ("KeptOnDisk", n(self.kept_on_disk), "Count"),
            ("Lost", n(self.lost()), "Count"),
            ("Refused", n(self.refused), "Count"),
            ("Rejected", n(self.rejected + self.unreadable), "Count"),
            ("Malformed", n(Counters::get(&c.malformed)), "Count"),
            ("RecordsFiltered", n(self.filtered), "Count"),
            (
                "ParquetFallbacks",
                n(Counters::get(&c.format_fallbacks)),
                "Count",
            ),
            (
                "LambdaDropped",
                n(Counters::get(&c.lambda_dropped)),
                "Count",
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(pairs: &[(&std::sync::atomic::AtomicU64, u64)]) {
        for (c, v) in pairs {
            Counters::add(c, *v);
        }
    }

    #[test]
    fn every_record_is_shipped_kept_set_aside_or_counted_lost() {
        let c = Counters::default();
        counters(&[
            (&c.received, 100),
            (&c.recovered, 5),
            (&c.sealed, 98),
            (&c.shipped, 80),
            (&c.still_spilled, 10),
            (&c.rejected, 3),
            (&c.unreadable, 1),
            (&c.refused, 4),
            (&c.unshipped_in_memory, 5),
        ]);
        let kept = Summary::of(&c, false);
        // 2 received and never sealed are in memory too.
        assert_eq!(kept.lost_in_memory, 7);
        assert_eq!((kept.kept_on_disk, kept.lost_with_environment), (10, 0));
        assert_eq!(kept.lost(), 11);
        assert!(kept.accounted());
        let spindown = Summary::of(&c, true);
        assert_eq!(
            (spindown.kept_on_disk, spindown.lost_with_environment),
            (0, 10)
        );
        assert_eq!(spindown.lost(), 21);
        assert!(spindown.accounted());
        Counters::add(&c.shipped, 1);
        assert!(!Summary::of(&c, false).accounted(), "one record too many");
        // 6 more received and dropped by the rules: never sealed, not lost.
        Counters::sub(&c.shipped, 1);
        counters(&[(&c.received, 6), (&c.filtered, 6)]);
        let filtered = Summary::of(&c, false);
        assert_eq!((filtered.filtered, filtered.lost_in_memory), (6, 7));
        assert!(filtered.accounted());
    }

    #[test]
    fn puts_per_gb_is_what_the_settings_cost() {
        let c = Counters::default();
        assert_eq!(Summary::of(&c, false).puts_per_gb(), 0);
        counters(&[(&c.put_requests, 250), (&c.shipped_bytes, 500_000_000)]);
        assert_eq!(Summary::of(&c, false).puts_per_gb(), 500);
    }
}
