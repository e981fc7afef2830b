//! Recovery: what `open` does before it serves, and what `verify` does offline.
//!
//! The walk checks batches in order: each batch header's checksum, the whole body's checksum,
//! every event frame's checksum, and that positions continue without a gap from one batch and
//! one segment to the next. The first batch that fails is either
//! - a **torn tail**: the last batch a crash interrupted. The writer never starts a batch before
//!   the previous one is synced, so only the last batch can be torn, and nothing valid can follow
//!   it. It was never acknowledged, so it is cut (zeroed), or
//! - **corruption**: anything else (a bad batch in a segment that is not the last one, or one
//!   that a valid batch follows). Then open fails and names the file and offset: serving would
//!   mean silently losing acknowledged events.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use runnel_core::{Position, RecordedEvent, StoreError};

use crate::config::{EngineConfig, VerifyOnOpen};
use crate::index::{
    EventLocation, Index, IndexReader, IndexUpdate, IndexedEvent, StreamHead, stream_key,
};
use crate::io::StorageIo;
use crate::log::format::{
    self, BATCH_HEADER_FRAME_LEN, BatchHeader, FRAME_HEADER_LEN, FrameHeader, SEGMENT_HEADER_LEN,
};
use crate::log::reader::Location;
use crate::log::segment::{self, LogFile, Segment};

/// Re-indexed events are committed to the index in chunks of this many.
const REINDEX_CHUNK_EVENTS: usize = 10_000;
/// Reads while searching a damaged segment for valid batches.
const SEARCH_CHUNK_BYTES: usize = 8 << 20;
/// The least of a segment's tail checked for leftovers of a torn write after the last batch.
const MIN_TAIL_CHECK_BYTES: u64 = 1 << 20;

/// Opens every segment of `log_dir` in position order. In repair mode, leftovers of an
/// interrupted segment creation are removed first.
pub(crate) fn open_segments(
    io: &dyn StorageIo,
    log_dir: &Path,
    repair: bool,
) -> Result<Vec<Arc<Segment>>, StoreError> {
    let listed = io
        .list(log_dir)
        .map_err(|e| StoreError::io(format!("listing {}", log_dir.display()), e))?;
    let mut named = Vec::new();
    for path in listed {
        match segment::classify(&path) {
            LogFile::Segment(position) => named.push((position, path)),
            LogFile::Temporary if repair => io
                .remove(&path)
                .map_err(|e| StoreError::io(format!("removing {}", path.display()), e))?,
            LogFile::Temporary | LogFile::Other => {}
        }
    }
    named.sort_by_key(|(position, _)| *position);
    named
        .into_iter()
        .map(|(position, path)| Segment::open(io, path, position).map(Arc::new))
        .collect()
}

/// Where the log ends, as recovery found it.
#[derive(Debug)]
pub(crate) struct LogEnd {
    pub(crate) next_position: Position,
    pub(crate) write_offset: u64,
    /// Bytes of a torn last batch that were found (and, in repair mode, cut).
    pub(crate) torn: Option<(std::path::PathBuf, u64)>,
    pub(crate) batches: u64,
    pub(crate) events: u64,
}

/// What the walk does with each valid batch.
pub(crate) trait BatchVisitor {
    fn visit(
        &mut self,
        segment: &Segment,
        offset: u64,
        header: &BatchHeader,
        events: Vec<(RecordedEvent, u64)>,
    ) -> Result<(), StoreError>;
}

