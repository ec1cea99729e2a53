//! The policy of the ship path, as a pure state machine: events in (a batch sealed, an upload's
//! outcome, a spill done, a flush asked for, time passing), actions out (upload, spill, forget,
//! refuse, give up, answer a flush, wake me at). No actix, no SDK, no I/O; time is passed in. The
//! ShipperActor only carries the actions out (in the manner of the sans-IO cores of quinn-proto or
//! h2), so every decision below is unit-tested here.
//!
//! The contract:
//! * **Nothing waits for S3 unless asked.** Uploads run while the environment runs; a `Flush` (the
//!   shutdown, `SHIP_AT=end-of-invoke`, `NEXT_WAIT_MS`) is answered when nothing is pending, at its
//!   deadline, or at the first failure: a failing S3 never holds an invoke.
//! * **A batch leaves only when S3 confirmed it**, under the key fixed at sealing: a retry (after a
//!   failure, a timeout, a freeze) rewrites the same object with the same bytes.
//! * **Retries** wait by what failed: transient (network, 5xx, timeouts, RequestTimeout) from 100 ms
//!   doubling to 5 s; throttling (SlowDown) from 2 s to 30 s, and it paces the batcher; refusals (AccessDenied, a KMS denial,
//!   NoSuchBucket with creation off) 1 s, 2 s, 4 s… up to 30 s. Jitter spreads the first two. While S3
//!   fails, one upload at a time probes it; healthy, up to `max_in_flight` run at once (twice that
//!   in the final round).
//! * **Once failed, a batch is on disk** (spilled), so a crash or a reset does not lose it; memory
//!   holds at most `max_memory` bytes of batches, the newest spill past it; past twice that with no
//!   disk, a new batch is refused.
//! * **A batch S3 rejects** (a 4xx about the request itself, not a refusal) is given up after
//!   `REJECTIONS` attempts, so one bad batch cannot block the others: it stays on disk, aside.
//! * **Throttling paces the batcher**: SlowDown makes the environment ship less often, with larger
//!   objects, and it relaxes again when the throttling stops ([`Pacing`]).
//! * **At SHUTDOWN** (`Flush { last }`) the back-off is lifted: every kept batch, refused ones
//!   included, is tried again at once; a failure there (a refusal too) is tried again after at most
//!   250 ms, one probe at a time, until the deadline less a reserve; then what is still in memory is
//!   spilled.

mod pacing;
pub use pacing::{
    FIRST_INCREASE, MAX_PACE, Pacing, RELAX_EVERY, RELAX_RATE, RESET_AFTER, Xorshift,
};

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub type BatchId = u64;
pub type FlushId = u64;

/// How long the final round leaves for spilling what is still in memory.
pub const SPILL_RESERVE: Duration = Duration::from_millis(200);
/// Attempts a rejected batch gets before it is given up.
pub const REJECTIONS: u32 = 3;
/// The longest wait between attempts in the final round (the shutdown's deadline is near).
const FINAL_ROUND_LONGEST_WAIT: Duration = Duration::from_millis(250);

/// What an upload failure means for what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Network, timeout, 5xx, RequestTimeout, a cut connection: soon again.
    Transient,
    /// 503 SlowDown: S3 asks for fewer requests.
    Throttled,
    /// The role, the key or the bucket refuses every write until someone fixes it.
    Refused(Refusal),
    /// S3 refuses this request itself (a 4xx about the object); retrying will not change it.
    Rejected,
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
    /// A batch a previous process left on disk.
    Recovered {
        id: BatchId,
        records: usize,
        bytes: u64,
    },
    /// S3 confirmed the batch.
    Uploaded { id: BatchId },
    /// The upload failed.
    Failed { id: BatchId, failure: Failure },
    /// A spill finished (`ok`: the batch is on disk now).
    Spilled { id: BatchId, ok: bool },
    /// A merge finished: on success `into` holds the records of `from` too (`records`, `bytes` in
    /// all), on disk if `on_disk`; on failure everything is as it was.
    Merged {
        into: BatchId,
        from: Vec<BatchId>,
        ok: bool,
        records: usize,
        bytes: u64,
        on_disk: bool,
    },
    /// Someone waits until nothing is pending, a failure, or `deadline`; `last`: the shutdown's.
    Flush {
        id: FlushId,
        deadline: Instant,
        last: bool,
    },
    /// Time passed (a wake-up asked for with [`Action::WakeAt`]).
    Tick,
}

