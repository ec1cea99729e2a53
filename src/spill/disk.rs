//! The spill directory as the spill format sees it: list, read, write atomically, rename, remove.
//! [`FsDisk`] is the real directory; the ship path's simulation puts a model with a size limit,
//! ENOSPC and crashes in its place, so the spill format and recovery run there unchanged.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A file of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// When it was last written (the recovery order).
    pub modified: Option<SystemTime>,
    pub len: u64,
}

/// A flat directory of files. Writes are atomic: after a crash a file is either whole or absent
/// (a half-written temporary is left at worst, which the next start removes).
pub trait Disk {
    fn list(&self) -> io::Result<Vec<Listed>>;
    /// Reads `name` from its start.
    fn open(&self, name: &str) -> io::Result<Box<dyn BufRead + '_>>;
    /// The size of `name` in bytes.
    fn len(&self, name: &str) -> io::Result<u64>;
    /// Writes `name` with what `content` writes: into a temporary file, synced, then renamed over
    /// `name` (replacing it) and the directory synced. On an error nothing is replaced and the
    /// temporary is removed. `content` may read other files of the disk.
    fn create(
        &self,
        name: &str,
        content: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()>;
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
}

/// The suffix of a file being written.
pub const TMP: &str = ".tmp";

/// A real directory.
#[derive(Debug, Clone)]
pub struct FsDisk {
    dir: PathBuf,
}

impl FsDisk {
    /// The directory `dir`, created if missing.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Disk for FsDisk {
    fn list(&self) -> io::Result<Vec<Listed>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            out.push(Listed {
                name: entry.file_name().to_string_lossy().into_owned(),
                modified: meta.modified().ok(),
                len: meta.len(),
            });
        }
        Ok(out)
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn BufRead + '_>> {
        let f = std::fs::File::open(self.path(name))?;
        Ok(Box::new(io::BufReader::with_capacity(64 * 1024, f)))
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        Ok(std::fs::metadata(self.path(name))?.len())
    }

    fn create(
        &self,
        name: &str,
        content: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let tmp = self.path(&format!("{name}{TMP}"));
        let written = (|| {
            let f = std::fs::File::create(&tmp)?;
            let mut w = io::BufWriter::with_capacity(64 * 1024, f);
            content(&mut w)?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.path(name))?;
            // The rename is durable once the directory is.
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_failed_write_replaces_nothing_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let disk = FsDisk::open(dir.path()).unwrap();
        disk.create("a", &mut |w| w.write_all(b"one")).unwrap();
        let failed = disk.create("a", &mut |w| {
            w.write_all(b"two")?;
            Err(io::Error::other("the disk is full"))
        });
        assert!(failed.is_err());
        let mut back = String::new();
        disk.open("a").unwrap().read_to_string(&mut back).unwrap();
        assert_eq!(back, "one");
        let names: Vec<String> = disk.list().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, vec!["a".to_string()]);
    }
}
