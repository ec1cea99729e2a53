//! The Invoke phase (spec §1.5, §4): classic invocations (INVOKE, the function's records,
//! `runtimeDone`, the extensions' `next`, the report, freeze), a SnapStart restore, and Managed
//! Instances' concurrent invocations.

use super::lifecycle::{InvokeRecord, InvokeScript, InvokeStatus, Lifecycle, ShutdownScript};
use super::state::{Shared, lock};
use crate::clock::{epoch_ms, ms};
use crate::process;
use crate::records::{Event, ReportMetrics};
use bytes::Bytes;
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};

impl Lifecycle {
    /// One classic invocation. Re-initialises first when a reset (or a crash while frozen) asks for it.
    pub async fn invoke(&mut self, script: InvokeScript) -> InvokeRecord {
        let shared = self.shared.clone();
        let s = &shared.settings;
        if !self.needs_init && !lock(&shared.state).fatal.is_empty() {
            // An extension died while the environment was idle: the next invoke finds it reset.
            self.end_generation("failure", &ShutdownScript::default())
                .await;
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
        let deadline = start + s.function.invoke_timeout();
        let event = invoke_event(&shared.settings, &request_id);
        let held_first = self.release_invoke(&event).await;
        let released_ms = shared.since_start_ms(start);

        let runtime_done = self.run_invocation(seq, &request_id, &script, start).await;

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
        self.report(request_id, status, error_type, end - start);
        self.after_invoke(&rec.status).await;
        self.invokes.push(rec.clone());
        rec
    }

    /// Releases INVOKE to the extensions. A thawed environment delivers the records it held
    /// before or after the event, by the seed's coin; the answer says which (`None`: not frozen).
    async fn release_invoke(&mut self, event: &Bytes) -> Option<bool> {
        let shared = self.shared.clone();
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
            self.release(event, |e| e.invoke);
        } else {
            self.release(event, |e| e.invoke);
            shared.bus.hold(false);
        }
        held_first
    }

    /// The function's run: `platform.start`, its lines over `script.duration`, `runtimeDone` and
    /// `platform.end`; the moment the runtime was done.
    async fn run_invocation(
        &mut self,
        seq: u64,
        request_id: &str,
        script: &InvokeScript,
        start: Instant,
    ) -> Instant {
        let shared = self.shared.clone();
        let s = &shared.settings;
        shared.bus.emit(Event::Start {
            request_id: request_id.to_string(),
            version: s.function.version.clone(),
        });
        let lines: Vec<Event> = (1..=script.lines)
            .map(|k| {
                self.line(
                    &format!("invoke {seq:06} line {k:04}"),
                    script.line_bytes,
                    Some(request_id),
                    s.function.json_log_format(),
                )
            })
            .collect();
        run_function(&shared, start, script.duration, lines).await;
        let runtime_done = Instant::now();
        let runtime_ms = ms(runtime_done - start);
        shared.bus.emit(Event::RuntimeDone {
            request_id: request_id.to_string(),
            status: "success",
            duration_ms: runtime_ms,
            produced_bytes: 0,
        });
        shared.bus.emit(Event::End {
            request_id: request_id.to_string(),
        });

        runtime_done
    }

    /// `platform.report`, produced only now, after every extension's `next` (spec §4.2).
    fn report(
        &mut self,
        request_id: String,
        status: &'static str,
        error_type: Option<String>,
        duration: Duration,
    ) {
        let metrics = ReportMetrics {
            duration_ms: ms(duration),
            billed_duration_ms: duration.as_millis() as u64 + 1,
            memory_size_mb: self.shared.settings.function.memory_mb,
            max_memory_used_mb: self.memory_used_mb(),
            init_duration_ms: self.init_duration.take().map(ms),
            restore_duration_ms: self.restore_duration.take().map(ms),
            managed_instances: false,
        };
        self.shared.bus.emit(Event::Report {
            request_id,
            status,
            error_type,
            metrics,
        });
    }

    /// A successful invoke freezes the environment; a timeout or an error resets it.
    async fn after_invoke(&mut self, status: &InvokeStatus) {
        match status {
            InvokeStatus::Success => self.freeze().await,
            InvokeStatus::Timeout => {
                self.end_generation("timeout", &ShutdownScript::default())
                    .await;
                self.needs_init = true;
            }
            _ => {
                self.end_generation("failure", &ShutdownScript::default())
                    .await;
                self.needs_init = true;
            }
        }
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
            function_name: s.function.name.clone(),
            function_version: s.function.version.clone(),
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
        let json = self.shared.settings.function.json_log_format();
        let mut plans = Vec::new();
        for _ in 0..count {
            let (seq, request_id) = self.next_request();
            let lines: Vec<Event> = (1..=script.lines)
                .map(|k| {
                    self.line(
                        &format!("invoke {seq:06} line {k:04}"),
                        script.line_bytes,
                        Some(&request_id),
                        json,
                    )
                })
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
                        version: shared.settings.function.version.clone(),
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

/// The INVOKE event for `request_id`, with `tracing` only when the function is traced (spec §1.3:
/// the RIE omits it otherwise).
fn invoke_event(s: &crate::settings::Settings, request_id: &str) -> Bytes {
    let mut event = json!({
        "eventType": "INVOKE",
        "deadlineMs": epoch_ms(SystemTime::now() + s.function.invoke_timeout()),
        "requestId": request_id,
        "invokedFunctionArn": s.function_arn(),
    });
    if s.function.tracing {
        let hex = request_id.replace('-', "");
        event["tracing"] = json!({"type": "X-Amzn-Trace-Id", "value": format!("Root=1-{:08x}-{};Parent={};Sampled=1",
            epoch_ms(SystemTime::now()) / 1000, &hex[..24], &hex[..16])});
    }
    Bytes::from(event.to_string())
}
