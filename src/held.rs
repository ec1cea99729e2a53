//! What the shipper holds for each batch the ship policy owns — its key and counts, its body in
//! memory, whether it has a spill file — and the work each of the policy's disk actions needs, as
//! jobs: prepared here (on the actor's thread), run over a [`Disk`] (on the blocking pool, or
//! inline in the simulation), and applied back here when done. No decision is taken here: the
//! policy said what to do; this module only knows how.

use crate::sealed::{BodyFile, SealedObject};
use crate::ship_policy::{BatchId, Event};
use crate::spill::{self, Disk, FsDisk, Header, Piece};
use bytes::Bytes;
use std::collections::HashMap;

/// One held batch.
#[derive(Debug, Clone)]
pub struct Held {
    /// The batch, its body empty when it is held on disk only.
    pub object: SealedObject,
    pub in_memory: bool,
    pub on_disk: bool,
    /// Keys of batches merged into this one whose files may still exist (written in its header).
    pub absorbs: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub struct HeldStore {
    held: HashMap<BatchId, Held>,
}

/// How an upload gets its batch.
#[derive(Debug, Clone)]
pub enum Source {
    Memory(SealedObject),
    /// Read it back from the file of this key.
    Disk(String),
}

impl Source {
    /// The batch itself, its body read back into memory (blocking I/O). The shell uploads with
    /// [`Source::locate`] instead; the ship path's simulation reads bodies with this.
    pub fn load(self, disk: Option<&dyn Disk>) -> std::io::Result<SealedObject> {
        match (self, disk) {
            (Source::Memory(o), _) => Ok(o),
            (Source::Disk(key), Some(d)) => spill::read(d, &key).map(|(_, o)| o),
            (Source::Disk(_), None) => Err(std::io::Error::other("no spill directory")),
        }
    }

    /// What an upload sends, without reading a spilled body into memory: the batch itself, or its
    /// metadata (an empty body) and where its body lies in its file, which the upload streams
    /// (blocking I/O: the file is read once, for its CRC32s).
    pub fn locate(
        self,
        disk: Option<&FsDisk>,
        part_size: u64,
    ) -> std::io::Result<(SealedObject, Option<BodyFile>)> {
        match (self, disk) {
            (Source::Memory(o), _) => Ok((o, None)),
            (Source::Disk(key), Some(d)) => {
                let path = d.path(&spill::file_name(&key));
                let (header, file) = spill::locate(d, &key, path, part_size)?;
                Ok((header.object(Bytes::new(), file.len), Some(file)))
            }
            (Source::Disk(_), None) => Err(std::io::Error::other("no spill directory")),
        }
    }
}

/// A disk action's work, detached from the store so it can run elsewhere.
#[derive(Debug, Clone)]
pub enum Job {
    Spill {
        id: BatchId,
        header: Header,
        body: Bytes,
    },
    Merge {
        into: BatchId,
        from: Vec<BatchId>,
        /// The merged batch's metadata (its body is what the pieces make).
        merged: SealedObject,
        pieces: Vec<Piece>,
        /// Its header, when it is written to disk; else it is made in memory.
        header: Option<Header>,
    },
    Delete {
        id: BatchId,
        key: String,
    },
    SetAside {
        id: BatchId,
        key: String,
        /// The batch, when it has no file yet (it is written aside).
        write: Option<(Header, Bytes)>,
    },
}

/// What a job came to.
#[derive(Debug)]
pub enum Done {
    Spilled {
        id: BatchId,
        result: std::io::Result<()>,
    },
    Merged {
        into: BatchId,
        from: Vec<BatchId>,
        // Boxed: the merged batch's metadata dwarfs the other outcomes.
        merged: Box<SealedObject>,
        /// The body made in memory, or `None` when written to disk.
        result: std::io::Result<Option<Bytes>>,
        absorbs: Vec<String>,
    },
    Deleted {
        id: BatchId,
        result: std::io::Result<()>,
    },
    SetAside {
        id: BatchId,
        key: String,
        result: std::io::Result<()>,
    },
}

impl Job {
    /// The policy's event for this job had it failed (it could not run at all).
    pub fn failed(&self) -> Option<Event> {
        match self {
            Job::Spill { id, .. } => Some(Event::Spilled { id: *id, ok: false }),
            Job::Merge { into, .. } => Some(Event::Merged {
                into: *into,
                ok: false,
            }),
            Job::Delete { id, .. } => Some(Event::Deleted { id: *id, ok: false }),
            Job::SetAside { id, .. } => Some(Event::SetAsideDone { id: *id, ok: false }),
        }
    }

