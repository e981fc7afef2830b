//! The state the writer thread and the readers share.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runnel_core::{Position, StoreError};
use tokio::sync::watch;

use crate::config::EngineConfig;
use crate::index::Index;
use crate::io::StorageIo;
use crate::log::reader::Location;
use crate::log::segment::Segments;

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) log_dir: PathBuf,
    pub(crate) io: Arc<dyn StorageIo>,
    pub(crate) index: Index,
    pub(crate) segments: Segments,
    pub(crate) config: EngineConfig,
    /// The last durable position: `$all` readers never read past it, and followers wake when
    /// it moves. The writer holds the sending side and moves it after each fdatasync, before it
    /// acknowledges; followers learn that the store closed when the writer stops.
    pub(crate) head: watch::Receiver<Option<Position>>,
    poison: Mutex<Option<String>>,
    pub(crate) stats: EngineStats,
    /// The first position the index does not hold yet (the indexer advances it after each
    /// index commit; the writer reads it to forget what the index now holds).
    pub(crate) indexed_next: AtomicU64,
    /// `indexed_next` again, for readers to wait on.
    indexed: watch::Sender<u64>,
    /// The first position not yet synced to the log. The writer advances it after each
    /// fdatasync and before it acknowledges the batch's appends, so every acknowledged event
    /// lies below it.
    pub(crate) synced_next: AtomicU64,
    /// Where the synced batches that the index does not hold yet start, oldest first: an
    /// `$all` read that starts there needs no index. The writer adds a batch before it moves
    /// the head; the indexer removes it after `indexed_next` has passed it.
    unindexed: Mutex<VecDeque<(Position, Location)>>,
}

impl Shared {
    pub(crate) fn new(
        log_dir: PathBuf,
        io: Arc<dyn StorageIo>,
        index: Index,
        segments: Segments,
        config: EngineConfig,
        head: watch::Receiver<Option<Position>>,
        indexed_next: Position,
    ) -> Self {
        Self {
            log_dir,
            io,
            index,
            segments,
            config,
            head,
            poison: Mutex::new(None),
            stats: EngineStats::default(),
            indexed_next: AtomicU64::new(indexed_next.0),
            indexed: watch::Sender::new(indexed_next.0),
            synced_next: AtomicU64::new(indexed_next.0),
            unindexed: Mutex::new(VecDeque::new()),
        }
    }

    /// Records where a synced batch starts, until the index holds it.
    pub(crate) fn add_unindexed(&self, first: Position, at: Location) {
        self.lock_unindexed().push_back((first, at));
    }

    fn lock_unindexed(&self) -> std::sync::MutexGuard<'_, VecDeque<(Position, Location)>> {
        self.unindexed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where the batch holding `position` starts, for a position at or below the head: from the
    /// batches not yet indexed, or from the index.
    pub(crate) fn batch_containing(&self, position: Position) -> Result<Location, StoreError> {
        loop {
            // Read before the index snapshot: the indexer publishes its progress after its
            // commit, so a snapshot begun now holds every position below this.
            let indexed = self.indexed_next.load(Ordering::Acquire);
            if position.0 < indexed {
                return match self.index.reader()?.batch_containing(position)? {
                    Some((_, at)) => Ok(at),
                    None => Err(StoreError::Index {
                        action: "reading $all".to_owned(),
                        cause: format!("no indexed batch holds position {position}"),
                    }),
                };
            }
            let found = self
                .lock_unindexed()
                .iter()
                .rev()
                .find(|(first, _)| *first <= position)
                .map(|(_, at)| *at);
            if let Some(at) = found {
                return Ok(at);
            }
            // The indexer took the batch out of the list after indexing it: the index has it.
        }
    }

    /// Records the indexer's progress, wakes the readers waiting for it, and forgets the
    /// batches the index now holds.
    pub(crate) fn publish_indexed(&self, next: Position) {
        self.indexed_next.store(next.0, Ordering::Release);
        self.indexed.send_replace(next.0);
        let mut unindexed = self.lock_unindexed();
        while let Some((first, _)) = unindexed.front()
            && *first < next
        {
            unindexed.pop_front();
        }
    }

