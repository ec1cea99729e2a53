//! The policy's vocabulary: what happened to a batch ([`Event`]), what to do next ([`Action`]),
//! and what an upload failure means ([`Failure`], [`Refusal`]).

use super::{BatchId, FlushId};
use std::time::{Duration, Instant};

/// What an upload failure means for what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Network, timeout, 5xx, RequestTimeout, a cut connection: soon again. S3 may have stored it.
    Transient,
    /// 503 SlowDown: S3 asks for fewer requests.
    Throttled,
    /// The role, the key or the bucket refuses every write until someone fixes it.
    Refused(Refusal),
    /// S3 refuses this request itself (a 4xx about the object); retrying will not change it.
    Rejected,
    /// The request cannot even be built (a header no HTTP request can carry): never sendable.
    Unsendable,
    /// Its spill file cannot be read back.
    Unreadable,
}

/// Why S3 refuses writes, each with what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    AccessDenied,
    Kms,
    NoSuchBucket,
    /// Another refusal (a region mismatch, expired credentials…).
    Other,
}

impl Refusal {
    pub fn what_to_fix(self) -> &'static str {
        match self {
            Refusal::AccessDenied => {
                "allow s3:PutObject (and s3:AbortMultipartUpload) on the bucket's objects to the function's role; kept and retried"
            }
            Refusal::Kms => {
                "allow kms:GenerateDataKey (and kms:Decrypt for multipart) on the bucket's KMS key to the function's role; kept and retried"
            }
            Refusal::NoSuchBucket => {
                "create the bucket, or set ADAPTIVE_BATCHING_EXTENSION_CREATE_BUCKET=true; kept and retried"
            }
            Refusal::Other => {
                "check the bucket's name and region and the role's credentials; kept and retried"
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Refusal::AccessDenied => "AccessDenied",
            Refusal::Kms => "kms",
            Refusal::NoSuchBucket => "NoSuchBucket",
            Refusal::Other => "refused",
        }
    }
}

/// What happens to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A batch was sealed and is held in memory.
    Sealed {
        id: BatchId,
        records: usize,
        bytes: u64,
    },
    /// A batch a previous process left on disk. It counts as maybe stored, whatever its file's
    /// header says (see [`Policy::handle`]).
    Recovered {
        id: BatchId,
        records: usize,
        bytes: u64,
    },
    /// S3 confirmed the batch.
    Uploaded { id: BatchId },
    /// The upload failed.
    Failed { id: BatchId, failure: Failure },
    /// A spill finished (`ok`: the file is written and the memory released).
    Spilled { id: BatchId, ok: bool },
    /// A merge finished (`ok`: done as [`Action::Merge`] says; else nothing changed).
    Merged { into: BatchId, ok: bool },
    /// A file was deleted (`ok`), or could not be.
    Deleted { id: BatchId, ok: bool },
    /// A batch set aside ([`Action::SetAside`]) is on disk aside (`ok`), or could not be put
    /// there: a file it had then stays where it was, for the next process.
    SetAsideDone { id: BatchId, ok: bool },
    /// Someone waits until nothing is pending, a failure, or `deadline`; `last`: the shutdown's.
    Flush {
        id: FlushId,
        deadline: Instant,
        last: bool,
    },
    /// The environment was restored from a SnapStart snapshot: every batch held now is held by the
    /// other copies too, under the same key. `seed` reseeds the jitter (the copies share it).
    Restored { seed: u64 },
    /// Time passed (a wake-up asked for with [`Action::WakeAt`]).
    Tick,
}

/// What the actor is to do. Each is carried out whole, and those with an outcome report it.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Upload the batch (its body in memory, or read back from its file), giving up after
    /// `timeout`; report [`Event::Uploaded`] or [`Event::Failed`].
    Upload {
        id: BatchId,
        timeout: Duration,
    },
    /// Write the batch's body to its file, saying whether S3 may have stored it; once written,
    /// release the body from memory; report [`Event::Spilled`].
    Spill {
        id: BatchId,
        maybe_stored: bool,
    },
    /// S3 throttles: make one batch of `into` and `from` (bodies in order) under `into`'s key. With
    /// `to_disk` write it as `into`'s file (replacing it), naming `from`'s keys as absorbed, and
    /// hold no body; else hold it in memory as `into`'s body. Once made, release `from`'s bodies
    /// (their files stay until [`Action::Delete`]). Report [`Event::Merged`]; on failure change
    /// nothing.
    Merge {
        into: BatchId,
        from: Vec<BatchId>,
        to_disk: bool,
    },
    /// Delete the batch's file; report [`Event::Deleted`].
    Delete {
        id: BatchId,
    },
    /// Drop everything held for the batch (S3 has it, or it was merged away).
    Forget {
        id: BatchId,
    },
    /// No room: drop the batch (held in memory alone); it is counted refused.
    Refuse {
        id: BatchId,
    },
    /// Keep the batch for a person: its file renamed aside, or written aside if it has none;
    /// then forget it. It is counted rejected (or unreadable).
    SetAside {
        id: BatchId,
    },
    /// The failure to log (the actor throttles per cause).
    Report {
        failure: Failure,
    },
    AnswerFlush {
        id: FlushId,
    },
    /// Send an [`Event::Tick`] at this time.
    WakeAt(Instant),
    /// S3 asks for fewer requests (or no longer does): ship less often, with larger objects, by
    /// this factor (≥ 1) — see [`Pacing`].
    Pace(f64),
}
