//! LifecycleActor: polls `event/next` for ever. An INVOKE is passed to BatchActor and `next` is
//! called again at once: uploads run while the environment runs and may be in flight when it
//! freezes (the ship policy makes that safe), so S3's latency, throttling or refusals never become
//! the function's billed duration. Only when asked does `next` wait for uploads: with
//! `SHIP_AT=end-of-invoke` (bounded by the invoke's deadline) or `NEXT_WAIT_MS` — and even then a
//! failing S3 ends the wait at once. SHUTDOWN (or SIGTERM/SIGINT) runs the shutdown sequence once
//! (wait for late records, seal and ship everything, stop the listener, summarise), and the
//! process exits 0 before the deadline.

use super::messages::{
    AwaitLateRecords, AwaitRuntimeDone, Flush, InvokeStarted, Pending, Shutdown,
};
use crate::config::LifecycleSettings;
use crate::lambda::client::ExtensionsClient;
use crate::lambda::events::NextEvent;
use crate::metrics::Emf;
use crate::stats::Counters;
use crate::summary::Summary;
use actix::prelude::*;
use actix_web::dev::ServerHandle;
use slog::{Logger, error, info, warn};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kept free before Lambda's deadline: exiting and the last log line take time too.
const DEADLINE_MARGIN: Duration = Duration::from_millis(150);
/// Kept for the final ship when waiting for late records at shutdown.
const SHIP_RESERVE: Duration = Duration::from_millis(500);
/// A pause without deliveries that says Lambda has sent what it held.
const QUIET: Duration = Duration::from_millis(50);
/// The time SIGTERM/SIGINT leave us: Lambda's whole shutdown budget is 2 s.
const SIGNAL_BUDGET: Duration = Duration::from_millis(1000);
/// Consecutive failed `next` calls before giving up with `exit/error`.
const NEXT_ATTEMPTS: u32 = 3;

/// Sent by LifecycleActor to itself: call `event/next`.
#[derive(Message)]
#[rtype(result = "()")]
struct PollNext;

/// Sent by the signal task to LifecycleActor on SIGTERM or SIGINT.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Terminate;

/// The neighbours LifecycleActor talks to, each as the narrowest handle (tests put probes there).
pub struct Neighbours {
    pub invoke: Recipient<InvokeStarted>,
    /// Asked after INVOKE with `SHIP_AT=end-of-invoke`; `None` with `next-invoke`.
    pub runtime_done: Option<Recipient<AwaitRuntimeDone>>,
    pub late_records: Recipient<AwaitLateRecords>,
    pub shutdown: Recipient<Shutdown>,
    pub flush: Recipient<Flush>,
    /// The listener, stopped at the end of the shutdown sequence.
    pub listener: Option<ServerHandle>,
}

pub struct LifecycleActor {
    client: ExtensionsClient,
    id: String,
    n: Neighbours,
    counters: Arc<Counters>,
    log: Logger,
    /// Managed Instances: no INVOKE names the last request; SHUTDOWN waits for every open one.
    managed_instances: bool,
    last_request: Option<String>,
    next_failures: u32,
    shutting_down: bool,
    /// Also the summary as an EMF line.
    emf: Option<Emf>,
    /// How long `next` may wait for uploads after an INVOKE (`None`: not at all).
    next_wait: Option<Duration>,
    /// Told the exit code once the summary is written: `main` exits then, without waiting for
    /// work left on the blocking pool (the summary has counted it), so the exit is before the
    /// deadline.
    ended: Option<tokio::sync::oneshot::Sender<i32>>,
}

impl LifecycleActor {
    pub fn new(
        client: ExtensionsClient,
        id: String,
        neighbours: Neighbours,
        settings: LifecycleSettings,
        counters: Arc<Counters>,
        log: Logger,
    ) -> Self {
        Self {
            client,
            id,
            n: neighbours,
            managed_instances: settings.managed_instances,
            counters,
            log,
            last_request: None,
            next_failures: 0,
            shutting_down: false,
            emf: None,
            next_wait: settings.next_wait,
            ended: None,
        }
    }

