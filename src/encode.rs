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

/// The object body of `records`, compressed as asked. Records go to the compressor through a small
/// staging buffer, never through a whole uncompressed copy of the batch: that would double the
/// memory a large batch takes while it is sealed.
pub fn body(records: &[Bytes], size: u64, compression: Compression) -> Bytes {
    // Writing into a Vec cannot fail; the results below are infallible in practice.
    match compression {
        Compression::None => ndjson(records, size),
        Compression::Gzip(level) => {
            let z = flate2::write::GzEncoder::new(
                Vec::with_capacity(size as usize / 4),
                flate2::Compression::new(level),
            );
            let z = write_lines(records, size, z).and_then(|z| z.finish());
            exact(z.unwrap_or_default())
        }
        Compression::Zstd(level) => {
            let z = zstd::stream::write::Encoder::new(Vec::with_capacity(size as usize / 4), level)
                .and_then(|mut z| {
                    // The size is known: the frame says so, and zstd sizes its tables to it.
                    z.set_pledged_src_size(Some(size))?;
                    Ok(z)
                });
            let z = z
                .and_then(|z| write_lines(records, size, z))
                .and_then(|z| z.finish());
            exact(z.unwrap_or_default())
        }
    }
}

/// A body that keeps no more memory than its length: the batch is held (and counted by its
/// length) until S3 confirms it, and a compressor's output grown by doubling can be twice that.
fn exact(mut body: Vec<u8>) -> Bytes {
    body.shrink_to_fit();
    Bytes::from(body)
}

/// Writes `records` as NDJSON lines to `w` through a staging buffer of at most 64 KiB.
fn write_lines<W: Write>(records: &[Bytes], size: u64, w: W) -> std::io::Result<W> {
    let mut staged = std::io::BufWriter::with_capacity((size as usize).min(STAGING), w);
    for r in records {
        staged.write_all(r)?;
        staged.write_all(b"\n")?;
    }
    staged.into_inner().map_err(|e| e.into_error())
}

/// The staging buffer between records and a compressor: big enough that the compressor sees large
/// writes, small next to a batch.
const STAGING: usize = 64 * 1024;

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
