//! The string literals of one JSON value, found without parsing it into a tree, so that a record
//! the rules leave alone keeps its exact bytes and one they mask keeps everything but the strings
//! they changed: key order, numbers as written, spacing. Sound only for valid JSON, which every
//! record is (the delivery was parsed before).

use std::borrow::Cow;
use std::ops::Range;

/// One string literal: its bytes in the value, quotes included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Literal {
    pub range: Range<usize>,
    /// An object's key (followed by `:`), which rules never change.
    pub key: bool,
    /// How many objects and arrays enclose it: 0 for a record that is a string, 1 for a top-level
    /// member of a record that is an object.
    pub depth: u32,
}

/// Every string literal of `json`, in order.
pub(super) fn literals(json: &str) -> Vec<Literal> {
    let b = json.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0u32;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i;
                let end = crate::lambda::records::string_end(b, start).unwrap_or(b.len());
                i = end - 1;
                let key = b[end..]
                    .iter()
                    .find(|c| !c.is_ascii_whitespace())
                    .is_some_and(|c| *c == b':');
                out.push(Literal {
                    range: start..end,
                    key,
                    depth,
                });
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The text a literal stands for. Without an escape it is the bytes between the quotes.
pub(super) fn decode(literal: &str) -> Cow<'_, str> {
    let inner = &literal[1..literal.len().saturating_sub(1).max(1)];
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        return Cow::Borrowed(inner);
    }
    // Valid JSON (the delivery parsed), so this cannot fail; the raw text is the fallback.
    serde_json::from_str::<String>(literal).map_or(Cow::Borrowed(inner), Cow::Owned)
}

/// `text` as a JSON string literal.
pub(super) fn encode(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_values_at_their_depth_and_skips_what_strings_contain() {
        let json = r#"{"level":"WARN", "msg" : "a \"{quoted}\" brace [", "n":1.50,"tags":["x"]}"#;
        let found: Vec<(&str, bool, u32)> = literals(json)
            .into_iter()
            .map(|l| (&json[l.range], l.key, l.depth))
            .collect();
        assert_eq!(
            found,
            [
                (r#""level""#, true, 1),
                (r#""WARN""#, false, 1),
                (r#""msg""#, true, 1),
                (r#""a \"{quoted}\" brace [""#, false, 1),
                (r#""n""#, true, 1),
                (r#""tags""#, true, 1),
                (r#""x""#, false, 2),
            ]
        );
        let plain = r#""Hello World\n""#;
        assert_eq!(literals(plain)[0].range, 0..plain.len());
        assert_eq!(literals(plain)[0].depth, 0);
    }

    #[test]
    fn decodes_escapes_and_encodes_back_to_valid_json() {
        assert_eq!(decode(r#""plain""#), "plain");
        assert_eq!(decode(r#""tab\there \u00e9\n""#), "tab\there é\n");
        assert_eq!(encode("a \"b\"\n"), r#""a \"b\"\n""#);
        assert_eq!(decode(&encode("x\\y\u{1}")), "x\\y\u{1}");
    }
}