    /// The shutdown sequence: wait for late records, seal and ship everything, stop the listener,
    /// summarise, exit.
    fn shut_down(
        &mut self,
        deadline: Instant,
        reason: String,
        exit_code: i32,
        ctx: &mut Context<Self>,
    ) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        let late = self.n.late_records.clone();
        let shutdown = self.n.shutdown.clone();
        let listener = self.n.listener.clone();
        let request_id = self.last_request.clone();
        let all_open = self.managed_instances;
        let wait_until = deadline
            .checked_sub(SHIP_RESERVE)
            .unwrap_or(deadline)
            .max(Instant::now());
        let started = Instant::now();
        let sequence = async move {
            let _ = late
                .send(AwaitLateRecords {
                    request_id,
                    all_open,
                    quiet: QUIET,
                    until: wait_until,
                })
                .await;
            let pending = shutdown
                .send(Shutdown { deadline })
                .await
                .unwrap_or_default();
            if let Some(l) = listener {
                l.stop(false).await;
            }
            pending
        };
        ctx.wait(
            sequence
                .into_actor(self)
                .map(move |pending: Pending, act, _| {
                    act.summarise(pending, &reason, started);
                    if let Some(ended) = act.ended.take() {
                        let _ = ended.send(exit_code);
                    }
                    System::current().stop_with_code(exit_code);
                }),
        );
    }

    /// Logs where every record went (and its EMF line), once the shipper has answered.
    fn summarise(&self, pending: Pending, reason: &str, started: Instant) {
        let c = &self.counters;
        let get = |counter: &std::sync::atomic::AtomicU64| Counters::get(counter);
        // A spindown discards the environment and its /tmp.
        let s = Summary::of(c, reason.eq_ignore_ascii_case("spindown"));
        info!(self.log, "shutdown summary";
            "reason" => reason,
            "received" => s.received, "recovered" => s.recovered, "shipped" => s.shipped, "objects" => s.objects,
            "spilled" => s.spilled, "kept_on_disk" => s.kept_on_disk, "rejected" => s.rejected,
            "unreadable" => s.unreadable, "refused" => s.refused, "lost" => s.lost(),
            "lost_in_memory" => s.lost_in_memory, "lost_refused" => s.refused,
            "lost_with_environment" => s.lost_with_environment,
            "refused_after_shutdown" => get(&c.late_refused), "failed_attempts" => get(&c.failed_attempts),
            "put_requests" => s.put_requests, "shipped_bytes" => s.shipped_bytes, "puts_per_gb" => s.puts_per_gb(),
            "peak_held_bytes" => get(&c.peak_held_bytes),
            "malformed" => get(&c.malformed), "oversized" => get(&c.oversized),
            "lambda_dropped" => get(&c.lambda_dropped), "restores" => get(&c.restores),
            "filtered" => s.filtered, "parquet_fallbacks" => get(&c.format_fallbacks),
            "accounted" => s.accounted(), "ms" => started.elapsed().as_millis() as u64);
        for r in c.rules.iter() {
            info!(self.log, "processing rule";
                "rule" => &r.name, "excluded" => get(&r.excluded),
                "sampled_out" => get(&r.sampled_out), "masked" => get(&r.masked));
        }
        if let Some(emf) = &self.emf {
            emf.print(&s.emf_metrics(c));
            for r in c.rules.iter() {
                emf.print_with(
                    &[("Rule", &r.name)],
                    &[
                        ("RecordsExcluded", get(&r.excluded) as f64, "Count"),
                        ("RecordsSampledOut", get(&r.sampled_out) as f64, "Count"),
                        ("RecordsMasked", get(&r.masked) as f64, "Count"),
                    ],
                );
            }
        }
        if pending.records > 0 {
            error!(self.log, "records could not be shipped before the shutdown deadline";
                "records" => pending.records, "kept_on_disk" => s.kept_on_disk, "lost" => s.lost(),
                "why" => if s.discarded { "the environment is discarded with its /tmp" } else { "on disk for the next process" });
        }
    }
}

