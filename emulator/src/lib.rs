//! # lambda-emulator
//!
//! An emulated AWS Lambda execution environment for testing Lambda extensions without an AWS
//! account, written from the AWS documentation (`../shared/spec/lambda-apis.md`), not from any
//! extension's convenience.
//!
//! It launches every executable of an extensions directory as Lambda does (clean environment,
//! `AWS_LAMBDA_RUNTIME_API`, credentials for its S3 endpoint), serves the Extensions API, the Logs
//! API and the Telemetry API, runs a simulated function (`platform.start`, function lines,
//! `platform.runtimeDone`, `platform.report` only after every extension's `next`), freezes the
//! extensions between invokes with SIGSTOP, shuts down with a deadline and SIGKILL, emulates Lambda
//! Managed Instances, and serves an S3 endpoint (s3s, SigV4 verified) with fault injection. It
//! measures cold start, post-runtime duration, shutdown time, peak RSS and CPU time.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use lambda_emulator::{EmulatorBuilder, Script};
//! let mut emu = EmulatorBuilder::new("target/extensions").bucket("logs").env("MY_BUCKET", "logs").start().await?;
//! let report = emu.run(&Script { invocations: 100, ..Script::default() }).await;
//! println!("{}", report.to_table());
//! let objects = emu.s3().objects("logs");
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! * [`emulator`] — the builder, the step-by-step [`Emulator`] and [`Script`].
//! * `platform/` — the environment's state, the Runtime API server (`api.rs`) and the lifecycle
//!   driver (`lifecycle.rs`: init, invoke, freeze, shutdown, resets).
//! * [`delivery`] — per-subscriber batching, retries, drops and holds.
//! * [`records`] — platform events and how each API and schema renders them.
//! * [`subscribe`] — subscription validation.
//! * [`s3`] — the S3 endpoint and its faults.
//! * [`report`] — the measurements.
//! * [`fleet`] — many environments at once on one S3 endpoint: PUT/s per prefix, SlowDown,
//!   freshness, the verdict over all, a plot.
//! * [`scenario`] — whole runs as TOML or JSON files: workload, faults over time, expectations.
//! * [`verdict`] — line markers, decoded objects, the line-exact verdict.

pub mod clock;
pub mod delivery;
pub mod emulator;
pub mod fleet;
pub mod http;
pub(crate) mod platform;
pub mod process;
pub mod records;
pub mod report;
pub mod rng;
pub mod s3;
pub mod scenario;
pub mod settings;
pub mod subscribe;
pub(crate) mod sync;
pub mod verdict;

pub use delivery::SubscriberStats;
pub use emulator::{Emulator, EmulatorBuilder, Script};
pub use platform::lifecycle::{
    InitFailure, InvokeRecord, InvokeScript, InvokeStatus, ShutdownRecord, ShutdownScript,
};
pub use platform::state::{ApiCall, ExitInfo, Fatal};
pub use report::Report;
pub use scenario::Scenario;
pub use settings::{DeliveryFailure, Mode, Settings};
pub use verdict::{Expect, Tolerate, Verdict};