/// What the actor is to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Upload the batch (from memory or disk), giving up after `timeout`.
    Upload {
        id: BatchId,
        timeout: Duration,
    },
    /// Write the batch from memory to disk (off the actor's thread).
    Spill {
        id: BatchId,
    },
    /// S3 has it: free the memory or delete the file.
    Forget {
        id: BatchId,
    },
    /// No room anywhere: drop it and count it refused.
    Refuse {
        id: BatchId,
    },
    /// Rejected too often: keep it on disk, aside, and stop trying.
    GiveUp {
        id: BatchId,
    },
    /// S3 throttles: append the bodies of `from` (in order) to `into`'s, under `into`'s key — one
    /// request instead of several. Only batches S3 certainly never stored are merged, so no key
    /// is ever written with two contents.
    Merge {
        into: BatchId,
        from: Vec<BatchId>,
    },
    /// The failure to log (the actor throttles per cause).
    Report {
        failure: Failure,
    },
    AnswerFlush {
        id: FlushId,
    },
    /// Send a [`Event::Tick`] at this time.
    WakeAt(Instant),
    /// S3 asks for fewer requests (or no longer does): ship less often, with larger objects, by
    /// this factor (≥ 1) — see [`Pacing`].
    Pace(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Memory,
    Disk,
}

#[derive(Debug, Clone)]
struct Entry {
    records: usize,
    bytes: u64,
    place: Place,
    uploading: bool,
    spilling: bool,
    rejections: u32,
    /// An attempt failed in a way that may have stored it (a timeout, a reset, a 5xx): its key
    /// may exist in S3, so its content must not change (it is never merged).
    maybe_written: bool,
    /// When its last upload started.
    started: Option<Instant>,
}

/// Whether S3 is taking writes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Health {
    Ok,
    /// After `level` consecutive failures of this kind: no upload before `until`, then one probe.
    Backoff {
        until: Instant,
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
    /// Bytes of batches held in memory before the newest spill.
    pub max_memory: u64,
    /// Uploads at once while S3 is healthy.
    pub max_in_flight: usize,
    /// Whether batches can go to disk at all.
    pub can_spill: bool,
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

/// How many batches and records are still owned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    pub batches: usize,
    pub records: usize,
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    deadline: Instant,
    last: bool,
}

pub struct Policy {
    cfg: Config,
    entries: BTreeMap<BatchId, Entry>,
    /// Upload order: oldest first (batch ids are not reused).
    order: VecDeque<BatchId>,
    memory: u64,
    health: Health,
    flushes: BTreeMap<FlushId, Waiter>,
    /// The final round's deadline, once SHUTDOWN asked for it.
    final_deadline: Option<Instant>,
    /// The spill phase of the final round started.
    final_spill: bool,
    pacing: Pacing,
    rng: Xorshift,
}

impl Policy {
    pub fn new(cfg: Config) -> Self {
        Self {
            rng: Xorshift::new(cfg.seed),
            cfg,
            entries: BTreeMap::new(),
            order: VecDeque::new(),
            memory: 0,
            health: Health::Ok,
            flushes: BTreeMap::new(),
            final_deadline: None,
            final_spill: false,
            pacing: Pacing::default(),
        }
    }

    /// How much less often batches are to be shipped (1: as configured).
    pub fn pace(&self) -> f64 {
        self.pacing.pace
    }

    /// What is still owned.
    pub fn pending(&self) -> Pending {
        Pending {
            batches: self.entries.len(),
            records: self.entries.values().map(|e| e.records).sum(),
        }
    }

    /// Records still owned, in memory and on disk.
    pub fn owned(&self) -> (usize, usize) {
        self.entries
            .values()
            .fold((0, 0), |(m, d), e| match e.place {
                Place::Memory => (m + e.records, d),
                Place::Disk => (m, d + e.records),
            })
    }

