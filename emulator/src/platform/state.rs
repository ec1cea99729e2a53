//! The mutable state of one emulated execution environment, shared by the API handlers, the
//! process watchers and the lifecycle driver. Every change is followed by `changed.notify_waiters()`
//! so that anyone waiting for a condition re-checks it.

use crate::delivery::Bus;
use crate::records::ApiKind;
use crate::settings::Settings;
use bytes::Bytes;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};
use uuid::Uuid;

pub use crate::process::ExitInfo;
pub use crate::sync::lock;

pub(crate) struct Shared {
    pub settings: Settings,
    pub state: Mutex<State>,
    pub changed: Notify,
    pub bus: std::sync::Arc<Bus>,
    pub calls: Mutex<Vec<ApiCall>>,
    pub started: Instant,
    /// This emulator's part of every line marker (see [`crate::markers`]).
    pub run_id: String,
}

/// One call an extension made to the Runtime API server, as recorded for tests and the report.
#[derive(Debug, Clone, Serialize)]
pub struct ApiCall {
    /// Milliseconds since the emulator started, when the request arrived and when it was answered.
    pub received_ms: f64,
    pub answered_ms: f64,
    pub extension: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub error_type: Option<String>,
    /// For `event/next`, the `eventType` returned.
    pub event_type: Option<String>,
}

#[derive(Default)]
pub(crate) struct State {
    /// Increments with every (re-)initialisation of the environment.
    pub generation: u32,
    pub registration_open: bool,
    pub subscriptions_open: bool,
    /// The file names launched for the current generation.
    pub launched: Vec<String>,
    pub exts: Vec<Ext>,
    pub procs: Vec<Proc>,
    /// Fatal errors of the current generation, in order.
    pub fatal: Vec<Fatal>,
    /// SHUTDOWN has been released to the current generation: an exit is no longer a crash.
    pub shutting_down: bool,
    /// Every fatal error of the run.
    pub history: Vec<Fatal>,
}

impl State {
    /// Records a fatal error of the current generation.
    pub fn fail(&mut self, f: Fatal) {
        self.history.push(f.clone());
        self.fatal.push(f);
    }
}

/// A registered extension.
pub(crate) struct Ext {
    pub id: Uuid,
    pub name: String,
    pub generation: u32,
    /// Registered under the name of a launched file (else Lambda treats it as internal).
    pub external: bool,
    pub invoke: bool,
    pub shutdown: bool,
    /// The pending `event/next` long poll, if the extension is waiting in it.
    pub parked: Option<oneshot::Sender<Bytes>>,
    /// Events released while the extension was not waiting.
    pub queued: VecDeque<Bytes>,
    pub next_calls: u64,
    pub last_next_at: Option<Instant>,
    /// After init/error or exit/error no further call succeeds.
    pub errored: bool,
    pub subscribed: Option<ApiKind>,
}

impl Ext {
    /// The extension is blocked in `event/next`: it is done with the current phase.
    pub fn waiting(&self) -> bool {
        self.parked.as_ref().is_some_and(|tx| !tx.is_closed()) && self.queued.is_empty()
    }
}

/// One extension process (a re-initialised environment starts new ones).
pub(crate) struct Proc {
    pub name: String,
    pub pid: i32,
    pub generation: u32,
    pub spawned_at: Instant,
    pub first_next_at: Option<Instant>,
    pub exit: Option<ExitInfo>,
    pub shutdown_at: Option<Instant>,
    pub killed_at_deadline: bool,
    pub crashed: bool,
    /// Per invoke: the runtime's `runtimeDone` → this extension's `next`.
    pub post_runtime: Vec<Duration>,
    /// Every line the process wrote to stdout or stderr.
    pub output: Vec<String>,
    /// The highest `VmHWM` sampled while the process lived (every 20 ms and at each freeze).
    pub peak_rss_kb: Option<u64>,
}

/// A fatal error that fails the current init or invoke and resets the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fatal {
    pub extension: String,
    /// `Extension.InitError`, `Extension.ExitError`, `Extension.Crash` or `Sandbox.Timeout`.
    pub error_type: String,
    /// The `Lambda-Extension-Function-Error-Type` the extension reported, if any.
    pub extension_error_type: Option<String>,
    pub message: Option<String>,
}

impl Shared {
    /// Waits until `f` returns `Some`, re-checking after every state change; `None` at `deadline`.
    pub async fn wait_until<T>(
        &self,
        deadline: Option<Instant>,
        mut f: impl FnMut(&mut State) -> Option<T>,
    ) -> Option<T> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(t) = f(&mut lock(&self.state)) {
                return Some(t);
            }
            match deadline {
                None => notified.await,
                Some(d) => {
                    if tokio::time::timeout_at(d.into(), notified).await.is_err() {
                        return f(&mut lock(&self.state));
                    }
                }
            }
        }
    }

    /// Waits until every extension `select` picks is blocked in `event/next`; a fatal error of the
    /// generation ends the wait early (`Err`); `None` at `deadline`.
    pub async fn until_waiting(
        &self,
        deadline: Instant,
        select: impl Fn(&Ext) -> bool,
    ) -> Option<Result<(), Fatal>> {
        self.wait_until(Some(deadline), |st| {
            if let Some(f) = st.fatal.first() {
                return Some(Err(f.clone()));
            }
            st.exts
                .iter()
                .filter(|e| select(e))
                .all(Ext::waiting)
                .then_some(Ok(()))
        })
        .await
    }

    pub fn notify(&self) {
        self.changed.notify_waiters();
    }

    pub fn since_start_ms(&self, t: Instant) -> f64 {
        crate::clock::ms(t.saturating_duration_since(self.started))
    }
}
