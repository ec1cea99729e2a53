//! Room: the memory and disk bounds. What is held past the memory bound is spilled, oldest first;
//! the newest batch is refused when neither memory nor disk can take it; a batch S3 rejects is set
//! aside; files are deleted once S3 has their batch.

use super::*;

impl Policy {
    pub(super) fn disk_room(&self, bytes: u64) -> bool {
        self.disk() + bytes <= self.cfg.max_disk
    }

    /// Batches that failed once go to disk; past the memory bound, the newest batches held in
    /// memory alone go to disk; past the bound and one object, with no spill to bring it back,
    /// the newest of them is refused.
    ///
    /// A body being spilled stays in memory until written. For the first bound it counts as gone
    /// (a disk a moment behind would otherwise refuse what it is about to take), but everything in
    /// memory stays within the bound plus two objects, so a slow disk cannot grow it (the issue's
    /// throttled run held 53 KB under 32 KiB + 16 KiB while spills were being written): past that,
    /// the newest batch is refused before it starts a spill. An object is the largest the batcher
    /// seals, or the largest batch held if larger (a merged or recovered one). Batches that failed
    /// are the exception: they go to disk whatever the bounds (they were uploads in flight, so
    /// there are few, and they have been tried), and bodies of theirs being written do not count.
    pub(super) fn make_room(&mut self, now: Instant, out: &mut Vec<Action>) {
        let spillable = |p: &Self, e: &Entry| {
            e.memory_only() && e.idle() && e.disk_retry.ready(now) && p.disk_room(e.bytes)
        };
        let (mut writing, mut writing_failed, mut largest) = (0, 0, self.cfg.max_object);
        for e in self.entries.values().filter(|e| e.in_memory) {
            largest = largest.max(e.bytes);
            if e.spilling && e.failed {
                writing_failed += e.bytes;
            } else if e.spilling {
                writing += e.bytes;
            }
        }
        let bound = self.cfg.max_memory;
        let mut unplanned = self.memory() + self.upstream - writing - writing_failed;
        let ids: Vec<BatchId> = self.order.iter().rev().copied().collect();
        for id in ids.iter().rev() {
            let e = &self.entries[id];
            if e.failed && spillable(self, e) {
                unplanned -= e.bytes;
                self.spill(*id, out);
            }
        }
        self.refuse_newest(
            &ids,
            &mut unplanned,
            |u| u + writing <= bound + 2 * largest,
            out,
        );
        for id in &ids {
            if unplanned <= bound {
                break;
            }
            let Some(e) = self.entries.get(id) else {
                continue; // refused just now
            };
            if spillable(self, e) {
                // The total stays as it was: the second bound was settled above.
                unplanned -= e.bytes;
                self.spill(*id, out);
            }
        }
        let object = self.cfg.max_object;
        self.refuse_newest(&ids, &mut unplanned, |u| u <= bound + object, out);
    }

    /// Refuses the newest batches held in memory alone, nothing being done to them, until `fits`.
    pub(super) fn refuse_newest(
        &mut self,
        newest_first: &[BatchId],
        unplanned: &mut u64,
        fits: impl Fn(u64) -> bool,
        out: &mut Vec<Action>,
    ) {
        for id in newest_first {
            if fits(*unplanned) {
                break;
            }
            let Some(e) = self.entries.get(id) else {
                continue;
            };
            if e.memory_only() && e.idle() {
                *unplanned -= e.bytes;
                self.accounts.refused += e.records as u64;
                self.remove(*id);
                out.push(Action::Refuse { id: *id });
            }
        }
    }

    pub(super) fn spill(&mut self, id: BatchId, out: &mut Vec<Action>) {
        let e = self.entries.get_mut(&id).expect("a listed batch");
        e.spilling = true;
        out.push(Action::Spill {
            id,
            // An upload in flight (the final round spills those too) may store it.
            maybe_stored: e.maybe_stored || e.upload.is_some(),
        });
    }

    pub(super) fn spilled(&mut self, id: BatchId, ok: bool, now: Instant) {
        let longest = self.retry_longest();
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.spilling = false;
        if ok {
            e.on_disk = true;
            e.in_memory = false;
            e.disk_retry.succeeded();
            if !e.done {
                self.accounts.spilled += e.records as u64;
            }
        } else {
            e.disk_retry.failed(now, longest);
        }
    }

    /// The end of the final round: what is still in memory goes to disk, uploads in flight
    /// included (their files say S3 may have stored them).
    pub(super) fn final_spill(&mut self, now: Instant, out: &mut Vec<Action>) {
        let ids: Vec<BatchId> = self.order.iter().copied().collect();
        for id in ids {
            let e = &self.entries[&id];
            let busy_otherwise = e.spilling || e.merge.is_some() || e.merged_away || e.deleting;
            if e.memory_only()
                && !busy_otherwise
                && e.disk_retry.ready(now)
                && self.disk_room(e.bytes)
            {
                self.spill(id, out);
            }
        }
    }

    /// Sets a batch aside for a person; it is counted rejected (or unreadable).
    pub(super) fn set_aside(&mut self, id: BatchId, unreadable: bool, out: &mut Vec<Action>) {
        let Some(e) = self.remove(id) else { return };
        if unreadable {
            self.accounts.unreadable += e.records as u64;
        } else {
            self.accounts.rejected += e.records as u64;
        }
        self.release_husks_of(id);
        self.asides.insert(id, if e.on_disk { e.bytes } else { 0 });
        out.push(Action::SetAside { id });
    }

    pub(super) fn deleted(&mut self, id: BatchId, ok: bool, now: Instant) {
        let longest = self.retry_longest();
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.deleting = false;
        if !ok {
            e.disk_retry.failed(now, longest);
            return;
        }
        e.on_disk = false;
        e.disk_retry.succeeded();
        if let Some(into) = e.absorbed_into.take()
            && let Some(i) = self.entries.get_mut(&into)
        {
            i.husks = i.husks.saturating_sub(1);
        }
    }
}
