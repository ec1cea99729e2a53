//! The public face of the emulator: a builder to configure a run, the step-by-step [`Emulator`]
//! (init, invoke, idle, shutdown) with handles on everything it recorded, and [`Script`] for a whole
//! run at once.

use crate::delivery::{Bus, SubscriberStats};
use crate::measurements::{ExtensionReport, RecordTotals, invocation_summary, s3_summary};
use crate::platform::lifecycle::{
    InitFailure, InvokeRecord, InvokeScript, Lifecycle, ShutdownScript,
};
use crate::platform::state::{ApiCall, Shared, State, lock};
use crate::report::Report;
use crate::s3::{Faults, S3Endpoint};
use crate::settings::{Function, Settings};
use crate::verdict::{self, Verdict};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Configures an emulated execution environment.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    settings: Settings,
    buckets: Vec<String>,
    faults: Faults,
    /// An S3 endpoint shared with other environments (a fleet), instead of one of its own.
    shared_s3: Option<S3Endpoint>,
    /// This environment's part of the line markers (random unless set).
    run_id: Option<String>,
}

impl EmulatorBuilder {
    /// An environment that launches every executable of `extensions_dir`.
    pub fn new(extensions_dir: impl Into<PathBuf>) -> Self {
        Self {
            settings: Settings {
                extensions_dir: extensions_dir.into(),
                ..Settings::default()
            },
            buckets: Vec::new(),
            faults: Faults::default(),
            shared_s3: None,
            run_id: None,
        }
    }

    /// Uses `s3` (shared with other environments, as a fleet's are) instead of an endpoint of its
    /// own; its faults are left as they are.
    pub fn shared_s3(mut self, s3: S3Endpoint) -> Self {
        self.shared_s3 = Some(s3);
        self
    }

    /// This environment's part of every line marker (alphanumeric): unique across environments
    /// whose objects one verdict reads.
    pub fn run_id(mut self, id: impl Into<String>) -> Self {
        self.run_id = Some(id.into());
        self
    }

    /// Adds a variable to the extensions' environment (the function's configuration).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.env.push((key.into(), value.into()));
        self
    }

    /// Expects an extension named `name` that the caller runs itself (see [`Settings::attached`]);
    /// connect it to [`Emulator::runtime_api`] with [`Emulator::extension_env`].
    pub fn attach(mut self, name: impl Into<String>) -> Self {
        self.settings.attached.push(name.into());
        self
    }

    /// Creates a bucket on the S3 endpoint before the run.
    pub fn bucket(mut self, name: impl Into<String>) -> Self {
        self.buckets.push(name.into());
        self
    }

    pub fn s3_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The emulated function and platform, as a whole (a scenario's or the command line's).
    pub fn function(mut self, function: Function) -> Self {
        self.settings.function = function;
        self
    }

    /// Changes some of the function's settings: `.with(|f| f.timeout_ms = 500)`.
    pub fn with(mut self, edit: impl FnOnce(&mut Function)) -> Self {
        edit(&mut self.settings.function);
        self
    }

    /// What the run's verdict tolerates and expects.
    pub fn expect(mut self, expect: crate::expect::Expect) -> Self {
        self.settings.expect = expect;
        self
    }

    /// The S3 endpoint's socket and idle timeouts (S3's are about 20 s).
    pub fn s3_timeouts(mut self, t: crate::s3::Timeouts) -> Self {
        self.settings.s3_timeouts = t;
        self
    }

    pub fn echo_extension_output(mut self, on: bool) -> Self {
        self.settings.echo_extension_output = on;
        self
    }

    /// Starts the Runtime API server and the S3 endpoint. Nothing is launched until [`Emulator::init`].
    pub async fn start(self) -> std::io::Result<Emulator> {
        let s = self.settings;
        let started = Instant::now();
        let own_s3 = self.shared_s3.is_none();
        let s3 = match self.shared_s3 {
            Some(s3) => s3,
            None => {
                let s3 = S3Endpoint::start_with(&s.function.region, s.s3_timeouts).await?;
                s3.set_faults(self.faults);
                s3
            }
        };
        for b in &self.buckets {
            s3.create_bucket(b);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let runtime_api = listener.local_addr()?;
        let bus = Arc::new(Bus::new(
            s.function.subscriber_buffer_cap,
            s.function.failed_delivery(),
            s.function.retry_backoff(),
            started,
        ));
        // The environment's own /tmp: it survives resets and re-inits, like Lambda's, and is not
        // shared with other environments or runs on this machine.
        let tmp = tempfile::Builder::new().prefix("lambda-env-").tempdir()?;
        let base_env = lambda_env(&s, runtime_api, &s3, tmp.path());
        // Uploads cut by a freeze need one environment's freezes: not for a shared endpoint.
        if own_s3 {
            s3.set_frozen_signal(bus.frozen());
        }
        let shared = Arc::new(Shared {
            settings: s,
            state: Mutex::new(State::default()),
            changed: Default::default(),
            bus,
            calls: Mutex::new(Vec::new()),
            started,
            run_id: self
                .run_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string()),
        });
        let handler_shared = shared.clone();
        let server = crate::http::serve(listener, move |req| {
            crate::platform::api::handle(handler_shared.clone(), req)
        });
        Ok(Emulator {
            tmp,
            lifecycle: Lifecycle::new(shared, base_env),
            s3,
            runtime_api,
            server,
            buckets: self.buckets,
            started,
        })
    }
}

