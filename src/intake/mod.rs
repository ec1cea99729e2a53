//! Intake: every decision between a delivery and a sealed batch, as a pure state machine. Events
//! in (records, INVOKE, a tick, the waits LifecycleActor asks for, SHUTDOWN, a batch queued at the
//! shipper, the final flush answered, S3's pace), actions out (ship a sealed batch, answer a
//! waiter, flush, close, tell the shipper of a restore, say something). BatchActor is its shell: it
//! encodes, sends, answers and wakes the core at [`Intake::next_wake`]. Time and clocks are passed
//! in; nothing here polls.
//!
//! It counts records and invocations and checks the thresholds at the ship points — INVOKE, the
//! tick while the environment runs (a long invocation), `platform.runtimeDone` with
//! `SHIP_AT=end-of-invoke` ([`waiters`]), SHUTDOWN ([`closing`]) — and seals batches: key and
//! metadata fixed here ([`seal`]), the body encoded by the shell.
//!
//! It also reads the few records that change what it does: `platform.report` (what SHUTDOWN waits
//! for), `platform.start` (the invocation count on Managed Instances, which have no INVOKE event),
//! `platform.logsDropped` (counted and reported), `platform.restoreStart` (SnapStart, see
//! [`crate::snapshot`]). Requests are told apart by `requestId`, never by "the current invocation":
//! records of one invoke routinely arrive during the next or after SHUTDOWN.

mod closing;
mod seal;
#[cfg(test)]
mod tests;
mod waiters;

pub use crate::sealed::Sealing;

use crate::batch::{Batch, Batcher, SealReason, ShipPoint};
use crate::config::ShipAt;
use crate::lambda::records::{Kind, Record};
use crate::rules::Effect;
use crate::snapshot;
use crate::stats::{Counters, Throttle};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// Restore sightings closer than this are one restore.
const RESTORE_DEBOUNCE: Duration = Duration::from_secs(10);
/// At most one line per this about records Lambda dropped.
const DROPPED_REPORT_PERIOD: Duration = Duration::from_secs(10);

/// What the intake is configured with: its section of the configuration.
pub use crate::config::IntakeSettings as Settings;

/// Both clocks, read together by the shell: a wall clock that jumped away from the monotonic one
/// says the environment was restored from a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn read() -> Self {
        Self {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// What a batch's arrival at the shipper settles (the shell reports it as [`Event::Queued`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// Nothing but the arrival itself (the final round waits for every batch sealed before it).
    Plain,
    /// The batch the awaited runtimeDone made due: the invoke's answer waits for it.
    RuntimeDone,
    /// The snapshot's last batch: the shipper hears of the restore after it.
    Restore,
}

/// The waits LifecycleActor asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiter {
    RuntimeDone,
    LateRecords,
}

#[derive(Debug)]
pub enum Event {
    /// A parsed delivery.
    Records(Vec<Record>),
    /// An INVOKE event.
    Invoke,
    /// The timer while the environment runs: a ship point.
    Tick,
    /// The wake-up asked for by [`Intake::next_wake`]: a wait's or the final round's deadline.
    Wake,
    /// `SHIP_AT=end-of-invoke`: answer once `request_id`'s runtimeDone is in (and a batch then due
    /// is queued), when Lambda reports dropped records, or at `until`.
    AwaitRuntimeDone { request_id: String, until: Instant },
    /// SHUTDOWN: answer once Lambda delivered what it still held (the report of `request_id`, or
    /// with `all_open` of every started request), then `quiet` without a delivery; or at `until`.
    AwaitLateRecords {
        request_id: Option<String>,
        all_open: bool,
        quiet: Duration,
        until: Instant,
    },
    /// Seal everything and have it shipped by `deadline`.
    Shutdown { deadline: Instant },
    /// A batch shipped with this token is queued at the shipper.
    Queued(Token),
    /// The shipper answered the final flush.
    Flushed,
    /// S3's throttling multiplies the thresholds by this (≥ 1).
    Pace(f64),
}