/// Walks the log from the start (`Full`) or from the last indexed batch (`Tail`), handing each
/// valid batch to `visitor`; cuts a torn tail when `repair` is set.
pub(crate) fn walk(
    segments: &[Arc<Segment>],
    indexed_next: Position,
    start: StartPoint,
    config: &EngineConfig,
    repair: bool,
    visitor: &mut dyn BatchVisitor,
) -> Result<LogEnd, StoreError> {
    let Some(last_segment) = segments.last() else {
        return Err(StoreError::InvalidConfig {
            reason: "walking a log without segments".to_owned(),
        });
    };
    let StartPoint {
        mut segment_index,
        mut offset,
        position: mut expected,
    } = start;
    let mut end = LogEnd {
        next_position: expected,
        write_offset: offset,
        torn: None,
        batches: 0,
        events: 0,
    };
    let tail_window = tail_window_bytes(config);
    loop {
        let segment = &segments[segment_index];
        let is_last = segment_index + 1 == segments.len();
        if offset == SEGMENT_HEADER_LEN && segment.first_position != expected {
            return Err(segment.corrupt(
                0,
                format!(
                    "the segment starts at position {} but the log before it ends at {}",
                    segment.first_position, expected
                ),
            ));
        }
        match read_batch(segment, offset, expected)? {
            BatchRead::Valid {
                header,
                events,
                frame_bytes,
            } => {
                end.batches += 1;
                end.events += u64::from(header.event_count);
                visitor.visit(segment, offset, &header, events)?;
                offset += frame_bytes;
                expected = header.last_position().next();
                continue;
            }
            BatchRead::Invalid(reason) => {
                // The index only ever covers synced batches, so a bad batch it covers was
                // acknowledged: that is corruption, whatever follows it.
                if !is_last || expected < indexed_next {
                    return Err(segment.corrupt(offset, reason));
                }
                let damage = search_after(segment, offset + 1)?;
                if let Some(valid_at) = damage.valid_batch_at {
                    return Err(segment.corrupt(
                        offset,
                        format!("{reason}; a valid batch follows at offset {valid_at}"),
                    ));
                }
                end.torn = Some((segment.path.clone(), offset));
                if repair {
                    zero(segment, offset, damage.last_nonzero.unwrap_or(offset))?;
                }
            }
            BatchRead::End if is_last => {
                if expected >= indexed_next && has_nonzero(segment, offset, tail_window)? {
                    let damage = search_after(segment, offset)?;
                    if let Some(valid_at) = damage.valid_batch_at {
                        return Err(segment.corrupt(
                            offset,
                            format!(
                                "the log ends here, but a valid batch follows at offset {valid_at}"
                            ),
                        ));
                    }
                    end.torn = Some((segment.path.clone(), offset));
                    if repair {
                        zero(segment, offset, damage.last_nonzero.unwrap_or(offset))?;
                    }
                }
            }
            BatchRead::End => {
                segment_index += 1;
                offset = SEGMENT_HEADER_LEN;
                continue;
            }
        }
        end.next_position = expected;
        end.write_offset = offset;
        debug_assert!(Arc::ptr_eq(segment, last_segment));
        break;
    }
    if expected < indexed_next {
        return Err(last_segment.corrupt(
            end.write_offset,
            format!(
                "the log ends at position {expected} but the index covers positions up to {}: log data is missing",
                indexed_next.0 - 1
            ),
        ));
    }
    Ok(end)
}

/// Where a walk begins: a batch boundary and the position of its first event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StartPoint {
    segment_index: usize,
    offset: u64,
    position: Position,
}

impl StartPoint {
    pub(crate) const BEGINNING: Self = Self {
        segment_index: 0,
        offset: SEGMENT_HEADER_LEN,
        position: Position(0),
    };
}

/// The beginning of the log (`Full`), or the last batch the index covers (`Tail`).
pub(crate) fn start_point(
    segments: &[Arc<Segment>],
    index: &Index,
    mode: VerifyOnOpen,
) -> Result<StartPoint, StoreError> {
    let indexed_next = index.next_position()?;
    let from_start = StartPoint::BEGINNING;
    if mode == VerifyOnOpen::Full || indexed_next.0 == 0 {
        return Ok(from_start);
    }
    let Some((first, location)) = index
        .reader()?
        .batch_containing(Position(indexed_next.0 - 1))?
    else {
        return Ok(from_start);
    };
    let Some(segment_index) = segments
        .iter()
        .position(|segment| segment.first_position == location.segment)
    else {
        return Ok(from_start);
    };
    Ok(StartPoint {
        segment_index,
        offset: location.offset,
        position: first,
    })
}

