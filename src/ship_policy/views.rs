//! What the policy shows of itself: what is unshipped ([`Pending`]), where every record is
//! ([`Accounts`]), and each batch held ([`BatchView`]).

/// How many batches and records are still owned (not yet confirmed by S3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub batches: usize,
    pub records: usize,
}

/// Records by what became of them, in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accounts {
    /// Sealed by this process.
    pub sealed: u64,
    /// Found on disk at start, left by a previous process.
    pub recovered: u64,
    /// Confirmed by S3.
    pub shipped: u64,
    /// Objects S3 confirmed.
    pub objects: u64,
    /// Written to the spill directory (memory short, or an upload failed).
    pub spilled: u64,
    /// Dropped for want of room (in memory alone, past the bound).
    pub refused: u64,
    /// Set aside: S3 rejected them, or their request could not be built.
    pub rejected: u64,
    /// Set aside: their spill file could not be read.
    pub unreadable: u64,
    /// Still owned, held in memory alone (lost if the process ends now).
    pub in_memory: u64,
    /// Still owned, on disk (kept for the next process, unless the environment goes).
    pub on_disk: u64,
    /// The most memory log records cost at once, in bytes: held batches (bodies, merge
    /// results) and what was held before them (upstream).
    pub peak_memory: u64,
}

impl Accounts {
    /// Every record sealed or recovered is in exactly one place.
    pub fn balanced(&self) -> bool {
        self.sealed + self.recovered
            == self.shipped
                + self.refused
                + self.rejected
                + self.unreadable
                + self.in_memory
                + self.on_disk
    }
}

/// A held batch, seen from outside the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchView {
    pub records: usize,
    pub bytes: u64,
    /// The shell holds its body in memory.
    pub in_memory: bool,
    /// Its spill file exists.
    pub on_disk: bool,
    /// S3 confirmed it, or it was merged into another: only its file may be left.
    pub done: bool,
    /// Its file is being written.
    pub spilling: bool,
    pub maybe_stored: bool,
    /// An upload of it failed.
    pub failed: bool,
}
