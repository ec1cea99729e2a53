//! One record as a row: the columns read out of its JSON, leniently. Whatever does not have the
//! shape expected leaves its column null; the `record` column always holds the exact bytes, so
//! nothing Lambda sent is lost to a shape this reading did not foresee.

use chrono::DateTime;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The columns of one record besides `record` (the record's bytes themselves).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Row<'a> {
    /// Milliseconds since the epoch, from the record's `time`.
    pub time: Option<i64>,
    pub kind: Option<Cow<'a, str>>,
    pub request_id: Option<Cow<'a, str>>,
    pub level: Option<Cow<'a, str>>,
    pub message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Outer<'a> {
    #[serde(borrow)]
    time: Option<&'a RawValue>,
    #[serde(rename = "type", borrow)]
    kind: Option<&'a RawValue>,
    #[serde(borrow)]
    record: Option<&'a RawValue>,
}

/// The fields of an object `record`, each taken only if it is a string (a `message` that is not
/// is kept as its JSON text).
#[derive(Deserialize)]
struct Inner<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: Option<&'a RawValue>,
    #[serde(borrow)]
    level: Option<&'a RawValue>,
    #[serde(borrow)]
    message: Option<&'a RawValue>,
}

impl<'a> Row<'a> {
    pub fn of(raw: &'a [u8]) -> Self {
        let Ok(outer) = serde_json::from_slice::<Outer<'a>>(raw) else {
            return Row::default();
        };
        let mut row = Row {
            time: outer.time.and_then(string).and_then(|t| millis(&t)),
            kind: outer.kind.and_then(string),
            ..Row::default()
        };
        let Some(record) = outer.record else {
            return row;
        };
        match record.get().as_bytes().first() {
            // A text line (the function's or an extension's, in the text log format).
            Some(b'"') => {
                if let Some(text) = string(record) {
                    let literal = record.get();
                    let (request_id, level) = text_line_fields(&literal[1..literal.len() - 1]);
                    row.request_id = request_id.map(Cow::Borrowed);
                    row.level = level.map(Cow::Borrowed);
                    row.message = Some(text);
                }
            }
            Some(b'{') => {
                if let Ok(inner) = serde_json::from_str::<Inner<'a>>(record.get()) {
                    row.request_id = inner.request_id.and_then(string);
                    row.level = inner.level.and_then(string);
                    row.message = inner
                        .message
                        .map(|m| string(m).unwrap_or(Cow::Borrowed(m.get())));
                }
            }
            _ => {}
        }
        row
    }
}

/// A JSON string's value; `None` for any other value.
fn string<'a>(v: &'a RawValue) -> Option<Cow<'a, str>> {
    if !v.get().starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'a, str>>(v.get()).ok()
}

