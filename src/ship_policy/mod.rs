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
mod events;
mod merge;
mod pacing;
mod retry;
mod room;
mod views;

pub use crate::random::Xorshift;
pub use events::{Action, Event, Failure, Refusal};
pub use pacing::{FIRST_INCREASE, MAX_PACE, Pacing, RELAX_EVERY, RELAX_RATE, RESET_AFTER};
pub use views::{Accounts, BatchView, Pending};

use entry::{Entry, MergePlan, Upload};
use retry::{BackoffKind, Health};
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
