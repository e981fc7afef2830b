//! The engine's settings, each with a bound and a unit in its name.

use runnel_core::{AppendLimits, StoreError};

use crate::log::format::{BATCH_HEADER_FRAME_LEN, SEGMENT_HEADER_LEN};

/// How much of the log `open` checks before it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyOnOpen {
    /// Every checksum of every segment: finds corruption anywhere, costs a read of the log.
    #[default]
    Full,
    /// Only what the index does not cover yet (the tail written since the last durable index
    /// commit): fast, and enough to recover from a crash.
    Tail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// The size of each segment file, preallocated with zeros.
    pub segment_bytes: u64,
    /// The most one group commit writes: the writer stops taking queued appends beyond it.
    pub max_batch_bytes: usize,
    /// Appends waiting for the writer; further appends wait for room (back-pressure).
    pub max_queued_appends: usize,
    pub limits: AppendLimits,
    /// redb's page cache.
    pub index_cache_bytes: usize,
    /// How often the index is committed durably, bounding the log that recovery re-indexes.
    pub index_durable_interval_ms: u64,
    pub verify_on_open: VerifyOnOpen,
    /// The read size of sequential scans.
    pub scan_chunk_bytes: usize,
    /// The most events a filtered `$all` read examines before it returns what it found.
    pub max_scan_events: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            max_batch_bytes: 4 * 1024 * 1024,
            max_queued_appends: 4_096,
            limits: AppendLimits::default(),
            index_cache_bytes: 64 * 1024 * 1024,
            index_durable_interval_ms: 1_000,
            verify_on_open: VerifyOnOpen::Full,
            scan_chunk_bytes: 256 * 1024,
            max_scan_events: 100_000,
        }
    }
}

/// Per-event framing beyond the event's own bytes, counting the longest names.
pub(crate) const EVENT_OVERHEAD_BYTES: usize =
    8 + 8 + 8 + 8 + 16 + 1 + 128 + 2 + 256 + 2 + 1 + 2 + 4 + 1 + 4;

impl EngineConfig {
    /// The most bytes one append can take on disk.
    pub(crate) fn max_append_frame_bytes(&self) -> usize {
        self.limits.max_append_bytes + self.limits.max_events_per_append * EVENT_OVERHEAD_BYTES
    }

    /// Rejects settings that could not work together.
    pub fn validate(&self) -> Result<(), StoreError> {
        let invalid = |reason: String| StoreError::InvalidConfig { reason };
        let largest_batch =
            self.max_batch_bytes.max(self.max_append_frame_bytes()) + BATCH_HEADER_FRAME_LEN;
        if self.segment_bytes < SEGMENT_HEADER_LEN + largest_batch as u64 {
            return Err(invalid(format!(
                "segment_bytes = {} cannot hold one batch of {largest_batch} bytes",
                self.segment_bytes
            )));
        }
        if self.max_queued_appends == 0 || self.scan_chunk_bytes < 4096 || self.max_scan_events == 0
        {
            return Err(invalid(
                "max_queued_appends and max_scan_events must be positive, scan_chunk_bytes at least 4096"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}
