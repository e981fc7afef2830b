//! Offline verification of a data directory: every checksum of the log, the continuity of
//! positions and revisions, and the index's agreement with the log. Changes nothing.

use std::fmt;
use std::path::Path;

use runnel_core::{Position, RecordedEvent, StoreError};

use crate::config::EngineConfig;
use crate::index::{EventLocation, Index, IndexReader, stream_key};
use crate::io::OsIo;
use crate::log::format::BatchHeader;
use crate::log::reader::Location;
use crate::log::recovery::{self, BatchVisitor, StartPoint};
use crate::log::segment::Segment;
use crate::store::{INDEX_FILE, LOG_DIR};

/// What `verify` found. A store that fails verification is an `Err`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub segments: usize,
    pub batches: u64,
    pub events: u64,
    /// Events the index covers and that were checked against it.
    pub indexed_events_checked: u64,
    /// Events after the index's end; the next open indexes them.
    pub unindexed_events: u64,
    /// A torn tail the next open will cut (an unacknowledged write a crash interrupted).
    pub torn_tail_at: Option<(std::path::PathBuf, u64)>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "log: {} segments, {} batches, {} events: all checksums valid, positions gapless",
            self.segments, self.batches, self.events
        )?;
        writeln!(
            f,
            "index: {} events checked against the log, {} not yet indexed (indexed at next start)",
            self.indexed_events_checked, self.unindexed_events
        )?;
        match &self.torn_tail_at {
            Some((file, offset)) => write!(
                f,
                "torn tail: {} at offset {offset} (an unacknowledged write; cut at next start)",
                file.display()
            ),
            None => write!(f, "torn tail: none"),
        }
    }
}

/// Checks the data directory `dir` offline. Fails if a server has it open.
pub fn verify(dir: &Path) -> Result<VerifyReport, StoreError> {
    let log_dir = dir.join(LOG_DIR);
    if !log_dir.is_dir() {
        return Err(StoreError::io(
            format!("opening {}", log_dir.display()),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no log directory: is this a Runnel data directory?",
            ),
        ));
    }
    let index = Index::open_existing(&dir.join(INDEX_FILE))?;
    let segments = recovery::open_segments(&OsIo, &log_dir, false)?;
    let indexed_next = match &index {
        Some(index) => index.next_position()?,
        None => Position(0),
    };
    let mut checker = IndexChecker {
        reader: index.as_ref().map(Index::reader).transpose()?,
        indexed_next,
        checked: 0,
    };
    if segments.is_empty() {
        return Ok(VerifyReport {
            segments: 0,
            batches: 0,
            events: 0,
            indexed_events_checked: 0,
            unindexed_events: 0,
            torn_tail_at: None,
        });
    }
    let end = recovery::walk(
        &segments,
        indexed_next,
        StartPoint::BEGINNING,
        &EngineConfig::default(),
        false,
        &mut checker,
    )?;
    Ok(VerifyReport {
        segments: segments.len(),
        batches: end.batches,
        events: end.events,
        indexed_events_checked: checker.checked,
        unindexed_events: end.next_position.0.saturating_sub(indexed_next.0),
        torn_tail_at: end.torn,
    })
}

struct IndexChecker {
    reader: Option<IndexReader>,
    indexed_next: Position,
    checked: u64,
}

impl BatchVisitor for IndexChecker {
    fn visit(
        &mut self,
        segment: &Segment,
        _offset: u64,
        _header: &BatchHeader,
        events: Vec<(RecordedEvent, u64)>,
    ) -> Result<(), StoreError> {
        let Some(reader) = &self.reader else {
            return Ok(());
        };
        for (event, frame_offset) in events {
            if event.position >= self.indexed_next {
                break;
            }
            let expected = EventLocation {
                position: event.position,
                location: Location {
                    segment: segment.first_position,
                    offset: frame_offset,
                },
            };
            let by_stream = reader.stream_event(&stream_key(&event.stream), event.revision)?;
            let by_id = reader.event_by_id(event.id)?;
            if by_stream != Some(expected) || by_id != Some(expected) {
                return Err(segment.corrupt(
                    frame_offset,
                    format!(
                        "the index disagrees with the log about {}@{} (position {}): by stream {:?}, by id {:?}",
                        event.stream, event.revision, event.position, by_stream.map(|at| at.position), by_id.map(|at| at.position)
                    ),
                ));
            }
            self.checked += 1;
        }
        Ok(())
    }
}
