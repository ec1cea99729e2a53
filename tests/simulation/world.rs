//! One simulated run: environments (each a spill directory) and the extension processes in them
//! (each the real ship policy and held store), one modelled S3, and a queue of what happens next
//! in simulated time. The driver plays the shell's part exactly as ShipperActor does — an action
//! in, its I/O done (here against the models), its outcome fed back — and checks the invariants
//! after every step.

use super::disk::{self, MemDisk};
use super::s3::{self, S3};
use adaptive_batching_extension::held::{Done, HeldStore, Job};
use adaptive_batching_extension::random::Xorshift;
use adaptive_batching_extension::sealed::{ObjectMeta, SealedObject};
use adaptive_batching_extension::ship_policy::{
    Action, BatchId, Config, Event, Failure, FlushId, Policy,
};
use adaptive_batching_extension::spill::{self, Disk};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Lambda's SHUTDOWN budget less the extension's margin.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(1550);

/// The knobs of one run, all drawn from its seed.
#[derive(Debug, Clone)]
pub struct Params {
    pub policy: Config,
    /// Bytes the modelled disk holds (below `max_disk`: it fills before the bound does).
    pub disk_capacity: u64,
    pub disk_faults: disk::Faults,
    pub s3_faults: s3::Faults,
    /// Mean time between two sealed batches.
    pub seal_every: Duration,
    pub run_for: Duration,
    pub crash: f64,
    pub fork: f64,
    pub reset: f64,
}

impl Params {
    pub fn draw(rng: &mut Xorshift) -> Self {
        let max_memory = 1024 * (1 + rng.below(32));
        let max_object = max_memory / 2;
        let max_disk = if rng.chance(0.1) {
            0
        } else {
            1024 * (4 + rng.below(256))
        };
        let disk_capacity = if rng.chance(0.3) {
            max_disk / 2
        } else {
            max_disk * 2 + 64 * 1024
        };
        let p = |rng: &mut Xorshift, max: f64| {
            if rng.chance(0.5) {
                0.0
            } else {
                rng.unit() * max
            }
        };
        let window = |rng: &mut Xorshift| {
            rng.chance(0.3).then(|| {
                let a = Duration::from_millis(rng.below(20_000));
                (a, a + Duration::from_millis(rng.below(15_000)))
            })
        };
        Params {
            policy: Config {
                max_memory,
                max_object,
                max_disk,
                max_in_flight: 1 + rng.below(4) as usize,
                seed: rng.next_u64(),
                merge_limit: max_object + rng.below(max_memory - max_object + 1),
            },
            disk_capacity,
            disk_faults: disk::Faults {
                write_error: p(rng, 0.2),
                read_error: p(rng, 0.05),
            },
            s3_faults: s3::Faults {
                throttle: p(rng, 0.5),
                refuse: p(rng, 0.2),
                reject: p(rng, 0.05),
                unsendable: p(rng, 0.01),
                server_error: p(rng, 0.2),
                lost_reply: p(rng, 0.1),
                stall: p(rng, 0.05),
                throttled_from_to: window(rng),
                refused_from_to: window(rng),
            },
            seal_every: Duration::from_millis(5 + rng.below(200)),
            run_for: Duration::from_millis(1_000 + rng.below(20_000)),
            crash: p(rng, 0.002),
            fork: p(rng, 0.01),
            reset: rng.unit(),
        }
    }
}

/// What happens next.
#[derive(Debug)]
enum What {
    Seal(usize),
    Tick(usize),
    Answered {
        p: usize,
        id: BatchId,
        failure: Option<Failure>,
        records: Vec<u64>,
    },
    JobDone(usize, u64, Box<Job>),
    /// S3 stores an object (whatever became of the process that sent it).
    Stored(String, Bytes),
    Flush(usize),
    Crash(usize),
    Fork(usize),
    Shutdown(usize),
}

