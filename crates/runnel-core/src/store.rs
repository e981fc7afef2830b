//! The store trait: everything above it (server, broker) is written against this and never
//! knows which engine runs underneath.

use std::fmt;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::append::{AppendLimits, AppendOutcome, AppendRequest};
use crate::error::StoreError;
use crate::names::{StreamId, StreamName, StreamType};
use crate::numbers::{Position, Revision};
use crate::read::{AllFilter, AllSlice, Direction, Page, StreamInfo, StreamSlice, StreamTypeInfo};

#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Appends atomically, acknowledging only once the events are durable.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// Appends to a system stream (`$audit`, `$keys`, …): the server's own records, which
    /// clients can never write. Same guarantees as [`Store::append`]; anything else than a
    /// system stream is refused with [`StoreError::NotASystemStream`].
    async fn append_system(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// Up to `limit` events of `stream` from `from` (default: the first revision forward, the
    /// last backward). [`StoreError::StreamNotFound`] when the stream has no events.
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Revision>,
        direction: Direction,
        limit: usize,
    ) -> Result<StreamSlice, StoreError>;

    /// [`StoreError::StreamNotFound`] when the stream has no events.
    async fn stream_info(&self, stream: &StreamName) -> Result<StreamInfo, StoreError>;

    /// Stream types in name order, after `after`.
    async fn list_stream_types(
        &self,
        after: Option<&StreamType>,
        limit: usize,
    ) -> Result<Page<StreamTypeInfo, StreamType>, StoreError>;

    /// Streams of one type in id order, after `after`.
    async fn list_streams(
        &self,
        stream_type: &StreamType,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Page<StreamInfo, StreamId>, StoreError>;

    /// Up to `limit` matching events of `$all` from `from`, in position order. A filtered read
    /// scans a bounded number of events and says in `next` how far it got.
    async fn read_all(
        &self,
        from: Position,
        filter: &AllFilter,
        limit: usize,
    ) -> Result<AllSlice, StoreError>;

    /// How many events `$all` holds from `from` through `through`, counting no further than
    /// `cap`: how far a reader at `from` is behind a head at `through`. The default answers
    /// from the positions alone, which is exact for an engine whose positions have no gaps;
    /// an engine whose positions have gaps counts.
    async fn count_events(
        &self,
        from: Position,
        through: Position,
        cap: u64,
    ) -> Result<u64, StoreError> {
        Ok(through.0.saturating_add(1).saturating_sub(from.0).min(cap))
    }

    /// A watch of the last durable position, for any number of followers, with no per-follower
    /// buffering: the engine publishes only the new head and followers read the log themselves.
    fn watch_head(&self) -> HeadWatch;

    /// The limits every append is checked against.
    fn limits(&self) -> AppendLimits;

    /// Counters for metrics; engines that keep none report zeros.
    fn metrics(&self) -> StoreMetrics {
        StoreMetrics::default()
    }

    /// `Ok` when the store serves reads and writes; the reason otherwise.
    async fn ready(&self) -> Result<(), StoreError>;

    /// Stops accepting appends, finishes the ones queued, and syncs. Idempotent.
    async fn close(&self) -> Result<(), StoreError>;
}

/// What an engine counts about its writes, for Prometheus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreMetrics {
    /// Group commits: one durable write (an fdatasync, or a database commit) each.
    pub commits: u64,
    pub events_written: u64,
    /// Bytes written to storage, framing included.
    pub bytes_written: u64,
    /// Upper bounds, in microseconds, of the durable-write latency histogram's buckets.
    pub sync_bucket_bounds_micros: Vec<u64>,
    /// Durable writes per bucket (not cumulative); one more entry than the bounds, for the rest.
    pub sync_bucket_counts: Vec<u64>,
    pub sync_micros_total: u64,
}

/// A follower's view of the durable head.
#[derive(Debug, Clone)]
pub struct HeadWatch {
    receiver: watch::Receiver<Option<Position>>,
}

impl HeadWatch {
    pub fn new(receiver: watch::Receiver<Option<Position>>) -> Self {
        Self { receiver }
    }

    /// The last durable position now (`None`: nothing written yet).
    pub fn current(&self) -> Option<Position> {
        *self.receiver.borrow()
    }

    /// Waits until the head moves past `seen` and returns it, or `None` once the store has
    /// closed (no more events will come).
    pub async fn wait_past(&mut self, seen: Option<Position>) -> Option<Position> {
        let moved = self
            .receiver
            .wait_for(|head| match (head, seen) {
                (Some(head), Some(seen)) => *head > seen,
                (Some(_), None) => true,
                (None, _) => false,
            })
            .await;
        moved.ok().and_then(|head| *head)
    }
}
