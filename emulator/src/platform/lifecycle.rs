//! The lifecycle driver: Init, Invoke, freeze and thaw, Shutdown and resets (spec §1.5, §1.6, §4).
//!
//! Classic invoke N: thaw; held records and INVOKE(N) released in an order drawn from the seed;
//! `platform.start`, the function's lines spread over its duration, `platform.runtimeDone` (and
//! `platform.end` on the Logs API); wait for every INVOKE-subscribed extension's `next`, bounded by
//! the deadline; only then `platform.report`; then freeze (delivery held, SIGSTOP).

use super::state::{ExitInfo, Fatal, Proc, Shared, lock};
use crate::clock::{epoch_ms, ms};
use crate::process::{self, list_extensions, signal_group};
use crate::records::{Event, FunctionLine, ReportMetrics};
use crate::rng::SeededRng;
use bytes::Bytes;
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
    rng: SeededRng,
    seq: u64,
    pub needs_init: bool,
    /// The next report carries `initDurationMs` (first invoke after an init).
    init_duration: Option<Duration>,
    /// The next report carries `restoreDurationMs` (first invoke after a SnapStart restore).
    restore_duration: Option<Duration>,
    frozen: bool,
    pub invokes: Vec<InvokeRecord>,
    pub shutdowns: Vec<ShutdownRecord>,
    pub init_failures: Vec<InitFailure>,
    /// Every function line the simulated function wrote, in order.
    pub function_lines: Vec<String>,
}

