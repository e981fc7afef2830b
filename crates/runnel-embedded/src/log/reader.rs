//! Reading the log: one event at a known location (stream reads, through the index), or frames
//! in order from a batch boundary (`$all` reads and recovery). Every frame's checksum is checked
//! on every read.

use std::sync::Arc;

use runnel_core::{RecordedEvent, StoreError};

use crate::log::format::{self, FRAME_HEADER_LEN, FrameHeader};
use crate::log::segment::{Segment, Segments};

/// Where a frame starts: the segment (by its first position) and the byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: runnel_core::Position,
    pub(crate) offset: u64,
}

/// Most events fit in one read of this size; larger ones take a second read.
const FIRST_READ_BYTES: u64 = 4096;

/// Reads the event frame at `offset` of `segment`.
pub(crate) fn read_event_at(segment: &Segment, offset: u64) -> Result<RecordedEvent, StoreError> {
    let available = segment.capacity_bytes.saturating_sub(offset);
    let first = available.min(FIRST_READ_BYTES) as usize;
    if first < FRAME_HEADER_LEN {
        return Err(segment.corrupt(offset, "event location past the end of the segment"));
    }
    let mut buf = vec![0u8; first];
    read(segment, &mut buf, offset)?;
    let header = FrameHeader::decode(&buf)
        .map_err(|e| segment.corrupt(offset, e.to_string()))?
        .ok_or_else(|| segment.corrupt(offset, "no event at an indexed location"))?;
    let frame_len = header.frame_len();
    if frame_len as u64 > available {
        return Err(segment.corrupt(offset, "frame runs past the end of the segment"));
    }
    if frame_len > buf.len() {
        let already = buf.len();
        buf.resize(frame_len, 0);
        read(segment, &mut buf[already..], offset + already as u64)?;
    }
    buf.truncate(frame_len);
    format::decode_event(&buf).map_err(|e| segment.corrupt(offset, e.to_string()))
}

fn read(segment: &Segment, buf: &mut [u8], offset: u64) -> Result<(), StoreError> {
    segment.file.read_exact_at(buf, offset).map_err(|e| {
        StoreError::io(
            format!("reading {} at offset {offset}", segment.path.display()),
            e,
        )
    })
}

/// One frame as the scanner found it.
#[derive(Debug)]
pub(crate) enum ScannedFrame {
    /// A batch header: the events that follow belong to one commit.
    Batch,
    Event(RecordedEvent),
}

/// Reads frames in order, a buffer at a time, moving on to the next segment where one ends.
/// It trusts that it starts at a frame boundary below the durable head and stops at the first
/// zero word; recovery, which cannot trust that, checks batches itself.
#[derive(Debug)]
pub(crate) struct LogScanner<'a> {
    segments: &'a Segments,
    segment: Arc<Segment>,
    offset: u64,
    buf: Vec<u8>,
    /// The segment offset of `buf[0]`.
    buf_offset: u64,
    buf_len: usize,
    chunk_bytes: usize,
}

impl<'a> LogScanner<'a> {
    pub(crate) fn new(
        segments: &'a Segments,
        segment: Arc<Segment>,
        offset: u64,
        chunk_bytes: usize,
    ) -> Self {
        Self {
            segments,
            segment,
            offset,
            buf: Vec::new(),
            buf_offset: offset,
            buf_len: 0,
            chunk_bytes,
        }
    }

    /// The next frame, or `None` where the written log ends.
    pub(crate) fn next_frame(&mut self) -> Result<Option<ScannedFrame>, StoreError> {
        loop {
            if self.offset + FRAME_HEADER_LEN as u64 > self.segment.capacity_bytes {
                if !self.advance_segment() {
                    return Ok(None);
                }
                continue;
            }
            let header_bytes = self.bytes(self.offset, FRAME_HEADER_LEN)?;
            let header = FrameHeader::decode(header_bytes)
                .map_err(|e| self.segment.corrupt(self.offset, e.to_string()))?;
            let Some(header) = header else {
                // The zero word: this segment's written part ends here. A later segment, if
                // any, continues the log.
                if !self.advance_segment() {
                    return Ok(None);
                }
                continue;
            };
            let frame_len = header.frame_len();
            if self.offset + frame_len as u64 > self.segment.capacity_bytes {
                return Err(self
                    .segment
                    .corrupt(self.offset, "frame runs past the end of the segment"));
            }
            let at = self.offset;
            let frame = self.bytes(at, frame_len)?;
            let scanned = if header.is_batch() {
                format::decode_batch_header(frame)
                    .map_err(|e| self.segment.corrupt(at, e.to_string()))?;
                ScannedFrame::Batch
            } else {
                ScannedFrame::Event(
                    format::decode_event(frame)
                        .map_err(|e| self.segment.corrupt(at, e.to_string()))?,
                )
            };
            self.offset += frame_len as u64;
            return Ok(Some(scanned));
        }
    }

    fn advance_segment(&mut self) -> bool {
        match self.segments.after(self.segment.first_position) {
            Some(next) => {
                self.segment = next;
                self.offset = format::SEGMENT_HEADER_LEN;
                self.buf_len = 0;
                self.buf_offset = self.offset;
                true
            }
            None => false,
        }
    }

    /// `len` bytes at segment offset `at`, refilling the buffer from there when needed.
    fn bytes(&mut self, at: u64, len: usize) -> Result<&[u8], StoreError> {
        let buffered =
            at >= self.buf_offset && at + len as u64 <= self.buf_offset + self.buf_len as u64;
        if !buffered {
            let want = len.max(self.chunk_bytes) as u64;
            let fill = want.min(self.segment.capacity_bytes - at) as usize;
            if self.buf.len() < fill {
                self.buf.resize(fill, 0);
            }
            let segment = Arc::clone(&self.segment);
            read(&segment, &mut self.buf[..fill], at)?;
            self.buf_offset = at;
            self.buf_len = fill;
        }
        let start = (at - self.buf_offset) as usize;
        Ok(&self.buf[start..start + len])
    }
}
