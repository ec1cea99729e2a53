//! Sealing: a batch's key and metadata fixed, its body still to be encoded (by the shell, off the
//! actors' thread).

use super::{Note, Settings};
use crate::batch::Batch;
use crate::lambda::records::record_time;
use crate::object_key::KeyValues;
use crate::sealed::{ObjectMeta, Sealing};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Fixes the batch's key (under `environment_id` and `batch_id`) and metadata. `fallback_at` dates the key when the
/// first record carries no readable `time`.
pub(super) fn seal(
    s: &Settings,
    environment_id: Uuid,
    batch: Batch,
    fallback_at: DateTime<Utc>,
    batch_id: Uuid,
) -> (Sealing, Note) {
    let first_record_time = batch.records.first().and_then(|r| record_time(r));
    let last_record_time = batch.records.last().and_then(|r| record_time(r));
    let at = first_record_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(fallback_at, |t| t.with_timezone(&Utc));
    let key = s.key_template.render(&KeyValues {
        function: &s.function_name,
        version: &s.function_version,
        environment_id,
        at,
        batch_id,
    });
    let note = Note::Sealed {
        key: key.clone(),
        records: batch.records.len(),
        bytes: batch.body_bytes,
        reason: batch.reason,
    };
    let sealing = Sealing {
        key,
        records: batch.records,
        body_bytes: batch.body_bytes,
        meta: ObjectMeta {
            content_encoding: s.format.content_encoding(s.compression).map(str::to_string),
            content_type: Some(s.format.content_type().into()),
            first_record_time,
            last_record_time,
        },
    };
    (sealing, note)
}
