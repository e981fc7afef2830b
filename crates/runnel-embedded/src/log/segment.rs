//! Segment files: fixed-size, zero-filled, named by the position of their first event
//! (`00000000000000004711.seg`), created under a temporary name and renamed into place only
//! once their header is durable, so a crash never leaves a half-made segment behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use runnel_core::{Position, RecordedAt, StoreError};

use crate::io::{SegmentFile, StorageIo};
use crate::log::format::{SEGMENT_HEADER_LEN, SegmentHeader};

const SEGMENT_SUFFIX: &str = ".seg";
const TEMPORARY_SUFFIX: &str = ".seg.tmp";
const SPARE_NAME: &str = "spare.seg.tmp";

/// One segment file, open for reading (and, for the last one, writing).
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) first_position: Position,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<dyn SegmentFile>,
    pub(crate) capacity_bytes: u64,
}

impl Segment {
    /// Creates the segment that starts at `first_position`: zero-filled, header written and
    /// synced, renamed into place, directory synced.
    pub(crate) fn create(
        io: &dyn StorageIo,
        dir: &Path,
        first_position: Position,
        capacity_bytes: u64,
    ) -> Result<Self, StoreError> {
        let path = dir.join(file_name(first_position));
        let temporary = dir.join(format!("{:020}{TEMPORARY_SUFFIX}", first_position.0));
        let file = io
            .create_zeroed(&temporary, capacity_bytes)
            .map_err(|e| StoreError::io(format!("creating segment {}", path.display()), e))?;
        Self::install(
            io,
            dir,
            &temporary,
            path,
            file,
            first_position,
            capacity_bytes,
        )
    }

    /// Zero-fills a spare segment file under a temporary name, ahead of need.
    pub(crate) fn prepare_spare(
        io: &dyn StorageIo,
        dir: &Path,
        capacity_bytes: u64,
    ) -> Result<Arc<dyn SegmentFile>, StoreError> {
        let path = dir.join(SPARE_NAME);
        // A spare left by an earlier run that stopped mid-preparation is incomplete.
        let _ = io.remove(&path);
        io.create_zeroed(&path, capacity_bytes)
            .map_err(|e| StoreError::io(format!("preparing spare segment {}", path.display()), e))
    }

    /// Turns a prepared spare into the segment that starts at `first_position`.
    pub(crate) fn install_spare(
        io: &dyn StorageIo,
        dir: &Path,
        file: Arc<dyn SegmentFile>,
        first_position: Position,
        capacity_bytes: u64,
    ) -> Result<Self, StoreError> {
        let path = dir.join(file_name(first_position));
        Self::install(
            io,
            dir,
            &dir.join(SPARE_NAME),
            path,
            file,
            first_position,
            capacity_bytes,
        )
    }

    pub(crate) fn remove_spare(io: &dyn StorageIo, dir: &Path) {
        let _ = io.remove(&dir.join(SPARE_NAME));
    }

    /// Writes the header into a zero-filled temporary file, syncs it, renames it into place and
    /// syncs the directory: a segment is either complete under its name, or absent.
    fn install(
        io: &dyn StorageIo,
        dir: &Path,
        temporary: &Path,
        path: PathBuf,
        file: Arc<dyn SegmentFile>,
        first_position: Position,
        capacity_bytes: u64,
    ) -> Result<Self, StoreError> {
        let header = SegmentHeader {
            first_position,
            capacity_bytes,
            created_at: RecordedAt::now(),
        };
        file.write_all_at(&header.encode(), 0)
            .and_then(|()| file.sync_data())
            .and_then(|()| io.rename(temporary, &path))
            .and_then(|()| io.sync_dir(dir))
            .map_err(|e| StoreError::io(format!("installing segment {}", path.display()), e))?;
        Ok(Self {
            first_position,
            path,
            file,
            capacity_bytes,
        })
    }

    /// Opens an existing segment and checks its header against its name.
    pub(crate) fn open(
        io: &dyn StorageIo,
        path: PathBuf,
        named_position: Position,
    ) -> Result<Self, StoreError> {
        let file = io
            .open(&path)
            .map_err(|e| StoreError::io(format!("opening segment {}", path.display()), e))?;
        let mut page = vec![0u8; SEGMENT_HEADER_LEN as usize];
        file.read_exact_at(&mut page, 0)
            .map_err(|e| StoreError::io(format!("reading segment {}", path.display()), e))?;
        let header = SegmentHeader::decode(&page).map_err(|e| StoreError::Corrupt {
            file: path.clone(),
            offset: 0,
            reason: format!("bad segment header: {e}"),
        })?;
        if header.first_position != named_position {
            return Err(StoreError::Corrupt {
                file: path,
                offset: 0,
                reason: format!(
                    "header says the segment starts at position {}, its name says {}",
                    header.first_position, named_position
                ),
            });
        }
        Ok(Self {
            first_position: header.first_position,
            path,
            file,
            capacity_bytes: header.capacity_bytes,
        })
    }

    pub(crate) fn corrupt(&self, offset: u64, reason: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            file: self.path.clone(),
            offset,
            reason: reason.into(),
        }
    }
}

pub(crate) fn file_name(first_position: Position) -> String {
    format!("{:020}{SEGMENT_SUFFIX}", first_position.0)
}

/// What a file in the log directory is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogFile {
    Segment(Position),
    /// A segment whose creation a crash interrupted: never referenced, safe to delete.
    Temporary,
    Other,
}

pub(crate) fn classify(path: &Path) -> LogFile {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return LogFile::Other;
    };
    if name.ends_with(TEMPORARY_SUFFIX) {
        return LogFile::Temporary;
    }
    match name.strip_suffix(SEGMENT_SUFFIX) {
        Some(digits) if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) => digits
            .parse()
            .map_or(LogFile::Other, |p| LogFile::Segment(Position(p))),
        _ => LogFile::Other,
    }
}

/// The open segments by first position: the writer adds to it, readers look up in it.
#[derive(Debug, Default)]
pub(crate) struct Segments {
    by_first_position: RwLock<BTreeMap<u64, Arc<Segment>>>,
}

impl Segments {
    pub(crate) fn insert(&self, segment: Arc<Segment>) {
        let mut map = self
            .by_first_position
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(segment.first_position.0, segment);
    }

    /// The segment whose first position is exactly `first_position`.
    pub(crate) fn get(&self, first_position: Position) -> Option<Arc<Segment>> {
        let map = self
            .by_first_position
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&first_position.0).cloned()
    }

    /// The segment after the one starting at `first_position`.
    pub(crate) fn after(&self, first_position: Position) -> Option<Arc<Segment>> {
        let map = self
            .by_first_position
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.range(first_position.0 + 1..)
            .next()
            .map(|(_, segment)| Arc::clone(segment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_position_and_parse_back() {
        assert_eq!(file_name(Position(4711)), "00000000000000004711.seg");
        assert_eq!(
            classify(Path::new("/x/00000000000000004711.seg")),
            LogFile::Segment(Position(4711))
        );
        assert_eq!(
            classify(Path::new("/x/00000000000000004711.seg.tmp")),
            LogFile::Temporary
        );
        assert_eq!(classify(Path::new("/x/4711.seg")), LogFile::Other);
        assert_eq!(classify(Path::new("/x/index.redb")), LogFile::Other);
    }
}
