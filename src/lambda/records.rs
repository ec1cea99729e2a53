//! Lenient parsing of a delivery (a JSON array of `{time,type,record}`) into records that keep the
//! exact bytes Lambda sent: each record is a slice of the request body, never re-serialised. Only the
//! few fields we act on are read: the `type`, and the `requestId` of `platform.start`,
//! `platform.runtimeDone` and `platform.report`. One element that does not look like a record costs
//! nothing to the others: it is wrapped as a record of its own, `{"time": <when it arrived>,
//! "type": "extension.malformed", "record": <the element as received>}`, and counted, so every line
//! of every object is a record and nothing received is thrown away.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The record types we act on; everything else is [`Kind::Other`] and shipped as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Start,
    RuntimeDone,
    Report,
    /// SnapStart: this environment was restored from a snapshot.
    RestoreStart,
    /// Lambda dropped records before they reached us (`droppedRecords` of them).
    LogsDropped {
        records: u64,
    },
    /// A line an extension wrote (the `extension` log type): never makes a batch due by itself.
    Extension,
    Other,
}

/// The `type` given to an element that is not a Lambda record, wrapped as one.
pub const MALFORMED_TYPE: &str = "extension.malformed";

/// One delivered record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The exact JSON of the array element.
    pub raw: Bytes,
    pub kind: Kind,
    /// For `platform.start`, `platform.runtimeDone`, `platform.report`.
    pub request_id: Option<String>,
}

/// A parsed delivery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    pub records: Vec<Record>,
    /// Elements that are valid JSON but not `{type: string, ...}` objects (kept, and counted).
    pub malformed_elements: usize,
}

/// A body that cannot be split into records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delivery is not a JSON array: {0}")]
pub struct NotAnArray(pub String);

/// The fields every Lambda record has: a string `time`, a string `type`, a `record`.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    #[allow(dead_code)] // Required: an element without it is not a record.
    time: Cow<'a, str>,
    #[serde(borrow)]
    record: &'a RawValue,
}

#[derive(Deserialize)]
struct PeekRequest<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PeekDropped {
    #[serde(rename = "droppedRecords", default)]
    dropped_records: u64,
}

#[derive(Deserialize)]
struct PeekTime<'a> {
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
}

/// The `time` Lambda wrote on a record, as written (for object metadata and key dates).
pub fn record_time(raw: &[u8]) -> Option<String> {
    serde_json::from_slice::<PeekTime>(raw)
        .ok()?
        .time
        .map(Cow::into_owned)
}

