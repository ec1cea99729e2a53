//! ShipperActor: owns the S3 client and the sealed batches not yet confirmed. One upload at a time,
//! retried with backoff; a batch leaves the queue only when S3 confirmed it. After a failed round
//! the queue waits for the next opportunity (a [`Flush`]: every INVOKE and the shutdown), and the
//! batch keeps its key, so a retry overwrites rather than duplicates.

use super::messages::{Flush, Pending, Restored, ShipBatch};
use crate::sink::retry::Backoff;
use crate::sink::{S3Sink, SealedObject, ShipError, Shipped};
use crate::stats::Counters;
use actix::prelude::*;
use slog::{Logger, info, warn};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a stalled queue waits on Managed Instances before the next round.
const STALLED_RETRY: Duration = Duration::from_secs(5);

/// The queue's state as Flush waiters see it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    pending: Pending,
    /// The last round failed: nothing will move until the next Flush.
    stalled: bool,
}

pub struct ShipperActor {
    sink: S3Sink,
    backoff: Backoff,
    queue: VecDeque<SealedObject>,
    uploading: bool,
    stalled: bool,
    /// The deadline of the latest Flush: retries never wait past it.
    deadline: Option<Instant>,
    /// Managed Instances: no INVOKE brings a next opportunity, so a stalled queue is retried on a timer.
    retry_stalled_every: Option<Duration>,
    progress: watch::Sender<Progress>,
    counters: Arc<Counters>,
    log: Logger,
}

impl ShipperActor {
    /// `managed_instances`: retry a stalled queue every few seconds, since no INVOKE will.
    pub fn new(
        sink: S3Sink,
        backoff: Backoff,
        managed_instances: bool,
        counters: Arc<Counters>,
        log: Logger,
    ) -> Self {
        Self {
            retry_stalled_every: managed_instances.then_some(STALLED_RETRY),
            sink,
            backoff,
            queue: VecDeque::new(),
            uploading: false,
            stalled: false,
            deadline: None,
            progress: watch::channel(Progress::default()).0,
            counters,
            log,
        }
    }

    fn publish(&self) {
        let pending = Pending {
            batches: self.queue.len(),
            records: self.queue.iter().map(|o| o.records).sum(),
        };
        self.progress.send_replace(Progress {
            pending,
            stalled: self.stalled,
        });
    }

    /// Starts the next upload unless one runs or the queue is stalled.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.uploading || self.stalled {
            return;
        }
        let Some(obj) = self.queue.front().cloned() else {
            return;
        };
        self.uploading = true;
        let sink = self.sink.clone();
        let backoff = self.backoff;
        let deadline = self.deadline.filter(|d| *d > Instant::now());
        let upload = async move {
            let started = Instant::now();
            let attempt = sink.ship(&obj, backoff, deadline);
            // Never run past the deadline: at shutdown the process must exit before it.
            let result = match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), attempt)
                    .await
                    .unwrap_or_else(|_| {
                        Err((
                            ShipError::Transient("the deadline passed during the upload".into()),
                            0,
                        ))
                    }),
                None => attempt.await,
            };
            (obj, result, started.elapsed())
        };
        ctx.spawn(
            upload
                .into_actor(self)
                .map(|(obj, result, took), act, ctx| {
                    act.uploading = false;
                    act.finished(obj, result, took);
                    act.publish();
                    if act.stalled
                        && let Some(every) = act.retry_stalled_every
                    {
                        ctx.run_later(every, |act, ctx| {
                            act.stalled = false;
                            act.pump(ctx);
                        });
                    }
                    act.pump(ctx);
                }),
        );
    }

    fn finished(
        &mut self,
        obj: SealedObject,
        result: Result<Shipped, (ShipError, u32)>,
        took: Duration,
    ) {
        match result {
            Ok(shipped) => {
                self.queue.pop_front();
                Counters::add(&self.counters.shipped, obj.records as u64);
                Counters::add(&self.counters.objects, 1);
                Counters::add(
                    &self.counters.failed_attempts,
                    u64::from(shipped.attempts - 1),
                );
                info!(self.log, "shipped";
                    "key" => &obj.key, "records" => obj.records, "bytes" => obj.body.len(),
                    "ms" => took.as_millis() as u64, "attempts" => shipped.attempts);
            }
            Err((e, attempts)) => {
                self.stalled = true;
                Counters::add(&self.counters.failed_attempts, u64::from(attempts.max(1)));
                let hint = match &e {
                    ShipError::Transient(_) => "kept; retried at the next invoke and at shutdown",
                    ShipError::NoSuchBucket => {
                        "kept; create the bucket or set ADAPTIVE_BATCHING_EXTENSION_CREATE_BUCKET=true"
                    }
                    ShipError::Refused { .. } => {
                        "kept; check the function role's s3:PutObject permission, the bucket's region and its KMS key policy"
                    }
                };
                warn!(self.log, "ship failed";
                    "key" => &obj.key, "records" => obj.records, "attempts" => attempts,
                    "error" => e.to_string(), "what_now" => hint, "pending_batches" => self.queue.len());
            }
        }
    }
}

impl Actor for ShipperActor {
    type Context = Context<Self>;
}

impl Handler<ShipBatch> for ShipperActor {
    type Result = ();

    fn handle(&mut self, msg: ShipBatch, ctx: &mut Context<Self>) {
        self.queue.push_back(msg.object);
        self.publish();
        self.pump(ctx);
    }
}

impl Handler<Flush> for ShipperActor {
    type Result = ResponseFuture<Pending>;

    fn handle(&mut self, msg: Flush, ctx: &mut Context<Self>) -> Self::Result {
        self.deadline = Some(msg.deadline);
        // A Flush is the next opportunity for batches that failed before.
        self.stalled = false;
        self.publish();
        self.pump(ctx);
        let mut rx = self.progress.subscribe();
        Box::pin(async move {
            let settled = rx.wait_for(|p| p.pending.batches == 0 || p.stalled);
            let _ = tokio::time::timeout_at(msg.deadline.into(), settled).await;
            rx.borrow().pending
        })
    }
}

impl Handler<Restored> for ShipperActor {
    type Result = ();

    fn handle(&mut self, _: Restored, _: &mut Context<Self>) {
        self.sink.reconnect();
    }
}
