//! Parquet objects, read with the `parquet` crate (Apache Arrow's Rust implementation), not with
//! the writer under test. A Parquet object holds one row per record; its `record` column is the
//! record's JSON as Lambda sent it, and the verdict counts those exactly as it counts NDJSON lines.
//! The columns read out of a record must say what the record says: `type` is the record's type,
//! `time` its time in milliseconds.

use bytes::Bytes;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

/// The format's magic, at both ends of a file (Apache Parquet, "File Format").
const MAGIC: &[u8] = b"PAR1";

/// The columns every object of the extension's Parquet format has.
pub const COLUMNS: [&str; 6] = ["time", "type", "request_id", "level", "message", "record"];

pub fn is_parquet(body: &[u8]) -> bool {
    body.len() >= 2 * MAGIC.len() && body.starts_with(MAGIC) && body.ends_with(MAGIC)
}

/// The `record` column as NDJSON text, one line per row; an error names the first problem.
pub fn records(body: &[u8]) -> Result<Vec<u8>, String> {
    let reader = SerializedFileReader::new(Bytes::copy_from_slice(body))
        .map_err(|e| format!("not valid Parquet: {e}"))?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    if names != COLUMNS {
        return Err(format!(
            "Parquet columns {names:?}, not the format's {COLUMNS:?}"
        ));
    }
    let mut out = Vec::with_capacity(body.len() * 4);
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| format!("Parquet rows unreadable: {e}"))?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| format!("Parquet row {i} unreadable: {e}"))?;
        let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let Some(Field::Str(record)) = fields.get(5) else {
            return Err(format!("Parquet row {i}: no string record"));
        };
        consistent(record, fields[0], fields[1])
            .map_err(|why| format!("Parquet row {i}: {why}"))?;
        out.extend_from_slice(record.as_bytes());
        out.push(b'\n');
    }
    Ok(out)
}

/// The `time` and `type` columns against the record they were read from.
fn consistent(record: &str, time: &Field, kind: &Field) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(record).unwrap_or_default();
    let want_kind = v.get("type").and_then(|t| t.as_str());
    match (kind, want_kind) {
        (Field::Str(k), Some(w)) if k == w => {}
        (Field::Null, None) => {}
        (got, want) => return Err(format!("type column {got:?}, the record's type {want:?}")),
    }
    let want_time = v
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis());
    match (time, want_time) {
        (Field::TimestampMillis(t), Some(w)) if *t == w => Ok(()),
        (Field::Null, None) => Ok(()),
        (got, want) => Err(format!(
            "time column {got:?}, the record's time {want:?} ms"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::objects::decode;

    // Written by pyarrow (emulator/tests/fixtures/make.py).
    const RECORDS: &[u8] = include_bytes!("../../tests/fixtures/records.zstd.parquet");
    const INCONSISTENT: &[u8] = include_bytes!("../../tests/fixtures/inconsistent.parquet");

    #[test]
    fn a_parquet_objects_records_are_its_record_column() {
        let d = decode(RECORDS, None);
        assert_eq!((d.lines, d.bad_lines, d.problem), (2, 0, None));
        assert_eq!(
            d.text,
            "{\"time\":\"2026-12-08T01:02:03.456Z\",\"type\":\"function\",\"record\":\"a\"}\n\
             {\"time\":\"2026-12-08T01:02:04Z\",\"type\":\"platform.report\",\"record\":{\"requestId\":\"r1\"}}\n"
        );
    }

    #[test]
    fn columns_that_disagree_with_their_record_and_broken_files_are_named() {
        let d = decode(INCONSISTENT, None);
        assert_eq!(
            d.problem.as_deref(),
            Some(
                "Parquet row 1: type column Str(\"function\"), the record's type Some(\"platform.report\")"
            )
        );
        // A footer length past the file's start.
        let mut broken = RECORDS.to_vec();
        let at = broken.len() - 8;
        broken[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let d = decode(&broken, None);
        assert!(d.problem.unwrap().starts_with("not valid Parquet"));
        assert_eq!(d.lines, 0);
    }
}
