//! Runnel's embedded engine: the default store, one directory on one machine.
//!
//! - The **log** (`log/`) is the source of truth: fixed-size, zero-filled segment files of
//!   checksummed frames, written by one thread in group commits (one write and one fdatasync per
//!   batch of queued appends). An append is acknowledged only after its batch is synced.
//! - The **index** (`index.redb`) maps streams, revisions, event ids and batch starts to log
//!   locations. It is derived from the log, committed without its own fsync, and brought up to
//!   date from the log at every start.
//! - **Recovery** cuts a torn tail (a batch a crash interrupted, never acknowledged) and refuses
//!   to open a log that is corrupt anywhere else, naming the file and offset.
//!
//! The byte layout is specified in `docs/storage-format.md`.

mod config;
pub mod fault;
mod index;
mod io;
mod log;
mod shared;
mod store;
mod verify;

pub use config::{EngineConfig, VerifyOnOpen};
pub use io::{OsIo, SegmentFile, StorageIo};
pub use shared::{FSYNC_BUCKETS_MICROS, StatsSnapshot};
pub use store::{EmbeddedStore, OpenReport};
pub use verify::{VerifyReport, verify};

/// Entry points for the fuzz targets (`fuzz/`); not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Runs every decoder of the log format over `bytes`, ignoring the results: the decoders
    /// must return errors for bad input, never panic.
    pub fn decode_everything(bytes: &[u8]) {
        crate::log::format::decode_everything(bytes);
    }
}