impl Lifecycle {
    pub fn new(shared: Arc<Shared>, base_env: Vec<(String, String)>) -> Self {
        let seed = shared.settings.seed;
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
        }
    }

    fn generation(&self) -> u32 {
        lock(&self.shared.state).generation
    }

    /// Runs the Init phase: start every extension, wait for each to register, "start the runtime",
    /// wait for every registered extension's first `next`, close subscriptions, then freeze.
    pub async fn init(&mut self, phase: &'static str) -> Result<(), InitFailure> {
        let result = self.try_init(phase).await;
        match &result {
            Ok(()) => {
                self.needs_init = false;
                self.freeze().await;
            }
            Err(f) => {
                self.init_failures.push(f.clone());
                self.end_generation("failure", 0).await;
                self.needs_init = true;
            }
        }
        result
    }

    async fn try_init(&mut self, phase: &'static str) -> Result<(), InitFailure> {
        let shared = self.shared.clone();
        let s = &shared.settings;
        let started = Instant::now();
        let deadline = started + s.init_timeout;
        let found = list_extensions(&s.extensions_dir).map_err(|e| InitFailure {
            error_type: "Extension.LaunchError".into(),
            extension: None,
            extension_error_type: None,
            message: Some(format!(
                "cannot read the extensions directory {}: {e}",
                s.extensions_dir.display()
            )),
        })?;
        let generation = {
            let mut st = lock(&shared.state);
            st.generation += 1;
            st.registration_open = true;
            st.subscriptions_open = true;
            st.shutting_down = false;
            st.fatal.clear();
            st.launched = found
                .iter()
                .map(|(n, _)| n.clone())
                .chain(s.attached.iter().cloned())
                .collect();
            st.generation
        };
        shared.bus.begin_init();
        shared.bus.emit(Event::InitStart {
            initialization_type: s.initialization_type().into(),
            phase,
            function_name: s.function_name.clone(),
            function_version: s.function_version.clone(),
        });
        let mut env = self.base_env.clone();
        env.extend(s.env.iter().cloned());
        for (name, path) in &found {
            self.launch(generation, name, path, &env)?;
        }

        let names = lock(&shared.state).launched.clone();
        let registered = shared
            .wait_until(Some(deadline), |st| {
                if let Some(f) = st.fatal.first() {
                    return Some(Err(f.clone()));
                }
                let all = names.iter().all(|n| {
                    st.exts
                        .iter()
                        .any(|e| e.generation == generation && &e.name == n)
                });
                all.then_some(Ok(()))
            })
            .await;
        match registered {
            Some(Ok(())) => {}
            Some(Err(f)) => return Err(f.into()),
            None => {
                let st = lock(&shared.state);
                let missing: Vec<_> = names
                    .iter()
                    .filter(|n| {
                        !st.exts
                            .iter()
                            .any(|e| e.generation == generation && &e.name == *n)
                    })
                    .cloned()
                    .collect();
                return Err(InitFailure {
                    error_type: "Sandbox.Timeout".into(),
                    extension: missing.first().cloned(),
                    extension_error_type: None,
                    message: Some(format!(
                        "init timed out: not registered: {}",
                        missing.join(", ")
                    )),
                });
            }
        }
        // Every launched extension registered: the runtime starts, registration closes.
        lock(&shared.state).registration_open = false;
        shared.bus.emit(Event::InitRuntimeDone {
            initialization_type: s.initialization_type().into(),
            phase,
            status: "success",
        });

        let ready = shared
            .until_waiting(deadline, |e| e.generation == generation)
            .await;
        match ready {
            Some(Ok(())) => {}
            Some(Err(f)) => return Err(f.into()),
            None => {
                return Err(InitFailure {
                    error_type: "Sandbox.Timeout".into(),
                    extension: None,
                    extension_error_type: None,
                    message: Some(
                        "init timed out waiting for the extensions' first event/next".into(),
                    ),
                });
            }
        }
        let exts: Vec<(String, Vec<String>)> = {
            let mut st = lock(&shared.state);
            st.subscriptions_open = false;
            st.exts
                .iter()
                .filter(|e| e.generation == generation)
                .map(|e| {
                    let mut ev = Vec::new();
                    if e.invoke {
                        ev.push("INVOKE".to_string());
                    }
                    if e.shutdown {
                        ev.push("SHUTDOWN".to_string());
                    }
                    (e.name.clone(), ev)
                })
                .collect()
        };
        shared.bus.close_replay();
        for (name, events) in exts {
            shared.bus.emit(Event::ExtensionState {
                name,
                state: "Ready",
                events,
            });
        }
        let took = started.elapsed();
        shared.bus.emit(Event::InitReport {
            initialization_type: s.initialization_type().into(),
            phase,
            duration_ms: ms(took),
        });
        self.init_duration = Some(took);
        Ok(())
    }

    fn launch(
        &self,
        generation: u32,
        name: &str,
        path: &std::path::Path,
        env: &[(String, String)],
    ) -> Result<(), InitFailure> {
        let shared = self.shared.clone();
        let spawned = process::spawn(path, env).map_err(|e| InitFailure {
            error_type: "Extension.LaunchError".into(),
            extension: Some(name.to_string()),
            extension_error_type: None,
            message: Some(format!("cannot start {}: {e}", path.display())),
        })?;
        let pid = spawned.pid;
        lock(&shared.state).procs.push(Proc {
            name: name.to_string(),
            pid,
            generation,
            spawned_at: Instant::now(),
            first_next_at: None,
            exit: None,
            shutdown_at: None,
            killed_at_deadline: false,
            crashed: false,
            post_runtime: Vec::new(),
            output: Vec::new(),
            peak_rss_kb: None,
        });
        // Peak RSS by sampling VmHWM: wait4's ru_maxrss would count this (large) process's memory,
        // which the child shared between posix_spawn and exec.
        let sampler = shared.clone();
        tokio::spawn(async move {
            loop {
                let hwm = process::hwm_kb(pid);
                let alive = {
                    let mut st = lock(&sampler.state);
                    match st.procs.iter_mut().find(|p| p.pid == pid) {
                        Some(p) if p.exit.is_none() => {
                            if let Some(kb) = hwm {
                                p.peak_rss_kb = Some(p.peak_rss_kb.map_or(kb, |k| k.max(kb)));
                            }
                            true
                        }
                        _ => false,
                    }
                };
                if !alive {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let echo = shared.settings.echo_extension_output;
        let mut streams_ended = Vec::new();
        for stream in [
            Box::new(spawned.stdout) as Box<dyn std::io::Read + Send>,
            Box::new(spawned.stderr),
        ] {
            let shared = shared.clone();
            let name = name.to_string();
            streams_ended.push(process::read_lines(stream, move |line| {
                if echo {
                    eprintln!("[{name}] {line}");
                }
                if let Some(p) = lock(&shared.state).procs.iter_mut().find(|p| p.pid == pid) {
                    p.output.push(line.clone());
                }
                shared.bus.emit(Event::ExtensionLog { line });
            }));
        }
        let name = name.to_string();
        process::watch_exit(pid, streams_ended, move |exit: ExitInfo| {
            {
                let mut st = lock(&shared.state);
                let crash = st.generation == generation && !st.shutting_down;
                if let Some(p) = st.procs.iter_mut().find(|p| p.pid == pid) {
                    p.exit = Some(exit.clone());
                    p.crashed = crash;
                }
                // Any exit before SHUTDOWN, even with code 0, is Extension.Crash (spec §1.6).
                if crash {
                    st.fail(Fatal {
                        extension: name.clone(),
                        error_type: "Extension.Crash".into(),
                        extension_error_type: None,
                        message: Some(match (exit.code, exit.signal) {
                            (Some(c), _) => format!("exited with code {c} before SHUTDOWN"),
                            (_, Some(s)) => format!("killed by signal {s} before SHUTDOWN"),
                            _ => "exited before SHUTDOWN".into(),
                        }),
                    });
                }
            }
            shared.notify();
        });
        Ok(())
    }

    fn live_pids(&self) -> Vec<i32> {
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

    fn thaw_processes(&mut self) {
        for pid in self.live_pids() {
            signal_group(pid, libc::SIGCONT);
        }
        self.frozen = false;
    }

    /// Hands `event` to the extensions `filter` selects: to a pending `next`, or queued for the next one.
    fn release(&self, event: &Bytes, filter: impl Fn(&super::state::Ext) -> bool) {
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

    fn next_request(&mut self) -> (u64, String) {
        self.seq += 1;
        (self.seq, uuid::Uuid::new_v4().to_string())
    }

    fn line(
        &mut self,
        seq: u64,
        k: usize,
        bytes: usize,
        request_id: Option<&str>,
        json: bool,
    ) -> Event {
        let mut message = format!("invoke {seq:06} line {k:04} ");
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

    /// One classic invocation. Re-initialises first when a reset (or a crash while frozen) asks for it.
    pub async fn invoke(&mut self, script: InvokeScript) -> InvokeRecord {
        let shared = self.shared.clone();
        let s = &shared.settings;
        if !self.needs_init && !lock(&shared.state).fatal.is_empty() {
            // An extension died while the environment was idle: the next invoke finds it reset.
            self.end_generation("failure", 0).await;
            self.needs_init = true;
        }
        let (seq, request_id) = self.next_request();
        let released_at = Instant::now();
        if self.needs_init
            && let Err(f) = self.init("invoke").await
        {
            let rec = InvokeRecord {
                seq,
                request_id,
                status: InvokeStatus::InitFailed,
                error_type: Some(f.error_type),
                held_records_first: None,
                post_runtime_ms: None,
                released_ms: shared.since_start_ms(released_at),
                runtime_done_ms: None,
            };
            self.invokes.push(rec.clone());
            return rec;
        }
        let generation = self.generation();
        let start = Instant::now();
        let deadline = start + s.invoke_timeout;
        let event = Bytes::from(
            json!({
                "eventType": "INVOKE",
                "deadlineMs": epoch_ms(SystemTime::now() + s.invoke_timeout),
                "requestId": request_id,
                "invokedFunctionArn": s.function_arn(),
                "tracing": {"type": "X-Amzn-Trace-Id", "value": format!("Root=1-{:08x}-{};Parent={};Sampled=1",
                    epoch_ms(SystemTime::now()) / 1000, &request_id.replace('-', "")[..24], &request_id.replace('-', "")[..16])},
            })
            .to_string(),
        );
        let was_frozen = self.frozen;
        self.thaw_processes();
        let held_first = if was_frozen {
            Some(self.rng.coin())
        } else {
            None
        };
        if held_first == Some(true) {
            shared.bus.hold(false);
            shared.bus.wait_drained(Duration::from_secs(1)).await;
            self.release(&event, |e| e.invoke);
        } else {
            self.release(&event, |e| e.invoke);
            shared.bus.hold(false);
        }
        let released_ms = shared.since_start_ms(start);

        shared.bus.emit(Event::Start {
            request_id: request_id.clone(),
            version: s.function_version.clone(),
        });
        let lines: Vec<Event> = (1..=script.lines)
            .map(|k| {
                self.line(
                    seq,
                    k,
                    script.line_bytes,
                    Some(&request_id),
                    s.json_log_format,
                )
            })
            .collect();
        run_function(&shared, start, script.duration, lines).await;
        let runtime_done = Instant::now();
        let runtime_ms = ms(runtime_done - start);
        shared.bus.emit(Event::RuntimeDone {
            request_id: request_id.clone(),
            status: "success",
            duration_ms: runtime_ms,
            produced_bytes: 0,
        });
        shared.bus.emit(Event::End {
            request_id: request_id.clone(),
        });

        let done = shared
            .until_waiting(deadline, |e| {
                e.generation == generation && e.invoke && !e.errored
            })
            .await;
        let mut rec = InvokeRecord {
            seq,
            request_id: request_id.clone(),
            status: InvokeStatus::Success,
            error_type: None,
            held_records_first: held_first,
            post_runtime_ms: None,
            released_ms,
            runtime_done_ms: Some(shared.since_start_ms(runtime_done)),
        };
        let (status, error_type, end) = match done {
            Some(Ok(())) => {
                let last = self.record_post_runtime(generation, runtime_done);
                rec.post_runtime_ms = Some(ms(last.saturating_duration_since(runtime_done)));
                ("success", None, last.max(runtime_done))
            }
            Some(Err(f)) => {
                rec.status = InvokeStatus::Error;
                ("error", Some(f.error_type), Instant::now())
            }
            None => {
                rec.status = InvokeStatus::Timeout;
                (
                    "timeout",
                    Some("Sandbox.Timeout".to_string()),
                    Instant::now(),
                )
            }
        };
        rec.error_type = error_type.clone();
        let duration = end - start;
        let metrics = ReportMetrics {
            duration_ms: ms(duration),
            billed_duration_ms: duration.as_millis() as u64 + 1,
            memory_size_mb: s.memory_mb,
            max_memory_used_mb: self.memory_used_mb(),
            init_duration_ms: self.init_duration.take().map(ms),
            restore_duration_ms: self.restore_duration.take().map(ms),
            managed_instances: false,
        };
        // Only now, after every extension's `next`, is the report produced (spec §4.2).
        shared.bus.emit(Event::Report {
            request_id,
            status,
            error_type,
            metrics,
        });
        match rec.status {
            InvokeStatus::Success => self.freeze().await,
            InvokeStatus::Timeout => {
                self.end_generation("timeout", 0).await;
                self.needs_init = true;
            }
            _ => {
                self.end_generation("failure", 0).await;
                self.needs_init = true;
            }
        }
        self.invokes.push(rec.clone());
        rec
    }

    /// SnapStart: restores the (frozen) environment from its snapshot, taken at the end of init.
    /// The extensions resume where they were (the RIE releases only the runtime: no event for
    /// them); `platform.restoreStart`, `restoreRuntimeDone` and `restoreReport` are emitted and
    /// delivered after the thaw with everything else held. The next report carries
    /// `restoreDurationMs` and no `initDurationMs`.
    pub async fn restore(&mut self) {
        let shared = self.shared.clone();
        let s = &shared.settings;
        let started = Instant::now();
        shared.bus.emit(Event::RestoreStart {
            function_name: s.function_name.clone(),
            function_version: s.function_version.clone(),
        });
        shared.bus.emit(Event::RestoreRuntimeDone);
        let took = started.elapsed();
        shared.bus.emit(Event::RestoreReport {
            duration_ms: ms(took),
        });
        self.init_duration = None;
        self.restore_duration = Some(took);
    }

    /// Notes each INVOKE extension's post-runtime duration; returns the last `next`.
    fn record_post_runtime(&self, generation: u32, runtime_done: Instant) -> Instant {
        let mut st = lock(&self.shared.state);
        let nexts: Vec<(String, Instant)> = st
            .exts
            .iter()
            .filter(|e| e.generation == generation && e.invoke)
            .filter_map(|e| e.last_next_at.map(|t| (e.name.clone(), t)))
            .collect();
        let mut last = runtime_done;
        for (name, t) in nexts {
            last = last.max(t);
            if let Some(p) = st
                .procs
                .iter_mut()
                .find(|p| p.generation == generation && p.name == name)
            {
                p.post_runtime
                    .push(t.saturating_duration_since(runtime_done));
            }
        }
        last
    }

    fn memory_used_mb(&self) -> u64 {
        // A notional 30 MB runtime plus what the extensions hold right now.
        let ext_kb: u64 = self
            .live_pids()
            .into_iter()
            .filter_map(process::rss_kb)
            .sum();
        30 + ext_kb / 1024
    }

    /// Managed Instances: `count` invocations, at most `concurrency` at once; no INVOKE event, no
    /// `runtimeDone`, no freeze; records of concurrent invocations interleave.
    pub async fn invoke_concurrently(
        &mut self,
        count: u64,
        concurrency: usize,
        script: InvokeScript,
    ) -> Vec<InvokeRecord> {
        use futures::StreamExt;
        if self.needs_init && self.init("init").await.is_err() {
            return Vec::new();
        }
        let json = self.shared.settings.json_log_format;
        let mut plans = Vec::new();
        for _ in 0..count {
            let (seq, request_id) = self.next_request();
            let lines: Vec<Event> = (1..=script.lines)
                .map(|k| self.line(seq, k, script.line_bytes, Some(&request_id), json))
                .collect();
            plans.push((seq, request_id, lines));
        }
        let shared = self.shared.clone();
        let records: Vec<InvokeRecord> = futures::stream::iter(plans)
            .map(|(seq, request_id, lines)| {
                let shared = shared.clone();
                async move {
                    let start = Instant::now();
                    let bus = &shared.bus;
                    bus.emit(Event::Start {
                        request_id: request_id.clone(),
                        version: shared.settings.function_version.clone(),
                    });
                    run_function(&shared, start, script.duration, lines).await;
                    let metrics = ReportMetrics {
                        duration_ms: ms(start.elapsed()),
                        billed_duration_ms: 0,
                        memory_size_mb: 0,
                        max_memory_used_mb: 0,
                        init_duration_ms: None,
                        restore_duration_ms: None,
                        managed_instances: true,
                    };
                    bus.emit(Event::Report {
                        request_id: request_id.clone(),
                        status: "success",
                        error_type: None,
                        metrics,
                    });
                    InvokeRecord {
                        seq,
                        request_id,
                        status: InvokeStatus::Success,
                        error_type: None,
                        held_records_first: None,
                        post_runtime_ms: None,
                        released_ms: shared.since_start_ms(start),
                        runtime_done_ms: None,
                    }
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        self.invokes.extend(records.iter().cloned());
        records
    }

    /// The final SHUTDOWN (reason `spindown`), with `late_lines` function lines Lambda still holds.
    pub async fn shutdown(&mut self, late_lines: usize) {
        if !self.needs_init {
            self.end_generation("spindown", late_lines).await;
            self.needs_init = true;
        }
    }

    /// Ends the current generation: SHUTDOWN with `reason` to SHUTDOWN-subscribed extensions (SIGKILL
    /// for the others), the held records after it, SIGKILL at `deadlineMs`.
    pub async fn end_generation(&mut self, reason: &str, late_lines: usize) {
        let shared = self.shared.clone();
        let s = &shared.settings;
        let generation = self.generation();
        self.thaw_processes();
        let json_lines = s.json_log_format;
        for k in 1..=late_lines {
            let mut message = format!("late line {k:04} ");
            while message.len() < 200 {
                message.push('x');
            }
            self.function_lines.push(message.clone());
            shared.bus.emit(Event::Function(FunctionLine {
                request_id: None,
                message,
                json: json_lines,
            }));
        }
        let now = Instant::now();
        let deadline = now + s.shutdown_budget;
        let deadline_ms = epoch_ms(SystemTime::now() + s.shutdown_budget);
        let reason_text = if s.upper_case_shutdown_reason {
            reason.to_uppercase()
        } else {
            reason.to_string()
        };
        let event = Bytes::from(json!({"eventType": "SHUTDOWN", "shutdownReason": reason_text, "deadlineMs": deadline_ms}).to_string());
        let kill_now: Vec<i32> = {
            let mut st = lock(&shared.state);
            st.shutting_down = true;
            st.registration_open = false;
            st.subscriptions_open = false;
            // Spared until the deadline: SHUTDOWN takers, and extensions that reported an error
            // (they cannot call the API any more, and are expected to exit by themselves).
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
        };
        shared.notify();
        // Extensions not subscribed to SHUTDOWN are killed at once (spec §1.5).
        for pid in kill_now {
            signal_group(pid, libc::SIGKILL);
        }
        self.release(&event, |e| e.external && e.shutdown);
        if s.sigterm_on_shutdown {
            for pid in self.live_pids() {
                signal_group(pid, libc::SIGTERM);
            }
        }
        // What Lambda still held is delivered after SHUTDOWN.
        shared.bus.hold(false);
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
            {
                let mut st = lock(&shared.state);
                for p in st
                    .procs
                    .iter_mut()
                    .filter(|p| p.generation == generation && p.exit.is_none())
                {
                    p.killed_at_deadline = true;
                    signal_group(p.pid, libc::SIGKILL);
                }
            }
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

/// The simulated function: line k of n is written at `start + duration × k / (n + 1)`, and the
/// function returns at `start + duration`. Lines due in the same instant go out together, so a
/// short function writing many lines bursts as a real one does.
async fn run_function(shared: &Shared, start: Instant, duration: Duration, lines: Vec<Event>) {
    let n = lines.len() as u32;
    for (k, line) in (1..).zip(lines) {
        tokio::time::sleep_until((start + duration * k / (n + 1)).into()).await;
        shared.bus.emit(line);
    }
    tokio::time::sleep_until((start + duration).into()).await;
}
