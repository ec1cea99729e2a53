//! The lifecycle driver: Init, Invoke, freeze and thaw, Shutdown and resets (spec §1.5, §1.6, §4).
//!
//! Classic invoke N: thaw; held records and INVOKE(N) released in an order drawn from the seed;
//! `platform.start`, the function's lines spread over its duration, `platform.runtimeDone` (and
//! `platform.end` on the Logs API); wait for every INVOKE-subscribed extension's `next`, bounded by
//! the deadline; only then `platform.report`; then freeze (delivery held, SIGSTOP).

use super::state::{Fatal, Shared, lock};
use crate::process::{self, signal_group};
use crate::records::{Event, FunctionLine};
use crate::rng::SeededRng;
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one invocation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvokeScript {
    pub lines: usize,
    pub line_bytes: usize,
    pub duration: Duration,
}

impl Default for InvokeScript {
    fn default() -> Self {
        Self {
            lines: 5,
            line_bytes: 200,
            duration: Duration::from_millis(20),
        }
    }
}

/// What Lambda and the runtime still produce around SHUTDOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownScript {
    /// Function lines Lambda still holds at SHUTDOWN, delivered after it.
    pub late_lines: usize,
    /// Function lines of the last request the runtime writes after SHUTDOWN was released (after
    /// the last report), spread over `straggler_window`.
    pub stragglers: usize,
    pub straggler_window: Duration,
}

impl Default for ShutdownScript {
    fn default() -> Self {
        Self {
            late_lines: 0,
            stragglers: 0,
            straggler_window: Duration::from_millis(200),
        }
    }
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InvokeStatus {
    Success,
    /// An extension had not called `next` by the deadline: the environment was reset.
    Timeout,
    /// A fatal error (crash, exit/error) failed the invoke: the environment was reset.
    Error,
    /// The (re-)initialisation before this invoke failed; the invoke did not run.
    InitFailed,
}

/// The record of one invocation.
#[derive(Debug, Clone, Serialize)]
pub struct InvokeRecord {
    pub seq: u64,
    pub request_id: String,
    pub status: InvokeStatus,
    pub error_type: Option<String>,
    /// At the thaw, were held records released before the INVOKE event (drawn from the seed)?
    pub held_records_first: Option<bool>,
    /// `runtimeDone` → the last INVOKE-subscribed extension's `next`.
    pub post_runtime_ms: Option<f64>,
    /// Milliseconds since the emulator started: INVOKE released, `runtimeDone` emitted.
    pub released_ms: f64,
    pub runtime_done_ms: Option<f64>,
}

/// Why init failed, as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitFailure {
    /// The platform's error type: `Extension.InitError`, `Extension.Crash`, `Sandbox.Timeout`, `Extension.LaunchError`.
    pub error_type: String,
    pub extension: Option<String>,
    /// The error type the extension posted to `init/error`.
    pub extension_error_type: Option<String>,
    pub message: Option<String>,
}

