//! The policy of the ship path, as a pure state machine: events in (a batch sealed or recovered,
//! an upload's, a spill's, a merge's or a delete's outcome, a flush asked for, a restore, time
//! passing), actions out. It is the one owner of every held batch: it decides every transition —
//! memory to disk, merge, delete, refuse, set aside, forget — and keeps the accounts; ShipperActor
//! only carries the actions out and reports their outcomes (in the manner of the sans-IO cores of
//! quinn-proto or h2). No actix, no SDK, no I/O; time is passed in. The ship path's simulation
//! (`tests/simulation/`) drives this code against modelled S3 and disks.
//!
//! The contract:
//! * **Nothing waits for S3 unless asked.** Uploads run while the environment runs; a `Flush` (the
//!   shutdown, `SHIP_AT=end-of-invoke`, `NEXT_WAIT_MS`) is answered when nothing is pending, at its
//!   deadline, or at the first failure: a failing S3 never holds an invoke.
//! * **A batch leaves only when S3 confirmed it**, under the key fixed at sealing: a retry (after a
//!   failure, a timeout, a freeze) rewrites the same object with the same bytes.
//! * **"S3 may have stored it" belongs to the key**: set by an attempt whose outcome is unknown (a
//!   timeout, a reset, a 5xx), persisted in the spill file's header, and set for everything held
//!   when a SnapStart restore is seen (each copy of the snapshot holds the same keys) and for
//!   every batch recovered from disk (its previous process may have died mid-upload). Such a
//!   batch is only ever retried with identical bytes, never merged.
//! * **Retries** wait by what failed: transient (network, 5xx, timeouts, RequestTimeout) from 100 ms
//!   doubling to 5 s; throttling (SlowDown) from 2 s to 30 s (at the first wait again once half
//!   the disk is held: [`Policy::probe_at`]), and it paces the batcher; refusals
//!   (AccessDenied, a KMS denial, NoSuchBucket with creation off) 1 s, 2 s, 4 s… up to 30 s. Jitter
//!   spreads the first two. While S3 fails, one upload at a time probes it, taking the held
//!   batches in turn (one bad batch never holds the others); healthy, up to `max_in_flight` run at
//!   once (twice that in the final round).
//! * **Once failed, a batch is on disk** (spilled), so a crash or a reset does not lose it.
//! * **Memory is bounded**: the bodies held, merge results made in memory, and what is held
//!   before the policy sees it (the batcher's buffer, batches being encoded:
//!   [`Policy::set_upstream`]) all count; an upload of a batch on disk streams its file and holds
//!   no copy. Past `max_memory` the newest batches go to disk; a merge is made in memory only
//!   within `max_memory`; past `max_memory + max_object` (a
//!   batch arriving while memory is full) a batch held in memory alone — never one on disk — is
//!   refused, and counted. Bodies being spilled stay in memory until written: with them,
//!   everything stays within `max_memory` + 2 objects (batches that failed aside, few).
//! * **A SnapStart init merges nothing until the restore** ([`Policy::set_snapshot_pending`]).
//! * **Disk is bounded** by `max_disk`, a file being written counted from its start. A spill, merge
//!   or delete that fails is retried with a back-off of its own batch (100 ms doubling to 30 s);
//!   nothing is turned off for the process.
//! * **A merge takes effect once its result is as durable as its parts were**: with any part on
//!   disk it is written to disk before the parts go; if it cannot be made, the parts stay as they
//!   were. Parts merged away are deleted before the merged batch's own file can be.
//! * **A batch S3 rejects** (a 4xx about the request itself) is set aside after [`REJECTIONS`]
//!   attempts; one whose request cannot be built, or whose file cannot be read, at once.
//! * **Throttling paces the batcher** ([`Pacing`]) and merges waiting batches S3 never stored.
//! * **At SHUTDOWN** (`Flush { last }`) the back-off is lifted: every kept batch is tried again at
//!   once; a failure there is tried again after at most 250 ms, one probe at a time, until the
//!   deadline less [`SPILL_RESERVE`]; then what is still in memory is spilled. The flush is
//!   answered by its deadline whatever is still in flight.
//! * **The accounts are exact**: every record sealed or recovered is shipped, on disk, in memory,
//!   refused, rejected or unreadable ([`Accounts`]).

mod entry;
mod pacing;

