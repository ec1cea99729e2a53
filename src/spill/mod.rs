//! Sealed batches on disk: written when memory is short or an upload failed, read back to ship,
//! and found again by the next process after a crash, a timeout reset or a re-init (`/tmp`
//! survives them all in one execution environment). The format and its recovery, over a
//! [`Disk`]; what to write, merge, delete or set aside, and when, is the ship policy's decision.
//!
//! One file per batch, named after its key (percent-encoded): a JSON header line ([`Header`]), then
//! exactly the object's body. Writes are atomic (a temporary file, fsync, rename), so a crash
//! leaves the whole batch or a `.tmp` file that the next start removes.
//!
//! **What the header carries for safety.** `maybe_stored`: an upload of this key may have reached
//! S3 (a timeout, a lost answer, a 5xx), so its content must never change — it is retried with
//! these bytes and never merged. (This version's policy treats every recovered batch so, whatever
//! the flag says, since a process may die mid-upload; the flag is still written for earlier
//! versions reading the same directory after a rollback of the layer.) `absorbs`: a merged batch replaces its first part's file (same key)
//! and lists the other parts' keys; their files are deleted after it is written, and a file found
//! beside one that absorbs it (a crash in between) is a duplicate the recovery removes.

pub mod disk;

pub use disk::{Disk, FsDisk, Listed};

use crate::sealed::{BodyFile, ObjectMeta, SealedObject};
use bytes::Bytes;
use std::io::{self, BufRead, Read};

const SUFFIX: &str = ".ndjson";
/// The suffix of a batch set aside for a person (S3 rejected it, or it cannot be read).
pub const REJECTED: &str = ".rejected";

/// A spill file's first line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    pub key: String,
    pub records: usize,
    pub meta: ObjectMeta,
    /// Bytes before compression (absent in files of earlier versions: the body's size then).
    #[serde(default)]
    pub raw_bytes: u64,
    /// An upload of this key may have stored it. Files of earlier versions did not say: they
    /// may have, and are treated so.
    #[serde(default = "may_have")]
    pub maybe_stored: bool,
    /// The keys of the batches merged into this one after its first part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub absorbs: Vec<String>,
}

impl Header {
    /// The batch this header describes, with `body` (empty when it stays in its file) of
    /// `body_len` bytes.
    pub fn object(&self, body: Bytes, body_len: u64) -> SealedObject {
        SealedObject {
            key: self.key.clone(),
            // Files of earlier versions did not say: the body's size then.
            raw_bytes: if self.raw_bytes == 0 {
                body_len
            } else {
                self.raw_bytes
            },
            body,
            records: self.records,
            meta: self.meta.clone(),
        }
    }
}

fn may_have() -> bool {
    true
}

impl Header {
    /// The header of `obj`'s file.
    pub fn of(obj: &SealedObject, maybe_stored: bool, absorbs: Vec<String>) -> Self {
        Self {
            key: obj.key.clone(),
            records: obj.records,
            meta: obj.meta.clone(),
            raw_bytes: obj.raw_bytes,
            maybe_stored,
            absorbs,
        }
    }
}

/// `a/b c.log` → `a%2Fb%20c.log.ndjson`: any key becomes one file name.
pub fn file_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + SUFFIX.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(SUFFIX);
    out
}

/// The key back from a file name made by [`file_name`].
pub fn key_of(name: &str) -> Option<String> {
    let stem = name.strip_suffix(SUFFIX)?;
    let mut bytes = Vec::with_capacity(stem.len());
    let mut it = stem.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// Where a part of a batch's body comes from.
#[derive(Debug, Clone)]
pub enum Piece {
    Memory(Bytes),
    /// The body of the spill file of this key.
    FileOf(String),
}

/// Reads a file's header line; the reader is left at the body's first byte.
fn read_header(r: &mut dyn BufRead) -> io::Result<(Header, u64)> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a spill file without a header line",
        ));
    }
    let header = serde_json::from_slice(&line[..line.len() - 1])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((header, line.len() as u64))
}

