//! Shutdown and resets (spec §1.5, §1.6): SHUTDOWN with a deadline to SHUTDOWN-subscribed
//! extensions (SIGKILL for the others), what Lambda still holds delivered after it, SIGKILL at
//! `deadlineMs`.

use super::lifecycle::{Lifecycle, ShutdownRecord, ShutdownScript};
use super::state::lock;
use crate::clock::epoch_ms;
use crate::process::signal_group;
use crate::records::Event;
use bytes::Bytes;
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};

impl Lifecycle {
    /// The final SHUTDOWN (reason `spindown`), with what `script` says Lambda still holds and what
    /// the runtime still writes.
    pub async fn shutdown(&mut self, script: &ShutdownScript) {
        if !self.needs_init {
            self.end_generation("spindown", script).await;
            self.needs_init = true;
        }
    }

    /// The lines Lambda still holds at SHUTDOWN, emitted now; the stragglers, returned to be
    /// written over the straggler window.
    fn late_lines(&mut self, script: &ShutdownScript) -> Vec<Event> {
        let json_lines = self.shared.settings.function.json_log_format();
        for k in 1..=script.late_lines {
            let line = self.line(&format!("late line {k:04}"), 200, None, json_lines);
            self.shared.bus.emit(line);
        }
        // A runtime still logging while it exits: lines of the last request, written after its
        // report and after SHUTDOWN (the runtime gets SIGTERM before the extensions get SHUTDOWN,
        // spec §1.5; what it writes meanwhile is delivered like any line).
        let last_request = self.invokes.last().map(|i| i.request_id.clone());
        (1..=script.stragglers)
            .map(|k| {
                self.line(
                    &format!("straggler {k:04}"),
                    200,
                    last_request.as_deref(),
                    json_lines,
                )
            })
            .collect()
    }

    /// Ends the current generation: SHUTDOWN with `reason` to SHUTDOWN-subscribed extensions (SIGKILL
    /// for the others), the held records after it, then the stragglers, SIGKILL at `deadlineMs`.
    pub async fn end_generation(&mut self, reason: &str, script: &ShutdownScript) {
        let shared = self.shared.clone();
        let s = &shared.settings;
        let generation = self.generation();
        self.thaw_processes();
        let stragglers = self.late_lines(script);
        let now = Instant::now();
        let deadline = now + s.function.shutdown_budget();
        let deadline_ms = epoch_ms(SystemTime::now() + s.function.shutdown_budget());
        let reason_text = reason_as_sent(s, reason);
        let event = shutdown_event(&reason_text, deadline_ms);
        let kill_now = close(&mut lock(&shared.state), generation, now);
        shared.notify();
        // Extensions not subscribed to SHUTDOWN are killed at once (spec §1.5).
        for pid in kill_now {
            signal_group(pid, libc::SIGKILL);
        }
        self.release(&event, |e| e.external && e.shutdown);
        if s.function.sigterm {
            for pid in self.live_pids() {
                signal_group(pid, libc::SIGTERM);
            }
        }
        // What Lambda still held is delivered after SHUTDOWN.
        shared.bus.hold(false);
        let wave = {
            let shared = shared.clone();
            let (n, window) = (stragglers.len() as u32, script.straggler_window);
            tokio::spawn(async move {
                for (k, line) in (1..).zip(stragglers) {
                    tokio::time::sleep_until((now + window * k / n.max(1)).into()).await;
                    shared.bus.emit(line);
                }
            })
        };
        let all_exited = |st: &mut super::state::State| {
            st.procs
                .iter()
                .filter(|p| p.generation == generation)
                .all(|p| p.exit.is_some())
                .then_some(())
        };
        if shared
            .wait_until(Some(deadline), all_exited)
            .await
            .is_none()
        {
            kill_at_deadline(&mut lock(&shared.state), generation);
            let _ = shared
                .wait_until(Some(Instant::now() + Duration::from_secs(2)), all_exited)
                .await;
        }
        if !s.attached.is_empty() {
            // An attached extension's exit cannot be seen: let it have what Lambda held, by the deadline.
            shared
                .bus
                .wait_drained(deadline.saturating_duration_since(Instant::now()))
                .await;
        }
        let _ = wave.await;
        shared.bus.end_generation(generation);
        self.frozen = false;
        self.shutdowns.push(ShutdownRecord {
            generation,
            reason: reason_text,
            deadline_ms,
            released_ms: shared.since_start_ms(now),
        });
    }
}

/// SHUTDOWN closes registration and subscriptions; the answer is the processes to kill at once:
/// all but the SHUTDOWN takers and the extensions that reported an error (spared until the
/// deadline: they cannot call the API any more, and are expected to exit by themselves).
fn close(st: &mut super::state::State, generation: u32, now: Instant) -> Vec<i32> {
    st.shutting_down = true;
    st.registration_open = false;
    st.subscriptions_open = false;
    let takers: Vec<String> = st
        .exts
        .iter()
        .filter(|e| e.generation == generation && (e.external && e.shutdown || e.errored))
        .map(|e| e.name.clone())
        .collect();
    let mut kill = Vec::new();
    for p in st
        .procs
        .iter_mut()
        .filter(|p| p.generation == generation && p.exit.is_none())
    {
        p.shutdown_at = Some(now);
        if !takers.contains(&p.name) {
            kill.push(p.pid);
        }
    }
    kill
}

/// The deadline passed: every process of `generation` still running is killed (spec §1.5).
fn kill_at_deadline(st: &mut super::state::State, generation: u32) {
    for p in st
        .procs
        .iter_mut()
        .filter(|p| p.generation == generation && p.exit.is_none())
    {
        p.killed_at_deadline = true;
        signal_group(p.pid, libc::SIGKILL);
    }
}

/// `shutdownReason` in lower case as AWS's code sends it, or upper case as the docs spell it.
fn reason_as_sent(s: &crate::settings::Settings, reason: &str) -> String {
    if s.function.upper_case_reason {
        reason.to_uppercase()
    } else {
        reason.to_string()
    }
}

fn shutdown_event(reason: &str, deadline_ms: i64) -> Bytes {
    Bytes::from(
        json!({"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline_ms})
            .to_string(),
    )
}