impl LifecycleActor {
    /// Tells `ended` the exit code when the shutdown sequence is over.
    pub fn with_ended(mut self, ended: tokio::sync::oneshot::Sender<i32>) -> Self {
        self.ended = Some(ended);
        self
    }

    /// Also emit the shutdown summary as an EMF line.
    pub fn with_emf(mut self, emf: Option<Emf>) -> Self {
        self.emf = emf;
        self
    }
}

impl Actor for LifecycleActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(PollNext);
    }
}

/// `deadlineMs` (epoch milliseconds) as an Instant, less our margin.
fn deadline_from_epoch_ms(ms: i64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let left = Duration::from_millis(ms.saturating_sub(now_ms).max(0) as u64);
    Instant::now() + left.saturating_sub(DEADLINE_MARGIN)
}

impl Handler<PollNext> for LifecycleActor {
    type Result = ();

    fn handle(&mut self, _: PollNext, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        let client = self.client.clone();
        let id = self.id.clone();
        let next = async move { client.next(&id).await };
        ctx.spawn(next.into_actor(self).map(|event, act, ctx| match event {
            // A signal started the shutdown while this call was pending.
            _ if act.shutting_down => {}
            Ok(NextEvent::Invoke { request_id, deadline_ms }) => {
                act.next_failures = 0;
                act.last_request = Some(request_id.clone());
                let invoke = act.n.invoke.clone();
                let runtime_done = act.n.runtime_done.clone();
                let flush = act.n.flush.clone();
                let deadline = deadline_from_epoch_ms(deadline_ms);
                // Waiting for uploads only when asked, never past the invoke's deadline.
                let wait_until = act
                    .next_wait
                    .map(|w| Instant::now().checked_add(w).map_or(deadline, |t| t.min(deadline)));
                let work = async move {
                    let _ = invoke.send(InvokeStarted { request_id: request_id.clone() }).await;
                    if let Some(runtime_done) = runtime_done {
                        let _ = runtime_done.send(AwaitRuntimeDone { request_id, until: deadline }).await;
                    }
                    if let Some(until) = wait_until {
                        let _ = flush.send(Flush { deadline: until, last: false }).await;
                    }
                };
                ctx.wait(work.into_actor(act).map(|_, _, ctx| ctx.notify(PollNext)));
            }
            Ok(NextEvent::Shutdown { shutdown_reason, deadline_ms }) => {
                info!(act.log, "SHUTDOWN received"; "reason" => &shutdown_reason, "deadline_ms" => deadline_ms);
                act.shut_down(deadline_from_epoch_ms(deadline_ms), shutdown_reason, 0, ctx);
            }
            Err(e) => {
                act.next_failures += 1;
                if act.next_failures < NEXT_ATTEMPTS {
                    warn!(act.log, "event/next failed; calling it again"; "error" => e.to_string(), "attempt" => act.next_failures);
                    ctx.run_later(Duration::from_millis(100 * u64::from(act.next_failures)), |_, ctx| ctx.notify(PollNext));
                    return;
                }
                error!(act.log, "event/next keeps failing; reporting exit/error and shutting down"; "error" => e.to_string());
                let client = act.client.clone();
                let id = act.id.clone();
                let message = e.to_string();
                ctx.wait(
                    async move { client.report_error(&id, false, "Extension.NextFailed", &message).await }
                        .into_actor(act)
                        .map(|_, act, ctx| act.shut_down(Instant::now() + SIGNAL_BUDGET, "exit/error".into(), 1, ctx)),
                );
            }
        }));
    }
}

impl Handler<Terminate> for LifecycleActor {
    type Result = ();

    fn handle(&mut self, _: Terminate, ctx: &mut Context<Self>) {
        info!(
            self.log,
            "signal received; shutting down with the time a signal leaves"
        );
        self.shut_down(Instant::now() + SIGNAL_BUDGET, "signal".into(), 0, ctx);
    }
}