/// An RFC 3339 time (Lambda writes `2026-12-08T01:02:03.456Z`) as milliseconds since the epoch.
fn millis(t: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The request id and level of a line in the text format the Lambda runtimes write,
/// tab-separated: Node.js `time \t requestId \t LEVEL \t message`, Python
/// `[LEVEL] \t time \t requestId \t message`. Only the first three fields are looked at, and
/// only a field shaped as a request id (a UUID) or as a level word counts.
///
/// `literal` is the line as a JSON string literal's contents, escapes and all: its tabs are `\t`
/// escapes, and a request id or level word has no escape in it, so both are borrowed from the
/// record's own bytes instead of copied out of the decoded line.
fn text_line_fields(literal: &str) -> (Option<&str>, Option<&str>) {
    let (mut request_id, mut level) = (None, None);
    let fields = tab_fields(literal);
    // One field alone is a whole line, not a field of the runtimes' format.
    if fields.len() < 2 {
        return (None, None);
    }
    for field in fields {
        let word = field.trim_start_matches('[').trim_end_matches(']');
        if request_id.is_none() && is_uuid(field) {
            request_id = Some(field);
        } else if level.is_none() && LEVELS.contains(&word) {
            level = Some(word);
        }
    }
    (request_id, level)
}

/// The first three fields of a string literal's contents split at its `\t` escapes (another
/// escape, such as `\\` before a `t`, is skipped whole).
fn tab_fields(literal: &str) -> Vec<&str> {
    let b = literal.as_bytes();
    let mut fields = Vec::with_capacity(3);
    let (mut start, mut i) = (0, 0);
    while i < b.len() && fields.len() < 3 {
        match (b[i], b.get(i + 1)) {
            (b'\\', Some(b't')) => {
                fields.push(&literal[start..i]);
                i += 2;
                start = i;
            }
            (b'\\', _) => i += 2,
            _ => i += 1,
        }
    }
    if fields.len() < 3 && !fields.is_empty() {
        fields.push(&literal[start..]);
    }
    fields
}

const LEVELS: [&str; 8] = [
    "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL",
];

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8f5f7ab5-2c3e-4f1d-9a6b-0123456789ab";

    fn row(raw: &str) -> Row<'_> {
        Row::of(raw.as_bytes())
    }

    #[test]
    fn platform_records_give_their_time_type_and_request_id() {
        let raw = format!(
            r#"{{"time":"2026-12-08T01:02:03.456Z","type":"platform.report","record":{{"requestId":"{ID}","metrics":{{"durationMs":1.5}}}}}}"#
        );
        let r = row(&raw);
        assert_eq!(r.time, Some(1_796_691_723_456));
        assert_eq!(r.kind.as_deref(), Some("platform.report"));
        assert_eq!(r.request_id.as_deref(), Some(ID));
        assert_eq!((r.level, r.message), (None, None));
    }

    #[test]
    fn json_log_lines_give_their_level_and_message() {
        let raw = format!(
            r#"{{"time":"2026-12-08T01:02:03Z","type":"function","record":{{"timestamp":"x","level":"ERROR","requestId":"{ID}","message":"bad \"thing\""}}}}"#
        );
        let r = row(&raw);
        assert_eq!(r.time, Some(1_796_691_723_000));
        assert_eq!(r.level.as_deref(), Some("ERROR"));
        assert_eq!(r.request_id.as_deref(), Some(ID));
        assert_eq!(r.message.as_deref(), Some("bad \"thing\""));
        // A message that is not a string is kept as its JSON.
        let r = row(r#"{"time":"t","type":"function","record":{"message":{"a":[1,2]}}}"#);
        assert_eq!(r.message.as_deref(), Some(r#"{"a":[1,2]}"#));
        assert_eq!(r.time, None);
    }

    #[test]
    fn text_lines_of_the_runtimes_give_their_request_id_and_level() {
        let node = format!(
            r#"{{"time":"t","type":"function","record":"2026-12-08T01:02:03.456Z\t{ID}\tINFO\thello\n"}}"#
        );
        let r = row(&node);
        assert_eq!(r.request_id.as_deref(), Some(ID));
        assert_eq!(r.level.as_deref(), Some("INFO"));
        assert_eq!(
            r.message.as_deref(),
            Some(format!("2026-12-08T01:02:03.456Z\t{ID}\tINFO\thello\n").as_str())
        );
        let python = format!(
            r#"{{"time":"t","type":"function","record":"[WARNING]\t2026-12-08T01:02:03Z\t{ID}\tlow"}}"#
        );
        let r = row(&python);
        assert_eq!(
            (r.request_id.as_deref(), r.level.as_deref()),
            (Some(ID), Some("WARNING"))
        );
        // Only real tabs separate fields: an escaped backslash before a t does not.
        let escaped = format!(r#"{{"time":"t","type":"function","record":"a\\tb {ID}\\tINFO"}}"#);
        let r = row(&escaped);
        assert_eq!((r.request_id, r.level), (None, None));
        // A plain line states neither.
        let r = row(r#"{"time":"t","type":"function","record":"ERROR something broke"}"#);
        assert_eq!((r.request_id, r.level), (None, None));
        assert_eq!(r.message.as_deref(), Some("ERROR something broke"));
    }

    #[test]
    fn records_of_other_shapes_leave_their_columns_null() {
        for raw in [
            "[1,2]",
            "\"text\"",
            r#"{"time":5,"type":["x"],"record":7}"#,
            r#"{"type":"x","type":"y"}"#,
        ] {
            let r = row(raw);
            assert_eq!(
                (r.time, r.request_id, r.message),
                (None, None, None),
                "{raw}"
            );
        }
        let r = row(
            r#"{"time":"2026-12-08T01:02:03Z","type":"function","record":{"requestId":5,"level":null}}"#,
        );
        assert_eq!(r.kind.as_deref(), Some("function"));
        assert_eq!((r.request_id, r.level), (None, None));
    }
}
