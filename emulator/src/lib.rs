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
//! In layers, each importing only those below it (no import cycle):
//!
//! 1. Leaves: [`settings`] (the one `Function` model the CLI flags, scenario files and the builder
//!    share; with [`expect`]: what a run tolerates and expects), [`markers`] (the
//!    unique mark of every function line), [`clock`], [`rng`], [`http`].
//! 2. [`s3`] — the S3 endpoint, its rules and faults, and the one classifier of S3 operations
//!    (`s3::operation_class`); [`process`] — extension processes and how they ended; [`records`] —
//!    platform events and how each API and schema renders them.
//! 3. [`subscribe`] — subscription validation; [`delivery`] — per-subscriber batching, retries,
//!    drops and holds.
//! 4. `platform/` — the environment's state, the Runtime API server (`api.rs`, `register.rs`, and
//!    `outcome.rs`, the answer both give) and the lifecycle
//!    driver (`lifecycle.rs`: init, invoke, freeze, shutdown, resets).
//! 5. [`measurements`] — what a run measured; [`verdict`] — decoded objects and the line-exact
//!    verdict, read from the measurements and S3; [`report`] — both, as JSON and a table.
//! 6. [`emulator`] — the builder, the step-by-step [`Emulator`] and [`Script`]; [`fleet`] — many
//!    environments at once on one S3 endpoint; [`scenario`] — whole runs as TOML or JSON files.

pub mod clock;
pub mod delivery;
pub mod emulator;
pub mod expect;
pub mod fleet;
pub mod http;
pub mod markers;
pub mod measurements;
pub(crate) mod platform;
pub mod process;
pub mod progress;
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
pub use expect::{Expect, Tolerate};
pub use platform::lifecycle::{
    InitFailure, InvokeRecord, InvokeScript, InvokeStatus, ShutdownRecord, ShutdownScript,
};
pub use platform::state::{ApiCall, ExitInfo, Fatal};
pub use report::Report;
pub use scenario::Scenario;
pub use settings::{DeliveryFailure, Function, Mode, Settings};
pub use verdict::Verdict;
