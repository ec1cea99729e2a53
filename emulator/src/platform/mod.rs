//! The emulated execution environment: its state, the Runtime API server and the lifecycle driver.

pub(crate) mod api;
pub(crate) mod lifecycle;
pub(crate) mod state;
