//! Everything a run of the emulator can be configured with, and the defaults that follow the AWS
//! documentation (spec §1.5, §2.2, §3.1).

use std::path::PathBuf;
use std::time::Duration;

/// Which flavour of Lambda execution environment to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// On-demand Lambda: INVOKE events, freeze between invokes, `platform.runtimeDone`.
    Classic,
    /// Lambda Managed Instances (spec §5.1): SHUTDOWN only, Telemetry schema 2025-01-29, no Logs API,
    /// no `runtimeDone`, no freeze, concurrent invocations.
    ManagedInstances,
}

/// What the platform does when a delivery to a subscriber fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryFailure {
    /// Classic Lambda (documented): retry the same batch with backoff.
    Retry,
    /// The Managed Instances RIE: drop the batch and report it in `platform.logsDropped`.
    Drop,
}

/// The configuration of one emulated execution environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every executable file here is started as an extension; its file name is its name.
    pub extensions_dir: PathBuf,
    /// Variables added to the extensions' environment (the function's configuration).
    pub env: Vec<(String, String)>,
    /// Extensions the caller runs itself (in-process, say) under these names: init waits for them
    /// to register as if they had been launched; there is no process to freeze or kill.
    pub attached: Vec<String>,
    pub function_name: String,
    pub function_version: String,
    pub memory_mb: u64,
    pub region: String,
    pub account_id: String,
    pub handler: String,
    pub mode: Mode,
    /// The whole Init phase, extensions included (10 s on Lambda).
    pub init_timeout: Duration,
    /// The function timeout: it bounds the runtime and the extensions together.
    pub invoke_timeout: Duration,
    /// SHUTDOWN `deadlineMs` = release time + this (2000 ms less the runtime's 300 ms).
    pub shutdown_budget: Duration,
    /// The docs spell `shutdownReason` in upper case; AWS's code sends lower case (the default).
    pub upper_case_shutdown_reason: bool,
    /// Also send SIGTERM to every extension when SHUTDOWN is released.
    pub sigterm_on_shutdown: bool,
    /// SnapStart: init creates the snapshot; [`crate::Emulator::restore`] restores from it.
    pub snap_start: bool,
    /// The function's `LogFormat` is JSON.
    pub json_log_format: bool,
    /// INVOKE events carry `tracing` (an X-Ray traced function); without it the field is absent.
    pub invoke_tracing: bool,
    pub delivery_failure: DeliveryFailure,
    /// Bytes a subscriber may have queued in the platform; past it records are dropped and reported
    /// in `platform.logsDropped`.
    pub subscriber_buffer_cap: usize,
    /// First and longest wait between delivery retries.
    pub retry_backoff: (Duration, Duration),
    /// Chooses the order of held records against the next event, reproducibly.
    pub seed: u64,
    /// Copy each extension's stdout/stderr line to the emulator's stderr.
    pub echo_extension_output: bool,
    /// What the run's verdict tolerates and expects.
    pub expect: crate::expect::Expect,
    /// The S3 endpoint's socket and idle timeouts.
    pub s3_timeouts: crate::s3::Timeouts,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            extensions_dir: PathBuf::from("/opt/extensions"),
            env: Vec::new(),
            attached: Vec::new(),
            function_name: "emulated-function".into(),
            function_version: "$LATEST".into(),
            memory_mb: 128,
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            handler: "index.handler".into(),
            mode: Mode::Classic,
            init_timeout: Duration::from_secs(10),
            invoke_timeout: Duration::from_secs(3),
            shutdown_budget: Duration::from_millis(1700),
            upper_case_shutdown_reason: false,
            sigterm_on_shutdown: false,
            snap_start: false,
            json_log_format: false,
            invoke_tracing: true,
            delivery_failure: DeliveryFailure::Retry,
            subscriber_buffer_cap: 4 * 1024 * 1024,
            retry_backoff: (Duration::from_millis(50), Duration::from_millis(1000)),
            seed: 1,
            echo_extension_output: false,
            expect: crate::expect::Expect::default(),
            s3_timeouts: crate::s3::Timeouts::default(),
        }
    }
}

impl Settings {
    pub fn managed_instances(&self) -> bool {
        self.mode == Mode::ManagedInstances
    }

    /// `AWS_LAMBDA_INITIALIZATION_TYPE` and the telemetry `initializationType`.
    pub fn initialization_type(&self) -> &'static str {
        match self.mode {
            Mode::Classic if self.snap_start => "snap-start",
            Mode::Classic => "on-demand",
            Mode::ManagedInstances => "lambda-managed-instances",
        }
    }

    pub fn function_arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account_id, self.function_name
        )
    }
}
