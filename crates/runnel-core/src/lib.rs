//! Runnel's domain, with no I/O: the names of streams and events, the numbers that order them,
//! the shape of an append and of a read, the errors every engine reports, and the [`Store`]
//! trait that the embedded and PostgreSQL engines implement and everything above them uses.

mod append;
mod error;
mod event;
pub mod idempotency;
mod names;
mod numbers;
mod read;
mod store;

pub use append::{AppendLimits, AppendOutcome, AppendRequest, LimitKind};
pub use error::{NameError, StoreError};
pub use event::{JsonText, Payload, ProposedEvent, RecordedAt, RecordedEvent};
pub use names::{
    EventType, MAX_EVENT_TYPE_LEN, MAX_STREAM_ID_BYTES, MAX_STREAM_TYPE_LEN, StreamId, StreamName,
    StreamType,
};
pub use numbers::{ExpectedRevision, Position, Revision};
pub use read::{
    AllFilter, AllSlice, Direction, MAX_PAGE_LIMIT, Page, StreamInfo, StreamPage, StreamSlice,
    StreamTypeInfo,
};
pub use store::{HeadWatch, Store, StoreMetrics};
