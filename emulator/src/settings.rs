//! Everything a run of the emulator can be configured with, and the defaults that follow the AWS
//! documentation (spec §1.5, §2.2, §3.1). A leaf: [`Function`] is the one model of the emulated
//! function and platform, which the `run` command's flags (clap) and a scenario file's `[function]`
//! table (serde) both parse into, and which the builder takes as it is.

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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryFailure {
    /// Classic Lambda (documented): retry the same batch with backoff.
    Retry,
    /// The Managed Instances RIE: drop the batch and report it in `platform.logsDropped`.
    Drop,
}

/// The emulated function and its platform. Field names are the scenario file's keys; flags are the
/// `run` command's (`--function-name`, `--timeout-ms`, ...). Every default follows Lambda's.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Function {
    /// The function's name.
    #[arg(long = "function-name", default_value_t = Function::default().name)]
    pub name: String,
    #[arg(skip = Function::default().version)]
    pub version: String,
    #[arg(long, default_value_t = Function::default().memory_mb)]
    pub memory_mb: u64,
    #[arg(long, default_value_t = Function::default().region)]
    pub region: String,
    #[arg(skip = Function::default().account_id)]
    pub account_id: String,
    #[arg(skip = Function::default().handler)]
    pub handler: String,
    /// Function timeout (bounds the runtime and the extensions together).
    #[arg(long, default_value_t = Function::default().timeout_ms)]
    pub timeout_ms: u64,
    /// The whole Init phase, extensions included (10 s on Lambda).
    #[arg(long, default_value_t = Function::default().init_timeout_ms)]
    pub init_timeout_ms: u64,
    /// SHUTDOWN deadlineMs = release + this (2000 ms less the runtime's 300 ms).
    #[arg(long, default_value_t = Function::default().shutdown_budget_ms)]
    pub shutdown_budget_ms: u64,
    /// Seed for the order of held records against the next event.
    #[arg(long, default_value_t = Function::default().seed)]
    pub seed: u64,
    /// Emulate Lambda Managed Instances (spec §5.1).
    #[arg(long)]
    pub managed_instances: bool,
    /// SnapStart: init creates the snapshot; [`crate::Emulator::restore`] restores from it.
    #[arg(skip)]
    #[serde(skip)]
    pub snap_start: bool,
    /// The function uses the JSON log format (default: Text, JSON on Managed Instances).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub json_logs: Option<bool>,
    /// INVOKE events carry `tracing` (an X-Ray traced function); `--no-tracing` leaves it out.
    #[arg(long = "no-tracing", action = clap::ArgAction::SetFalse)]
    pub tracing: bool,
    /// Send shutdownReason in upper case, as the docs spell it (AWS's code sends lower case).
    #[arg(long)]
    pub upper_case_reason: bool,
    /// Also SIGTERM the extensions at SHUTDOWN.
    #[arg(long)]
    pub sigterm: bool,
    /// Bytes Lambda queues per subscriber before it drops records (platform.logsDropped).
    #[arg(long, default_value_t = Function::default().subscriber_buffer_cap)]
    pub subscriber_buffer_cap: usize,
    /// A failed delivery: `retry` (classic Lambda) or `drop` (the Managed Instances RIE's); the
    /// mode's own when unset.
    #[arg(long, value_enum)]
    pub delivery_failure: Option<DeliveryFailure>,
    /// First and longest wait between delivery retries, in ms.
    #[arg(skip = Function::default().retry_backoff_ms)]
    pub retry_backoff_ms: (u64, u64),
    /// What the function's lines say, in turn: the n-th line of the run carries
    /// `line_texts[(n - 1) % len]` after its marker (secrets to mask, health checks to exclude,
    /// levels to sample by); empty, only the padding.
    #[arg(skip)]
    pub line_texts: Vec<String>,
}

impl Default for Function {
    fn default() -> Self {
        Self {
            name: "emulated-function".into(),
            version: "$LATEST".into(),
            memory_mb: 128,
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            handler: "index.handler".into(),
            timeout_ms: 3000,
            init_timeout_ms: 10_000,
            shutdown_budget_ms: 1700,
            seed: 1,
            managed_instances: false,
            snap_start: false,
            json_logs: None,
            tracing: true,
            upper_case_reason: false,
            sigterm: false,
            subscriber_buffer_cap: 4 * 1024 * 1024,
            delivery_failure: None,
            retry_backoff_ms: (50, 1000),
            line_texts: Vec::new(),
        }
    }
}

impl Function {
    pub fn mode(&self) -> Mode {
        if self.managed_instances {
            Mode::ManagedInstances
        } else {
            Mode::Classic
        }
    }

    pub fn invoke_timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn init_timeout(&self) -> Duration {
        Duration::from_millis(self.init_timeout_ms)
    }

    pub fn shutdown_budget(&self) -> Duration {
        Duration::from_millis(self.shutdown_budget_ms)
    }

    /// The function's `LogFormat` is JSON: as set, else JSON on Managed Instances only.
    pub fn json_log_format(&self) -> bool {
        self.json_logs.unwrap_or(self.managed_instances)
    }

    /// What a failed delivery does: as set, else the mode's.
    pub fn failed_delivery(&self) -> DeliveryFailure {
        self.delivery_failure.unwrap_or(if self.managed_instances {
            DeliveryFailure::Drop
        } else {
            DeliveryFailure::Retry
        })
    }

    pub fn retry_backoff(&self) -> (Duration, Duration) {
        let (first, most) = self.retry_backoff_ms;
        (Duration::from_millis(first), Duration::from_millis(most))
    }
}

/// The configuration of one emulated execution environment: the function, and what this run
/// launches, expects and prints.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every executable file here is started as an extension; its file name is its name.
    pub extensions_dir: PathBuf,
    /// Variables added to the extensions' environment (the function's configuration).
    pub env: Vec<(String, String)>,
    /// Extensions the caller runs itself (in-process, say) under these names: init waits for them
    /// to register as if they had been launched; there is no process to freeze or kill.
    pub attached: Vec<String>,
    pub function: Function,
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
            function: Function::default(),
            echo_extension_output: false,
            expect: crate::expect::Expect::default(),
            s3_timeouts: crate::s3::Timeouts::default(),
        }
    }
}

impl Settings {
    pub fn managed_instances(&self) -> bool {
        self.function.managed_instances
    }

    /// `AWS_LAMBDA_INITIALIZATION_TYPE` and the telemetry `initializationType`.
    pub fn initialization_type(&self) -> &'static str {
        match self.function.mode() {
            Mode::Classic if self.function.snap_start => "snap-start",
            Mode::Classic => "on-demand",
            Mode::ManagedInstances => "lambda-managed-instances",
        }
    }

    pub fn function_arn(&self) -> String {
        let f = &self.function;
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            f.region, f.account_id, f.name
        )
    }
}