struct Process {
    env: usize,
    policy: Policy,
    store: HeldStore,
    next_id: BatchId,
    alive: bool,
    snap_start: bool,
    /// Uploads in flight (one of a batch on disk streams its file, as the shell's does: no copy
    /// is held in memory).
    uploads: BTreeSet<BatchId>,
    /// Disk jobs in flight, by id: what each holds in memory (a merge made in memory) and the
    /// key a set-aside is about to rename.
    jobs: BTreeMap<u64, (u64, Option<String>)>,
    next_flush: FlushId,
    last_flush: Option<(FlushId, Duration)>,
    /// Files its recovery could not read (left for a person), and files it could not set aside
    /// (left where they were, for a later process).
    unreadable: BTreeSet<String>,
    /// Bytes of their headers: the policy counts whole files it cannot read (it cannot tell
    /// header from body), the bound is on bodies.
    unreadable_headers: u64,
    orphans: BTreeSet<String>,
    /// Records by what became of them, counted here from the actions, to hold the policy's
    /// accounts against.
    shipped: u64,
    refused: u64,
    set_aside: u64,
    /// The latest wake-up scheduled.
    wake: Option<Duration>,
}

/// A whole run.
pub struct World {
    params: Params,
    rng: Xorshift,
    base: Instant,
    now: Duration,
    queue: BTreeMap<(Duration, u64), What>,
    seq: u64,
    envs: Vec<(MemDisk, bool)>,
    procs: Vec<Process>,
    s3: S3,
    next_record: u64,
    next_key: u64,
    /// Every record sealed, and the reasons a process gave for losing it.
    records: BTreeMap<u64, Vec<&'static str>>,
    pub trace: Vec<String>,
    pub steps: u64,
    keep_trace: bool,
    next_job: u64,
    /// The first broken invariant seen inside a step.
    broken: Option<String>,
}

/// A broken invariant, with the step it broke at.
pub type Broken = String;

