//! The domain's unit: a sealed batch, its key and body fixed. BatchActor makes them, the ship
//! policy's shell holds them (in memory or in a spill file), the sink writes them. Pure.

use bytes::Bytes;

/// Above this a body goes up in parts. 16 MiB: every batch at the default thresholds (4 KiB) and
/// most tuned ones take a single request, while the largest (100 MiB bytes rate) go up in 8 MiB
/// parts. The sink uploads by it; the shipper's merges stay below it.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// A batch with its key and metadata fixed, its body not yet encoded (the intake seals it, the
/// encoder makes its [`SealedObject`]).
#[derive(Debug, PartialEq)]
pub struct Sealing {
    pub key: String,
    pub records: Vec<Bytes>,
    pub body_bytes: u64,
    pub meta: ObjectMeta,
}

/// A batch ready to go: its key and body are fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedObject {
    pub key: String,
    pub body: Bytes,
    pub records: usize,
    /// Bytes of NDJSON before compression (what the bytes threshold counts).
    pub raw_bytes: u64,
    pub meta: ObjectMeta,
}

/// What an object says about itself besides its body (kept with a spilled batch too).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectMeta {
    pub content_encoding: Option<String>,
    /// `None`: NDJSON's.
    #[serde(default)]
    pub content_type: Option<String>,
    /// The `time` of the batch's first and last records, as Lambda wrote them.
    pub first_record_time: Option<String>,
    pub last_record_time: Option<String>,
}

impl ObjectMeta {
    /// The metadata of `self`'s batch followed by `next`'s: the first record's time stays, the
    /// last is `next`'s when it has one.
    pub fn followed_by(&mut self, next: &ObjectMeta) {
        if next.last_record_time.is_some() {
            self.last_record_time = next.last_record_time.clone();
        }
    }
}

/// A sealed object's body as it lies in a spill file, for an upload that streams it from there
/// instead of reading it back into memory: where it starts, how long it is, and the CRC32s S3
/// verifies (of the whole body, and of each part of `part_size` bytes if it goes up in parts),
/// computed by reading the file once through a small buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFile {
    pub path: std::path::PathBuf,
    pub offset: u64,
    pub len: u64,
    pub crc32: u32,
    pub part_size: u64,
    pub part_crc32: Vec<u32>,
}

impl SealedObject {
    /// One object of `parts`, in order, under the first one's key: bodies concatenated (NDJSON
    /// lines, gzip members and zstd frames all concatenate into a valid body), counts summed,
    /// the time span from the first's first record to the last's last. `None` without parts.
    pub fn concat(parts: Vec<SealedObject>) -> Option<SealedObject> {
        let size = parts.iter().map(|p| p.body.len()).sum();
        let mut it = parts.into_iter();
        let mut first = it.next()?;
        let mut body = bytes::BytesMut::with_capacity(size);
        body.extend_from_slice(&first.body);
        for p in it {
            body.extend_from_slice(&p.body);
            first.records += p.records;
            first.raw_bytes += p.raw_bytes;
            first.meta.followed_by(&p.meta);
        }
        first.body = body.freeze();
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, body: &[u8], first: &str, last: &str) -> SealedObject {
        SealedObject {
            key: key.into(),
            body: Bytes::copy_from_slice(body),
            records: body.iter().filter(|b| **b == b'\n').count(),
            raw_bytes: body.len() as u64,
            meta: ObjectMeta {
                content_encoding: None,
                content_type: None,
                first_record_time: Some(first.into()),
                last_record_time: Some(last.into()),
            },
        }
    }

    #[test]
    fn merged_batches_keep_the_first_key_and_span_every_record() {
        let m = SealedObject::concat(vec![
            obj("k1", b"a\nb\n", "t1", "t2"),
            obj("k2", b"c\n", "t3", "t4"),
        ])
        .unwrap();
        assert_eq!(
            (m.key.as_str(), &m.body[..], m.records, m.raw_bytes),
            ("k1", &b"a\nb\nc\n"[..], 3, 6)
        );
        assert_eq!(m.meta.first_record_time.as_deref(), Some("t1"));
        assert_eq!(m.meta.last_record_time.as_deref(), Some("t4"));
        assert!(SealedObject::concat(vec![]).is_none());
    }

    #[test]
    fn concatenated_gzip_members_and_zstd_frames_read_back_as_one_body() {
        use std::io::{Read, Write};
        let gz = |text: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(text).unwrap();
            e.finish().unwrap()
        };
        let m = SealedObject::concat(vec![
            obj("k", &gz(b"a\n"), "t", "t"),
            obj("k2", &gz(b"b\n"), "t", "t"),
        ])
        .unwrap();
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(&m.body[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "a\nb\n");
        let z = |text: &[u8]| zstd::stream::encode_all(text, 3).unwrap();
        let m = SealedObject::concat(vec![
            obj("k", &z(b"a\n"), "t", "t"),
            obj("k2", &z(b"b\n"), "t", "t"),
        ])
        .unwrap();
        assert_eq!(zstd::stream::decode_all(&m.body[..]).unwrap(), b"a\nb\n");
    }
}
