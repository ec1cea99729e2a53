//! What the sink writes besides bodies: user metadata that any HTTP request can carry, and the
//! CRC32 checksums S3 verifies. Pure.

use crate::sealed::SealedObject;
use std::collections::HashMap;

/// The user metadata of `obj`: what it holds and who wrote it. Every value is sanitised
/// ([`header_value`]): a record's `time` is whatever the delivery said, and a value that no HTTP
/// header can carry makes the SDK refuse to build the request at all.
pub fn metadata(
    obj: &SealedObject,
    function_name: &str,
    function_version: &str,
) -> HashMap<String, String> {
    let mut m = HashMap::new();
    m.insert("record-count".to_string(), obj.records.to_string());
    if let Some(t) = &obj.meta.first_record_time {
        m.insert("first-record-time".to_string(), header_value(t));
    }
    if let Some(t) = &obj.meta.last_record_time {
        m.insert("last-record-time".to_string(), header_value(t));
    }
    m.insert("function-name".to_string(), header_value(function_name));
    m.insert(
        "function-version".to_string(),
        header_value(function_version),
    );
    m.insert(
        "extension-version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    m
}

/// The most a metadata value carries: S3 allows 2 KB of user metadata in all (API Reference,
/// PutObject), and these values are short when they are what they should be.
const MAX_VALUE: usize = 256;

/// `value` as an HTTP header value S3 stores as sent: printable US-ASCII (S3 User Guide, "Working
/// with object metadata": user-defined metadata is US-ASCII over REST), every other byte
/// percent-encoded, at most [`MAX_VALUE`] characters, no leading or trailing space.
pub fn header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.trim().bytes() {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        if out.len() >= MAX_VALUE {
            break;
        }
    }
    out
}

/// The base64 of a CRC32 (big-endian): how S3 writes `x-amz-checksum-crc32`.
pub fn crc32_value_base64(crc: u32) -> String {
    base64(&crc.to_be_bytes())
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_no_header_can_carry_are_percent_encoded_and_bounded() {
        assert_eq!(
            header_value("2026-12-04T10:00:00.000Z"),
            "2026-12-04T10:00:00.000Z"
        );
        assert_eq!(header_value("a\u{7}b\nc"), "a%07b%0Ac");
        assert_eq!(header_value("é%"), "%C3%A9%25");
        assert_eq!(header_value(" padded \t"), "padded");
        assert!(header_value(&"x".repeat(5000)).len() <= MAX_VALUE + 2);
    }

    #[test]
    fn crc32_is_written_as_s3_writes_it() {
        // RFC 4648 §10 test vectors, then the CRC32 of "hello world" (0x0d4a1185).
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            crc32_value_base64(crc32fast::hash(b"hello world")),
            "DUoRhQ=="
        );
    }
}