/// How far past the last batch a torn write's leftovers can reach: one batch, at most.
fn tail_window_bytes(config: &EngineConfig) -> u64 {
    let largest_batch =
        config.max_batch_bytes.max(config.max_append_frame_bytes()) + BATCH_HEADER_FRAME_LEN;
    (largest_batch as u64).max(MIN_TAIL_CHECK_BYTES)
}

enum BatchRead {
    Valid {
        header: BatchHeader,
        events: Vec<(RecordedEvent, u64)>,
        frame_bytes: u64,
    },
    /// The zero word: nothing more is written in this segment.
    End,
    Invalid(String),
}

fn read_at(segment: &Segment, buf: &mut [u8], offset: u64) -> Result<(), StoreError> {
    segment.file.read_exact_at(buf, offset).map_err(|e| {
        StoreError::io(
            format!("reading {} at offset {offset}", segment.path.display()),
            e,
        )
    })
}

/// Reads and checks the batch at `offset`, which must start at position `expected`.
fn read_batch(segment: &Segment, offset: u64, expected: Position) -> Result<BatchRead, StoreError> {
    let capacity = segment.capacity_bytes;
    if offset + FRAME_HEADER_LEN as u64 > capacity {
        return Ok(BatchRead::End);
    }
    let header_len = (capacity - offset).min(BATCH_HEADER_FRAME_LEN as u64) as usize;
    let mut header_bytes = vec![0u8; header_len];
    read_at(segment, &mut header_bytes, offset)?;
    match FrameHeader::decode(&header_bytes) {
        Ok(None) => return Ok(BatchRead::End),
        Ok(Some(_)) => {}
        Err(error) => return Ok(BatchRead::Invalid(format!("bad batch header: {error}"))),
    }
    let header = match format::decode_batch_header(&header_bytes) {
        Ok(header) => header,
        Err(error) => return Ok(BatchRead::Invalid(format!("bad batch header: {error}"))),
    };
    if header.first_position != expected {
        return Ok(BatchRead::Invalid(format!(
            "the batch starts at position {} but position {expected} was expected",
            header.first_position
        )));
    }
    let body_start = offset + BATCH_HEADER_FRAME_LEN as u64;
    if body_start + u64::from(header.body_len) > capacity {
        return Ok(BatchRead::Invalid(
            "the batch runs past the end of the segment".to_owned(),
        ));
    }
    let mut body = vec![0u8; header.body_len as usize];
    read_at(segment, &mut body, body_start)?;
    let computed = crc32c::crc32c(&body);
    if computed != header.body_crc {
        return Ok(BatchRead::Invalid(format!(
            "batch body checksum mismatch (stored {:#010x}, computed {computed:#010x})",
            header.body_crc
        )));
    }
    let mut events = Vec::with_capacity(header.event_count as usize);
    let mut at = 0usize;
    for n in 0..u64::from(header.event_count) {
        let frame = match FrameHeader::decode(&body[at.min(body.len())..]) {
            Ok(Some(frame)) if at + frame.frame_len() <= body.len() => frame,
            Ok(_) | Err(_) => {
                return Ok(BatchRead::Invalid(format!(
                    "event frame {n} of the batch is malformed"
                )));
            }
        };
        let event = match format::decode_event(&body[at..at + frame.frame_len()]) {
            Ok(event) => event,
            Err(error) => {
                return Ok(BatchRead::Invalid(format!(
                    "event frame {n} of the batch: {error}"
                )));
            }
        };
        if event.position.0 != header.first_position.0 + n {
            return Ok(BatchRead::Invalid(format!(
                "event frame {n} has position {} in a batch starting at {}",
                event.position, header.first_position
            )));
        }
        events.push((event, body_start + at as u64));
        at += frame.frame_len();
    }
    if at != body.len() {
        return Ok(BatchRead::Invalid(format!(
            "{} bytes follow the batch's last event",
            body.len() - at
        )));
    }
    Ok(BatchRead::Valid {
        header,
        events,
        frame_bytes: (BATCH_HEADER_FRAME_LEN + body.len()) as u64,
    })
}

