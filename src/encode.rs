//! Records → object body: NDJSON, one record per line, each line the exact JSON Lambda sent, every
//! line `\n`-terminated; then, optionally, gzip or zstd. Pure.

use bytes::{BufMut, Bytes, BytesMut};
use std::io::Write;

pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// How object bodies are compressed. The bytes threshold still counts uncompressed record bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// The Go sample's plain `.log` objects.
    None,
    /// gzip at a level from 1 (fastest) to 9 (smallest).
    Gzip(u32),
    /// zstd at a level from 1 to 19.
    Zstd(i32),
}

impl Compression {
    /// Appended to the default key layout's `.log`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip(_) => ".gz",
            Compression::Zstd(_) => ".zst",
        }
    }

    /// The object's `Content-Encoding`.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip(_) => Some("gzip"),
            Compression::Zstd(_) => Some("zstd"),
        }
    }
}

/// The NDJSON body of `records`; `size` is the exact size ([`crate::batch::Batch::body_bytes`]).
pub fn ndjson(records: &[Bytes], size: u64) -> Bytes {
    let mut body = BytesMut::with_capacity(size as usize);
    for r in records {
        body.put_slice(r);
        body.put_u8(b'\n');
    }
    body.freeze()
}

/// The object body of `records`, compressed as asked.
pub fn body(records: &[Bytes], size: u64, compression: Compression) -> Bytes {
    let plain = ndjson(records, size);
    // Writing into a Vec cannot fail; the results below are infallible in practice.
    match compression {
        Compression::None => plain,
        Compression::Gzip(level) => {
            let mut z = flate2::write::GzEncoder::new(
                Vec::with_capacity(plain.len() / 4),
                flate2::Compression::new(level),
            );
            let _ = z.write_all(&plain);
            Bytes::from(z.finish().unwrap_or_default())
        }
        Compression::Zstd(level) => {
            Bytes::from(zstd::bulk::compress(&plain, level).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

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

    #[test]
    fn gzip_and_zstd_bodies_decompress_to_the_exact_records() {
        let records: Vec<Bytes> = (0..200)
            .map(|i| Bytes::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(50))))
            .collect();
        let size: u64 = records.iter().map(|r| r.len() as u64 + 1).sum();
        let plain = ndjson(&records, size);
        let gz = body(&records, size, Compression::Gzip(6));
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, plain);
        let zs = body(&records, size, Compression::Zstd(3));
        assert_eq!(zstd::decode_all(&zs[..]).unwrap(), plain.to_vec());
        assert!(gz.len() < plain.len() / 4 && zs.len() < plain.len() / 4);
        assert_eq!(body(&records, size, Compression::None), plain);
    }
}
