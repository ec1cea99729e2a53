//! Merging: while S3 throttles, waiting batches S3 never stored become one (fewer, larger
//! PUTs). A merge takes effect once its result is as durable as its parts were.

use super::*;

impl Policy {
    /// Whether `e` may be part of a merge: S3 certainly never stored it, nothing is being done
    /// to it, and it absorbed nothing that is still on disk.
    pub(super) fn mergeable(e: &Entry) -> bool {
        !e.done && e.idle() && !e.maybe_stored
    }

    /// While S3 throttles: merges the waiting batches S3 never stored into `into`, one request
    /// instead of several. Whether a merge started.
    pub(super) fn try_merge(&mut self, into: BatchId, now: Instant, out: &mut Vec<Action>) -> bool {
        let first = &self.entries[&into];
        if self.snapshot_pending
            || !Self::mergeable(first)
            || first.merged
            || !first.merge_retry.ready(now)
        {
            return false;
        }
        let (mut bytes, mut records) = (first.bytes, first.records);
        let mut any_on_disk = first.on_disk;
        // A merge written to disk needs room for its result beside its parts until they are
        // deleted; it leaves room for everything memory may have to spill meanwhile, or batches
        // would be refused for room a merge only borrowed.
        let disk_free = self
            .cfg
            .max_disk
            .saturating_sub(self.disk() + self.cfg.max_memory + self.cfg.max_object);
        let limit = self.cfg.merge_limit.min(if first.on_disk {
            disk_free
        } else {
            self.cfg.merge_limit
        });
        let mut from = Vec::new();
        for id in self.order.iter().copied().filter(|id| *id != into) {
            let e = &self.entries[&id];
            if !Self::mergeable(e) || e.husks > 0 || !e.merge_retry.ready(now) {
                continue;
            }
            if bytes + e.bytes > limit || (e.on_disk && bytes + e.bytes > disk_free) {
                break;
            }
            bytes += e.bytes;
            records += e.records;
            any_on_disk |= e.on_disk;
            from.push(id);
        }
        if from.is_empty() {
            return false;
        }
        // As durable as its parts: on disk if any part is; in memory if it fits there, else on
        // disk if that has room; else no merge.
        let fits_in_memory = self.memory() + self.upstream + bytes <= self.cfg.max_memory;
        let to_disk = any_on_disk || !fits_in_memory;
        if to_disk && bytes > disk_free {
            return false;
        }
        for id in &from {
            self.entries.get_mut(id).expect("listed").merged_away = true;
        }
        self.entries.get_mut(&into).expect("listed").merge = Some(MergePlan {
            from: from.clone(),
            to_disk,
            records,
            bytes,
        });
        out.push(Action::Merge {
            into,
            from,
            to_disk,
        });
        true
    }

    pub(super) fn merged(&mut self, into: BatchId, ok: bool, now: Instant) {
        let longest = self.retry_longest();
        let Some(plan) = self.entries.get_mut(&into).and_then(|e| e.merge.take()) else {
            return;
        };
        for id in &plan.from {
            if let Some(e) = self.entries.get_mut(id) {
                e.merged_away = false;
            }
        }
        if !ok {
            // Every part waits before it is merged again (into this or another batch); each may
            // still be uploaded as it is meanwhile.
            for id in std::iter::once(&into).chain(&plan.from) {
                if let Some(e) = self.entries.get_mut(id) {
                    e.merge_retry.failed(now, longest);
                }
            }
            return;
        }
        let mut husks = 0;
        for id in &plan.from {
            let Some(e) = self.entries.get_mut(id) else {
                continue;
            };
            // Its records are in `into` now; its body is released, its file is still to delete.
            e.done = true;
            e.records = 0;
            e.in_memory = false;
            if e.on_disk {
                e.absorbed_into = Some(into);
                husks += 1;
            }
        }
        if let Some(e) = self.entries.get_mut(&into) {
            e.records = plan.records;
            e.bytes = plan.bytes;
            e.merged = true;
            e.merge_retry.succeeded();
            e.husks += husks;
            if plan.to_disk {
                e.on_disk = true;
                e.in_memory = false;
            } else {
                e.in_memory = true;
            }
        }
    }

    /// A batch whose parts' files must go first is gone: they need not wait for it.
    pub(super) fn release_husks_of(&mut self, id: BatchId) {
        for e in self.entries.values_mut() {
            if e.absorbed_into == Some(id) {
                e.absorbed_into = None;
            }
        }
    }
}
