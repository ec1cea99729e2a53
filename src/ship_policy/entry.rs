//! One held batch as the policy knows it: where it is (memory, disk), what is being done to it,
//! what S3 may have of it, and the back-offs of its own failed disk operations.

use std::time::{Duration, Instant};

/// An upload in flight. One of a batch on disk streams its body from the file: it holds no copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Upload {
    pub started: Instant,
}

/// A merge in flight, on its first part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MergePlan {
    pub from: Vec<super::BatchId>,
    pub to_disk: bool,
    pub records: usize,
    pub bytes: u64,
}

/// A per-batch back-off: not before `not_before`, doubling from [`RETRY_FIRST`] to
/// [`RETRY_LONGEST`] with each failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Retry {
    pub failures: u32,
    pub not_before: Option<Instant>,
}

pub(super) const RETRY_FIRST: Duration = Duration::from_millis(100);
pub(super) const RETRY_LONGEST: Duration = Duration::from_secs(30);

impl Retry {
    pub fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|t| now >= t)
    }

    /// Another failure at `now`; `longest` caps the wait (the final round's is short).
    pub fn failed(&mut self, now: Instant, longest: Duration) {
        let wait = RETRY_FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(RETRY_LONGEST)
            .min(longest);
        self.failures += 1;
        self.not_before = Some(now + wait);
    }

    pub fn succeeded(&mut self) {
        *self = Retry::default();
    }

    /// When it is ready again, if it waits.
    pub fn wake(&self, now: Instant) -> Option<Instant> {
        self.not_before.filter(|t| *t > now)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub records: usize,
    /// Bytes of its body.
    pub bytes: u64,
    /// The shell holds its body in memory.
    pub in_memory: bool,
    /// Its spill file exists (not while it is being written).
    pub on_disk: bool,
    /// S3 confirmed it, or it was merged into another batch: what is left is its file, to delete.
    pub done: bool,
    pub upload: Option<Upload>,
    pub spilling: bool,
    /// The first part of a merge in flight.
    pub merge: Option<MergePlan>,
    /// A later part of a merge in flight.
    pub merged_away: bool,
    /// Made by a merge and not uploaded since: it goes as it is next (a merge is part of the
    /// upload it prepares, not a step of its own).
    pub merged: bool,
    pub deleting: bool,
    /// An upload of its key may have reached S3: its bytes never change (never merged).
    pub maybe_stored: bool,
    /// An upload of it failed: it belongs on disk, so a crash or a reset does not lose it.
    pub failed: bool,
    pub rejections: u32,
    /// Its failed spill or delete.
    pub disk_retry: Retry,
    /// Its failed merge (it may still be uploaded as it is).
    pub merge_retry: Retry,
    /// Parts merged into it whose files are still to delete: its own file goes after theirs, or a
    /// crash in between would bring their records back a second time.
    pub husks: u32,
    /// For such a part: the batch it was merged into.
    pub absorbed_into: Option<super::BatchId>,
}

impl Entry {
    pub fn new(records: usize, bytes: u64, on_disk: bool, maybe_stored: bool) -> Self {
        Self {
            records,
            bytes,
            in_memory: !on_disk,
            on_disk,
            done: false,
            upload: None,
            spilling: false,
            merge: None,
            merged_away: false,
            merged: false,
            deleting: false,
            maybe_stored,
            failed: false,
            rejections: 0,
            disk_retry: Retry::default(),
            merge_retry: Retry::default(),
            husks: 0,
            absorbed_into: None,
        }
    }

    /// Nothing is being done to it.
    pub fn idle(&self) -> bool {
        self.upload.is_none()
            && !self.spilling
            && self.merge.is_none()
            && !self.merged_away
            && !self.deleting
    }

    /// Held in memory only: lost with the process.
    pub fn memory_only(&self) -> bool {
        self.in_memory && !self.on_disk && !self.done
    }

    /// Bytes of memory it costs: its body, a merge's result made in memory (an upload from disk
    /// streams the file and holds no copy).
    pub fn memory(&self) -> u64 {
        let body = if self.in_memory { self.bytes } else { 0 };
        let merge = match &self.merge {
            Some(m) if !m.to_disk => m.bytes,
            _ => 0,
        };
        body + merge
    }

    /// Bytes of disk it costs: its file, one being written, a merge's result being written.
    pub fn disk(&self) -> u64 {
        let file = if self.on_disk || self.spilling {
            self.bytes
        } else {
            0
        };
        let merge = match &self.merge {
            Some(m) if m.to_disk => m.bytes,
            _ => 0,
        };
        file + merge
    }
}
