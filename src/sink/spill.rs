//! Sealed batches on disk: written when S3 refuses them or memory is short, read back to ship, and
//! found again by the next process after a crash, a timeout reset or a re-init (`/tmp` survives
//! them all in one execution environment). Knows nothing of the actors.
//!
//! One file per batch, named after its key (percent-encoded): a JSON header line (key, record count,
//! object metadata), then exactly the object's body.
//! Writes are atomic: a temporary file, fsync, rename, so a crash leaves either the whole batch or
//! a `.tmp` file that the next start removes. The directory is bounded by `max_bytes`; a full disk
//! is an error the caller handles, never a crash.

use super::{ObjectMeta, SealedObject};
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".ndjson";
const TMP: &str = ".tmp";

/// A batch on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spilled {
    pub key: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub records: usize,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    key: String,
    records: usize,
    meta: ObjectMeta,
    /// Bytes before compression (absent in files of earlier versions: the body's size then).
    #[serde(default)]
    raw_bytes: u64,
}

/// Splits a spill file into its header and body.
fn split(file: Vec<u8>) -> Option<(Header, Bytes)> {
    let file = Bytes::from(file);
    let end = file.iter().position(|b| *b == b'\n')?;
    let header = serde_json::from_slice(&file[..end]).ok()?;
    Some((header, file.slice(end + 1..)))
}

#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error("the spill directory is full ({used} of {max} bytes used)")]
    Full { used: u64, max: u64 },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct SpillDir {
    dir: PathBuf,
    max_bytes: u64,
    used: u64,
}

/// `a/b c.log` → `a%2Fb%20c.log`: any key becomes one file name.
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

impl SpillDir {
    /// Opens (creating) `dir`, removes half-written files, and returns the batches a previous
    /// process left, oldest first.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<(Self, Vec<Spilled>)> {
        std::fs::create_dir_all(dir)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.ends_with(TMP) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if key_of(&name).is_none() {
                continue;
            }
            let meta = entry.metadata()?;
            let Some((header, body)) = split(std::fs::read(&path)?) else {
                // Not ours, or damaged beyond use: leave it for a person to look at.
                continue;
            };
            found.push((
                meta.modified().ok(),
                Spilled {
                    key: header.key,
                    path,
                    bytes: body.len() as u64,
                    records: header.records,
                },
            ));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.key.cmp(&b.1.key)));
        let found: Vec<Spilled> = found.into_iter().map(|(_, s)| s).collect();
        let used = found.iter().map(|s| s.bytes).sum();
        Ok((
            Self {
                dir: dir.to_path_buf(),
                max_bytes,
                used,
            },
            found,
        ))
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    /// Writes `obj` atomically; refuses when the directory would exceed its bound.
    pub fn write(&mut self, obj: &SealedObject) -> Result<Spilled, SpillError> {
        // The header is small; the bound is on bodies.
        let bytes = obj.body.len() as u64;
        if self.used + bytes > self.max_bytes {
            return Err(SpillError::Full {
                used: self.used,
                max: self.max_bytes,
            });
        }
        let path = self.dir.join(file_name(&obj.key));
        let tmp = path.with_extension(format!("ndjson{TMP}"));
        let io = |source| SpillError::Io {
            path: path.clone(),
            source,
        };
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            let header = Header {
                key: obj.key.clone(),
                records: obj.records,
                meta: obj.meta.clone(),
                raw_bytes: obj.raw_bytes,
            };
            serde_json::to_writer(&mut f, &header)?;
            f.write_all(b"\n")?;
            f.write_all(&obj.body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            // The rename is durable once the directory is.
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        self.used += bytes;
        Ok(Spilled {
            key: obj.key.clone(),
            path,
            bytes,
            records: obj.records,
        })
    }

    /// The object a spilled batch holds.
    pub fn read(s: &Spilled) -> std::io::Result<SealedObject> {
        let (header, body) = split(std::fs::read(&s.path)?)
            .ok_or_else(|| std::io::Error::other("a damaged spill file"))?;
        Ok(SealedObject {
            key: header.key,
            raw_bytes: if header.raw_bytes == 0 {
                body.len() as u64
            } else {
                header.raw_bytes
            },
            body,
            records: header.records,
            meta: header.meta,
        })
    }

    /// Sets a batch aside (S3 rejected it): renamed with a `.rejected` suffix, which no process
    /// recovers, for a person to look at; it no longer counts against the bound.
    pub fn set_aside(&mut self, s: &Spilled) -> std::io::Result<()> {
        let mut aside = s.path.clone().into_os_string();
        aside.push(".rejected");
        std::fs::rename(&s.path, aside)?;
        self.used = self.used.saturating_sub(s.bytes);
        Ok(())
    }

    /// Forgets a batch S3 confirmed.
    pub fn remove(&mut self, s: &Spilled) {
        if std::fs::remove_file(&s.path).is_ok() {
            self.used = self.used.saturating_sub(s.bytes);
        }
    }
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
    fn written_batches_are_found_again_by_the_next_process_and_half_written_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spill, found) = SpillDir::open(dir.path(), 1024).unwrap();
        assert!(found.is_empty());
        let a = spill
            .write(&obj("k/a.log", "{\"a\":1}\n{\"a\":2}\n"))
            .unwrap();
        spill.write(&obj("k/b.log", "{\"b\":1}\n")).unwrap();
        std::fs::write(dir.path().join("k%2Fc.ndjson.tmp"), "partial").unwrap();
        assert_eq!(spill.used(), 24);
        drop(spill);
        let (mut again, found) = SpillDir::open(dir.path(), 1024).unwrap();
        let keys: Vec<&str> = found.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys.len(), 2);
        assert!(keys.contains(&"k/a.log") && keys.contains(&"k/b.log"));
        assert!(
            !dir.path().join("k%2Fc.ndjson.tmp").exists(),
            "a half-written batch is removed"
        );
        let back =
            SpillDir::read(&found.iter().find(|s| s.key == "k/a.log").unwrap().clone()).unwrap();
        assert_eq!(&back.body[..], b"{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(back.records, 2);
        again.remove(&a);
        assert_eq!(again.used(), 8);
    }

    #[test]
    fn the_bound_refuses_instead_of_filling_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spill, _) = SpillDir::open(dir.path(), 10).unwrap();
        spill.write(&obj("a", "12345678\n")).unwrap();
        assert!(matches!(
            spill.write(&obj("b", "12\n")),
            Err(SpillError::Full { used: 9, max: 10 })
        ));
    }
}
