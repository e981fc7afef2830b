//! The log: segment files of checksummed frames.

pub(crate) mod format;
pub(crate) mod indexer;
pub(crate) mod reader;
pub(crate) mod recovery;
pub(crate) mod segment;
pub(crate) mod writer;