/// A whole run: init, invocations with gaps, shutdown.
#[derive(Debug, Clone)]
pub struct Script {
    pub invocations: u64,
    pub invoke: InvokeScript,
    /// Frozen time between invocations (and before the final SHUTDOWN).
    pub gap: Duration,
    /// Function lines Lambda still holds at SHUTDOWN, delivered after it.
    pub late_lines: usize,
    /// Function lines the runtime writes after SHUTDOWN (see [`ShutdownScript::stragglers`]).
    pub stragglers: usize,
    /// Managed Instances: invocations running at once.
    pub concurrency: usize,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            invocations: 10,
            invoke: InvokeScript::default(),
            gap: Duration::from_millis(10),
            late_lines: 0,
            stragglers: 0,
            concurrency: 4,
        }
    }
}

/// A running emulated execution environment.
pub struct Emulator {
    /// The environment's /tmp (`TMPDIR` of its extensions), removed with the emulator.
    tmp: tempfile::TempDir,
    lifecycle: Lifecycle,
    s3: S3Endpoint,
    runtime_api: SocketAddr,
    server: JoinHandle<()>,
    buckets: Vec<String>,
    started: Instant,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
        // Never leave extension processes behind a dropped emulator (a failed test, say).
        let st = lock(&self.lifecycle.shared.state);
        for p in st.procs.iter().filter(|p| p.exit.is_none()) {
            crate::process::signal_group(p.pid, libc::SIGKILL);
            crate::process::signal_group(p.pid, libc::SIGCONT);
        }
    }
}

impl Emulator {
    /// The Init phase. On failure the environment is reset and the next invoke initialises again.
    pub async fn init(&mut self) -> Result<(), InitFailure> {
        self.lifecycle.init("init").await
    }

    /// One invocation (classic mode), initialising first when needed.
    pub async fn invoke(&mut self, script: InvokeScript) -> InvokeRecord {
        self.lifecycle.invoke(script).await
    }

    /// Managed Instances: `count` invocations, `concurrency` at a time.
    pub async fn invoke_concurrently(
        &mut self,
        count: u64,
        concurrency: usize,
        script: InvokeScript,
    ) -> Vec<InvokeRecord> {
        self.lifecycle
            .invoke_concurrently(count, concurrency, script)
            .await
    }