/// Writes the file of `header.key`: the header, then the pieces in order, replacing the file
/// that key had (atomically). Pieces from files are copied file to file, through no more memory
/// than a buffer.
pub fn write(disk: &dyn Disk, header: &Header, pieces: &[Piece]) -> io::Result<()> {
    write_as(disk, &file_name(&header.key), header, pieces)
}

/// [`write`], under the name [`set_aside`] gives the batch's file.
pub fn write_aside(disk: &dyn Disk, header: &Header, pieces: &[Piece]) -> io::Result<()> {
    write_as(disk, &aside_name(&header.key), header, pieces)
}

fn write_as(disk: &dyn Disk, name: &str, header: &Header, pieces: &[Piece]) -> io::Result<()> {
    disk.create(name, &mut |w| {
        serde_json::to_writer(&mut *w, header)?;
        w.write_all(b"\n")?;
        for p in pieces {
            match p {
                Piece::Memory(b) => w.write_all(b)?,
                Piece::FileOf(key) => {
                    let mut r = disk.open(&file_name(key))?;
                    read_header(&mut r)?;
                    io::copy(&mut r, w)?;
                }
            }
        }
        Ok(())
    })
}

/// Where the body of the file of `key` lies in it, with its CRC32s (whole, and per part of
/// `part_size` bytes), read through a 64 KiB buffer: an upload streams the body from the file
/// and never holds it in memory. `path` is the file's path (the disk's business).
pub fn locate(
    disk: &dyn Disk,
    key: &str,
    path: std::path::PathBuf,
    part_size: u64,
) -> io::Result<(Header, BodyFile)> {
    let name = file_name(key);
    let len = disk.len(&name)?;
    let mut r = disk.open(&name)?;
    let (header, header_len) = read_header(&mut r)?;
    let body_len = len.saturating_sub(header_len);
    let (mut whole, mut part) = (crc32fast::Hasher::new(), crc32fast::Hasher::new());
    let (mut part_crc32, mut in_part, mut seen) = (Vec::new(), 0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let mut chunk = &buf[..n];
        seen += n as u64;
        whole.update(chunk);
        while !chunk.is_empty() {
            let take = chunk.len().min((part_size - in_part) as usize);
            part.update(&chunk[..take]);
            in_part += take as u64;
            chunk = &chunk[take..];
            if in_part == part_size {
                part_crc32.push(std::mem::take(&mut part).finalize());
                in_part = 0;
            }
        }
    }
    if seen != body_len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "a spill file changed while it was read",
        ));
    }
    if in_part > 0 {
        part_crc32.push(part.finalize());
    }
    Ok((
        header,
        BodyFile {
            path,
            offset: header_len,
            len: body_len,
            crc32: whole.finalize(),
            part_size,
            part_crc32,
        },
    ))
}

/// The batch the file of `key` holds, its body read into memory. Uploads do not use it (they
/// stream the file: [`locate`]); the ship path's simulation reads what its S3 model stores.
pub fn read(disk: &dyn Disk, key: &str) -> io::Result<(Header, SealedObject)> {
    let name = file_name(key);
    let len = disk.len(&name)?;
    let mut r = disk.open(&name)?;
    let (header, header_len) = read_header(&mut r)?;
    // Sized exactly: a body grown by doubling would keep up to twice its size in memory.
    let mut body = Vec::with_capacity(len.saturating_sub(header_len) as usize);
    r.read_to_end(&mut body)?;
    let len = body.len() as u64;
    let obj = header.object(Bytes::from(body), len);
    Ok((header, obj))
}

pub fn remove(disk: &dyn Disk, key: &str) -> io::Result<()> {
    disk.remove(&file_name(key))
}

/// Renames the file of `key` with a [`REJECTED`] suffix: no process recovers it, a person can
/// read it.
pub fn set_aside(disk: &dyn Disk, key: &str) -> io::Result<()> {
    disk.rename(&file_name(key), &aside_name(key))
}