pub use crate::random::Xorshift;
pub use pacing::{FIRST_INCREASE, MAX_PACE, Pacing, RELAX_EVERY, RELAX_RATE, RESET_AFTER};

use entry::{Entry, MergePlan, Upload};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub type BatchId = u64;
pub type FlushId = u64;

/// How long the final round leaves for spilling what is still in memory.
pub const SPILL_RESERVE: Duration = Duration::from_millis(200);
/// Attempts a rejected batch gets before it is set aside.
pub const REJECTIONS: u32 = 3;
/// The longest wait between attempts in the final round (the shutdown's deadline is near).
const FINAL_ROUND_LONGEST_WAIT: Duration = Duration::from_millis(250);

/// What an upload failure means for what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Network, timeout, 5xx, RequestTimeout, a cut connection: soon again. S3 may have stored it.
    Transient,
    /// 503 SlowDown: S3 asks for fewer requests.
    Throttled,
    /// The role, the key or the bucket refuses every write until someone fixes it.
    Refused(Refusal),
    /// S3 refuses this request itself (a 4xx about the object); retrying will not change it.
    Rejected,
    /// The request cannot even be built (a header no HTTP request can carry): never sendable.
    Unsendable,
    /// Its spill file cannot be read back.
    Unreadable,
}

/// Why S3 refuses writes, each with what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    AccessDenied,
    Kms,
    NoSuchBucket,
    /// Another refusal (a region mismatch, expired credentials…).
    Other,
}

impl Refusal {
    pub fn what_to_fix(self) -> &'static str {
        match self {
            Refusal::AccessDenied => {
                "allow s3:PutObject (and s3:AbortMultipartUpload) on the bucket's objects to the function's role; kept and retried"
            }
            Refusal::Kms => {
                "allow kms:GenerateDataKey (and kms:Decrypt for multipart) on the bucket's KMS key to the function's role; kept and retried"
            }
            Refusal::NoSuchBucket => {
                "create the bucket, or set ADAPTIVE_BATCHING_EXTENSION_CREATE_BUCKET=true; kept and retried"
            }
            Refusal::Other => {
                "check the bucket's name and region and the role's credentials; kept and retried"
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Refusal::AccessDenied => "AccessDenied",
            Refusal::Kms => "kms",
            Refusal::NoSuchBucket => "NoSuchBucket",
            Refusal::Other => "refused",
        }
    }
}

/// What happens to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A batch was sealed and is held in memory.
    Sealed {
        id: BatchId,
        records: usize,
        bytes: u64,
    },
    /// A batch a previous process left on disk. It counts as maybe stored, whatever its file's
    /// header says (see [`Policy::handle`]).
    Recovered {
        id: BatchId,
        records: usize,
        bytes: u64,
    },
    /// S3 confirmed the batch.
    Uploaded { id: BatchId },
    /// The upload failed.
    Failed { id: BatchId, failure: Failure },
    /// A spill finished (`ok`: the file is written and the memory released).
    Spilled { id: BatchId, ok: bool },
    /// A merge finished (`ok`: done as [`Action::Merge`] says; else nothing changed).
    Merged { into: BatchId, ok: bool },
    /// A file was deleted (`ok`), or could not be.
    Deleted { id: BatchId, ok: bool },
    /// A batch set aside ([`Action::SetAside`]) is on disk aside (`ok`), or could not be put
    /// there: a file it had then stays where it was, for the next process.
    SetAsideDone { id: BatchId, ok: bool },
    /// Someone waits until nothing is pending, a failure, or `deadline`; `last`: the shutdown's.
    Flush {
        id: FlushId,
        deadline: Instant,
        last: bool,
    },
    /// The environment was restored from a SnapStart snapshot: every batch held now is held by the
    /// other copies too, under the same key. `seed` reseeds the jitter (the copies share it).
    Restored { seed: u64 },
    /// Time passed (a wake-up asked for with [`Action::WakeAt`]).
    Tick,
}

