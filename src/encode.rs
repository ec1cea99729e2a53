//! Records → object body: NDJSON, one record per line, each line the exact JSON Lambda sent, every
//! line `\n`-terminated, then optionally gzip or zstd; or a Parquet file ([`crate::parquet`]),
//! its pages compressed. Pure.

pub use crate::compression::Compression;
use crate::sealed::{SealedObject, Sealing};
use bytes::{BufMut, Bytes, BytesMut};
use std::io::Write;

pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// What an object is: NDJSON lines or a Parquet file (`FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Ndjson,
    Parquet,
}

impl Format {
    /// The object's `Content-Encoding`: NDJSON's compression, or none for a Parquet file, whose
    /// pages are compressed inside it (an outer layer would keep engines from reading it).
    pub fn content_encoding(self, compression: Compression) -> Option<&'static str> {
        match self {
            Format::Ndjson => compression.content_encoding(),
            Format::Parquet => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => CONTENT_TYPE,
            Format::Parquet => crate::parquet::CONTENT_TYPE,
        }
    }

    /// What the default key template ends with.
    pub fn suffix(self, compression: Compression) -> String {
        match self {
            Format::Ndjson => format!(".log{}", compression.suffix()),
            Format::Parquet => PARQUET_SUFFIX.into(),
        }
    }
}

const PARQUET_SUFFIX: &str = ".parquet";
const NDJSON_SUFFIX: &str = ".ndjson";

/// A sealed batch encoded, and why it is not in the format asked for, if it is not.
#[derive(Debug)]
pub struct Encoded {
    pub object: SealedObject,
    pub fallback: Option<crate::parquet::EncodeError>,
}

/// The object of `s`: its body in `format`. A batch Parquet cannot hold goes as plain NDJSON
/// instead, under its key with `.ndjson` in place of `.parquet` (or after it, if the template
/// ends otherwise), so it is never lost and never read as Parquet by mistake.
pub fn object(s: Sealing, format: Format, compression: Compression) -> Encoded {
    encode_object(s, format, compression, |records| {
        crate::parquet::encode(records, compression)
    })
}

/// [`object`], with the Parquet encoder given (a test makes it fail).
pub(crate) fn encode_object(
    s: Sealing,
    format: Format,
    compression: Compression,
    parquet: impl FnOnce(&[Bytes]) -> Result<Vec<u8>, crate::parquet::EncodeError>,
) -> Encoded {
    let mut object = SealedObject {
        body: Bytes::new(),
        raw_bytes: s.body_bytes,
        records: s.records.len(),
        key: s.key,
        meta: s.meta,
    };
    let fallback = match format {
        Format::Ndjson => {
            object.body = body(&s.records, s.body_bytes, compression);
            None
        }
        Format::Parquet => match parquet(&s.records) {
            Ok(file) => {
                object.body = exact(file);
                None
            }
            Err(e) => {
                object.body = ndjson(&s.records, s.body_bytes);
                let stem = object
                    .key
                    .strip_suffix(PARQUET_SUFFIX)
                    .unwrap_or(&object.key);
                object.key = format!("{stem}{NDJSON_SUFFIX}");
                object.meta.content_encoding = None;
                object.meta.content_type = Some(CONTENT_TYPE.into());
                Some(e)
            }
        },
    };
    Encoded { object, fallback }
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

    fn sealing(key: &str) -> Sealing {
        let records = vec![
            Bytes::from_static(
                br#"{"time":"2026-12-08T01:02:03Z","type":"function","record":"a"}"#,
            ),
            Bytes::from_static(b"[1]"),
        ];
        Sealing {
            key: key.into(),
            body_bytes: records.iter().map(|r| r.len() as u64 + 1).sum(),
            records,
            meta: crate::sealed::ObjectMeta {
                content_type: Some(crate::parquet::CONTENT_TYPE.into()),
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_batch_parquet_cannot_hold_goes_as_plain_ndjson_under_an_ndjson_key() {
        let refuse = |_: &[Bytes]| {
            Err(crate::parquet::EncodeError::TooLarge {
                column: "record",
                bytes: 10,
                limit: 5,
            })
        };
        let e = encode_object(
            sealing("a/b.parquet"),
            Format::Parquet,
            Compression::Zstd(3),
            refuse,
        );
        assert_eq!(e.object.key, "a/b.ndjson");
        assert_eq!(
            &e.object.body[..],
            b"{\"time\":\"2026-12-08T01:02:03Z\",\"type\":\"function\",\"record\":\"a\"}\n[1]\n"
        );
        assert_eq!(e.object.meta.content_type.as_deref(), Some(CONTENT_TYPE));
        assert_eq!(e.object.meta.content_encoding, None);
        assert_eq!((e.object.records, e.object.raw_bytes), (2, 67));
        assert_eq!(e.object.body.len(), 67);
        assert_eq!(
            e.fallback.map(|f| f.to_string()).as_deref(),
            Some("a page of column record would be 10 bytes, over Parquet's limit of 5")
        );
        // A template that does not end in .parquet gets .ndjson after its name.
        let e = encode_object(sealing("a/b"), Format::Parquet, Compression::None, refuse);
        assert_eq!(e.object.key, "a/b.ndjson");
    }

    #[test]
    fn a_parquet_batch_is_one_parquet_file_under_its_key() {
        let e = object(
            sealing("a/b.parquet"),
            Format::Parquet,
            Compression::Zstd(3),
        );
        assert!(e.fallback.is_none());
        assert_eq!(e.object.key, "a/b.parquet");
        assert!(e.object.body.starts_with(b"PAR1") && e.object.body.ends_with(b"PAR1"));
        let e = object(sealing("a/b.log"), Format::Ndjson, Compression::None);
        assert_eq!(e.object.body.len() as u64, e.object.raw_bytes);
        assert_eq!(Format::Parquet.content_encoding(Compression::Zstd(3)), None);
        assert_eq!(
            Format::Ndjson.content_encoding(Compression::Zstd(3)),
            Some("zstd")
        );
        assert_eq!(Format::Parquet.suffix(Compression::Gzip(6)), ".parquet");
        assert_eq!(Format::Ndjson.suffix(Compression::Gzip(6)), ".log.gz");
    }
}