    /// Does the work: blocking I/O on `disk` (none: every job that needs it fails).
    pub fn run(self, disk: Option<&dyn Disk>) -> Done {
        let no_disk = || std::io::Error::other("no spill directory");
        match self {
            Job::Spill { id, header, body } => Done::Spilled {
                id,
                result: disk.map_or_else(
                    || Err(no_disk()),
                    |d| spill::write(d, &header, &[Piece::Memory(body)]),
                ),
            },
            Job::Merge {
                into,
                from,
                merged,
                pieces,
                header,
            } => {
                let absorbs = header
                    .as_ref()
                    .map(|h| h.absorbs.clone())
                    .unwrap_or_default();
                let result = match header {
                    Some(h) => disk
                        .map_or_else(|| Err(no_disk()), |d| spill::write(d, &h, &pieces))
                        .map(|()| None),
                    None => concat(&pieces).map(Some),
                };
                Done::Merged {
                    into,
                    from,
                    merged: Box::new(merged),
                    result,
                    absorbs,
                }
            }
            Job::Delete { id, key } => Done::Deleted {
                id,
                result: disk.map_or_else(|| Err(no_disk()), |d| spill::remove(d, &key)),
            },
            Job::SetAside { id, key, write } => Done::SetAside {
                id,
                key: key.clone(),
                result: disk.map_or_else(
                    || Err(no_disk()),
                    // Written straight under its aside name: a file written and then not
                    // renamed would be shipped by the next process (seed 56368).
                    |d| match write {
                        Some((h, body)) => spill::write_aside(d, &h, &[Piece::Memory(body)]),
                        None => spill::set_aside(d, &key),
                    },
                ),
            },
        }
    }
}

/// A body made of pieces in memory (an in-memory merge has no piece on disk).
fn concat(pieces: &[Piece]) -> std::io::Result<Bytes> {
    let size = pieces
        .iter()
        .map(|p| match p {
            Piece::Memory(b) => b.len(),
            Piece::FileOf(_) => 0,
        })
        .sum();
    let mut out = bytes::BytesMut::with_capacity(size);
    for p in pieces {
        match p {
            Piece::Memory(b) => out.extend_from_slice(b),
            Piece::FileOf(_) => {
                return Err(std::io::Error::other(
                    "an in-memory merge of a part on disk",
                ));
            }
        }
    }
    Ok(out.freeze())
}

impl HeldStore {
    pub fn get(&self, id: BatchId) -> Option<&Held> {
        self.held.get(&id)
    }