/// What the actor is to do. Each is carried out whole, and those with an outcome report it.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Upload the batch (its body in memory, or read back from its file), giving up after
    /// `timeout`; report [`Event::Uploaded`] or [`Event::Failed`].
    Upload {
        id: BatchId,
        timeout: Duration,
    },
    /// Write the batch's body to its file, saying whether S3 may have stored it; once written,
    /// release the body from memory; report [`Event::Spilled`].
    Spill {
        id: BatchId,
        maybe_stored: bool,
    },
    /// S3 throttles: make one batch of `into` and `from` (bodies in order) under `into`'s key. With
    /// `to_disk` write it as `into`'s file (replacing it), naming `from`'s keys as absorbed, and
    /// hold no body; else hold it in memory as `into`'s body. Once made, release `from`'s bodies
    /// (their files stay until [`Action::Delete`]). Report [`Event::Merged`]; on failure change
    /// nothing.
    Merge {
        into: BatchId,
        from: Vec<BatchId>,
        to_disk: bool,
    },
    /// Delete the batch's file; report [`Event::Deleted`].
    Delete {
        id: BatchId,
    },
    /// Drop everything held for the batch (S3 has it, or it was merged away).
    Forget {
        id: BatchId,
    },
    /// No room: drop the batch (held in memory alone); it is counted refused.
    Refuse {
        id: BatchId,
    },
    /// Keep the batch for a person: its file renamed aside, or written aside if it has none;
    /// then forget it. It is counted rejected (or unreadable).
    SetAside {
        id: BatchId,
    },
    /// The failure to log (the actor throttles per cause).
    Report {
        failure: Failure,
    },
    AnswerFlush {
        id: FlushId,
    },
    /// Send an [`Event::Tick`] at this time.
    WakeAt(Instant),
    /// S3 asks for fewer requests (or no longer does): ship less often, with larger objects, by
    /// this factor (≥ 1) — see [`Pacing`].
    Pace(f64),
}

/// Whether S3 is taking writes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Health {
    Ok,
    /// After `level` consecutive failures of this kind, the last at `since`: no upload before
    /// `until`, then one probe ([`Policy::probe_at`] may bring it forward).
    Backoff {
        until: Instant,
        since: Instant,
        level: u32,
        kind: BackoffKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackoffKind {
    Transient,
    Throttled,
    Refused,
}

impl BackoffKind {
    /// (first wait, longest wait, jittered).
    fn schedule(self) -> (Duration, Duration, bool) {
        match self {
            BackoffKind::Transient => (Duration::from_millis(100), Duration::from_secs(5), true),
            BackoffKind::Throttled => (Duration::from_secs(2), Duration::from_secs(30), true),
            BackoffKind::Refused => (Duration::from_secs(1), Duration::from_secs(30), false),
        }
    }
}

/// What the policy is configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Bytes of batches held in memory before the newest go to disk.
    pub max_memory: u64,
    /// The largest object the batcher seals: memory may pass `max_memory` by this much (a batch
    /// arriving while memory is full) before a batch is refused.
    pub max_object: u64,
    /// Bytes of batch bodies the spill directory may hold (0: no usable disk).
    pub max_disk: u64,
    /// Uploads at once while S3 is healthy.
    pub max_in_flight: usize,
    /// Seed of the retry jitter (reproducible in tests).
    pub seed: u64,
    /// The largest body a merge makes.
    pub merge_limit: u64,
}

/// An attempt's time limit: 3 s, plus a second per MiB (S3 takes a 16 MiB part at far more than
/// 1 MiB/s from Lambda; the bound is for a connection that died, or an upload cut by a freeze).
pub fn attempt_timeout(bytes: u64) -> Duration {
    Duration::from_secs(3) + Duration::from_secs(bytes / (1024 * 1024))
}

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

#[derive(Debug, Clone, Copy)]
struct Waiter {
    deadline: Instant,
    last: bool,
}

#[derive(Debug, Clone)]
pub struct Policy {
    cfg: Config,
    entries: BTreeMap<BatchId, Entry>,
    /// Upload order: oldest first (batch ids are not reused).
    order: VecDeque<BatchId>,
    health: Health,
    /// The last batch a back-off probe took: the next probe takes the one after it.
    last_probe: Option<BatchId>,
    flushes: BTreeMap<FlushId, Waiter>,
    /// The final round's deadline, once SHUTDOWN asked for it.
    final_deadline: Option<Instant>,
    /// Batches being set aside (their files renamed or written aside), with the bytes of the file
    /// each has in the spill directory until it is renamed (0 for one written aside).
    asides: BTreeMap<BatchId, u64>,
    /// A SnapStart init: a snapshot may be taken at any moment until the restore, and nothing is
    /// merged meanwhile. A merge in flight at the snapshot goes on in every copy and may end well
    /// in one and fail in another: one key, two contents (the simulation's seed 22566).
    snapshot_pending: bool,
    pacing: Pacing,
    rng: Xorshift,
    accounts: Accounts,
    /// Bytes of records held before they reach the policy (the batcher's open buffer, batches
    /// being encoded): the memory bound covers them too.
    upstream: u64,
    /// Bytes of the spill directory taken by files the policy does not own (ones the recovery
    /// could not read, left for a person): the disk bound covers them too.
    disk_taken: u64,
}

