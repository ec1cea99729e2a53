//! # adaptive-batching-extension
//!
//! An AWS Lambda extension that ships the function's logs to Amazon S3 in adaptive batches: a batch
//! is shipped as one NDJSON (or Parquet) object when a bytes, invokes or elapsed-time threshold is crossed, and
//! at shutdown.
//!
//! ```text
//!  Lambda platform                          this process (one actix System)
//!  Extensions API <── register / next ───── LifecycleActor ──InvokeStarted──────────┐
//!  Telemetry API  <── subscribe                  │ Shutdown{deadline}               v
//!  log delivery   ── POST [{time,type,record}] ─> LogReceiver ──IngestRecords──> BatchActor ──ShipBatch──> ShipperActor ──> S3
//! ```
//!
//! ## Layout
//!
//! * `main.rs` — the exit code; [`app`] — starting: configuration, listener, register, subscribe, actors.
//! * [`config`] — every environment variable, parsed once into types that cannot be misused.
//! * [`logging`] — slog JSON lines on stdout.
//! * [`lambda`] — events, lenient delivery parsing, request bodies, the Extensions API client.
//! * [`intake`] — every decision between a delivery and a sealed batch, as a pure state machine
//!   (thresholds at the ship points, request ids, SnapStart restores, LifecycleActor's waits, the
//!   closing sequence); BatchActor is its shell. [`batch`] — the buffer and thresholds it owns.
//!   [`encode`] — NDJSON bodies, gzip, zstd, or Parquet ([`parquet`], its writer). [`object_key`] — key templates.
//! * [`metrics`] — CloudWatch EMF lines about the extension's own health.
//! * [`ship_policy`] — the ship path's decisions as a pure state machine (upload, retry, spill,
//!   give up, wait or not).
//! * [`sink`] — S3 through the official SDK (one attempt per call), the `/tmp` spill.
//! * [`actors`] — LifecycleActor, LogReceiver, BatchActor, ShipperActor and their messages.
//! * [`snapshot`] — SnapStart: restore detection, keys unique across restored copies.
//! * [`stats`] — counters; [`summary`] — where every record went, from them, at shutdown.
//!
//! Pure modules (`intake`, `batch`, `ship_policy`, `encode`, `parquet`, `object_key`, `snapshot`, `metrics`, `lambda::records`, `config`) know nothing of
//! actix, awc or the AWS SDK; `lambda` and `sink` know nothing of `actors`.

#![deny(clippy::unwrap_used)]
// Unit tests may unwrap: a panic there is a failed test, not a crashed extension.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod actors;
pub mod app;
pub mod batch;
pub mod compression;
pub mod config;
pub mod encode;
pub mod hash;
pub mod held;
pub mod intake;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod object_key;
pub mod parquet;
pub mod random;
pub mod rules;
pub mod sealed;
pub mod ship_policy;
pub mod sink;
pub mod snapshot;
pub mod spill;
pub mod stats;
pub mod summary;