/// The name [`set_aside`] gives the file of `key`.
pub fn aside_name(key: &str) -> String {
    format!("{}{REJECTED}", file_name(key))
}

/// A batch a previous process left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub key: String,
    pub records: usize,
    /// Bytes of its body.
    pub bytes: u64,
    pub raw_bytes: u64,
    pub meta: ObjectMeta,
    pub maybe_stored: bool,
}

/// What [`recover`] found and did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Batches to ship, oldest first.
    pub batches: Vec<Recovered>,
    /// Half-written files removed.
    pub removed_partial: usize,
    /// Parts of a merge found beside the merged batch, removed (their records are in it).
    pub removed_absorbed: usize,
    /// Files with our name whose header cannot be read: left for a person.
    pub unreadable: Vec<String>,
    /// Their bytes: they take room of the bound (a read that failed once may work for the next
    /// process, which then holds them).
    pub unreadable_bytes: u64,
}

/// A spill directory opened at start: the disk, its bound, and what a previous process left.
pub struct SpillDir {
    pub disk: FsDisk,
    /// Bytes of batch bodies it may hold.
    pub max_bytes: u64,
    pub recovery: Recovery,
}

impl SpillDir {
    /// Opens (creating) `dir` and recovers what is there ([`recover`]).
    pub fn open(dir: &std::path::Path, max_bytes: u64, all_maybe_stored: bool) -> io::Result<Self> {
        let disk = FsDisk::open(dir)?;
        let recovery = recover(&disk, all_maybe_stored)?;
        Ok(Self {
            disk,
            max_bytes,
            recovery,
        })
    }
}

