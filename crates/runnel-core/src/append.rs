//! The append: a batch of events for one stream, checked against an expected revision and the
//! store's limits, written atomically.

use std::fmt;

use crate::error::StoreError;
use crate::event::ProposedEvent;
use crate::names::StreamName;
use crate::numbers::{ExpectedRevision, Position, Revision};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    pub stream: StreamName,
    pub expected: ExpectedRevision,
    pub events: Vec<ProposedEvent>,
}

/// What an acknowledged append wrote: consecutive revisions in its stream and consecutive
/// positions in `$all` (the embedded engine never interleaves two appends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stream: StreamName,
    pub first_revision: Revision,
    pub last_revision: Revision,
    pub first_position: Position,
    pub last_position: Position,
}

/// Which configured limit an append broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    EventsPerAppend,
    BytesPerEvent,
    BytesPerAppend,
}

impl LimitKind {
    /// The configuration name of the limit, as operators set it.
    pub fn name(self) -> &'static str {
        match self {
            Self::EventsPerAppend => "max_events_per_append",
            Self::BytesPerEvent => "max_event_bytes",
            Self::BytesPerAppend => "max_append_bytes",
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bounds on what one append may carry. Engines enforce them before anything is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendLimits {
    pub max_events_per_append: usize,
    pub max_event_bytes: usize,
    pub max_append_bytes: usize,
}

impl AppendLimits {
    /// The hard ceiling of an event's size: the embedded log frames a record with a 24-bit length.
    pub const CEILING_EVENT_BYTES: usize = 15 * 1024 * 1024;
}

impl Default for AppendLimits {
    fn default() -> Self {
        Self {
            max_events_per_append: 1_000,
            max_event_bytes: 1024 * 1024,
            max_append_bytes: 4 * 1024 * 1024,
        }
    }
}

impl AppendRequest {
    /// Checks the shape of the request against `limits`, before it costs the store anything.
    pub fn check(&self, limits: &AppendLimits) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        if self.stream.stream_type().is_system() {
            return Err(StoreError::SystemStream {
                stream: self.stream.clone(),
            });
        }
        self.check_limits(limits)
    }

    /// The checks of a system-stream append, which only the server makes.
    pub fn check_system(&self, limits: &AppendLimits) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Err(StoreError::EmptyAppend);
        }
        if !self.stream.stream_type().is_system() {
            return Err(StoreError::NotASystemStream {
                stream: self.stream.clone(),
            });
        }
        self.check_limits(limits)
    }

    /// The limit checks alone.
    pub fn check_limits(&self, limits: &AppendLimits) -> Result<(), StoreError> {
        if self.events.len() > limits.max_events_per_append {
            return Err(StoreError::LimitExceeded {
                limit: LimitKind::EventsPerAppend,
                max: limits.max_events_per_append as u64,
                actual: self.events.len() as u64,
                index: None,
            });
        }
        let max_event_bytes = limits
            .max_event_bytes
            .min(AppendLimits::CEILING_EVENT_BYTES);
        let mut total = 0usize;
        for (index, event) in self.events.iter().enumerate() {
            let size = event.size_bytes();
            if size > max_event_bytes {
                return Err(StoreError::LimitExceeded {
                    limit: LimitKind::BytesPerEvent,
                    max: max_event_bytes as u64,
                    actual: size as u64,
                    index: Some(index),
                });
            }
            total += size;
        }
        if total > limits.max_append_bytes {
            return Err(StoreError::LimitExceeded {
                limit: LimitKind::BytesPerAppend,
                max: limits.max_append_bytes as u64,
                actual: total as u64,
                index: None,
            });
        }
        Ok(())
    }
}
