//! A modelled spill directory: files in memory, a capacity past which a write fails with ENOSPC,
//! and injected I/O errors. Writes are atomic as [`Disk::create`] promises (the model writes the
//! whole file or nothing); a crash loses only what was never written.

use adaptive_batching_extension::spill::{Disk, Listed};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::rc::Rc;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Chance that a write, a rename or a delete fails with an I/O error.
    pub write_error: f64,
    /// Chance that a read fails.
    pub read_error: f64,
}

#[derive(Debug, Clone)]
struct State {
    /// Content, write order, and the length of the first line (a spill file's header).
    files: BTreeMap<String, (Vec<u8>, u64, usize)>,
    capacity: u64,
    seq: u64,
    faults: Faults,
    rng: adaptive_batching_extension::random::Xorshift,
}

/// Cloning shares the directory (the same environment); [`MemDisk::snapshot`] copies it.
#[derive(Debug, Clone)]
pub struct MemDisk(Rc<RefCell<State>>);

impl MemDisk {
    pub fn new(capacity: u64, faults: Faults, seed: u64) -> Self {
        Self(Rc::new(RefCell::new(State {
            files: BTreeMap::new(),
            capacity,
            seq: 0,
            faults,
            rng: adaptive_batching_extension::random::Xorshift::new(seed),
        })))
    }

    /// An independent copy (a SnapStart snapshot's disk, restored into another environment).
    pub fn snapshot(&self, seed: u64) -> Self {
        let mut s = self.0.borrow().clone();
        s.rng = adaptive_batching_extension::random::Xorshift::new(seed);
        Self(Rc::new(RefCell::new(s)))
    }

    /// Whether this operation meets an injected error (`read`: a read, else a write).
    fn fails(&self, read: bool) -> bool {
        let mut s = self.0.borrow_mut();
        let p = if read {
            s.faults.read_error
        } else {
            s.faults.write_error
        };
        p > 0.0 && s.rng.chance(p)
    }

    /// Every file: name and content.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        self.0
            .borrow()
            .files
            .iter()
            .map(|(n, (b, _, _))| (n.clone(), b.clone()))
            .collect()
    }

    /// One file's content, read past any injected fault (the checks' own look).
    pub fn raw(&self, name: &str) -> Option<Vec<u8>> {
        self.0.borrow().files.get(name).map(|(b, _, _)| b.clone())
    }

    /// The size of what follows a file's first line (a batch's body).
    pub fn body_size(&self, name: &str) -> Option<u64> {
        self.0
            .borrow()
            .files
            .get(name)
            .map(|(b, _, header)| (b.len() - header) as u64)
    }

    /// The first file name that `pred` holds for.
    pub fn find_name(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.0.borrow().files.keys().find(|n| pred(n)).cloned()
    }
}

impl Disk for MemDisk {
    fn list(&self) -> io::Result<Vec<Listed>> {
        Ok(self
            .0
            .borrow()
            .files
            .iter()
            .map(|(name, (b, seq, _))| Listed {
                name: name.clone(),
                modified: Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(*seq)),
                len: b.len() as u64,
            })
            .collect())
    }

    fn open(&self, name: &str) -> io::Result<Box<dyn BufRead + '_>> {
        if self.fails(true) {
            return Err(io::Error::other("injected read error"));
        }
        let s = self.0.borrow();
        let (b, _, _) = s
            .files
            .get(name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(Box::new(io::Cursor::new(b.clone())))
    }

    fn len(&self, name: &str) -> io::Result<u64> {
        let s = self.0.borrow();
        s.files
            .get(name)
            .map(|(b, _, _)| b.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn create(
        &self,
        name: &str,
        content: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut bytes = Vec::new();
        content(&mut bytes)?;
        if self.fails(false) {
            return Err(io::Error::other("injected write error"));
        }
        let mut s = self.0.borrow_mut();
        let used: u64 = s.files.values().map(|(b, _, _)| b.len() as u64).sum();
        // The temporary file exists beside the one it replaces until the rename.
        if used + bytes.len() as u64 > s.capacity {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"));
        }
        s.seq += 1;
        let seq = s.seq;
        let header = bytes.iter().position(|c| *c == b'\n').map_or(0, |i| i + 1);
        s.files.insert(name.to_string(), (bytes, seq, header));
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        if self.fails(false) {
            return Err(io::Error::other("injected rename error"));
        }
        let mut s = self.0.borrow_mut();
        let f = s
            .files
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.files.insert(to.to_string(), f);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        if self.fails(false) {
            return Err(io::Error::other("injected delete error"));
        }
        self.0
            .borrow_mut()
            .files
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}
