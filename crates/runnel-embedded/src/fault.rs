//! A fault-injecting, in-memory [`StorageIo`] for tests: it fails the Nth write or sync on
//! request, and it can take a *crash image*: what a machine that lost power would find on disk,
//! namely every synced byte plus a torn prefix of the writes that were not yet synced.
//!
//! It is public so that integration tests and property tests outside this crate can use it; the
//! engine never uses it by itself.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::io::{SegmentFile, StorageIo};

/// Which operations fail. Counts start at 1 and cover every file of the instance.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// Fail the Nth `write_all_at` (nothing of it is applied).
    pub fail_write: Option<u64>,
    /// Fail the Nth `sync_data` (the unsynced writes stay unsynced, as after a real EIO).
    pub fail_sync: Option<u64>,
}

#[derive(Debug, Default)]
struct Counters {
    writes: u64,
    syncs: u64,
}

#[derive(Debug, Default)]
struct Contents {
    /// What a reader sees now.
    current: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Writes since the last sync, in order.
    pending: Vec<(u64, Vec<u8>)>,
}

#[derive(Debug)]
struct MemFile {
    contents: Mutex<Contents>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    plan: Mutex<FaultPlan>,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Namespace {
    /// Names a reader sees now.
    current: BTreeMap<PathBuf, Arc<MemFile>>,
    /// Names that survive a crash (as of the last directory sync).
    durable: BTreeMap<PathBuf, Arc<MemFile>>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct FaultyIo {
    names: Mutex<Namespace>,
    shared: Arc<Shared>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a test thread must not hide the state from the assertions that follow.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn injected(what: &str, n: u64) -> io::Error {
    io::Error::other(format!("injected failure of {what} #{n}"))
}

impl FaultyIo {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_plan(&self, plan: FaultPlan) {
        *lock(&self.shared.plan) = plan;
        *lock(&self.shared.counters) = Counters::default();
    }

    /// How many writes and syncs ran since the plan was last set.
    pub fn counts(&self) -> (u64, u64) {
        let counters = lock(&self.shared.counters);
        (counters.writes, counters.syncs)
    }

    /// The file system after a power loss now: durable names, each with its synced bytes plus
    /// the first `torn_writes` unsynced writes, of which the last keeps only `torn_bytes`
    /// bytes (pick both at random to explore). The image has no faults planned.
    pub fn crash_image(&self, torn_writes: usize, torn_bytes: usize) -> FaultyIo {
        let image = FaultyIo::new();
        let names = lock(&self.names);
        let mut image_names = lock(&image.names);
        for (path, file) in &names.durable {
            let contents = lock(&file.contents);
            let mut bytes = contents.durable.clone();
            let applied = torn_writes.min(contents.pending.len());
            for (index, (offset, data)) in contents.pending.iter().take(applied).enumerate() {
                let keep = if index + 1 == applied {
                    torn_bytes.min(data.len())
                } else {
                    data.len()
                };
                apply(&mut bytes, *offset, &data[..keep]);
            }
            let copy = Arc::new(MemFile {
                contents: Mutex::new(Contents {
                    current: bytes.clone(),
                    durable: bytes,
                    pending: Vec::new(),
                }),
                shared: Arc::clone(&image.shared),
            });
            image_names.current.insert(path.clone(), Arc::clone(&copy));
            image_names.durable.insert(path.clone(), copy);
        }
        drop(image_names);
        image
    }

    /// The current bytes of `path`, for corruption tests.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let names = lock(&self.names);
        names
            .current
            .get(path)
            .map(|file| lock(&file.contents).current.clone())
    }

    /// Overwrites bytes of `path` durably, as bit rot would.
    pub fn corrupt(&self, path: &Path, offset: u64, bytes: &[u8]) -> bool {
        let names = lock(&self.names);
        let Some(file) = names.current.get(path) else {
            return false;
        };
        let mut contents = lock(&file.contents);
        apply(&mut contents.current, offset, bytes);
        apply(&mut contents.durable, offset, bytes);
        true
    }
}

fn apply(target: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if target.len() < end {
        target.resize(end, 0);
    }
    target[start..end].copy_from_slice(data);
}

impl SegmentFile for MemFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let contents = lock(&self.contents);
        let start = offset as usize;
        let Some(source) = contents.current.get(start..start + buf.len()) else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        buf.copy_from_slice(source);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let n = {
            let mut counters = lock(&self.shared.counters);
            counters.writes += 1;
            counters.writes
        };
        if lock(&self.shared.plan).fail_write == Some(n) {
            return Err(injected("write", n));
        }
        let mut contents = lock(&self.contents);
        apply(&mut contents.current, offset, buf);
        contents.pending.push((offset, buf.to_vec()));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let n = {
            let mut counters = lock(&self.shared.counters);
            counters.syncs += 1;
            counters.syncs
        };
        if lock(&self.shared.plan).fail_sync == Some(n) {
            return Err(injected("sync", n));
        }
        let mut contents = lock(&self.contents);
        contents.durable = contents.current.clone();
        contents.pending.clear();
        Ok(())
    }
}

impl StorageIo for FaultyIo {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn SegmentFile>> {
        let names = lock(&self.names);
        match names.current.get(path) {
            Some(file) => Ok(Arc::clone(file) as Arc<dyn SegmentFile>),
            None => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn create_zeroed(&self, path: &Path, len: u64) -> io::Result<Arc<dyn SegmentFile>> {
        let mut names = lock(&self.names);
        if names.current.contains_key(path) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let zeros = vec![0u8; len as usize];
        let file = Arc::new(MemFile {
            contents: Mutex::new(Contents {
                current: zeros.clone(),
                durable: zeros,
                pending: Vec::new(),
            }),
            shared: Arc::clone(&self.shared),
        });
        names.current.insert(path.to_path_buf(), Arc::clone(&file));
        Ok(file)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let names = lock(&self.names);
        Ok(names
            .current
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut names = lock(&self.names);
        let file = names
            .current
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        names.current.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut names = lock(&self.names);
        names
            .current
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut names = lock(&self.names);
        let Namespace { current, durable } = &mut *names;
        durable.retain(|path, _| path.parent() != Some(dir));
        for (path, file) in current.iter() {
            if path.parent() == Some(dir) {
                durable.insert(path.clone(), Arc::clone(file));
            }
        }
        Ok(())
    }

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
}
