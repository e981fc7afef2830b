//! The errors an engine reports. The server maps each variant to one problem+json `code`.

use std::path::PathBuf;

use uuid::Uuid;

use crate::append::LimitKind;
use crate::names::StreamName;
use crate::numbers::{ExpectedRevision, Revision};

/// A name that breaks the rules of API.md ("Names").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid stream type {value:?}: {reason}")]
    StreamType { value: String, reason: &'static str },
    #[error("invalid stream id {value:?}: {reason}")]
    StreamId { value: String, reason: &'static str },
    #[error("invalid stream name {value:?}: {reason}")]
    Stream { value: String, reason: &'static str },
    #[error("invalid event type {value:?}: {reason}")]
    EventType { value: String, reason: &'static str },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream} expected revision {expected} but its current revision is {}", current.map_or("none (no stream)".to_owned(), |r| r.to_string()))]
    WrongExpectedRevision {
        stream: StreamName,
        expected: ExpectedRevision,
        current: Option<Revision>,
    },

    #[error("event id {id} already exists in another stream or at another revision")]
    DuplicateEventId { id: Uuid },

    #[error("stream {stream} not found")]
    StreamNotFound { stream: StreamName },

    #[error("an append needs at least one event")]
    EmptyAppend,

    #[error("stream {stream} is a system stream; only the server writes it")]
    SystemStream { stream: StreamName },

    #[error("stream {stream} is not a system stream")]
    NotASystemStream { stream: StreamName },

    #[error("{} exceeds {limit} = {max} (got {actual})", index.map_or("the append".to_owned(), |i| format!("event {i}")))]
    LimitExceeded {
        limit: LimitKind,
        max: u64,
        actual: u64,
        /// The offending event's index in the append, for per-event limits.
        index: Option<usize>,
    },

    /// Too many appends are queued; the caller should retry later.
    #[error("the store is overloaded: {queued} appends are already queued")]
    Overloaded { queued: usize },

    /// An earlier write or sync failed, so the engine stopped writing: what it acknowledged is
    /// safe, but nothing more is accepted until it is restarted and has recovered.
    #[error("the store stopped accepting writes after an I/O failure: {cause}")]
    Poisoned { cause: String },

    #[error("the store is shutting down")]
    ShuttingDown,

    /// The storage backend cannot be reached right now (a database that is down).
    #[error("the store is unavailable: {cause}")]
    Unavailable { cause: String },

    #[error("corrupt data in {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    #[error("I/O error while {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid store configuration: {reason}")]
    InvalidConfig { reason: String },

    #[error("index error while {action}: {cause}")]
    Index { action: String, cause: String },
}

impl StoreError {
    pub fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }

    /// Whether the client caused this error (a 4xx), as opposed to the store (a 5xx).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::WrongExpectedRevision { .. }
                | Self::DuplicateEventId { .. }
                | Self::StreamNotFound { .. }
                | Self::EmptyAppend
                | Self::SystemStream { .. }
                | Self::LimitExceeded { .. }
        )
    }
}