impl Policy {
    pub fn new(cfg: Config) -> Self {
        Self {
            rng: Xorshift::new(cfg.seed),
            cfg,
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            health: Health::Ok,
            last_probe: None,
            flushes: BTreeMap::new(),
            final_deadline: None,
            asides: BTreeMap::new(),
            snapshot_pending: false,
            pacing: Pacing::default(),
            accounts: Accounts::default(),
            upstream: 0,
            disk_taken: 0,
        }
    }

    /// How many bytes of the spill directory files the policy does not own take (they count in
    /// the disk bound: a previous process's file the recovery could not read may be read by the
    /// next one, which then holds it beside everything this process spilled).
    pub fn set_disk_taken(&mut self, bytes: u64) {
        self.disk_taken = bytes;
    }

    /// This process is a SnapStart init: no merge starts until [`Event::Restored`] (a merge in
    /// flight at the snapshot could end differently in each restored copy).
    pub fn set_snapshot_pending(&mut self) {
        self.snapshot_pending = true;
    }

    /// How many bytes of records are held before they reach the policy (they count in the memory
    /// bound: past it, held batches go to disk to make room for them).
    pub fn set_upstream(&mut self, bytes: u64) {
        self.upstream = bytes;
    }

    /// How much less often batches are to be shipped (1: as configured).
    pub fn pace(&self) -> f64 {
        self.pacing.pace
    }

    fn owned(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().filter(|e| !e.done)
    }

    /// What is still owned.
    pub fn pending(&self) -> Pending {
        Pending {
            batches: self.owned().count(),
            records: self.owned().map(|e| e.records).sum(),
        }
    }

    /// The records' accounts, as of now.
    pub fn accounts(&self) -> Accounts {
        let mut a = self.accounts;
        a.in_memory = self
            .owned()
            .filter(|e| !e.on_disk)
            .map(|e| e.records as u64)
            .sum();
        a.on_disk = self
            .owned()
            .filter(|e| e.on_disk)
            .map(|e| e.records as u64)
            .sum();
        a
    }

    /// Every held batch as the policy sees it, oldest first (for checks from outside: the
    /// simulation compares it with what the shell holds).
    pub fn batches(&self) -> Vec<(BatchId, BatchView)> {
        self.order
            .iter()
            .map(|id| {
                let e = &self.entries[id];
                (
                    *id,
                    BatchView {
                        records: e.records,
                        bytes: e.bytes,
                        in_memory: e.in_memory,
                        on_disk: e.on_disk,
                        failed: e.failed,
                        done: e.done,
                        spilling: e.spilling,
                        maybe_stored: e.maybe_stored,
                    },
                )
            })
            .collect()
    }

    /// Bytes of memory the held batches cost (bodies, merge results made in memory).
    pub fn memory(&self) -> u64 {
        self.entries.values().map(Entry::memory).sum()
    }

    /// Bytes of the spill directory the held batches use, files being written included, and
    /// files it does not own ([`Policy::set_disk_taken`]).
    pub fn disk(&self) -> u64 {
        self.disk_taken
            + self.asides.values().sum::<u64>()
            + self.entries.values().map(Entry::disk).sum::<u64>()
    }