fn has_nonzero(segment: &Segment, from: u64, window: u64) -> Result<bool, StoreError> {
    let end = segment.capacity_bytes.min(from + window);
    let mut buf = vec![0u8; SEARCH_CHUNK_BYTES];
    let mut at = from;
    while at < end {
        let len = (end - at).min(SEARCH_CHUNK_BYTES as u64) as usize;
        read_at(segment, &mut buf[..len], at)?;
        if buf[..len].iter().any(|&b| b != 0) {
            return Ok(true);
        }
        at += len as u64;
    }
    Ok(false)
}

/// What lies after a damaged spot.
struct Damage {
    valid_batch_at: Option<u64>,
    last_nonzero: Option<u64>,
}

/// Searches the rest of `segment` from `from` for any valid batch (at any byte offset), and for
/// the last non-zero byte.
fn search_after(segment: &Segment, from: u64) -> Result<Damage, StoreError> {
    let capacity = segment.capacity_bytes;
    let mut damage = Damage {
        valid_batch_at: None,
        last_nonzero: None,
    };
    let mut buf = vec![0u8; SEARCH_CHUNK_BYTES];
    let mut at = from;
    while at < capacity {
        let len = (capacity - at).min(SEARCH_CHUNK_BYTES as u64) as usize;
        read_at(segment, &mut buf[..len], at)?;
        if let Some(last) = buf[..len].iter().rposition(|&b| b != 0) {
            damage.last_nonzero = Some(at + last as u64);
        }
        for candidate in 0..len {
            // A batch header frame starts with the length 20 and the kind 1 in the top byte.
            if buf[candidate..len].starts_with(&[20, 0, 0, 1])
                && is_valid_batch_at(segment, at + candidate as u64)?
            {
                damage.valid_batch_at = Some(at + candidate as u64);
                return Ok(damage);
            }
        }
        // Step back by a header's length so a header split across two reads is still found.
        if len == SEARCH_CHUNK_BYTES {
            at += (len - BATCH_HEADER_FRAME_LEN) as u64;
        } else {
            at += len as u64;
        }
    }
    Ok(damage)
}

fn is_valid_batch_at(segment: &Segment, offset: u64) -> Result<bool, StoreError> {
    if offset + BATCH_HEADER_FRAME_LEN as u64 > segment.capacity_bytes {
        return Ok(false);
    }
    let mut header_bytes = [0u8; BATCH_HEADER_FRAME_LEN];
    read_at(segment, &mut header_bytes, offset)?;
    let Ok(header) = format::decode_batch_header(&header_bytes) else {
        return Ok(false);
    };
    let body_start = offset + BATCH_HEADER_FRAME_LEN as u64;
    if body_start + u64::from(header.body_len) > segment.capacity_bytes {
        return Ok(false);
    }
    let mut body = vec![0u8; header.body_len as usize];
    read_at(segment, &mut body, body_start)?;
    Ok(crc32c::crc32c(&body) == header.body_crc)
}

/// Zeroes `from..=last` and syncs, so the next batch is written over clean ground.
fn zero(segment: &Segment, from: u64, last: u64) -> Result<(), StoreError> {
    let zeros = vec![0u8; SEARCH_CHUNK_BYTES];
    let mut at = from;
    while at <= last {
        let len = (last + 1 - at).min(SEARCH_CHUNK_BYTES as u64) as usize;
        segment.file.write_all_at(&zeros[..len], at).map_err(|e| {
            StoreError::io(
                format!("cutting the torn tail of {}", segment.path.display()),
                e,
            )
        })?;
        at += len as u64;
    }
    segment
        .file
        .sync_data()
        .map_err(|e| StoreError::io(format!("syncing {}", segment.path.display()), e))?;
    tracing::warn!(
        file = %segment.path.display(),
        offset = from,
        bytes = last + 1 - from,
        "cut a torn tail left by a crash (an unacknowledged write)"
    );
    Ok(())
}