    /// Waits until the index holds every event acknowledged before this call.
    ///
    /// Appends are acknowledged once their batch is synced to the log, while the indexer may
    /// still be putting it into the index (the log is the truth; a crash re-indexes its tail).
    /// So a read first waits for the index to catch up with what was synced when the read
    /// began: a client that was told its append succeeded always reads it back. The wait is
    /// bounded by the indexer's queue (a few batches), and it is usually none at all.
    pub(crate) async fn caught_up(&self) -> Result<(), StoreError> {
        let target = self.synced_next.load(Ordering::Acquire);
        if self.indexed_next.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        let mut indexed = self.indexed.subscribe();
        // The indexer wakes this after a failure too (see `poison`), so a reader never waits
        // for an index that will not move.
        let _ = indexed
            .wait_for(|&next| next >= target || self.is_poisoned())
            .await;
        self.check_poison()
    }

    fn is_poisoned(&self) -> bool {
        self.poison
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    pub(crate) fn head(&self) -> Option<Position> {
        *self.head.borrow()
    }

    /// Stops all further writes: after a failed write or sync the file's state is unknown (a
    /// failed fsync may have dropped the dirty pages), so carrying on could acknowledge data that
    /// is not on disk. Restarting recovers from what is.
    pub(crate) fn poison(&self, cause: &StoreError) {
        let mut poison = self
            .poison
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if poison.is_none() {
            tracing::error!(error = %cause, "the store stops writing after an I/O failure");
            *poison = Some(cause.to_string());
        }
        drop(poison);
        // Readers waiting for the index re-check and see the failure.
        self.indexed.send_modify(|_| {});
    }

    pub(crate) fn check_poison(&self) -> Result<(), StoreError> {
        let poison = self
            .poison
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*poison {
            Some(cause) => Err(StoreError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Upper bounds, in microseconds, of the fsync latency histogram's buckets.
pub const FSYNC_BUCKETS_MICROS: [u64; 12] = [
    50, 100, 200, 300, 500, 750, 1_000, 2_000, 5_000, 10_000, 50_000, 250_000,
];

/// Counters the writer keeps, for metrics. Cheap to update: relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct EngineStats {
    batches: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
    fsync_micros_total: AtomicU64,
    /// Cumulative counts per bucket of [`FSYNC_BUCKETS_MICROS`], plus one for larger values.
    fsync_buckets: [AtomicU64; FSYNC_BUCKETS_MICROS.len() + 1],
}

impl EngineStats {
    pub(crate) fn record_batch(&self, events: u64, bytes: u64, fsync: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let micros = fsync.as_micros() as u64;
        self.fsync_micros_total.fetch_add(micros, Ordering::Relaxed);
        let bucket = FSYNC_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(FSYNC_BUCKETS_MICROS.len());
        self.fsync_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            batches: self.batches.load(Ordering::Relaxed),
            events_written: self.events.load(Ordering::Relaxed),
            bytes_written: self.bytes.load(Ordering::Relaxed),
            fsync_micros_total: self.fsync_micros_total.load(Ordering::Relaxed),
            fsync_buckets: std::array::from_fn(|i| self.fsync_buckets[i].load(Ordering::Relaxed)),
        }
    }
}

/// A point-in-time copy of the writer's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Group commits: one write and one fdatasync each.
    pub batches: u64,
    pub events_written: u64,
    /// Bytes written to the log, framing included.
    pub bytes_written: u64,
    pub fsync_micros_total: u64,
    /// Fsyncs per latency bucket (not cumulative): bucket `i` counts those at most
    /// `FSYNC_BUCKETS_MICROS[i]`, the last one the rest.
    pub fsync_buckets: [u64; FSYNC_BUCKETS_MICROS.len() + 1],
}
