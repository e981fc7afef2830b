//! The machine's limits for a data directory: how many small durable writes per second one
//! writer gets (the ceiling of any store that syncs once per event), and how fast large
//! sequential writes go (the ceiling of a store that syncs once per big batch).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::latency::Latencies;

/// The size of each durable write, as BENCHMARKS.md measured it.
pub(crate) const SYNC_WRITE_BYTES: usize = 256;

/// One writer doing small writes, each followed by fdatasync.
#[derive(Debug)]
pub(crate) struct SyncProbe {
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latencies: Latencies,
}

impl SyncProbe {
    pub(crate) fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How a probe's file is laid out before it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncFile {
    /// Zero-filled and synced first, as the engine's segments are: fdatasync then only has to
    /// flush data, not the file's size.
    Preallocated,
    /// Growing at every write, so every fdatasync also commits the new size.
    Appending,
}

/// Writes [`SYNC_WRITE_BYTES`] and fdatasyncs, in a loop, until `duration` or `max_ops`.
pub(crate) fn fdatasync_probe(
    dir: &Path,
    layout: SyncFile,
    duration: Duration,
    max_ops: u64,
) -> io::Result<SyncProbe> {
    let path = dir.join(match layout {
        SyncFile::Preallocated => "probe-fdatasync-preallocated",
        SyncFile::Appending => "probe-fdatasync-appending",
    });
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    if layout == SyncFile::Preallocated {
        zero_fill(&file, max_ops * SYNC_WRITE_BYTES as u64)?;
    }
    let record = [b'r'; SYNC_WRITE_BYTES];
    let mut latencies = Latencies::new();
    let start = Instant::now();
    let mut ops = 0u64;
    while ops < max_ops && start.elapsed() < duration {
        let began = Instant::now();
        file.write_all_at(&record, ops * SYNC_WRITE_BYTES as u64)?;
        file.sync_data()?;
        latencies.record(began.elapsed());
        ops += 1;
    }
    let elapsed = start.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(SyncProbe {
        ops,
        elapsed,
        latencies,
    })
}

fn zero_fill(file: &File, bytes: u64) -> io::Result<()> {
    let chunk = vec![0u8; 1024 * 1024];
    let mut written = 0u64;
    while written < bytes {
        let n = chunk.len().min((bytes - written) as usize);
        file.write_all_at(&chunk[..n], written)?;
        written += n as u64;
    }
    file.sync_all()
}

/// Buffered sequential writes followed by one fsync.
#[derive(Debug)]
pub(crate) struct SequentialWrite {
    pub(crate) bytes: u64,
    /// Writing into the page cache.
    pub(crate) write: Duration,
    /// The final fsync that makes it durable.
    pub(crate) sync: Duration,
}

impl SequentialWrite {
    pub(crate) fn total(&self) -> Duration {
        self.write + self.sync
    }
}

/// Writes 1 MiB chunks until `max_bytes` or `max_duration`, then fsyncs once.
pub(crate) fn sequential_write(
    dir: &Path,
    max_bytes: u64,
    max_duration: Duration,
) -> io::Result<SequentialWrite> {
    let path = dir.join("probe-sequential");
    let mut file = File::create(&path)?;
    // Not zeros, so that no layer below can make the write cheaper than real data.
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    let mut bytes = 0u64;
    while bytes < max_bytes && start.elapsed() < max_duration {
        file.write_all(&chunk)?;
        bytes += chunk.len() as u64;
    }
    let write = start.elapsed();
    let synced = Instant::now();
    file.sync_all()?;
    let sync = synced.elapsed();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(SequentialWrite { bytes, write, sync })
}

/// The device and filesystem that hold `dir`, from the longest matching mount point.
pub(crate) fn filesystem_of(dir: &Path) -> String {
    let Ok(dir) = dir.canonicalize() else {
        return "unknown".to_owned();
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return "unknown".to_owned();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?;
            let fs_type = fields.next()?;
            dir.starts_with(mount_point).then(|| {
                (
                    mount_point.len(),
                    format!("{fs_type} on {device} (mounted at {mount_point})"),
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown".to_owned(), |(_, what)| what)
}
