//! The emulated execution environment: its state, the Runtime API server and the lifecycle driver
//! (`lifecycle.rs` holds the environment and what every phase shares; one file per phase: `init.rs`,
//! `invoke.rs`, `shutdown.rs`).

pub(crate) mod api;
mod init;
mod invoke;
pub(crate) mod lifecycle;
mod outcome;
mod register;
mod shutdown;
pub(crate) mod state;