impl std::fmt::Display for InitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "init failed: {}", self.error_type)?;
        if let Some(e) = &self.extension {
            write!(f, " ({e}")?;
            if let Some(t) = &self.extension_error_type {
                write!(f, ": {t}")?;
            }
            if let Some(m) = &self.message {
                write!(f, ": {m}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

impl From<Fatal> for InitFailure {
    fn from(f: Fatal) -> Self {
        Self {
            error_type: f.error_type,
            extension: Some(f.extension),
            extension_error_type: f.extension_error_type,
            message: f.message,
        }
    }
}

/// A reset or the final shutdown of one environment generation.
#[derive(Debug, Clone, Serialize)]
pub struct ShutdownRecord {
    pub generation: u32,
    pub reason: String,
    /// Epoch milliseconds, as in the event.
    pub deadline_ms: i64,
    /// Milliseconds since the emulator started at which SHUTDOWN was released.
    pub released_ms: f64,
}

pub(crate) struct Lifecycle {
    pub shared: Arc<Shared>,
    /// The variables every extension gets from the platform (runtime API, function, S3 endpoint).
    pub base_env: Vec<(String, String)>,
    pub(super) rng: SeededRng,
    pub(super) seq: u64,
    pub needs_init: bool,
    /// The next report carries `initDurationMs` (first invoke after an init).
    pub(super) init_duration: Option<Duration>,
    /// The next report carries `restoreDurationMs` (first invoke after a SnapStart restore).
    pub(super) restore_duration: Option<Duration>,
    pub(super) frozen: bool,
    pub invokes: Vec<InvokeRecord>,
    pub shutdowns: Vec<ShutdownRecord>,
    pub init_failures: Vec<InitFailure>,
    /// Every function line the simulated function wrote, in order.
    pub function_lines: Vec<String>,
    /// Function lines written so far (the number in each line's marker).
    lines_written: u64,
}

impl Lifecycle {
    pub fn new(shared: Arc<Shared>, base_env: Vec<(String, String)>) -> Self {
        let seed = shared.settings.function.seed;
        Self {
            shared,
            base_env,
            rng: SeededRng::new(seed),
            seq: 0,
            needs_init: true,
            init_duration: None,
            restore_duration: None,
            frozen: false,
            invokes: Vec::new(),
            shutdowns: Vec::new(),
            init_failures: Vec::new(),
            function_lines: Vec::new(),
            lines_written: 0,
        }
    }

    pub(super) fn generation(&self) -> u32 {
        lock(&self.shared.state).generation
    }

    /// Runs the Init phase: start every extension, wait for each to register, "start the runtime",
    /// wait for every registered extension's first `next`, close subscriptions, then freeze.
    pub(super) fn live_pids(&self) -> Vec<i32> {
        let st = lock(&self.shared.state);
        st.procs
            .iter()
            .filter(|p| p.generation == st.generation && p.exit.is_none())
            .map(|p| p.pid)
            .collect()
    }

    /// No pending events: hold delivery and stop every extension process (not on Managed Instances).
    /// Returns once every process is seen stopped (SIGSTOP is asynchronous), or after 200 ms.
    pub async fn freeze(&mut self) {
        if self.shared.settings.managed_instances() {
            return;
        }
        self.shared.bus.hold(true);
        let pids = self.live_pids();
        for pid in &pids {
            signal_group(*pid, libc::SIGSTOP);
        }
        self.frozen = true;
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until
            && pids.iter().any(|p| {
                process::process_state(*p).is_some_and(|s| s != 'T' && s != 'Z' && s != 'X')
            })
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub(super) fn thaw_processes(&mut self) {
        for pid in self.live_pids() {
            signal_group(pid, libc::SIGCONT);
        }
        self.frozen = false;
    }

    /// Hands `event` to the extensions `filter` selects: to a pending `next`, or queued for the next one.
    pub(super) fn release(&self, event: &Bytes, filter: impl Fn(&super::state::Ext) -> bool) {
        {
            let mut st = lock(&self.shared.state);
            let generation = st.generation;
            for ext in st
                .exts
                .iter_mut()
                .filter(|e| e.generation == generation && !e.errored && filter(e))
            {
                match ext.parked.take() {
                    Some(tx) => {
                        if let Err(ev) = tx.send(event.clone()) {
                            ext.queued.push_back(ev);
                        }
                    }
                    None => ext.queued.push_back(event.clone()),
                }
            }
        }
        self.shared.notify();
    }

    pub(super) fn next_request(&mut self) -> (u64, String) {
        self.seq += 1;
        (self.seq, uuid::Uuid::new_v4().to_string())
    }

    /// A function line of the simulated function: `label`, its unique marker
    /// ([`crate::markers::marker`]), the function's next line text, padded with `x` to `bytes`;
    /// recorded in `function_lines`.
    pub(super) fn line(
        &mut self,
        label: &str,
        bytes: usize,
        request_id: Option<&str>,
        json: bool,
    ) -> Event {
        self.lines_written += 1;
        let mut message = format!(
            "{label} {} ",
            crate::markers::marker(&self.shared.run_id, self.lines_written)
        );
        let texts = &self.shared.settings.function.line_texts;
        if !texts.is_empty() {
            let text = &texts[(self.lines_written as usize - 1) % texts.len()];
            if !text.is_empty() {
                // A space after it: the padding must not join its last word.
                message.push_str(text);
                message.push(' ');
            }
        }
        while message.len() < bytes {
            message.push('x');
        }
        self.function_lines.push(message.clone());
        Event::Function(FunctionLine {
            request_id: request_id.map(str::to_string),
            message,
            json,
        })
    }
}