#[derive(Debug, PartialEq)]
pub enum Action {
    /// Encode the batch and queue it at the shipper, in order; report [`Event::Queued`] with the
    /// token once it is there.
    Ship { sealing: Sealing, then: Token },
    /// Answer the waiter.
    Answer(Waiter),
    /// The delivery is refused (the final round is over or too close to its deadline): answer
    /// 503, so Lambda counts its records undelivered. Counted `late_refused`.
    Refuse,
    /// Ask the shipper for its final round; report [`Event::Flushed`].
    Flush { deadline: Instant },
    /// Answer SHUTDOWN with what the last flush left pending: nothing more is taken.
    Close,
    /// Tell the shipper the environment was restored (connections from before are suspect).
    TellRestored,
    /// A line for the log.
    Say(Note),
}

/// What the shell logs.
#[derive(Debug, PartialEq)]
pub enum Note {
    Sealed {
        key: String,
        records: usize,
        bytes: u64,
        reason: SealReason,
    },
    Restored {
        detected_by: &'static str,
        previous: Uuid,
        environment_id: Uuid,
    },
    LambdaDropped {
        since_last_report: u64,
        total: u64,
    },
    Paced(f64),
    NoRuntimeDone {
        request_id: String,
    },
}

pub struct Intake {
    batcher: Batcher,
    settings: Settings,
    /// A v4 UUID made once per process (renewed after a SnapStart restore).
    environment_id: Uuid,
    requests: waiters::Requests,
    /// The request a plain-text line belongs to, for `sample` rules: on demand, the last started.
    last_started: Option<String>,
    waiters: waiters::Waiters,
    /// After SHUTDOWN: records are shipped as they come, until the final flush closes.
    closing: closing::Closing,
    last_ingest: Instant,
    /// Wall-clock time of the last record (identical in every copy of a snapshot).
    last_ingest_wall: DateTime<Utc>,
    /// Batches sealed so far (identical in every copy of a snapshot).
    sealed: u64,
    /// Batches shipped and not yet queued at the shipper.
    in_transit: u64,
    /// The clocks at the last look.
    last_look: (SystemTime, Instant),
    /// One restore is often seen twice (the wall-clock jump, then `platform.restoreStart`): the
    /// second sighting within [`RESTORE_DEBOUNCE`] is the same restore.
    last_restore: Option<Instant>,
    dropped_throttle: Throttle,
    /// Where batch and environment ids come from (random v4 UUIDs; a test may count instead).
    new_id: fn() -> Uuid,
    counters: Arc<Counters>,
    out: Vec<Action>,
}

impl Intake {
    /// `jitter` seeds the batcher's spread of paced windows.
    pub fn new(
        settings: Settings,
        environment_id: Uuid,
        counters: Arc<Counters>,
        jitter: u64,
        now: Now,
    ) -> Self {
        Self {
            batcher: Batcher::new(settings.thresholds, settings.max_object_bytes, now.mono)
                .with_max_delay(settings.max_delay)
                .with_jitter(jitter),
            settings,
            environment_id,
            requests: Default::default(),
            last_started: None,
            waiters: Default::default(),
            closing: Default::default(),
            last_ingest: now.mono,
            last_ingest_wall: now.wall.into(),
            sealed: 0,
            in_transit: 0,
            last_look: (now.wall, now.mono),
            last_restore: None,
            dropped_throttle: Throttle::default(),
            new_id: Uuid::new_v4,
            counters,
            out: Vec::new(),
        }
    }

