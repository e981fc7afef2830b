//! The conformance suite: one `async fn` per behaviour of [`runnel_core::Store`], each taking a
//! fresh, empty [`crate::Fixture`] and panicking with a message that says what was expected
//! when the store does something else.
//!
//! The behaviours are exactly the semantics of API.md ("Names" to "Read everything") and of
//! runnel-core's doc comments, stated so that every engine can meet them: positions are only
//! required to increase strictly in commit order (an engine may leave gaps between appends),
//! while revisions must be gapless. Every test is bounded in events and in time.

mod append;
mod concurrency;
mod head;
mod idempotency;
mod limits;
mod listing;
mod payloads;
mod read_all;
mod read_stream;
pub(crate) mod support;

pub use append::*;
pub use concurrency::*;
pub use head::*;
pub use idempotency::*;
pub use limits::*;
pub use listing::*;
pub use payloads::*;
pub use read_all::*;
pub use read_stream::*;