    /// Bytes of bodies held in memory.
    pub fn memory(&self) -> u64 {
        self.held
            .values()
            .filter(|h| h.in_memory)
            .map(|h| h.object.body.len() as u64)
            .sum()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &BatchId> {
        self.held.keys()
    }

    /// A batch sealed by this process, held in memory; the policy's event for it.
    pub fn sealed(&mut self, id: BatchId, object: SealedObject) -> Event {
        let (records, bytes) = (object.records, object.body.len() as u64);
        self.held.insert(
            id,
            Held {
                object,
                in_memory: true,
                on_disk: false,
                absorbs: Vec::new(),
            },
        );
        Event::Sealed { id, records, bytes }
    }

    /// A batch a previous process left on disk; the policy's event for it.
    pub fn recovered(&mut self, id: BatchId, r: &spill::Recovered) -> Event {
        self.held.insert(
            id,
            Held {
                object: SealedObject {
                    key: r.key.clone(),
                    body: Bytes::new(),
                    records: r.records,
                    raw_bytes: r.raw_bytes,
                    meta: r.meta.clone(),
                },
                in_memory: false,
                on_disk: true,
                absorbs: Vec::new(),
            },
        );
        Event::Recovered {
            id,
            records: r.records,
            bytes: r.bytes,
        }
    }

    /// Where an upload of `id` gets its batch.
    pub fn source(&self, id: BatchId) -> Option<Source> {
        let h = self.held.get(&id)?;
        Some(if h.in_memory {
            Source::Memory(h.object.clone())
        } else {
            Source::Disk(h.object.key.clone())
        })
    }

    /// The work of [`crate::ship_policy::Action::Spill`].
    pub fn spill(&self, id: BatchId, maybe_stored: bool) -> Option<Job> {
        let h = self.held.get(&id).filter(|h| h.in_memory)?;
        Some(Job::Spill {
            id,
            header: Header::of(&h.object, maybe_stored, h.absorbs.clone()),
            body: h.object.body.clone(),
        })
    }

    /// The work of [`crate::ship_policy::Action::Merge`].
    pub fn merge(&self, into: BatchId, from: Vec<BatchId>, to_disk: bool) -> Option<Job> {
        let parts: Vec<&Held> = std::iter::once(&into)
            .chain(&from)
            .map(|id| self.held.get(id))
            .collect::<Option<_>>()?;
        let mut merged = parts[0].object.clone();
        merged.body = Bytes::new();
        let mut absorbs = parts[0].absorbs.clone();
        let mut pieces = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            pieces.push(if p.in_memory {
                Piece::Memory(p.object.body.clone())
            } else {
                Piece::FileOf(p.object.key.clone())
            });
            if i > 0 {
                merged.records += p.object.records;
                merged.raw_bytes += p.object.raw_bytes;
                merged.meta.followed_by(&p.object.meta);
                absorbs.push(p.object.key.clone());
            }
        }
        let header = to_disk.then(|| Header::of(&merged, false, absorbs));
        Some(Job::Merge {
            into,
            from,
            merged,
            pieces,
            header,
        })
    }

    /// The work of [`crate::ship_policy::Action::Delete`].
    pub fn delete(&self, id: BatchId) -> Option<Job> {
        let h = self.held.get(&id)?;
        Some(Job::Delete {
            id,
            key: h.object.key.clone(),
        })
    }

    /// The work of [`crate::ship_policy::Action::SetAside`]; the batch is forgotten here.
    pub fn set_aside(&mut self, id: BatchId) -> Option<Job> {
        let h = self.held.remove(&id)?;
        let write = (!h.on_disk).then(|| {
            (
                Header::of(&h.object, true, h.absorbs.clone()),
                h.object.body.clone(),
            )
        });
        Some(Job::SetAside {
            id,
            key: h.object.key,
            write,
        })
    }

    /// Drops everything held for `id` (forgotten or refused); what it was.
    pub fn forget(&mut self, id: BatchId) -> Option<Held> {
        self.held.remove(&id)
    }

    /// Applies a job's outcome; the policy's event for it, if it has one.
    pub fn apply(&mut self, done: Done) -> Option<Event> {
        match done {
            Done::Spilled { id, result } => {
                let ok = result.is_ok();
                if ok && let Some(h) = self.held.get_mut(&id) {
                    h.on_disk = true;
                    h.in_memory = false;
                    h.object.body = Bytes::new();
                }
                Some(Event::Spilled { id, ok })
            }
            Done::Merged {
                into,
                from,
                merged,
                result,
                absorbs,
            } => {
                let ok = result.is_ok();
                if let Ok(body) = result {
                    for id in &from {
                        if let Some(h) = self.held.get_mut(id) {
                            h.in_memory = false;
                            h.object.body = Bytes::new();
                        }
                    }
                    if let Some(h) = self.held.get_mut(&into) {
                        h.object = *merged;
                        match body {
                            Some(b) => {
                                h.object.body = b;
                                h.in_memory = true;
                            }
                            None => {
                                h.in_memory = false;
                                h.on_disk = true;
                                h.absorbs = absorbs;
                            }
                        }
                    }
                }
                Some(Event::Merged { into, ok })
            }
            Done::Deleted { id, result } => {
                let ok = result.is_ok()
                    || result
                        .as_ref()
                        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
                if ok && let Some(h) = self.held.get_mut(&id) {
                    h.on_disk = false;
                }
                Some(Event::Deleted { id, ok })
            }
            Done::SetAside { id, result, .. } => Some(Event::SetAsideDone {
                id,
                ok: result.is_ok(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
