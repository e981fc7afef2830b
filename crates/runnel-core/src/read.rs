//! The shapes of reads: stream slices, `$all` slices with filters, listings with paging.

use crate::event::RecordedAt;
use crate::event::RecordedEvent;
use crate::names::{EventType, StreamId, StreamName, StreamType};
use crate::numbers::{Position, Revision};

/// The largest page any read returns; larger requested limits are clamped to it.
pub const MAX_PAGE_LIMIT: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Forward,
    Backward,
}

/// A page of one stream's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSlice {
    pub events: Vec<RecordedEvent>,
    /// The revision to read from for the following page, or `None` when there is no more.
    pub next: Option<Revision>,
}

/// A page of `$all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllSlice {
    pub events: Vec<RecordedEvent>,
    /// The position to read from for the following page, or `None` when the read reached the
    /// head. With a filter it may lie past the last returned event: the scan went that far.
    pub next: Option<Position>,
    /// The last committed position when the read ran (`None`: the store is empty). A reader that
    /// got `next: None` has seen everything up to here and continues from the position after it.
    pub head: Option<Position>,
}

/// Which events of `$all` a read returns. Each non-empty list must match (any of its values).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllFilter {
    pub stream_types: Vec<StreamType>,
    pub event_types: Vec<EventType>,
    pub streams: Vec<StreamName>,
}

impl AllFilter {
    pub fn is_empty(&self) -> bool {
        self.stream_types.is_empty() && self.event_types.is_empty() && self.streams.is_empty()
    }

    pub fn matches(&self, stream: &StreamName, event_type: &EventType) -> bool {
        (self.stream_types.is_empty() || self.stream_types.contains(stream.stream_type()))
            && (self.event_types.is_empty() || self.event_types.contains(event_type))
            && (self.streams.is_empty() || self.streams.contains(stream))
    }
}

/// What the store knows about one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub stream: StreamName,
    /// The last revision.
    pub revision: Revision,
    pub created_at: RecordedAt,
    pub updated_at: RecordedAt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTypeInfo {
    pub stream_type: StreamType,
    /// How many streams of this type have at least one event.
    pub streams: u64,
}

/// One page of a listing, with the cursor for the next page (`None`: no more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

/// Listing cursors of streams are stream ids.
pub type StreamPage = Page<StreamInfo, StreamId>;
