//! Records → object body: NDJSON, one record per line, each line the exact JSON Lambda sent,
//! every line `\n`-terminated. Pure.

use bytes::{BufMut, Bytes, BytesMut};

pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// The NDJSON body of `records`; `size` is the exact size ([`crate::batch::Batch::body_bytes`]).
pub fn ndjson(records: &[Bytes], size: u64) -> Bytes {
    let mut body = BytesMut::with_capacity(size as usize);
    for r in records {
        body.put_slice(r);
        body.put_u8(b'\n');
    }
    body.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_record_newline_terminated() {
        let records = [
            Bytes::from_static(br#"{"a":1}"#),
            Bytes::from_static(br#"{"b":"x\ny"}"#),
        ];
        let body = ndjson(&records, 21);
        assert_eq!(&body[..], b"{\"a\":1}\n{\"b\":\"x\\ny\"}\n");
        assert_eq!(body.len(), 21);
        assert_eq!(ndjson(&[], 0).len(), 0);
    }
}