/// Finds what a previous process left: removes half-written files and parts a merge absorbed,
/// and returns the batches oldest first. `all_maybe_stored`: treat every batch as possibly in S3
/// already (a SnapStart environment: any file may come from the snapshot, which every restored
/// copy shares with its key).
pub fn recover(disk: &dyn Disk, all_maybe_stored: bool) -> io::Result<Recovery> {
    let mut out = Recovery::default();
    let mut found = Vec::new();
    for f in disk.list()? {
        if f.name.ends_with(disk::TMP) {
            if disk.remove(&f.name).is_ok() {
                out.removed_partial += 1;
            }
            continue;
        }
        if key_of(&f.name).is_none() {
            continue;
        }
        let header = disk.open(&f.name).and_then(|mut r| read_header(&mut r));
        match header {
            Ok((h, header_len)) => found.push((f.modified, f.len.saturating_sub(header_len), h)),
            Err(_) => {
                out.unreadable_bytes += f.len;
                out.unreadable.push(f.name);
            }
        }
    }
    let absorbed: std::collections::HashSet<String> = found
        .iter()
        .flat_map(|(_, _, h)| h.absorbs.iter().cloned())
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.key.cmp(&b.2.key)));
    for (_, bytes, h) in found {
        if absorbed.contains(&h.key) {
            if remove(disk, &h.key).is_ok() {
                out.removed_absorbed += 1;
            }
            continue;
        }
        out.batches.push(Recovered {
            key: h.key,
            records: h.records,
            bytes,
            raw_bytes: if h.raw_bytes == 0 { bytes } else { h.raw_bytes },
            meta: h.meta,
            maybe_stored: h.maybe_stored || all_maybe_stored,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, body: &'static str) -> SealedObject {
        SealedObject {
            key: key.into(),
            raw_bytes: body.len() as u64,
            body: Bytes::from_static(body.as_bytes()),
            records: body.matches('\n').count(),
            meta: ObjectMeta::default(),
        }
    }

    fn spill(disk: &dyn Disk, o: &SealedObject, maybe_stored: bool) {
        write(
            disk,
            &Header::of(o, maybe_stored, vec![]),
            &[Piece::Memory(o.body.clone())],
        )
        .unwrap();
    }

    fn disk() -> (tempfile::TempDir, FsDisk) {
        let dir = tempfile::tempdir().unwrap();
        let d = FsDisk::open(dir.path()).unwrap();
        (dir, d)
    }

    #[test]
    fn keys_round_trip_through_file_names() {
        for key in [
            "2026-11-27-abc/fn-1-uuid.log",
            "logs/function=x/dt=2026-01-01/a b%.ndjson.gz",
        ] {
            let name = file_name(key);
            assert!(!name.contains('/'));
            assert_eq!(key_of(&name).as_deref(), Some(key));
        }
        assert_eq!(key_of("stray.txt"), None);
    }

    #[test]
    fn written_batches_are_found_again_with_what_may_be_stored_and_partial_files_go() {
        let (dir, d) = disk();
        spill(&d, &obj("k/a.log", "{\"a\":1}\n{\"a\":2}\n"), false);
        spill(&d, &obj("k/b.log", "{\"b\":1}\n"), true);
        std::fs::write(dir.path().join("k%2Fc.log.ndjson.tmp"), "partial").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not ours").unwrap();
        let r = recover(&d, false).unwrap();
        assert_eq!(r.removed_partial, 1);
        let mut got: Vec<(String, usize, u64, bool)> = r
            .batches
            .iter()
            .map(|b| (b.key.clone(), b.records, b.bytes, b.maybe_stored))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("k/a.log".into(), 2, 16, false),
                ("k/b.log".into(), 1, 8, true)
            ]
        );
        assert!(!dir.path().join("k%2Fc.log.ndjson.tmp").exists());
        let (h, back) = read(&d, "k/a.log").unwrap();
        assert_eq!(&back.body[..], b"{\"a\":1}\n{\"a\":2}\n");
        assert_eq!((back.records, h.maybe_stored), (2, false));
        // In a SnapStart environment every file may come from the snapshot.
        assert!(
            recover(&d, true)
                .unwrap()
                .batches
                .iter()
                .all(|b| b.maybe_stored)
        );
    }

    #[test]
    fn a_file_of_an_earlier_version_may_have_been_stored() {
        let h: Header = serde_json::from_str(
            r#"{"key":"k","records":1,"meta":{"content_encoding":null,"first_record_time":null,"last_record_time":null}}"#,
        )
        .unwrap();
        assert!(h.maybe_stored);
        assert!(h.absorbs.is_empty());
    }

    #[test]
    fn a_merge_replaces_its_first_part_and_recovery_removes_parts_it_absorbed() {
        let (_dir, d) = disk();
        let (a, b, c) = (obj("a", "1\n"), obj("b", "2\n"), obj("c", "3\n"));
        spill(&d, &a, false);
        spill(&d, &b, false);
        // `c` is in memory only; `a` and `b` on disk.
        let merged = SealedObject::concat(vec![a.clone(), b.clone(), c.clone()]).unwrap();
        write(
            &d,
            &Header::of(&merged, false, vec!["b".into(), "c".into()]),
            &[
                Piece::FileOf("a".into()),
                Piece::FileOf("b".into()),
                Piece::Memory(c.body.clone()),
            ],
        )
        .unwrap();
        let (_, back) = read(&d, "a").unwrap();
        assert_eq!((&back.body[..], back.records), (&b"1\n2\n3\n"[..], 3));
        // A crash before `b`'s file was deleted: the recovery removes it, its records are in `a`.
        let r = recover(&d, false).unwrap();
        assert_eq!(r.removed_absorbed, 1);
        let keys: Vec<&str> = r.batches.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, vec!["a"]);
        assert!(read(&d, "b").is_err());
    }

    #[test]
    fn a_set_aside_batch_is_not_recovered_and_a_damaged_header_is_left_alone() {
        let (dir, d) = disk();
        spill(&d, &obj("a", "1\n"), false);
        set_aside(&d, "a").unwrap();
        std::fs::write(dir.path().join(file_name("b")), "not json\n1\n").unwrap();
        let r = recover(&d, false).unwrap();
        assert!(r.batches.is_empty());
        assert_eq!(r.unreadable, vec![file_name("b")]);
        assert!(
            dir.path()
                .join(format!("{}{REJECTED}", file_name("a")))
                .exists()
        );
    }
}
