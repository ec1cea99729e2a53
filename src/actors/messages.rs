//! Messages that cross actors. Commands are imperative, notifications past tense.

use crate::lambda::records::Record;
use crate::sealed::SealedObject;
use actix::{Message, Recipient};
use std::time::{Duration, Instant};

/// Sent by LogReceiver to BatchActor for every parsed delivery (with `send().await`: a full mailbox
/// pushes back on Lambda instead of dropping). Answered `Err(Closed)` once the final batch was
/// shipped: the receiver then answers 503, so Lambda counts the records undelivered rather than
/// taking a 200 for records nobody will ship.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), Closed>")]
pub struct IngestRecords {
    pub records: Vec<Record>,
}

/// The extension no longer takes records: its final batch is shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Sent by LifecycleActor to BatchActor when an INVOKE event arrived.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InvokeStarted {
    pub request_id: String,
}

/// Sent by LifecycleActor to BatchActor after an INVOKE with `SHIP_AT=end-of-invoke`: answered once
/// `platform.runtimeDone` of `request_id` has arrived and the invokes and time thresholds were
/// checked (a batch then due is queued at the shipper before the answer), when Lambda reports
/// dropped records (runtimeDone may be among them), or at `until`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AwaitRuntimeDone {
    pub request_id: String,
    pub until: Instant,
}

/// Sent by LifecycleActor to BatchActor at SHUTDOWN: answered once Lambda has delivered what it
/// still held (the `platform.report` of `request_id`, or on Managed Instances of every request with
/// a `platform.start` and no report yet, then `quiet` without a delivery), or at `until`.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AwaitLateRecords {
    pub request_id: Option<String>,
    /// Wait for the reports of every started request (Managed Instances: no INVOKE names the last).
    pub all_open: bool,
    pub quiet: Duration,
    pub until: Instant,
}

/// Sent by LifecycleActor to BatchActor to end: seal everything and have it shipped by `deadline`.
#[derive(Message, Debug)]
#[rtype(result = "Pending")]
pub struct Shutdown {
    pub deadline: Instant,
}

/// Sent by BatchActor to ShipperActor when a batch was sealed.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ShipBatch {
    pub object: SealedObject,
}

/// Sent by ShipperActor to BatchActor when S3's throttling changes how often to ship: the
/// thresholds are multiplied by `factor` (≥ 1), the time threshold up to the freshness bound.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Pace {
    pub factor: f64,
}

/// Sent once, after both start, to ShipperActor: where to send [`Pace`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct PaceTo(pub Recipient<Pace>);

/// Sent by BatchActor to ShipperActor when the environment was restored from a SnapStart snapshot:
/// connections opened before the snapshot are not to be trusted.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Restored;

/// Sent to ShipperActor by LifecycleActor before `next` when it is to wait for uploads
/// (`SHIP_AT=end-of-invoke`, `NEXT_WAIT_MS`), and by BatchActor at shutdown: answered when nothing
/// is pending, at the first failure (a failing S3 never holds an invoke), or at `deadline`. The
/// shutdown's (`last`) gives every kept batch one more attempt and spills what is left.
#[derive(Message, Debug)]
#[rtype(result = "Pending")]
pub struct Flush {
    pub deadline: Instant,
    /// The shutdown's flush: what is still in memory afterwards is spilled to disk.
    pub last: bool,
}

/// What is still unshipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, actix::MessageResponse)]
pub struct Pending {
    pub batches: usize,
    pub records: usize,
}