/// The `type` of an element laid out as Lambda writes records, `{"time":"…","type":"…","record":…`,
/// read without parsing it again; `None` for any other layout (serde then reads it). Sound because
/// the element is valid JSON already: with no escape in the time, its first quote ends it.
fn lambda_type(text: &str) -> Option<&str> {
    // memchr, not `str::find` with a char set: this runs for every record.
    let quote = |s: &str| memchr::memchr2(b'"', b'\\', s.as_bytes());
    let rest = text.strip_prefix(r#"{"time":""#)?;
    let rest = rest[quote(rest)?..].strip_prefix(r#"","type":""#)?;
    let end = quote(rest)?;
    rest[end..]
        .starts_with(r#"","record":"#)
        .then(|| &rest[..end])
}

/// A record's `type` and where its `record` value lies in it: read from Lambda's layout when the
/// value is a string that ends the element (a plain-text line, nearly every record), else by serde.
pub fn layout(text: &str) -> Option<(Cow<'_, str>, std::ops::Range<usize>)> {
    const RECORD: &str = r#"","record":"#;
    if let Some(t) = lambda_type(text) {
        // `t` lies in `text`, followed by `","record":` (lambda_type checked it).
        let start = t.as_ptr() as usize - text.as_ptr() as usize + t.len() + RECORD.len();
        if let Some(end) = string_end(text.as_bytes(), start)
            && text.get(end..) == Some("}")
        {
            return Some((Cow::Borrowed(t), start..end));
        }
    }
    let p: Peek = serde_json::from_str(text).ok()?;
    // `RawValue` borrows from `text`: its offset there is where the value lies.
    let start = p.record.get().as_ptr() as usize - text.as_ptr() as usize;
    Some((p.kind, start..start + p.record.get().len()))
}

/// Where the string literal opening at `start` ends (just past its closing quote), if one does.
pub(crate) fn string_end(b: &[u8], start: usize) -> Option<usize> {
    if b.get(start) != Some(&b'"') {
        return None;
    }
    let mut i = start + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        // An escape: the backslash and the byte after it.
        i += 2;
    }
}

/// Splits `body` into records without copying them; an element that is not a record is wrapped,
/// timed `received_at`.
pub fn parse_delivery(
    body: &Bytes,
    received_at: chrono::DateTime<chrono::Utc>,
) -> Result<Delivery, NotAnArray> {
    let elements: Vec<&RawValue> =
        serde_json::from_slice(body).map_err(|e| NotAnArray(e.to_string()))?;
    let base = body.as_ptr() as usize;
    let mut out = Delivery {
        records: Vec::with_capacity(elements.len()),
        malformed_elements: 0,
    };
    for el in elements {
        let text = el.get();
        // `RawValue` borrows from `body`, so its offset there gives a zero-copy slice.
        let start = text.as_ptr() as usize - base;
        let raw = body.slice(start..start + text.len());
        // Function and extension lines (nearly all the bytes) need no second parse.
        if let Some(t) = lambda_type(text).filter(|t| !t.starts_with("platform.")) {
            out.records.push(Record {
                raw,
                kind: if t == "extension" {
                    Kind::Extension
                } else {
                    Kind::Other
                },
                request_id: None,
            });
            continue;
        }
        let (kind, request_id) = match serde_json::from_str::<Peek>(text) {
            Ok(p) => {
                let kind = match p.kind.as_ref() {
                    "platform.start" => Kind::Start,
                    "platform.runtimeDone" => Kind::RuntimeDone,
                    "platform.report" => Kind::Report,
                    "platform.restoreStart" => Kind::RestoreStart,
                    "extension" => Kind::Extension,
                    "platform.logsDropped" => Kind::LogsDropped {
                        records: serde_json::from_str::<PeekDropped>(p.record.get())
                            .map_or(0, |d| d.dropped_records),
                    },
                    _ => Kind::Other,
                };
                let request_id = match kind {
                    Kind::Start | Kind::RuntimeDone | Kind::Report => {
                        serde_json::from_str::<PeekRequest>(p.record.get())
                            .ok()
                            .and_then(|r| r.request_id.map(Cow::into_owned))
                    }
                    _ => None,
                };
                (kind, request_id)
            }
            Err(_) => {
                out.malformed_elements += 1;
                let wrapped = format!(
                    r#"{{"time":"{}","type":"{MALFORMED_TYPE}","record":{text}}}"#,
                    received_at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
                );
                out.records.push(Record {
                    raw: Bytes::from(wrapped),
                    kind: Kind::Other,
                    request_id: None,
                });
                continue;
            }
        };
        out.records.push(Record {
            raw,
            kind,
            request_id,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(1_795_000_000_123).unwrap()
    }

    /// The documented Logs API example batch (spec §2.4).
    const LOGS_SAMPLE: &str = r#"[
  {"time":"2020-08-20T12:31:32.123Z","type":"platform.start","record":{"requestId":"6f7f0961f83442118a7af6fe80b88d56"}},
  {"time":"2020-08-20T12:31:32.123Z","type":"function","record":"Hello World\n"},
  {"time":"2021-02-04T20:00:05.123Z","type":"platform.runtimeDone","record":{"requestId":"6f7f0961f83442118a7af6fe80b88d56","status":"success"}}
]"#;

    #[test]
    fn splits_the_documented_logs_batch_keeping_exact_bytes() {
        let body = Bytes::from_static(LOGS_SAMPLE.as_bytes());
        let d = parse_delivery(&body, at()).unwrap();
        assert_eq!(d.malformed_elements, 0);
        assert_eq!(d.records.len(), 3);
        assert_eq!(
            d.records[1].raw,
            Bytes::from_static(br#"{"time":"2020-08-20T12:31:32.123Z","type":"function","record":"Hello World\n"}"#)
        );
        assert_eq!(d.records[0].kind, Kind::Start);
        assert_eq!(
            d.records[0].request_id.as_deref(),
            Some("6f7f0961f83442118a7af6fe80b88d56")
        );
        assert_eq!(d.records[2].kind, Kind::RuntimeDone);
        assert_eq!(d.records[1].kind, Kind::Other);
        // Zero-copy: the record points into the body.
        assert!(d.records[1].raw.as_ptr() >= body.as_ptr());
    }

    #[test]
    fn the_type_is_read_from_lambdas_layout_and_anything_else_goes_to_serde() {
        let t = lambda_type;
        assert_eq!(
            t(r#"{"time":"2020-08-20T12:31:32.123Z","type":"function","record":"x"}"#),
            Some("function")
        );
        assert_eq!(
            t(r#"{"time":"2020-08-20T12:31:32.123Z","type":"platform.start","record":{}}"#),
            Some("platform.start")
        );
        for other in [
            r#"{"type":"function","time":"2020-08-20T12:31:32.123Z"}"#,
            r#"{"time": "2020-08-20T12:31:32.123Z","type":"function"}"#,
            r#"{"time":"x\","type":"function","type":"platform.start"}"#,
            r#"{"time":"2020-08-20T12:31:32.123Z","type":"plat\u0066orm.start"}"#,
            r#"{"time":"2020-08-20T12:31:32.123Z","type":1}"#,
        ] {
            assert_eq!(t(other), None, "{other}");
        }
        // The escaped ones are still classified right, by serde.
        let body = Bytes::from_static(
            br#"[{"time":"2020-08-20T12:31:32.123Z","type":"platform.start","record":{"requestId":"r"}}]"#,
        );
        let d = parse_delivery(&body, at()).unwrap();
        assert_eq!(d.records[0].kind, Kind::Start);
        assert_eq!(d.records[0].request_id.as_deref(), Some("r"));
    }

    #[test]
    fn reads_the_documented_telemetry_report() {
        let body = Bytes::from_static(br#"[{"time":"2022-10-21T14:05:05.766Z","type":"platform.report","record":{"requestId":"459921b5-681c-4a96-beb0-81e0aa586026","metrics":{"durationMs":2599.4,"billedDurationMs":2600,"memorySizeMB":128,"maxMemoryUsedMB":94,"initDurationMs":549.04},"tracing":{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"},"status":"success"}}]"#);
        let d = parse_delivery(&body, at()).unwrap();
        assert_eq!(d.records[0].kind, Kind::Report);
        assert_eq!(
            d.records[0].request_id.as_deref(),
            Some("459921b5-681c-4a96-beb0-81e0aa586026")
        );
    }

    #[test]
    fn odd_elements_are_wrapped_as_records_and_counted_and_escapes_survive() {
        let body = Bytes::from_static(br#"[42, {"no":"type"}, {"time":"t","type":"function","record":{"message":"a \"quoted\" \u00e9"}}, {"type":"platform.fault","record":"RequestId: x Process exited"}]"#);
        let d = parse_delivery(&body, at()).unwrap();
        assert_eq!(
            d.malformed_elements, 3,
            "a record without a time is not a record either"
        );
        assert_eq!(d.records.len(), 4);
        assert_eq!(
            d.records[0].raw,
            Bytes::from_static(
                br#"{"time":"2026-11-18T11:06:40.123Z","type":"extension.malformed","record":42}"#
            )
        );
        assert_eq!(
            d.records[1].raw,
            Bytes::from_static(br#"{"time":"2026-11-18T11:06:40.123Z","type":"extension.malformed","record":{"no":"type"}}"#)
        );
        for r in &d.records {
            let v: serde_json::Value = serde_json::from_slice(&r.raw).unwrap();
            assert!(v["time"].is_string() && v["type"].is_string() && v.get("record").is_some());
        }
        assert_eq!(
            &d.records[2].raw[..],
            br#"{"time":"t","type":"function","record":{"message":"a \"quoted\" \u00e9"}}"#
        );
    }

    #[test]
    fn reads_logs_dropped_and_restore_start_and_keeps_object_function_records() {
        let body = Bytes::from_static(br#"[{"time":"t","type":"platform.logsDropped","record":{"reason":"Consumer seems to have fallen behind as it has not acknowledged receipt of logs.","droppedRecords":123,"droppedBytes":12345}},{"time":"t","type":"platform.restoreStart","record":{}},{"time":"t","type":"function","record":{"timestamp":"t","level":"INFO","message":"m","requestId":"r"}},{"time":"t","type":"platform.futureEvent","record":{"x":1}}]"#);
        let d = parse_delivery(&body, at()).unwrap();
        let kinds: Vec<Kind> = d.records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::LogsDropped { records: 123 },
                Kind::RestoreStart,
                Kind::Other,
                Kind::Other
            ]
        );
        assert_eq!(
            d.malformed_elements, 0,
            "unknown types and object records are records"
        );
        assert_eq!(
            d.records[2].request_id, None,
            "function records are not correlated by their text"
        );
    }

    #[test]
    fn a_number_no_f64_holds_is_kept_exactly() {
        // Found by the delivery fuzz target: valid JSON, out of f64's range.
        let body = Bytes::from_static(b"\n[2E424]");
        let d = parse_delivery(&body, at()).unwrap();
        assert!(
            d.records[0].raw.ends_with(br#""record":2E424}"#),
            "kept exactly, wrapped"
        );
        assert_eq!(d.malformed_elements, 1, "not a record, but kept");
    }

    #[test]
    fn layout_finds_the_type_and_the_record_value_whatever_the_layout() {
        let at = |text: &'static str| {
            let (t, range) = layout(text).unwrap();
            (t.into_owned(), &text[range])
        };
        let line = r#"{"time":"t","type":"function","record":"say \"hi\"\n"}"#;
        assert_eq!(at(line), ("function".into(), r#""say \"hi\"\n""#));
        let object = r#"{"time":"t","type":"function","record":{"message":"m"}}"#;
        assert_eq!(at(object), ("function".into(), r#"{"message":"m"}"#));
        // A field after the record, or another order: serde reads it.
        let more = r#"{"time":"t","type":"extension","record":"x","extra":"y"}"#;
        assert_eq!(at(more), ("extension".into(), r#""x""#));
        let reordered = r#"{"record": "x", "type": "function", "time": "t"}"#;
        assert_eq!(at(reordered), ("function".into(), r#""x""#));
        assert!(layout(r#"{"type":"function"}"#).is_none());
    }

    #[test]
    fn record_time_is_read_as_written() {
        assert_eq!(
            record_time(br#"{"time":"2020-08-20T12:31:32.123Z","type":"function","record":"x"}"#)
                .as_deref(),
            Some("2020-08-20T12:31:32.123Z")
        );
        assert_eq!(record_time(b"42"), None);
    }

    #[test]
    fn a_body_that_is_not_an_array_is_refused() {
        for body in [
            &b"{\"a\":1}"[..],
            b"not json",
            b"[{\"type\":\"function\"}",
            b"",
        ] {
            assert!(parse_delivery(&Bytes::copy_from_slice(body), at()).is_err());
        }
        assert_eq!(
            parse_delivery(&Bytes::from_static(b"[]"), at()).unwrap(),
            Delivery::default()
        );
    }
}