impl World {
    pub fn new(seed: u64, keep_trace: bool) -> Self {
        let mut rng = Xorshift::new(seed ^ 0x9e37_79b9_7f4a_7c15);
        let params = Params::draw(&mut rng);
        let disk = MemDisk::new(
            params.disk_capacity,
            params.disk_faults.clone(),
            rng.next_u64(),
        );
        let mut w = World {
            params,
            rng,
            base: Instant::now(),
            now: Duration::ZERO,
            queue: BTreeMap::new(),
            seq: 0,
            envs: vec![(disk, false)],
            procs: Vec::new(),
            s3: S3::default(),
            next_record: 0,
            next_key: 0,
            records: BTreeMap::new(),
            trace: Vec::new(),
            steps: 0,
            keep_trace,
            next_job: 0,
            broken: None,
        };
        w.start_process(0, false);
        w
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    fn at(&mut self, after: Duration, what: What) {
        self.seq += 1;
        self.queue.insert((self.now + after, self.seq), what);
    }

    fn fail(&mut self, why: String) {
        self.broken.get_or_insert(why);
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.keep_trace {
            let l = line();
            self.trace
                .push(format!("{:>9.3}s {l}", self.now.as_secs_f64()));
        }
    }

    fn start_process(&mut self, env: usize, snap_start: bool) -> usize {
        let disk = self.envs[env].0.clone();
        let mut cfg = self.params.policy;
        cfg.seed = self.rng.next_u64();
        let mut p = Process {
            env,
            policy: Policy::new(cfg),
            store: HeldStore::default(),
            next_id: 0,
            alive: true,
            snap_start,
            uploads: BTreeSet::new(),
            jobs: BTreeMap::new(),
            next_flush: 0,
            last_flush: None,
            unreadable: BTreeSet::new(),
            unreadable_headers: 0,
            orphans: BTreeSet::new(),
            shipped: 0,
            refused: 0,
            set_aside: 0,
            wake: None,
        };
        let recovered = if cfg.max_disk > 0 {
            spill::recover(&disk, snap_start).ok()
        } else {
            None
        };
        let i = self.procs.len();
        let mut events = Vec::new();
        if let Some(r) = recovered {
            let bodies: u64 = r.unreadable.iter().filter_map(|n| disk.body_size(n)).sum();
            p.unreadable_headers = r.unreadable_bytes.saturating_sub(bodies);
            p.unreadable = r.unreadable.into_iter().collect();
            p.policy.set_disk_taken(r.unreadable_bytes);
            for b in &r.batches {
                p.next_id += 1;
                events.push(p.store.recovered(p.next_id, b));
            }
        }
        self.procs.push(p);
        let n = events.len();
        self.note(|| format!("p{i} starts in env{env}, recovers {n} batches"));
        for e in events {
            self.feed(i, e);
        }
        let first = self.gap();
        self.at(first, What::Seal(i));
        let end = self.params.run_for;
        let (crash, fork, shutdown_at) = (
            self.params.crash,
            self.params.fork,
            end.saturating_sub(self.now),
        );
        // Crashes and a fork at random points of the process's life; its SHUTDOWN at the end. Only
        // the environment's first process forks, once: SnapStart snapshots an init, and a restored
        // copy is never snapshotted again. That process knows it is a SnapStart init.
        let mut may_fork = i == 0;
        let mut t = Duration::ZERO;
        while t < shutdown_at {
            t += Duration::from_millis(100);
            if self.rng.chance(crash) {
                self.at(t, What::Crash(i));
                break;
            }
            if may_fork && self.rng.chance(fork) {
                may_fork = false;
                self.procs[i].policy.set_snapshot_pending();
                self.at(t, What::Fork(i));
            }
            if self.rng.chance(0.01) {
                self.at(t, What::Flush(i));
            }
        }
        self.at(shutdown_at, What::Shutdown(i));
        i
    }

    fn gap(&mut self) -> Duration {
        let mean = self.params.seal_every.as_millis() as u64;
        Duration::from_millis(1 + self.rng.below(2 * mean))
    }

    fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Feeds process `p` one event and carries out what its policy decides, as the shell does.
    fn feed(&mut self, p: usize, event: Event) {
        let now = self.instant();
        let label = self.keep_trace.then(|| format!("{event:?}"));
        let actions = self.procs[p].policy.handle(event, now);
        self.note(|| format!("p{p} {} -> {actions:?}", label.unwrap_or_default()));
        for a in actions {
            self.act(p, a);
        }
    }

    fn act(&mut self, p: usize, action: Action) {
        match action {
            Action::Upload { id, timeout } => self.upload(p, id, timeout),
            Action::Spill { id, maybe_stored } => {
                let job = self.procs[p].store.spill(id, maybe_stored);
                self.job(p, job, Event::Spilled { id, ok: false });
            }
            Action::Merge {
                into,
                from,
                to_disk,
            } => {
                let job = self.procs[p].store.merge(into, from, to_disk);
                self.job(p, job, Event::Merged { into, ok: false });
            }
            Action::Delete { id } => {
                let job = self.procs[p].store.delete(id);
                self.job(p, job, Event::Deleted { id, ok: false });
            }
            Action::Forget { id } => {
                self.procs[p].store.forget(id);
            }
            Action::Refuse { id } => {
                let Some(held) = self.procs[p].store.forget(id) else {
                    return self.fail(format!(
                        "p{p}: refused batch {id}, which the shell does not hold"
                    ));
                };
                if !held.in_memory || held.on_disk {
                    self.fail(format!("p{p}: refused batch {id}, which is on disk"));
                }
                let records = s3::records_of(&held.object.body);
                self.procs[p].refused += records.len() as u64;
                self.lost(&records, "refused");
            }
            Action::SetAside { id } => {
                let records = self.records_held(p, id);
                self.procs[p].set_aside += records.len() as u64;
                self.lost(&records, "set aside");
                let key = self.procs[p].store.get(id).map(|h| h.object.key.clone());
                match self.procs[p].store.set_aside(id) {
                    Some(job) => self.start_job(p, job, 0, key),
                    None => self.feed(p, Event::SetAsideDone { id, ok: false }),
                }
            }
            Action::Report { .. } | Action::Pace(_) => {}
            Action::AnswerFlush { id } => {
                if let Some((last, deadline)) = self.procs[p].last_flush
                    && last == id
                {
                    if self.now > deadline {
                        self.fail(format!(
                            "p{p} answered its last flush {:?} after the deadline",
                            self.now - deadline
                        ));
                    }
                    self.exit(p);
                }
            }
            Action::WakeAt(t) => {
                let at = t - self.base;
                let pr = &mut self.procs[p];
                if pr.wake.is_none_or(|w| at < w || w <= self.now) {
                    pr.wake = Some(at);
                    let after = at.saturating_sub(self.now);
                    self.at(after, What::Tick(p));
                }
            }
        }
    }

    fn disk_latency(&mut self) -> Duration {
        Duration::from_micros(100 + self.rng.below(20_000))
    }

    /// The records of a held batch: from its body in memory, or its file.
    fn records_held(&self, p: usize, id: BatchId) -> Vec<u64> {
        let pr = &self.procs[p];
        let Some(h) = pr.store.get(id) else {
            return Vec::new();
        };
        if h.in_memory {
            return s3::records_of(&h.object.body);
        }
        // Reading the model directly: no fault injection on the oracle's own look.
        self.envs[pr.env]
            .0
            .raw(&spill::file_name(&h.object.key))
            .map(|b| s3::records_of(&b))
            .unwrap_or_default()
    }

    fn lost(&mut self, records: &[u64], why: &'static str) {
        for r in records {
            self.records.entry(*r).or_default().push(why);
        }
    }

    fn job(&mut self, p: usize, job: Option<Job>, failed: Event) {
        let Some(job) = job else {
            self.feed(p, failed);
            return;
        };
        let memory = match &job {
            Job::Merge {
                header: None,
                pieces,
                ..
            } => pieces
                .iter()
                .map(|x| match x {
                    spill::Piece::Memory(b) => b.len() as u64,
                    spill::Piece::FileOf(_) => 0,
                })
                .sum(),
            _ => 0,
        };
        self.start_job(p, job, memory, None);
    }

    fn start_job(&mut self, p: usize, job: Job, memory: u64, aside: Option<String>) {
        self.next_job += 1;
        let n = self.next_job;
        self.procs[p].jobs.insert(n, (memory, aside));
        let after = self.disk_latency();
        self.at(after, What::JobDone(p, n, Box::new(job)));
    }

    fn upload(&mut self, p: usize, id: BatchId, timeout: Duration) {
        let env = self.procs[p].env;
        let source = self.procs[p].store.source(id);
        let disk = self.envs[env].0.clone();
        // The model reads the body to know what S3 stores; the shell streams it from the file.
        let loaded = match source {
            Some(s) => s.load(Some(&disk as &dyn Disk)),
            None => Err(std::io::Error::other("not held")),
        };
        let obj = match loaded {
            Ok(o) => o,
            Err(_) => {
                self.procs[p].uploads.insert(id);
                self.at(
                    Duration::ZERO,
                    What::Answered {
                        p,
                        id,
                        failure: Some(Failure::Unreadable),
                        records: Vec::new(),
                    },
                );
                return;
            }
        };
        self.procs[p].uploads.insert(id);
        self.s3.puts += 1;
        let outcome = self
            .params
            .s3_faults
            .decide(&mut self.rng, self.now, timeout);
        if let Some(after) = outcome.stored_after {
            self.at(after, What::Stored(obj.key.clone(), obj.body.clone()));
        }
        let records = s3::records_of(&obj.body);
        self.at(
            outcome.answered_after,
            What::Answered {
                p,
                id,
                failure: outcome.failure,
                records,
            },
        );
    }

    /// Runs the whole queue; the first broken invariant, if any.
    pub fn run(&mut self) -> Result<(), Broken> {
        while let Some(((t, _), what)) = self.queue.pop_first() {
            self.now = t;
            self.steps += 1;
            self.step(what);
            if let Some(e) = self.broken.take() {
                return Err(format!(
                    "step {} at {:.3}s: {e}",
                    self.steps,
                    t.as_secs_f64()
                ));
            }
            if let Err(e) = self.check() {
                return Err(format!(
                    "step {} at {:.3}s: {e}",
                    self.steps,
                    t.as_secs_f64()
                ));
            }
        }
        self.check_end()
    }

    fn step(&mut self, what: What) {
        match what {
            What::Seal(p) => self.seal(p),
            What::Tick(p) => {
                if !self.procs[p].alive {
                    return;
                }
                if self.procs[p].wake.is_some_and(|w| w <= self.now) {
                    self.procs[p].wake = None;
                }
                if let Some((_, deadline)) = self.procs[p].last_flush
                    && self.now > deadline
                {
                    self.fail(format!("p{p} still running past its deadline"));
                }
                self.feed(p, Event::Tick);
            }
            What::Answered {
                p,
                id,
                failure,
                records,
            } => {
                if !self.procs[p].alive || !self.procs[p].uploads.remove(&id) {
                    return;
                }
                let event = match failure {
                    None => {
                        self.procs[p].shipped += records.len() as u64;
                        Event::Uploaded { id }
                    }
                    Some(failure) => Event::Failed { id, failure },
                };
                self.feed(p, event);
            }
            What::JobDone(p, n, job) => {
                if !self.procs[p].alive || self.procs[p].jobs.remove(&n).is_none() {
                    return;
                }
                let disk = self.envs[self.procs[p].env].0.clone();
                let done = (*job).run(Some(&disk as &dyn Disk));
                if let Done::SetAside {
                    key,
                    result: Err(_),
                    ..
                } = &done
                {
                    // Its file stays where it was: a later process finds it again.
                    self.procs[p].orphans.insert(spill::file_name(key));
                }
                if let Some(e) = self.procs[p].store.apply(done) {
                    self.feed(p, e);
                }
            }
            What::Stored(key, body) => self.s3.store(&key, &body),
            What::Flush(p) => {
                if !self.procs[p].alive || self.procs[p].last_flush.is_some() {
                    return;
                }
                self.procs[p].next_flush += 1;
                let id = self.procs[p].next_flush;
                let deadline = self.instant() + Duration::from_millis(self.rng.below(100));
                self.feed(
                    p,
                    Event::Flush {
                        id,
                        deadline,
                        last: false,
                    },
                );
            }
            What::Crash(p) => {
                if !self.procs[p].alive || self.procs[p].last_flush.is_some() {
                    return;
                }
                self.note(|| format!("p{p} crashes"));
                self.procs[p].alive = false;
                for (id, v) in self.procs[p].policy.batches() {
                    if !v.done && !v.on_disk {
                        let records = self.records_held(p, id);
                        self.lost(&records, "in memory at a crash");
                    }
                }
                let (env, snap) = (self.procs[p].env, self.procs[p].snap_start);
                self.start_process(env, snap);
            }
            What::Fork(p) => self.fork(p),
            What::Shutdown(p) => {
                if !self.procs[p].alive || self.procs[p].last_flush.is_some() {
                    return;
                }
                self.procs[p].next_flush += 1;
                let id = self.procs[p].next_flush;
                self.procs[p].last_flush = Some((id, self.now + SHUTDOWN_BUDGET));
                let deadline = self.instant() + SHUTDOWN_BUDGET;
                self.note(|| format!("p{p} SHUTDOWN"));
                self.feed(
                    p,
                    Event::Flush {
                        id,
                        deadline,
                        last: true,
                    },
                );
            }
        }
    }

    fn seal(&mut self, p: usize) {
        let pr = &self.procs[p];
        if !pr.alive || pr.last_flush.is_some() {
            return;
        }
        let n = 1 + self.rng.below(8) as usize;
        let mut body = String::new();
        let mut ids = Vec::new();
        for _ in 0..n {
            self.next_record += 1;
            let r = self.next_record;
            ids.push(r);
            let pad = self.rng.below(300) as usize;
            let _ = writeln!(body, "r{r} {}", "x".repeat(pad));
        }
        for r in &ids {
            self.records.insert(*r, Vec::new());
        }
        self.next_key += 1;
        let key = format!("k/{}", self.next_key);
        self.seal_object(p, key, body, n);
        let gap = self.gap();
        self.at(gap, What::Seal(p));
    }

    fn seal_object(&mut self, p: usize, key: String, body: String, records: usize) {
        let obj = SealedObject {
            key,
            raw_bytes: body.len() as u64,
            body: Bytes::from(body),
            records,
            meta: ObjectMeta::default(),
        };
        let pr = &mut self.procs[p];
        pr.next_id += 1;
        let id = pr.next_id;
        let event = pr.store.sealed(id, obj);
        self.feed(p, event);
    }

    /// SnapStart: the process and its disk are copied into a second environment; both are
    /// restored, each seals the snapshot's open buffer under the key every copy derives alike.
    fn fork(&mut self, p: usize) {
        if !self.procs[p].alive || self.procs[p].last_flush.is_some() {
            return;
        }
        let env = self.procs[p].env;
        let seed = self.rng.next_u64();
        let disk = self.envs[env].0.snapshot(seed);
        self.envs.push((disk, false));
        let new_env = self.envs.len() - 1;
        let copy = Process {
            env: new_env,
            policy: self.procs[p].policy.clone(),
            store: self.procs[p].store.clone(),
            next_id: self.procs[p].next_id,
            alive: true,
            snap_start: true,
            uploads: self.procs[p].uploads.clone(),
            jobs: self.procs[p].jobs.clone(),
            next_flush: self.procs[p].next_flush,
            last_flush: None,
            unreadable: self.procs[p].unreadable.clone(),
            unreadable_headers: self.procs[p].unreadable_headers,
            orphans: self.procs[p].orphans.clone(),
            shipped: self.procs[p].shipped,
            refused: self.procs[p].refused,
            set_aside: self.procs[p].set_aside,
            wake: None,
        };
        self.procs.push(copy);
        let q = self.procs.len() - 1;
        self.procs[p].snap_start = true;
        self.note(|| format!("p{p} snapshot, restored as p{p} and p{q} (env{new_env})"));
        // What was in flight: the connections are dead in both copies (the request, if it went,
        // went once); disk work goes on in each.
        let pending: Vec<((Duration, u64), What)> =
            std::mem::take(&mut self.queue).into_iter().collect();
        for (k, what) in pending {
            match what {
                What::Answered { p: x, id, .. } if x == p => {
                    for who in [p, q] {
                        self.seq += 1;
                        self.queue.insert(
                            (k.0, self.seq),
                            What::Answered {
                                p: who,
                                id,
                                failure: Some(Failure::Transient),
                                records: Vec::new(),
                            },
                        );
                    }
                }
                What::JobDone(x, n, job) if x == p => {
                    self.seq += 1;
                    self.queue
                        .insert((k.0, self.seq), What::JobDone(q, n, job.clone()));
                    self.queue.insert(k, What::JobDone(p, n, job));
                }
                other => {
                    self.queue.insert(k, other);
                }
            }
        }
        // The snapshot's open buffer, sealed alike in both copies, then the restore.
        let n = 1 + self.rng.below(4) as usize;
        let mut body = String::new();
        for _ in 0..n {
            self.next_record += 1;
            let r = self.next_record;
            self.records.insert(r, Vec::new());
            let _ = writeln!(body, "r{r} snapshot");
        }
        self.next_key += 1;
        let key = format!("snap/{}", self.next_key);
        for who in [p, q] {
            self.seal_object(who, key.clone(), body.clone(), n);
            let seed = self.rng.next_u64();
            self.feed(who, Event::Restored { seed });
        }
        let gap = self.gap();
        self.at(gap, What::Seal(q));
        let end = self.params.run_for.saturating_sub(self.now);
        self.at(end, What::Shutdown(q));
    }

    /// The process answered its last flush: it exits. A reset keeps the environment (and /tmp)
    /// for a new process; a spindown discards it.
    fn exit(&mut self, p: usize) {
        self.procs[p].alive = false;
        let acc = self.procs[p].policy.accounts();
        let env = self.procs[p].env;
        let discard = self.now >= self.params.run_for || !self.rng.chance(self.params.reset);
        self.note(|| {
            format!(
                "p{p} exits ({}): {acc:?}",
                if discard { "spindown" } else { "reset" }
            )
        });
        for (id, v) in self.procs[p].policy.batches() {
            if v.done {
                continue;
            }
            let records = self.records_held(p, id);
            if !v.on_disk {
                self.lost(&records, "in memory at the end");
            } else if discard {
                self.lost(&records, "with the environment");
            }
        }
        if discard {
            self.envs[env].1 = true;
            let files = self.envs[env].0.files();
            for (_, body) in files {
                self.lost(&s3::records_of(&body), "with the environment");
            }
        } else {
            let snap = self.procs[p].snap_start;
            self.start_process(env, snap);
        }
    }

    /// The invariants that hold after every step.
    fn check(&self) -> Result<(), String> {
        if let Some(v) = self.s3.violations.first() {
            return Err(v.clone());
        }
        for (i, pr) in self.procs.iter().enumerate().filter(|(_, p)| p.alive) {
            let acc = pr.policy.accounts();
            if !acc.balanced() {
                return Err(format!("p{i}: accounts do not balance: {acc:?}"));
            }
            if (acc.shipped, acc.refused, acc.rejected + acc.unreadable)
                != (pr.shipped, pr.refused, pr.set_aside)
            {
                return Err(format!(
                    "p{i}: accounts {acc:?} against the actions: shipped {}, refused {}, set aside {}",
                    pr.shipped, pr.refused, pr.set_aside
                ));
            }
            // Memory: exactly what the shell holds, and within the bound.
            let merges: u64 = pr.jobs.values().map(|(m, _)| m).sum();
            let held = pr.store.memory() + merges;
            let memory = pr.policy.memory();
            if memory != held {
                return Err(format!(
                    "p{i}: the policy counts {memory} bytes in memory, the shell holds {held}"
                ));
            }
            let batches = pr.policy.batches();
            let spilling: u64 = batches
                .iter()
                .filter(|(_, v)| v.spilling && v.in_memory && !v.failed)
                .map(|(_, v)| v.bytes)
                .sum();
            // Batches that failed go to disk past the bound: they were uploads in flight.
            let failed: u64 = batches
                .iter()
                .filter(|(_, v)| v.spilling && v.in_memory && v.failed)
                .map(|(_, v)| v.bytes)
                .sum();
            let cfg = &self.params.policy;
            let largest = batches.iter().map(|(_, v)| v.bytes).max().unwrap_or(0);
            // The bound, an object past it (a batch arriving while memory is full), and another
            // for bodies being spilled; batches that failed go to disk whatever the bound.
            let object = cfg.max_object.max(largest);
            if memory - failed > cfg.max_memory + 2 * object {
                return Err(format!(
                    "p{i}: {memory} bytes in memory ({spilling} being spilled) past the bound {} + 2 × {object}",
                    cfg.max_memory
                ));
            }
            // Disk: the files the policy counts are there, with those sizes; nothing else but
            // files being set aside and files its recovery could not read.
            if pr.policy.disk() > cfg.max_disk + pr.unreadable_headers {
                return Err(format!(
                    "p{i}: disk {} past its bound {} (+ {} of unreadable files' headers)",
                    pr.policy.disk(),
                    cfg.max_disk,
                    pr.unreadable_headers
                ));
            }
            let disk = &self.envs[pr.env].0;
            let mut counted = 0;
            for (id, v) in &batches {
                let h = pr
                    .store
                    .get(*id)
                    .expect("the shell holds what the policy does");
                if h.on_disk != v.on_disk || (h.in_memory != v.in_memory && !v.done) {
                    return Err(format!(
                        "p{i}: batch {id}: the policy has {v:?}, the shell {h:?}"
                    ));
                }
                if v.on_disk {
                    let name = spill::file_name(&h.object.key);
                    let Some(size) = disk.body_size(&name) else {
                        return Err(format!("p{i}: batch {id} on disk, its file {name} is not"));
                    };
                    counted += size;
                }
            }
            if counted != pr.policy.disk_files() {
                return Err(format!(
                    "p{i}: the policy counts {} bytes of files, they hold {counted}",
                    pr.policy.disk_files()
                ));
            }
            // Nothing on disk that nobody holds (every few steps: it reads every name).
            let alone = self
                .procs
                .iter()
                .filter(|q| q.alive && q.env == pr.env)
                .count()
                == 1;
            if self.steps.is_multiple_of(16) && !self.envs[pr.env].1 && alone {
                let aside: BTreeSet<String> = pr
                    .jobs
                    .values()
                    .filter_map(|(_, k)| k.as_ref().map(|k| spill::file_name(k)))
                    .collect();
                let held: BTreeSet<String> = batches
                    .iter()
                    .filter(|(_, v)| v.on_disk)
                    .filter_map(|(id, _)| {
                        pr.store.get(*id).map(|h| spill::file_name(&h.object.key))
                    })
                    .collect();
                let nobody = disk.find_name(|name| {
                    let left = pr.unreadable.contains(name) || pr.orphans.contains(name);
                    spill::key_of(name).is_some()
                        && !held.contains(name)
                        && !aside.contains(name)
                        && !left
                });
                if let Some(name) = nobody {
                    return Err(format!("p{i}: {name} is on disk and nobody holds it"));
                }
            }
        }
        Ok(())
    }

    /// At the end: every record is in S3, or some process said why it is not.
    fn check_end(&self) -> Result<(), String> {
        if let Some(v) = self.s3.violations.first() {
            return Err(v.clone());
        }
        for (r, reasons) in &self.records {
            if !self.s3.record_keys.contains_key(r) && reasons.is_empty() {
                return Err(format!("record r{r} is lost and nobody counted it"));
            }
        }
        Ok(())
    }

    /// What the run came to, for the report: records, PUTs, and records not in S3 by the first
    /// reason a process gave.
    pub fn summary(&self) -> (u64, u64, BTreeMap<&'static str, u64>) {
        let mut lost = BTreeMap::new();
        for (r, reasons) in &self.records {
            if !self.s3.record_keys.contains_key(r) {
                *lost
                    .entry(reasons.first().copied().unwrap_or("?"))
                    .or_default() += 1;
            }
        }
        (self.records.len() as u64, self.s3.puts, lost)
    }

    pub fn simulated(&self) -> Duration {
        self.now
    }
}