    /// Bytes of batch files on disk now (the files being written not yet).
    pub fn disk_files(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.on_disk)
            .map(|e| e.bytes)
            .sum()
    }

    fn disk_room(&self, bytes: u64) -> bool {
        self.disk() + bytes <= self.cfg.max_disk
    }

    /// The longest wait of a per-batch back-off now: short in the final round.
    fn retry_longest(&self) -> Duration {
        if self.final_deadline.is_some() {
            FINAL_ROUND_LONGEST_WAIT
        } else {
            entry::RETRY_LONGEST
        }
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Sealed { id, records, bytes } => {
                self.accounts.sealed += records as u64;
                self.add(id, Entry::new(records, bytes, false, false));
            }
            Event::Recovered { id, records, bytes } => {
                self.accounts.recovered += records as u64;
                // Maybe stored, whatever its header says: the previous process may have died
                // with its upload in flight (a file spilled for room says nothing of a later
                // attempt), and S3 may have stored it then. Merged into, its key would be
                // rewritten with other content (the simulation found it: seed 13738).
                self.add(id, Entry::new(records, bytes, true, true));
            }
            Event::Uploaded { id } => self.uploaded(id),
            Event::Failed { id, failure } => self.failed(id, failure, now, &mut out),
            Event::Spilled { id, ok } => self.spilled(id, ok, now),
            Event::Merged { into, ok } => self.merged(into, ok, now),
            Event::Deleted { id, ok } => self.deleted(id, ok, now),
            Event::SetAsideDone { id, ok } => {
                let file = self.asides.remove(&id).unwrap_or(0);
                if !ok {
                    // Nobody in this process holds it now, and the next one recovers it: it
                    // counts in the bound as a file the recovery could not read does.
                    self.disk_taken += file;
                }
            }
            Event::Flush { id, deadline, last } => {
                self.flushes.insert(id, Waiter { deadline, last });
                if last {
                    self.final_round(deadline, now);
                }
            }
            Event::Restored { seed } => {
                self.snapshot_pending = false;
                for e in self.entries.values_mut() {
                    e.maybe_stored = true;
                }
                self.rng = Xorshift::new(seed);
            }
            Event::Tick => {}
        }
        self.pump(now, &mut out);
        self.accounts.peak_memory = self.accounts.peak_memory.max(self.memory() + self.upstream);
        out
    }

    fn add(&mut self, id: BatchId, e: Entry) {
        self.entries.insert(id, e);
        self.order.push_back(id);
    }

    fn remove(&mut self, id: BatchId) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        self.order.retain(|o| *o != id);
        Some(e)
    }

    /// The last chance: a fresh round, whatever failed before (and another round for batches
    /// sealed after a previous one) — but while S3 asks for fewer requests, a fleet spinning down
    /// must not flood it: the throttle's wait stands, cut to the final round's probe interval (a
    /// longer one lost whole environments' logs in the fleet mode: one probe in the 1.5 s left),
    /// and waiting batches are merged (the pace is > 1).
    fn final_round(&mut self, deadline: Instant, now: Instant) {
        self.final_deadline = Some(deadline);
        self.health = match self.health {
            Health::Backoff {
                until,
                since,
                level,
                kind: BackoffKind::Throttled,
            } => Health::Backoff {
                until: until.min(now + FINAL_ROUND_LONGEST_WAIT),
                since,
                level,
                kind: BackoffKind::Throttled,
            },
            _ => Health::Ok,
        };
        for e in self.entries.values_mut() {
            for r in [&mut e.disk_retry, &mut e.merge_retry] {
                if let Some(t) = r.not_before {
                    r.not_before = Some(t.min(now + FINAL_ROUND_LONGEST_WAIT));
                }
            }
        }
    }

    fn uploaded(&mut self, id: BatchId) {
        self.health = Health::Ok;
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.upload = None;
        if e.done {
            return;
        }
        e.done = true;
        self.accounts.shipped += e.records as u64;
        self.accounts.objects += 1;
    }

    fn failed(&mut self, id: BatchId, failure: Failure, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Report {
            failure: failure.clone(),
        });
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        let started = e.upload.take().map_or(now, |u| u.started);
        if failure == Failure::Throttled
            && let Some(pace) = self.pacing.throttled(started, now)
        {
            out.push(Action::Pace(pace));
        }
        if e.done {
            return;
        }
        e.failed = true;
        let kind = match failure {
            Failure::Transient => {
                e.maybe_stored = true;
                BackoffKind::Transient
            }
            Failure::Throttled => BackoffKind::Throttled,
            Failure::Refused(_) => BackoffKind::Refused,
            Failure::Rejected => {
                e.rejections += 1;
                if e.rejections >= REJECTIONS {
                    self.set_aside(id, false, out);
                    return;
                }
                BackoffKind::Transient
            }
            // About this batch alone, not S3: nothing to back off from.
            Failure::Unsendable | Failure::Unreadable => {
                self.set_aside(id, failure == Failure::Unreadable, out);
                return;
            }
        };
        let level = match self.health {
            Health::Backoff { level, .. } => level + 1,
            Health::Ok => 0,
        };
        let (first, mut longest, jitter) = kind.schedule();
        if self.final_deadline.is_some() {
            // The shutdown leaves about 1.5 s: keep trying, within it — one probe at a time, and
            // while S3 throttles, what waits is merged into that one request.
            longest = longest.min(FINAL_ROUND_LONGEST_WAIT);
        }
        let mut wait = first.saturating_mul(1 << level.min(16)).min(longest);
        if jitter {
            // Equal jitter: half fixed, half random, so retries of many environments spread out.
            wait = wait / 2 + wait.mul_f64(self.rng.unit() / 2.0);
        }
        self.health = Health::Backoff {
            until: now + wait,
            since: now,
            level,
            kind,
        };
    }

    /// When the next probe may go while S3 fails, if it does. While S3 throttles and half the disk
    /// or more is held, the wait stops growing: one that kept doubling (to 30 s) would fill the
    /// rest before the next probe (a 14 s throttle then looked like 21 s and filled a 2 MiB spill
    /// bound). Decided when the probe is due, not when the failure came: the disk fills meanwhile.
    /// A probe carries a merge of what waits, so probing at the first wait adds little to S3's
    /// load and drains the most.
    fn probe_at(&self) -> Option<Instant> {
        let Health::Backoff {
            until, since, kind, ..
        } = self.health
        else {
            return None;
        };
        let (first, _, _) = kind.schedule();
        Some(
            if kind == BackoffKind::Throttled && self.disk() * 2 > self.cfg.max_disk {
                until.min(since + first)
            } else {
                until
            },
        )
    }

    /// Sets a batch aside for a person; it is counted rejected (or unreadable).
    fn set_aside(&mut self, id: BatchId, unreadable: bool, out: &mut Vec<Action>) {
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

    /// A batch whose parts' files must go first is gone: they need not wait for it.
    fn release_husks_of(&mut self, id: BatchId) {
        for e in self.entries.values_mut() {
            if e.absorbed_into == Some(id) {
                e.absorbed_into = None;
            }
        }
    }

    fn spilled(&mut self, id: BatchId, ok: bool, now: Instant) {
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

    fn merged(&mut self, into: BatchId, ok: bool, now: Instant) {
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

    fn deleted(&mut self, id: BatchId, ok: bool, now: Instant) {
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

    /// Starts what may start, answers flushes that are settled, asks for the next wake-up.
    fn pump(&mut self, now: Instant, out: &mut Vec<Action>) {
        let uploads_until = self
            .final_deadline
            .map(|d| d.checked_sub(SPILL_RESERVE).unwrap_or(d));
        let may_upload = uploads_until.is_none_or(|u| now < u);
        self.make_room(now, out);
        if may_upload {
            self.start_uploads(now, out);
        } else {
            self.final_spill(now, out);
        }
        self.tidy(now, out);
        self.answer_flushes(now, may_upload, out);
        let (relaxed, relax_at) = self.pacing.relax(now);
        if let Some(pace) = relaxed {
            out.push(Action::Pace(pace));
        }
        let mut wakes: Vec<Instant> = self.flushes.values().map(|w| w.deadline).collect();
        wakes.extend(self.probe_at());
        wakes.extend(relax_at);
        if let Some(u) = uploads_until {
            wakes.push(u);
        }
        for e in self.entries.values() {
            wakes.extend(e.disk_retry.wake(now));
            wakes.extend(e.merge_retry.wake(now));
        }
        if let Some(at) = wakes.into_iter().filter(|t| *t > now).min() {
            out.push(Action::WakeAt(at));
        }
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
    fn make_room(&mut self, now: Instant, out: &mut Vec<Action>) {
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
    fn refuse_newest(
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

    fn spill(&mut self, id: BatchId, out: &mut Vec<Action>) {
        let e = self.entries.get_mut(&id).expect("a listed batch");
        e.spilling = true;
        out.push(Action::Spill {
            id,
            // An upload in flight (the final round spills those too) may store it.
            maybe_stored: e.maybe_stored || e.upload.is_some(),
        });
    }

    /// Whether `e` may be uploaded now. A batch on disk streams from its file, so an upload never
    /// needs room in memory (a read-back copy that had to fit the bound starved merged batches
    /// larger than it for as long as records arrived).
    fn may_upload(e: &Entry) -> bool {
        !e.done && e.idle()
    }

    fn start_uploads(&mut self, now: Instant, out: &mut Vec<Action>) {
        let in_flight = self.entries.values().filter(|e| e.upload.is_some()).count();
        // The final round has little time left: twice the uploads at once.
        let max_in_flight =
            self.cfg.max_in_flight * if self.final_deadline.is_some() { 2 } else { 1 };
        let (slots, probing) = match self.probe_at() {
            None => (max_in_flight.saturating_sub(in_flight), false),
            // One probe at a time while S3 fails.
            Some(at) if now >= at => (usize::from(in_flight == 0), true),
            Some(_) => (0, false),
        };
        if slots == 0 {
            return;
        }
        // Oldest first; a probe takes the batch after the last probe's, in turn.
        let mut candidates: Vec<BatchId> = self.order.iter().copied().collect();
        if probing && let Some(last) = self.last_probe {
            let after = candidates.partition_point(|id| *id <= last);
            candidates.rotate_left(after);
        }
        let mut started = 0;
        for id in candidates {
            if started == slots {
                break;
            }
            if !Self::may_upload(&self.entries[&id]) {
                continue;
            }
            started += 1;
            if self.pacing.pace > 1.0 && self.try_merge(id, now, out) {
                // The probe is the merged batch's upload, once it is made: the turn stays here.
                continue;
            }
            if probing {
                self.last_probe = Some(id);
            }
            let e = self.entries.get_mut(&id).expect("listed");
            e.merged = false;
            e.upload = Some(Upload { started: now });
            out.push(Action::Upload {
                id,
                timeout: attempt_timeout(e.bytes),
            });
        }
    }

    /// Whether `e` may be part of a merge: S3 certainly never stored it, nothing is being done
    /// to it, and it absorbed nothing that is still on disk.
    fn mergeable(e: &Entry) -> bool {
        !e.done && e.idle() && !e.maybe_stored
    }

    /// While S3 throttles: merges the waiting batches S3 never stored into `into`, one request
    /// instead of several. Whether a merge started.
    fn try_merge(&mut self, into: BatchId, now: Instant, out: &mut Vec<Action>) -> bool {
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

    /// The end of the final round: what is still in memory goes to disk, uploads in flight
    /// included (their files say S3 may have stored them).
    fn final_spill(&mut self, now: Instant, out: &mut Vec<Action>) {
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

    /// Deletes the files of batches that are done (parts merged away before the batch they went
    /// into), and forgets what has nothing left.
    fn tidy(&mut self, now: Instant, out: &mut Vec<Action>) {
        let ids: Vec<BatchId> = self.order.iter().copied().collect();
        for id in ids {
            let e = &self.entries[&id];
            if !e.done || !e.idle() {
                continue;
            }
            if e.on_disk {
                if e.husks == 0 && e.disk_retry.ready(now) {
                    self.entries.get_mut(&id).expect("listed").deleting = true;
                    out.push(Action::Delete { id });
                }
            } else {
                self.remove(id);
                out.push(Action::Forget { id });
            }
        }
    }

    /// A file is being written, renamed or removed. The last flush waits for it (until its
    /// deadline): the process exits once that flush is answered, and a delete cut short leaves a
    /// file the next process ships again, a spill cut short loses its batch.
    fn disk_busy(&self) -> bool {
        !self.asides.is_empty()
            || self
                .entries
                .values()
                .any(|e| e.spilling || e.deleting || e.merge.is_some())
    }

    fn answer_flushes(&mut self, now: Instant, may_upload: bool, out: &mut Vec<Action>) {
        let failing = self.health != Health::Ok;
        let idle = self.owned().next().is_none();
        // Everything owned is durable: on disk, nothing still being written.
        let all_on_disk = self.owned().all(|e| e.on_disk && !e.spilling);
        let disk_busy = self.disk_busy();
        let settled: Vec<FlushId> = self
            .flushes
            .iter()
            .filter(|(_, w)| {
                now >= w.deadline
                    || if w.last {
                        !disk_busy && (idle || (!may_upload && all_on_disk))
                    } else {
                        idle || failing
                    }
            })
            .map(|(id, _)| *id)
            .collect();
        for id in settled {
            self.flushes.remove(&id);
            out.push(Action::AnswerFlush { id });
        }
    }
}

#[cfg(test)]
mod tests;
