//! The held store's jobs over a disk that fails where a real one can.

use super::*;
use crate::sealed::ObjectMeta;
use std::io;

/// A directory whose renames fail (EIO, a full or read-only /tmp on a rename's directory sync).
struct NoRenames(FsDisk);

impl Disk for NoRenames {
    fn list(&self) -> io::Result<Vec<spill::Listed>> {
        self.0.list()
    }
    fn open(&self, name: &str) -> io::Result<Box<dyn io::BufRead + '_>> {
        self.0.open(name)
    }
    fn len(&self, name: &str) -> io::Result<u64> {
        self.0.len(name)
    }
    fn create(
        &self,
        name: &str,
        content: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
    ) -> io::Result<()> {
        self.0.create(name, content)
    }
    fn rename(&self, _: &str, _: &str) -> io::Result<()> {
        Err(io::Error::other("rename fails"))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.0.remove(name)
    }
}

/// A batch in memory is written aside under its aside name at once. (Before: written as a spill
/// file, then renamed; when the rename failed, the next process shipped the batch counted
/// rejected here, seed 56368.)
#[test]
fn a_batch_in_memory_is_written_aside_with_no_spill_file_between() {
    let dir = tempfile::tempdir().unwrap();
    let disk = NoRenames(FsDisk::open(dir.path()).unwrap());
    let mut store = HeldStore::default();
    store.sealed(
        1,
        SealedObject {
            key: "logs/a".into(),
            body: Bytes::from_static(b"{\"r\":1}\n"),
            records: 1,
            raw_bytes: 8,
            meta: ObjectMeta::default(),
        },
    );
    let job = store.set_aside(1).expect("held");
    let event = store.apply(job.run(Some(&disk)));
    assert_eq!(event, Some(Event::SetAsideDone { id: 1, ok: true }));
    assert!(spill::recover(&disk, false).unwrap().batches.is_empty());
    let names: Vec<String> = disk.list().unwrap().into_iter().map(|f| f.name).collect();
    assert_eq!(names, vec![spill::aside_name("logs/a")]);
}