    /// Bytes of batches in memory.
    pub fn memory(&self) -> u64 {
        self.memory
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Sealed { id, records, bytes } => {
                self.add(id, records, bytes, Place::Memory);
                self.make_room(&mut out);
            }
            Event::Recovered { id, records, bytes } => self.add(id, records, bytes, Place::Disk),
            Event::Uploaded { id } => {
                if self.remove(id).is_some() {
                    out.push(Action::Forget { id });
                }
                self.health = Health::Ok;
            }
            Event::Merged {
                into,
                from,
                ok,
                records,
                bytes,
                on_disk,
            } => self.merged(into, &from, ok, records, bytes, on_disk),
            Event::Failed { id, failure } => self.failed(id, failure, now, &mut out),
            Event::Spilled { id, ok } => {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.spilling = false;
                    if ok && e.place == Place::Memory {
                        e.place = Place::Disk;
                        self.memory -= e.bytes;
                    }
                }
                if !ok {
                    self.cfg.can_spill = false;
                }
                self.make_room(&mut out);
            }
            Event::Flush { id, deadline, last } => {
                self.flushes.insert(id, Waiter { deadline, last });
                if last {
                    self.final_deadline = Some(deadline);
                    // The last chance: a fresh round, whatever failed before (and another round
                    // for batches sealed after a previous one) — but while S3 asks for fewer
                    // requests, a fleet spinning down must not flood it: the throttle's wait
                    // stands, cut to the final round's probe interval (a longer one lost whole
                    // environments' logs in the fleet mode: one probe in the 1.5 s left), and
                    // waiting batches are merged (the pace is > 1).
                    self.health = match self.health {
                        Health::Backoff {
                            until,
                            level,
                            kind: BackoffKind::Throttled,
                        } => Health::Backoff {
                            until: until.min(now + FINAL_ROUND_LONGEST_WAIT),
                            level,
                            kind: BackoffKind::Throttled,
                        },
                        _ => Health::Ok,
                    };
                    self.final_spill = false;
                }
            }
            Event::Tick => {}
        }
        self.pump(now, &mut out);
        out
    }

    fn add(&mut self, id: BatchId, records: usize, bytes: u64, place: Place) {
        if place == Place::Memory {
            self.memory += bytes;
        }
        self.entries.insert(
            id,
            Entry {
                records,
                bytes,
                place,
                uploading: false,
                spilling: false,
                rejections: 0,
                maybe_written: false,
                started: None,
            },
        );
        self.order.push_back(id);
    }

    fn remove(&mut self, id: BatchId) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        self.order.retain(|o| *o != id);
        if e.place == Place::Memory {
            self.memory -= e.bytes;
        }
        Some(e)
    }

    /// Past the memory bound, the newest batches not already on their way go to disk; past twice
    /// the bound with no disk, the newest is refused.
    fn make_room(&mut self, out: &mut Vec<Action>) {
        let mut planned: u64 = self
            .entries
            .values()
            .filter(|e| e.spilling)
            .map(|e| e.bytes)
            .sum();
        for id in self.order.iter().rev() {
            if self.memory.saturating_sub(planned) <= self.cfg.max_memory {
                break;
            }
            let e = self.entries.get_mut(id).expect("order and entries agree");
            if e.place == Place::Memory && !e.spilling && !e.uploading && self.cfg.can_spill {
                e.spilling = true;
                planned += e.bytes;
                out.push(Action::Spill { id: *id });
            }
        }
        while !self.cfg.can_spill && self.memory > 2 * self.cfg.max_memory {
            let Some(id) = self
                .order
                .iter()
                .rev()
                .copied()
                .find(|id| !self.entries[id].uploading)
            else {
                break;
            };
            self.remove(id);
            out.push(Action::Refuse { id });
        }
    }

    fn failed(&mut self, id: BatchId, failure: Failure, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Report {
            failure: failure.clone(),
        });
        let started = self.entries.get(&id).and_then(|e| e.started).unwrap_or(now);
        if failure == Failure::Throttled
            && let Some(pace) = self.pacing.throttled(started, now)
        {
            out.push(Action::Pace(pace));
        }
        let Some(e) = self.entries.get_mut(&id) else {
            return;
        };
        e.uploading = false;
        let final_round = self.final_deadline.is_some();
        if failure == Failure::Transient {
            e.maybe_written = true;
        }
        let kind = match failure {
            Failure::Transient => BackoffKind::Transient,
            Failure::Throttled => BackoffKind::Throttled,
            Failure::Refused(_) => BackoffKind::Refused,
            Failure::Rejected => {
                e.rejections += 1;
                if e.rejections >= REJECTIONS {
                    out.push(Action::GiveUp { id });
                    self.remove(id);
                    return;
                }
                BackoffKind::Transient
            }
        };
        // Failed once: on disk from now on, so a crash or a reset does not lose it.
        if e.place == Place::Memory && !e.spilling && self.cfg.can_spill {
            e.spilling = true;
            out.push(Action::Spill { id });
        }
        let level = match self.health {
            Health::Backoff { level, .. } => level + 1,
            Health::Ok => 0,
        };
        let (first, mut longest, jitter) = kind.schedule();
        if final_round {
            // The shutdown leaves about 1.5 s: keep trying, within it — one probe at a time, and
            // while S3 throttles, what waits is merged into that one request.
            longest = longest.min(FINAL_ROUND_LONGEST_WAIT);
        }
        let mut wait = first.saturating_mul(1 << level.min(16)).min(longest);
        if jitter {
            // Equal jitter: half fixed, half random, so retries of many environments spread out.
            wait = wait / 2 + wait.mul_f64(self.unit() / 2.0);
        }
        self.health = Health::Backoff {
            until: now + wait,
            level,
            kind,
        };
    }

    /// The waiting batches `into` can take while S3 throttles: none that S3 may have stored, none
    /// busy, up to the merge limit; `None` when there is nothing to merge.
    fn merge_candidates(&self, into: BatchId) -> Option<Vec<BatchId>> {
        let first = &self.entries[&into];
        if first.maybe_written || first.spilling {
            return None;
        }
        let mut size = first.bytes;
        let from: Vec<BatchId> = self
            .order
            .iter()
            .copied()
            .filter(|id| *id != into)
            .filter(|id| {
                let e = &self.entries[id];
                !(e.uploading || e.spilling || e.maybe_written)
            })
            .take_while(|id| {
                size += self.entries[id].bytes;
                size <= self.cfg.merge_limit
            })
            .collect();
        (!from.is_empty()).then_some(from)
    }

    fn merged(
        &mut self,
        into: BatchId,
        from: &[BatchId],
        ok: bool,
        records: usize,
        bytes: u64,
        on_disk: bool,
    ) {
        for id in std::iter::once(&into).chain(from) {
            if let Some(e) = self.entries.get_mut(id) {
                e.uploading = false;
            }
        }
        if !ok {
            return;
        }
        for id in from {
            self.remove(*id);
        }
        if let Some(e) = self.entries.get_mut(&into) {
            if e.place == Place::Memory {
                self.memory -= e.bytes;
            }
            e.records = records;
            e.bytes = bytes;
            e.place = if on_disk { Place::Disk } else { Place::Memory };
            if e.place == Place::Memory {
                self.memory += bytes;
            }
        }
    }

    fn unit(&mut self) -> f64 {
        self.rng.unit()
    }

    /// Starts what may start, answers flushes that are settled, asks for the next wake-up.
    fn pump(&mut self, now: Instant, out: &mut Vec<Action>) {
        let in_flight = self.entries.values().filter(|e| e.uploading).count();
        let final_round = self.final_deadline;
        let uploads_until = final_round.map(|d| d.checked_sub(SPILL_RESERVE).unwrap_or(d));
        let may_upload = uploads_until.is_none_or(|u| now < u);
        // The final round has little time left: twice the uploads at once.
        let max_in_flight = self.cfg.max_in_flight * if final_round.is_some() { 2 } else { 1 };
        let (slots, wake) = match self.health {
            Health::Ok => (max_in_flight.saturating_sub(in_flight), None),
            // One probe at a time while S3 fails.
            Health::Backoff { until, .. } if now >= until => (usize::from(in_flight == 0), None),
            Health::Backoff { until, .. } => (0, Some(until)),
        };
        if may_upload {
            let ready: Vec<BatchId> = self
                .order
                .iter()
                .copied()
                .filter(|id| !self.entries[id].uploading)
                .take(slots)
                .collect();
            for id in ready {
                if self.entries[&id].uploading {
                    // Merged into an earlier one in this round.
                    continue;
                }
                if self.pacing.pace > 1.0
                    && let Some(from) = self.merge_candidates(id)
                {
                    for m in std::iter::once(&id).chain(&from) {
                        self.entries.get_mut(m).expect("listed").uploading = true;
                    }
                    out.push(Action::Merge { into: id, from });
                    continue;
                }
                let e = self.entries.get_mut(&id).expect("listed above");
                e.uploading = true;
                e.started = Some(now);
                out.push(Action::Upload {
                    id,
                    timeout: attempt_timeout(e.bytes),
                });
            }
        }
        // The end of the final round: what is still in memory goes to disk.
        if final_round.is_some() && !may_upload && !self.final_spill {
            self.final_spill = true;
            for (id, e) in self.entries.iter_mut() {
                if e.place == Place::Memory && !e.spilling && self.cfg.can_spill {
                    e.spilling = true;
                    out.push(Action::Spill { id: *id });
                }
            }
        }
        self.answer_flushes(now, out);
        let (relaxed, relax_at) = self.pacing.relax(now);
        if let Some(pace) = relaxed {
            out.push(Action::Pace(pace));
        }
        let mut wakes: Vec<Instant> = self.flushes.values().map(|w| w.deadline).collect();
        wakes.extend(wake);
        wakes.extend(relax_at);
        if self.final_spill {
            // Nothing more to decide in the final round but its deadline.
        } else if let Some(u) = uploads_until.filter(|u| now < *u) {
            wakes.push(u);
        }
        if let Some(at) = wakes.into_iter().filter(|t| *t > now).min() {
            out.push(Action::WakeAt(at));
        }
    }

    fn answer_flushes(&mut self, now: Instant, out: &mut Vec<Action>) {
        let failing = self.health != Health::Ok;
        let idle = self.entries.is_empty();
        let spilled_all = self
            .entries
            .values()
            .all(|e| e.place == Place::Disk && !e.spilling);
        let settled: Vec<FlushId> = self
            .flushes
            .iter()
            .filter(|(_, w)| {
                now >= w.deadline
                    || idle
                    || if w.last {
                        self.final_spill && spilled_all
                    } else {
                        failing
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