    /// Ids from `new_id` instead of random ones.
    pub fn with_ids(mut self, new_id: fn() -> Uuid) -> Self {
        self.new_id = new_id;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This environment's id: in every key it seals from now on.
    pub fn environment_id(&self) -> Uuid {
        self.environment_id
    }

    /// Takes one event; returns what to do, in order.
    pub fn handle(&mut self, event: Event, now: Now) -> Vec<Action> {
        match event {
            Event::Records(records) => self.records(records, now),
            Event::Invoke => match self.settings.ship_at {
                ShipAt::NextInvoke => {
                    if let Some(b) = self.batcher.on_invoke(now.mono) {
                        self.ship(b, now, Token::Plain);
                    }
                }
                // Checked when this invoke's runtimeDone is in, so its records are in the batch.
                ShipAt::EndOfInvoke => self.batcher.count_invoke(),
            },
            Event::Tick => self.tick(now),
            Event::Wake => self.wake(now),
            Event::AwaitRuntimeDone { request_id, until } => {
                self.waiters.await_runtime_done(request_id, until);
                self.answer_runtime_done(false, now);
            }
            Event::AwaitLateRecords {
                request_id,
                all_open,
                quiet,
                until,
            } => {
                self.waiters
                    .await_late_records(request_id, all_open, quiet, until);
                self.check_late_records(now.mono);
            }
            Event::Shutdown { deadline } => self.shutdown(deadline, now),
            Event::Queued(token) => self.queued(token, now),
            Event::Flushed => self.flushed(now),
            Event::Pace(factor) => {
                self.batcher.set_pace(factor);
                self.say(Note::Paced(factor));
            }
        }
        std::mem::take(&mut self.out)
    }

    /// When the core wants an [`Event::Wake`]: a waiter's deadline or quiet moment, the final
    /// round's deadline.
    pub fn next_wake(&self) -> Option<Instant> {
        let waits = self.waiters.next_wake(
            &self.requests,
            self.settings.platform_records,
            self.last_ingest,
        );
        [waits, self.closing.next_wake(self.in_transit)]
            .into_iter()
            .flatten()
            .min()
    }

    fn records(&mut self, records: Vec<Record>, now: Now) {
        if self.closing.closed(now.mono) {
            Counters::add(&self.counters.late_refused, records.len() as u64);
            self.out.push(Action::Refuse);
            return;
        }
        self.look_at_clocks(now);
        let mut dropped = false;
        for r in records {
            // Our own EMF lines, back as `extension` records: metrics, not logs to ship.
            if r.kind == Kind::Extension && crate::metrics::is_own_metrics_record(&r.raw) {
                continue;
            }
            Counters::add(&self.counters.received, 1);
            match (r.kind, r.request_id) {
                (Kind::Start, Some(id)) => {
                    if self.settings.managed_instances {
                        self.batcher.count_invoke();
                    }
                    self.last_started = Some(id.clone());
                    self.requests.started(id);
                }
                (Kind::Report, Some(id)) => self.requests.reported(id),
                (Kind::RuntimeDone, Some(id)) if self.settings.ship_at == ShipAt::EndOfInvoke => {
                    self.waiters.runtime_done_seen(id);
                }
                (Kind::LogsDropped { records }, _) => {
                    dropped = true;
                    self.lambda_dropped(records, now.mono);
                }
                // This record and the ones after it belong to the restored environment.
                (Kind::RestoreStart, _) => self.restored("platform.restoreStart", now),
                _ => {}
            }
            // The rules decide after the record's part in the intake's own decisions is taken:
            // a report dropped from the objects is still what SHUTDOWN waits for.
            let Some(raw) = self.processed(r.raw) else {
                Counters::add(&self.counters.filtered, 1);
                continue;
            };
            Counters::add(&self.counters.buffered, raw.len() as u64 + 1);
            if let Some(b) = self.batcher.push(raw, r.kind == Kind::Extension, now.mono) {
                self.ship(b, now, Token::Plain);
            }
        }
        self.last_ingest = now.mono;
        self.last_ingest_wall = now.wall.into();
        if self.closing.started() {
            // After the final seal: what arrives goes out at once, within the final flush.
            self.ship_late(now);
        }
        self.check_late_records(now.mono);
        // A runtimeDone Lambda dropped will never come: do not hold the invoke for it.
        self.answer_runtime_done(dropped, now);
    }

    /// What the processing rules leave of a record, counted per rule; `None`: dropped.
    fn processed(&self, raw: bytes::Bytes) -> Option<bytes::Bytes> {
        let rules = &self.settings.rules;
        if rules.is_empty() {
            return Some(raw);
        }
        // Not a record laid out as Lambda's are (nothing the rules read): shipped as received.
        let Some(text) = std::str::from_utf8(&raw).ok() else {
            return Some(raw);
        };
        let Some((record_type, value)) = crate::lambda::records::layout(text) else {
            return Some(raw);
        };
        let rule_counts = &self.counters.rules;
        let mut tally = |i: usize, effect: Effect| {
            if let Some(c) = rule_counts.get(i) {
                Counters::add(
                    match effect {
                        Effect::Excluded => &c.excluded,
                        Effect::SampledOut => &c.sampled_out,
                        Effect::Masked => &c.masked,
                    },
                    1,
                );
            }
        };
        rules.apply(
            &raw,
            text,
            &record_type,
            value,
            self.last_started.as_deref(),
            &mut tally,
        )
    }

    fn lambda_dropped(&mut self, records: u64, now: Instant) {
        Counters::add(&self.counters.lambda_dropped, records);
        if let Some(n) = self
            .dropped_throttle
            .note(records, now, DROPPED_REPORT_PERIOD)
        {
            self.say(Note::LambdaDropped {
                since_last_report: n,
                total: Counters::get(&self.counters.lambda_dropped),
            });
        }
    }

    fn tick(&mut self, now: Now) {
        self.look_at_clocks(now);
        if !self.closing.started() {
            // On Managed Instances the invocation count is checked here too: no INVOKE event.
            let at = if self.settings.managed_instances {
                ShipPoint::All
            } else {
                ShipPoint::Timer
            };
            if let Some(b) = self.batcher.check(at, now.mono) {
                self.ship(b, now, Token::Plain);
            }
        }
        self.wake(now);
    }

    /// The waits and the final round, at their deadlines.
    fn wake(&mut self, now: Now) {
        if self.waiters.runtime_done_expired(now.mono) {
            let request_id = self.waiters.runtime_done_id().unwrap_or_default();
            self.say(Note::NoRuntimeDone { request_id });
            self.answer_runtime_done(true, now);
        }
        self.check_late_records(now.mono);
        self.final_round(now);
    }

    /// Seals `batch` under a new id and ships it.
    fn ship(&mut self, batch: Batch, now: Now, then: Token) {
        let id = (self.new_id)();
        self.ship_under(batch, now.wall.into(), id, then);
    }

    fn ship_under(&mut self, batch: Batch, fallback_at: DateTime<Utc>, id: Uuid, then: Token) {
        self.sealed += 1;
        self.in_transit += 1;
        let (sealing, note) =
            seal::seal(&self.settings, self.environment_id, batch, fallback_at, id);
        self.say(note);
        self.out.push(Action::Ship { sealing, then });
    }

    fn say(&mut self, note: Note) {
        self.out.push(Action::Say(note));
    }

    /// A wall clock that jumped away from the monotonic one means a restore. Looked at with every
    /// tick and every delivery, so the first record after a restore goes under the new id.
    fn look_at_clocks(&mut self, now: Now) {
        let reading = (now.wall, now.mono);
        if snapshot::wall_clock_jumped(self.last_look, reading) {
            self.restored("wall clock jump", now);
        }
        self.last_look = reading;
    }

    /// SnapStart restore: seal what the snapshot held under a key every copy derives alike, take a
    /// new environment id for what follows, and have the shipper told once that batch is queued
    /// there (its key is every copy's too, and the restore marks every held key so).
    fn restored(&mut self, detected_by: &'static str, now: Now) {
        if self
            .last_restore
            .is_some_and(|t| now.mono.duration_since(t) < RESTORE_DEBOUNCE)
        {
            return;
        }
        self.last_restore = Some(now.mono);
        match self.batcher.seal_all(now.mono) {
            Some(b) => {
                let id = snapshot::batch_id_before_snapshot(self.environment_id, self.sealed);
                self.ship_under(b, self.last_ingest_wall, id, Token::Restore);
            }
            None => self.out.push(Action::TellRestored),
        }
        let previous = std::mem::replace(&mut self.environment_id, (self.new_id)());
        Counters::add(&self.counters.restores, 1);
        self.say(Note::Restored {
            detected_by,
            previous,
            environment_id: self.environment_id,
        });
    }

    fn queued(&mut self, token: Token, now: Now) {
        self.in_transit = self.in_transit.saturating_sub(1);
        match token {
            Token::Plain => {}
            Token::RuntimeDone => self.out.push(Action::Answer(Waiter::RuntimeDone)),
            Token::Restore => self.out.push(Action::TellRestored),
        }
        // Whatever the batch was, the final round may have been waiting for it.
        self.final_round(now);
    }
}
