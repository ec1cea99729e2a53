//! The Init phase (spec §1.5): start every extension, wait for each to register, "start the
//! runtime", wait for every registered extension's first `next`, close subscriptions, freeze.

use super::lifecycle::{InitFailure, Lifecycle, ShutdownScript};
use super::state::{ExitInfo, Fatal, Proc, lock};
use crate::clock::ms;
use crate::process::{self, list_extensions};
use crate::records::Event;
use std::time::{Duration, Instant};

impl InitFailure {
    /// Init ran out of time (`Sandbox.Timeout`), waiting for `extension` if one is to blame.
    fn timeout(extension: Option<String>, message: String) -> Self {
        Self {
            error_type: "Sandbox.Timeout".into(),
            extension,
            extension_error_type: None,
            message: Some(message),
        }
    }
}

impl Lifecycle {
    pub async fn init(&mut self, phase: &'static str) -> Result<(), InitFailure> {
        let result = self.try_init(phase).await;
        match &result {
            Ok(()) => {
                self.needs_init = false;
                self.freeze().await;
            }
            Err(f) => {
                self.init_failures.push(f.clone());
                self.end_generation("failure", &ShutdownScript::default())
                    .await;
                self.needs_init = true;
            }
        }
        result
    }

    async fn try_init(&mut self, phase: &'static str) -> Result<(), InitFailure> {
        let shared = self.shared.clone();
        let s = &shared.settings;
        let started = Instant::now();
        let deadline = started + s.function.init_timeout();
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
            function_name: s.function.name.clone(),
            function_version: s.function.version.clone(),
        });
        let mut env = self.base_env.clone();
        env.extend(s.env.iter().cloned());
        for (name, path) in &found {
            self.launch(generation, name, path, &env)?;
        }

        self.await_registration(generation, deadline).await?;
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
                return Err(InitFailure::timeout(
                    None,
                    "init timed out waiting for the extensions' first event/next".into(),
                ));
            }
        }
        self.announce_ready(generation);
        let took = started.elapsed();
        shared.bus.emit(Event::InitReport {
            initialization_type: s.initialization_type().into(),
            phase,
            duration_ms: ms(took),
        });
        self.init_duration = Some(took);
        Ok(())
    }

    /// Waits until every launched extension has registered: a crash or the deadline fails init.
    async fn await_registration(
        &self,
        generation: u32,
        deadline: Instant,
    ) -> Result<(), InitFailure> {
        let shared = &self.shared;
        let names = lock(&shared.state).launched.clone();
        let is_registered = |st: &super::state::State, n: &String| {
            st.exts
                .iter()
                .any(|e| e.generation == generation && &e.name == n)
        };
        let registered = shared
            .wait_until(Some(deadline), |st| {
                if let Some(f) = st.fatal.first() {
                    return Some(Err(f.clone()));
                }
                names.iter().all(|n| is_registered(st, n)).then_some(Ok(()))
            })
            .await;
        match registered {
            Some(Ok(())) => Ok(()),
            Some(Err(f)) => Err(f.into()),
            None => {
                let st = lock(&shared.state);
                let missing: Vec<_> = names
                    .iter()
                    .filter(|n| !is_registered(&st, n))
                    .cloned()
                    .collect();
                Err(InitFailure::timeout(
                    missing.first().cloned(),
                    format!("init timed out: not registered: {}", missing.join(", ")),
                ))
            }
        }
    }

    /// Subscriptions close, and each extension of this generation is `Ready` for its events.
    fn announce_ready(&self, generation: u32) {
        let shared = &self.shared;
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
        sample_peak_rss(shared.clone(), pid);
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
                shared.bus.emit(Event::ExtensionLog {
                    line,
                    json: shared.settings.function.json_log_format(),
                });
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
}

/// Samples the process's peak RSS (VmHWM) every 20 ms until it exits. Not wait4's ru_maxrss,
/// which would count this (large) process's memory, shared with the child between posix_spawn and
/// exec.
fn sample_peak_rss(shared: std::sync::Arc<super::state::Shared>, pid: i32) {
    tokio::spawn(async move {
        loop {
            let hwm = process::hwm_kb(pid);
            let alive = {
                let mut st = lock(&shared.state);
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
}
