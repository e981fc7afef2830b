//! What the writer counts, for Prometheus: group commits, events, bytes, and how long each
//! COMMIT took (the durable write: PostgreSQL flushes its WAL before answering).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use runnel_core::StoreMetrics;

/// Upper bounds, in microseconds, of the commit latency histogram's buckets.
pub const COMMIT_BUCKETS_MICROS: [u64; 12] = [
    250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    commits: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
    commit_micros_total: AtomicU64,
    /// Commits per bucket of [`COMMIT_BUCKETS_MICROS`] (not cumulative), plus one for the rest.
    commit_buckets: [AtomicU64; COMMIT_BUCKETS_MICROS.len() + 1],
}

impl WriterStats {
    pub(crate) fn record_commit(&self, events: u64, bytes: u64, took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.commit_micros_total
            .fetch_add(micros, Ordering::Relaxed);
        let bucket = COMMIT_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(COMMIT_BUCKETS_MICROS.len());
        self.commit_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StoreMetrics {
        StoreMetrics {
            commits: self.commits.load(Ordering::Relaxed),
            events_written: self.events.load(Ordering::Relaxed),
            bytes_written: self.bytes.load(Ordering::Relaxed),
            sync_bucket_bounds_micros: COMMIT_BUCKETS_MICROS.to_vec(),
            sync_bucket_counts: self
                .commit_buckets
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .collect(),
            sync_micros_total: self.commit_micros_total.load(Ordering::Relaxed),
        }
    }
}