/// Brings the index up to date with the log: every event at or after the index's
/// `next_position` is indexed, and stream revisions are checked for gaps on the way.
pub(crate) struct Reindexer<'a> {
    index: &'a Index,
    from: Position,
    reader: Option<IndexReader>,
    update: IndexUpdate,
    heads: HashMap<String, (StreamHead, bool)>,
    pub(crate) reindexed: u64,
}

impl<'a> Reindexer<'a> {
    pub(crate) fn new(index: &'a Index) -> Result<Self, StoreError> {
        Ok(Self {
            index,
            from: index.next_position()?,
            reader: None,
            update: IndexUpdate::default(),
            heads: HashMap::new(),
            reindexed: 0,
        })
    }

    fn head(&mut self, key: &str) -> Result<Option<StreamHead>, StoreError> {
        if let Some((head, _)) = self.heads.get(key) {
            return Ok(Some(*head));
        }
        if self.reader.is_none() {
            self.reader = Some(self.index.reader()?);
        }
        match &self.reader {
            Some(reader) => reader.stream_head(key),
            None => Ok(None),
        }
    }

    fn flush(&mut self, durable: bool) -> Result<(), StoreError> {
        let mut update = std::mem::take(&mut self.update);
        update.streams = self
            .heads
            .drain()
            .map(|(key, (head, created))| (key, head, created))
            .collect();
        if update.next_position.0 == 0 {
            update.next_position = self.from;
        }
        self.index.apply(&update, durable)?;
        self.reader = None;
        Ok(())
    }

    /// Makes everything re-indexed durable.
    pub(crate) fn finish(mut self) -> Result<u64, StoreError> {
        self.flush(true)?;
        Ok(self.reindexed)
    }
}

impl BatchVisitor for Reindexer<'_> {
    fn visit(
        &mut self,
        segment: &Segment,
        offset: u64,
        header: &BatchHeader,
        events: Vec<(RecordedEvent, u64)>,
    ) -> Result<(), StoreError> {
        if header.last_position() < self.from {
            return Ok(());
        }
        for (event, frame_offset) in events {
            let key = stream_key(&event.stream);
            let current = self.head(&key)?;
            let expected = current.map_or(0, |head| head.last_revision.0 + 1);
            if event.revision.0 != expected {
                return Err(segment.corrupt(
                    frame_offset,
                    format!(
                        "stream {} jumps to revision {} where {expected} was expected",
                        event.stream, event.revision
                    ),
                ));
            }
            let created = match self.heads.get(&key) {
                Some((_, created)) => *created,
                None => current.is_none(),
            };
            let head = StreamHead {
                last_revision: event.revision,
                created_at: current.map_or(event.recorded_at, |head| head.created_at),
                updated_at: event.recorded_at,
            };
            self.update.events.push(IndexedEvent {
                stream_key: key.clone(),
                revision: event.revision,
                id: event.id,
                at: EventLocation {
                    position: event.position,
                    location: Location {
                        segment: segment.first_position,
                        offset: frame_offset,
                    },
                },
            });
            self.heads.insert(key, (head, created));
            self.reindexed += 1;
        }
        self.update.batches.push((
            header.first_position,
            Location {
                segment: segment.first_position,
                offset,
            },
        ));
        self.update.next_position = header.last_position().next();
        if self.update.events.len() >= REINDEX_CHUNK_EVENTS {
            self.flush(false)?;
        }
        Ok(())
    }
}