    /// SnapStart: restores the frozen environment from its snapshot (see `Lifecycle::restore`).
    /// The wall-clock jump of a real restore cannot be reproduced for a process here.
    pub async fn restore(&mut self) {
        self.lifecycle.restore().await;
    }

    /// Lets time pass; a classic environment stays frozen meanwhile.
    pub async fn idle(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// SHUTDOWN (`spindown`), with `late_lines` function lines held until after it; waits for every
    /// extension to exit or be killed at the deadline.
    pub async fn shutdown(&mut self, late_lines: usize) {
        self.shutdown_with(&ShutdownScript {
            late_lines,
            ..ShutdownScript::default()
        })
        .await;
    }

    /// SHUTDOWN (`spindown`) with held lines and a straggler wave as `script` says.
    pub async fn shutdown_with(&mut self, script: &ShutdownScript) {
        self.lifecycle.shutdown(script).await;
    }

    /// Runs a whole script and returns the report.
    pub async fn run(&mut self, script: &Script) -> Report {
        if self.lifecycle.needs_init && self.init().await.is_err() {
            return self.report();
        }
        if self.lifecycle.shared.settings.managed_instances() {
            self.invoke_concurrently(script.invocations, script.concurrency, script.invoke)
                .await;
        } else {
            for _ in 0..script.invocations {
                self.idle(script.gap).await;
                self.invoke(script.invoke).await;
            }
        }
        self.idle(script.gap).await;
        self.shutdown_with(&ShutdownScript {
            late_lines: script.late_lines,
            stragglers: script.stragglers,
            ..ShutdownScript::default()
        })
        .await;
        self.report()
    }

    /// This environment's part of the line markers.
    pub fn run_id(&self) -> &str {
        &self.lifecycle.shared.run_id
    }

    /// When each function line was written, by marker.
    pub fn line_emitted_at(&self) -> std::collections::HashMap<String, Instant> {
        self.lifecycle.shared.bus.emitted_at()
    }

    /// The environment's /tmp (what its extensions get as `TMPDIR`).
    pub fn tmp_dir(&self) -> &std::path::Path {
        self.tmp.path()
    }

    pub fn s3(&self) -> &S3Endpoint {
        &self.s3
    }

    /// `127.0.0.1:<port>`, what `AWS_LAMBDA_RUNTIME_API` is set to.
    pub fn runtime_api(&self) -> SocketAddr {
        self.runtime_api
    }

    /// The environment a launched extension gets (platform variables plus the caller's), for an
    /// attached one to use.
    pub fn extension_env(&self) -> Vec<(String, String)> {
        let mut env = self.lifecycle.base_env.clone();
        env.extend(self.lifecycle.shared.settings.env.iter().cloned());
        env
    }

    pub fn settings(&self) -> &Settings {
        &self.lifecycle.shared.settings
    }

    /// Every call extensions made to the Runtime API server, in order of answer.
    pub fn api_calls(&self) -> Vec<ApiCall> {
        lock(&self.lifecycle.shared.calls).clone()
    }

    /// Every subscriber so far, with the exact records delivered to it.
    pub fn subscribers(&self) -> Vec<SubscriberStats> {
        self.lifecycle.shared.bus.stats()
    }

    /// Every function line the simulated function wrote (the `message` of each), in order.
    pub fn function_lines(&self) -> &[String] {
        &self.lifecycle.function_lines
    }

    pub fn invokes(&self) -> &[InvokeRecord] {
        &self.lifecycle.invokes
    }

    /// Every line extension `name`'s processes wrote to stdout or stderr, in order.
    pub fn extension_output(&self, name: &str) -> Vec<String> {
        let st = lock(&self.lifecycle.shared.state);
        st.procs
            .iter()
            .filter(|p| p.name == name)
            .flat_map(|p| p.output.iter().cloned())
            .collect()
    }

    /// One invocation during which, halfway through the function, each of `bodies` is POSTed as is
    /// to extension `name`'s listener, as a misbehaving platform would (malformed or oversized
    /// deliveries). Returns the invoke and the status the extension answered to each body.
    pub async fn invoke_with_raw_deliveries(
        &mut self,
        script: InvokeScript,
        name: &str,
        bodies: Vec<bytes::Bytes>,
    ) -> (InvokeRecord, Vec<Option<u16>>) {
        let bus = self.lifecycle.shared.bus.clone();
        let name = name.to_string();
        let half = script.duration / 2;
        let raw = async move {
            tokio::time::sleep(half).await;
            let mut statuses = Vec::new();
            for body in bodies {
                statuses.push(bus.deliver_raw(&name, body).await);
            }
            statuses
        };
        tokio::join!(self.lifecycle.invoke(script), raw)
    }

    /// The live extension processes: (name, pid).
    pub fn extension_pids(&self) -> Vec<(String, i32)> {
        let st = lock(&self.lifecycle.shared.state);
        st.procs
            .iter()
            .filter(|p| p.exit.is_none())
            .map(|p| (p.name.clone(), p.pid))
            .collect()
    }

    /// The measurements so far.
    pub fn report(&self) -> Report {
        let shared = &self.lifecycle.shared;
        let st = lock(&shared.state);
        let subscribers = shared.bus.stats();
        let records = RecordTotals {
            emitted: subscribers.iter().map(|s| s.emitted).sum(),
            delivered: subscribers.iter().map(|s| s.delivered).sum(),
            dropped: subscribers.iter().map(|s| s.dropped).sum(),
        };
        let invocations = invocation_summary(&self.lifecycle.invokes);
        let extensions: Vec<ExtensionReport> = st.procs.iter().map(ExtensionReport::of).collect();
        let objects: Vec<_> = self
            .buckets
            .iter()
            .flat_map(|b| self.s3.objects(b))
            .collect();
        let verdict = Verdict::of(
            &verdict::Inputs {
                run_id: &shared.run_id,
                function_lines: &self.lifecycle.function_lines,
                subscribers: &subscribers,
                objects: &objects,
                writes: &self.s3.writes(),
                requests: &self.s3.requests(),
                invocations: &invocations,
                extensions: &extensions,
            },
            &shared.settings.expect,
        );
        Report {
            mode: shared.settings.function.mode(),
            seed: shared.settings.function.seed,
            duration_ms: crate::clock::ms(self.started.elapsed()),
            init_failures: self.lifecycle.init_failures.clone(),
            fatal_errors: st.history.clone(),
            invocations,
            extensions,
            subscribers,
            records,
            s3: s3_summary(&self.s3, &self.buckets),
            shutdowns: self.lifecycle.shutdowns.clone(),
            verdict,
        }
    }
}

/// The variables Lambda defines for the extensions of this function (Lambda Developer Guide,
/// "Defined runtime environment variables"), with the S3 endpoint's credentials and URL.
fn lambda_env(
    s: &Settings,
    runtime_api: SocketAddr,
    s3: &S3Endpoint,
    tmp: &std::path::Path,
) -> Vec<(String, String)> {
    let c = s3.credentials();
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", s.function.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", s.function.version.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            s.function.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE",
            s.initialization_type().to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_FORMAT",
            if s.function.json_log_format() {
                "JSON"
            } else {
                "Text"
            }
            .to_string(),
        ),
        ("AWS_REGION", s.function.region.clone()),
        ("AWS_DEFAULT_REGION", s.function.region.clone()),
        ("AWS_ACCESS_KEY_ID", c.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", c.secret_access_key.clone()),
        ("AWS_SESSION_TOKEN", c.session_token.clone()),
        ("AWS_ENDPOINT_URL_S3", s3.url()),
        ("TZ", ":UTC".to_string()),
        ("TMPDIR", tmp.to_string_lossy().into_owned()),
        ("LANG", "en_US.UTF-8".to_string()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
