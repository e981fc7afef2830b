//! The on-disk format of the log, byte by byte (see `docs/storage-format.md`). Pure functions
//! with no I/O, so that every decoder can be fuzzed and property-tested on arbitrary bytes.
//!
//! A segment is a fixed-size, zero-filled file: a [`SEGMENT_HEADER_LEN`]-byte header, then
//! batches, then zeros. A batch is what one group commit wrote with one write and one
//! fdatasync: a batch-header frame followed by one event frame per event. Every frame is
//! `tag_len: u32 LE | crc32c: u32 LE | payload`, where `tag_len` holds the frame kind in its top
//! byte and the payload length in its low 24 bits, and the checksum covers `tag_len` and the
//! payload, so a flipped length or kind is caught like a flipped payload byte. A `tag_len` of
//! zero is where the written part of a segment ends.
//!
//! The batch header carries the checksum of the whole batch body: a batch is valid only if all
//! of it is, which is what makes an append of several events atomic across a crash.

use runnel_core::{
    EventType, JsonText, Payload, Position, RecordedAt, RecordedEvent, Revision, StreamId,
    StreamName, StreamType,
};
use uuid::Uuid;

/// The format version written into every segment header. A reader refuses other versions.
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RUNNELSG";
/// The header occupies the first page, so that batches start page-aligned.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 4096;
/// Bytes of the header that carry data (the rest of the page is zero).
const SEGMENT_HEADER_USED: usize = 44;

pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// A frame's payload length lives in 24 bits.
pub(crate) const MAX_FRAME_PAYLOAD: usize = (1 << 24) - 1;

const KIND_BATCH: u8 = 1;
const KIND_EVENT: u8 = 2;

pub(crate) const BATCH_HEADER_PAYLOAD_LEN: usize = 8 + 4 + 4 + 4;
/// A batch header frame, in bytes on disk.
pub(crate) const BATCH_HEADER_FRAME_LEN: usize = FRAME_HEADER_LEN + BATCH_HEADER_PAYLOAD_LEN;

const PAYLOAD_JSON: u8 = 0;
const PAYLOAD_BINARY: u8 = 1;

/// Why bytes did not decode. Carries no offsets: callers know where they read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    #[error("truncated: needed {needed} bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("expected a {expected} frame, found kind {found}")]
    WrongKind { expected: &'static str, found: u8 },
    #[error("bad segment magic")]
    BadMagic,
    #[error("unsupported format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u32),
    #[error("invalid field {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
}

/// What a segment's header says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) first_position: Position,
    pub(crate) capacity_bytes: u64,
    pub(crate) created_at: RecordedAt,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut page = vec![0u8; SEGMENT_HEADER_LEN as usize];
        page[0..8].copy_from_slice(&SEGMENT_MAGIC);
        page[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        page[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
        page[16..24].copy_from_slice(&self.first_position.0.to_le_bytes());
        page[24..32].copy_from_slice(&self.capacity_bytes.to_le_bytes());
        page[32..40].copy_from_slice(&self.created_at.as_micros().to_le_bytes());
        let crc = crc32c::crc32c(&page[0..40]);
        page[40..44].copy_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(SEGMENT_HEADER_USED, 44);
        page
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut cursor = Cursor::new(bytes);
        let magic = cursor.take(8)?;
        if magic != SEGMENT_MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = cursor.u32()?;
        let header_len = cursor.u32()?;
        let first_position = Position(cursor.u64()?);
        let capacity_bytes = cursor.u64()?;
        let created_at = RecordedAt(cursor.i64()?);
        let stored = cursor.u32()?;
        let computed = crc32c::crc32c(&bytes[0..40]);
        if stored != computed {
            return Err(FormatError::Checksum { stored, computed });
        }
        // The version is checked after the checksum, so a corrupt header is reported as
        // corruption, not as a file from the future.
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        if u64::from(header_len) != SEGMENT_HEADER_LEN {
            return Err(invalid("header_len", format!("{header_len}")));
        }
        if capacity_bytes <= SEGMENT_HEADER_LEN {
            return Err(invalid("capacity_bytes", format!("{capacity_bytes}")));
        }
        Ok(Self {
            first_position,
            capacity_bytes,
            created_at,
        })
    }
}

/// The fixed part of a batch: where its events start in `$all` and how to check its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) first_position: Position,
    pub(crate) event_count: u32,
    pub(crate) body_len: u32,
    pub(crate) body_crc: u32,
}

impl BatchHeader {
    pub(crate) fn last_position(&self) -> Position {
        Position(self.first_position.0 + u64::from(self.event_count) - 1)
    }
}

/// A frame's header, read before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) kind: u8,
    pub(crate) payload_len: usize,
    pub(crate) crc: u32,
    tag_len: u32,
}

impl FrameHeader {
    /// `None` for the zero word that marks the end of a segment's written part.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Option<Self>, FormatError> {
        let mut cursor = Cursor::new(bytes);
        let tag_len = cursor.u32()?;
        let crc = cursor.u32()?;
        if tag_len == 0 {
            return Ok(None);
        }
        let kind = (tag_len >> 24) as u8;
        if kind != KIND_BATCH && kind != KIND_EVENT {
            return Err(FormatError::UnknownKind(kind));
        }
        Ok(Some(Self {
            kind,
            payload_len: (tag_len & 0x00FF_FFFF) as usize,
            crc,
            tag_len,
        }))
    }

    pub(crate) fn is_batch(&self) -> bool {
        self.kind == KIND_BATCH
    }

    pub(crate) fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.payload_len
    }

    pub(crate) fn check(&self, payload: &[u8]) -> Result<(), FormatError> {
        if payload.len() != self.payload_len {
            return Err(FormatError::Truncated {
                needed: self.payload_len,
                available: payload.len(),
            });
        }
        let computed = frame_crc(self.tag_len, payload);
        if computed != self.crc {
            return Err(FormatError::Checksum {
                stored: self.crc,
                computed,
            });
        }
        Ok(())
    }
}

fn frame_crc(tag_len: u32, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&tag_len.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Appends a frame of `kind` whose payload `write_payload` produces.
fn push_frame(out: &mut Vec<u8>, kind: u8, write_payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    write_payload(out);
    let payload_len = out.len() - start - FRAME_HEADER_LEN;
    assert!(
        payload_len <= MAX_FRAME_PAYLOAD,
        "frame payload of {payload_len} bytes exceeds the format's 24-bit length; limits must prevent this"
    );
    let tag_len = (u32::from(kind) << 24) | payload_len as u32;
    let crc = frame_crc(tag_len, &out[start + FRAME_HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&tag_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes a batch header frame.
pub(crate) fn encode_batch_header(header: &BatchHeader, out: &mut Vec<u8>) {
    push_frame(out, KIND_BATCH, |out| {
        out.extend_from_slice(&header.first_position.0.to_le_bytes());
        out.extend_from_slice(&header.event_count.to_le_bytes());
        out.extend_from_slice(&header.body_len.to_le_bytes());
        out.extend_from_slice(&header.body_crc.to_le_bytes());
    });
}

/// Decodes and checks a batch header frame from the start of `bytes`.
pub(crate) fn decode_batch_header(bytes: &[u8]) -> Result<BatchHeader, FormatError> {
    let frame = FrameHeader::decode(bytes)?.ok_or(FormatError::WrongKind {
        expected: "batch",
        found: 0,
    })?;
    if !frame.is_batch() {
        return Err(FormatError::WrongKind {
            expected: "batch",
            found: frame.kind,
        });
    }
    if frame.payload_len != BATCH_HEADER_PAYLOAD_LEN {
        return Err(invalid(
            "batch header length",
            frame.payload_len.to_string(),
        ));
    }
    let payload = slice(bytes, FRAME_HEADER_LEN, frame.payload_len)?;
    frame.check(payload)?;
    let mut cursor = Cursor::new(payload);
    let header = BatchHeader {
        first_position: Position(cursor.u64()?),
        event_count: cursor.u32()?,
        body_len: cursor.u32()?,
        body_crc: cursor.u32()?,
    };
    if header.event_count == 0 {
        return Err(invalid("event_count", "0".to_owned()));
    }
    Ok(header)
}

/// The parts of an event record, borrowed from the batch being built.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventRecordRef<'a> {
    pub(crate) position: Position,
    pub(crate) revision: Revision,
    pub(crate) recorded_at: RecordedAt,
    pub(crate) id: Uuid,
    pub(crate) stream: &'a StreamName,
    pub(crate) event_type: &'a EventType,
    pub(crate) data: &'a Payload,
    pub(crate) metadata: Option<&'a JsonText>,
}

/// Encodes an event frame; returns its length in bytes.
pub(crate) fn encode_event(record: &EventRecordRef<'_>, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    push_frame(out, KIND_EVENT, |out| {
        out.extend_from_slice(&record.position.0.to_le_bytes());
        out.extend_from_slice(&record.revision.0.to_le_bytes());
        out.extend_from_slice(&record.recorded_at.as_micros().to_le_bytes());
        out.extend_from_slice(record.id.as_bytes());
        put_str_u8(out, record.stream.stream_type().as_str());
        put_str_u16(out, record.stream.stream_id().as_str());
        put_str_u16(out, record.event_type.as_str());
        match record.data {
            Payload::Json(text) => {
                out.push(PAYLOAD_JSON);
                put_bytes_u32(out, text.as_str().as_bytes());
            }
            Payload::Binary {
                content_type,
                bytes,
            } => {
                out.push(PAYLOAD_BINARY);
                put_str_u16(out, content_type);
                put_bytes_u32(out, bytes);
            }
        }
        match record.metadata {
            None => out.push(0),
            Some(metadata) => {
                out.push(1);
                put_bytes_u32(out, metadata.as_str().as_bytes());
            }
        }
    });
    out.len() - start
}

/// An upper bound of an event frame's size, for limits and batch planning.
pub(crate) fn event_frame_len_bound(
    stream: &StreamName,
    event_type: &EventType,
    data: &Payload,
    metadata: Option<&JsonText>,
) -> usize {
    FRAME_HEADER_LEN
        + 8
        + 8
        + 8
        + 16
        + 1
        + stream.stream_type().as_str().len()
        + 2
        + stream.stream_id().as_str().len()
        + 2
        + event_type.as_str().len()
        + 1
        + 2
        + 4
        + data.len()
        + 1
        + 4
        + metadata.map_or(0, JsonText::len)
}

/// Decodes and checks one event frame that fills `bytes` exactly.
pub(crate) fn decode_event(bytes: &[u8]) -> Result<RecordedEvent, FormatError> {
    let frame = FrameHeader::decode(bytes)?.ok_or(FormatError::WrongKind {
        expected: "event",
        found: 0,
    })?;
    if frame.is_batch() {
        return Err(FormatError::WrongKind {
            expected: "event",
            found: frame.kind,
        });
    }
    let payload = slice(bytes, FRAME_HEADER_LEN, frame.payload_len)?;
    if bytes.len() > frame.frame_len() {
        return Err(FormatError::TrailingBytes(bytes.len() - frame.frame_len()));
    }
    frame.check(payload)?;
    decode_event_payload(payload)
}

fn decode_event_payload(payload: &[u8]) -> Result<RecordedEvent, FormatError> {
    let mut cursor = Cursor::new(payload);
    let position = Position(cursor.u64()?);
    let revision = Revision(cursor.u64()?);
    let recorded_at = RecordedAt(cursor.i64()?);
    let id =
        Uuid::from_slice(cursor.take(16)?).map_err(|error| invalid("id", error.to_string()))?;
    let stream_type = cursor.str_u8("stream_type")?;
    let stream_id = cursor.str_u16("stream_id")?;
    let event_type = cursor.str_u16("event_type")?;
    // Names were validated when the event was appended, and the frame's checksum just matched:
    // validating them again on every read would cost more than the rest of decoding.
    let stream = StreamName::new(
        StreamType::from_stored(stream_type),
        StreamId::from_stored(stream_id),
    );
    let event_type = EventType::from_stored(event_type);
    let data = match cursor.u8()? {
        PAYLOAD_JSON => Payload::Json(JsonText::from_stored(cursor.str_u32("data")?.to_owned())),
        PAYLOAD_BINARY => {
            let content_type = cursor.str_u16("content_type")?.to_owned();
            let bytes = cursor.bytes_u32()?.to_vec();
            Payload::Binary {
                content_type,
                bytes,
            }
        }
        other => return Err(invalid("payload kind", other.to_string())),
    };
    let metadata = match cursor.u8()? {
        0 => None,
        1 => Some(JsonText::from_stored(
            cursor.str_u32("metadata")?.to_owned(),
        )),
        other => return Err(invalid("metadata flag", other.to_string())),
    };
    if cursor.remaining() != 0 {
        return Err(FormatError::TrailingBytes(cursor.remaining()));
    }
    Ok(RecordedEvent {
        id,
        stream,
        revision,
        position,
        event_type,
        data,
        metadata,
        recorded_at,
    })
}

/// Every decoder over the same bytes, for fuzzing: at every offset, as a frame, a batch header,
/// an event and a segment header.
pub(crate) fn decode_everything(bytes: &[u8]) {
    let _ = SegmentHeader::decode(bytes);
    for start in 0..bytes.len().min(64) {
        let tail = &bytes[start..];
        if let Ok(Some(frame)) = FrameHeader::decode(tail) {
            let end = frame.frame_len().min(tail.len());
            let _ = frame.check(&tail[FRAME_HEADER_LEN.min(end)..end]);
        }
        let _ = decode_batch_header(tail);
        let _ = decode_event(tail);
    }
}

fn put_str_u8(out: &mut Vec<u8>, value: &str) {
    debug_assert!(value.len() <= usize::from(u8::MAX));
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

fn put_str_u16(out: &mut Vec<u8>, value: &str) {
    debug_assert!(value.len() <= usize::from(u16::MAX));
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
}

fn put_bytes_u32(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

fn invalid(field: &'static str, reason: String) -> FormatError {
    FormatError::InvalidField { field, reason }
}

fn slice(bytes: &[u8], start: usize, len: usize) -> Result<&[u8], FormatError> {
    bytes.get(start..start + len).ok_or(FormatError::Truncated {
        needed: start + len,
        available: bytes.len(),
    })
}

/// A bounds-checked little-endian reader: every decoder goes through it, so no input can make
/// one index out of bounds.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], FormatError> {
        let taken = slice(self.bytes, self.at, len)?;
        self.at += len;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, FormatError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn bytes_u32(&mut self) -> Result<&'a [u8], FormatError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn utf8(bytes: &'a [u8], field: &'static str) -> Result<&'a str, FormatError> {
        std::str::from_utf8(bytes).map_err(|error| invalid(field, error.to_string()))
    }

    fn str_u8(&mut self, field: &'static str) -> Result<&'a str, FormatError> {
        let len = usize::from(self.u8()?);
        Self::utf8(self.take(len)?, field)
    }

    fn str_u16(&mut self, field: &'static str) -> Result<&'a str, FormatError> {
        let len = usize::from(self.u16()?);
        Self::utf8(self.take(len)?, field)
    }

    fn str_u32(&mut self, field: &'static str) -> Result<&'a str, FormatError> {
        let bytes = self.bytes_u32()?;
        Self::utf8(bytes, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_event(data: Payload, metadata: Option<JsonText>) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::now_v7(),
            stream: StreamName::parse("order/o-1 ü").expect("valid"),
            revision: Revision(7),
            position: Position(4711),
            event_type: EventType::parse("OrderPlaced").expect("valid"),
            data,
            metadata,
            recorded_at: RecordedAt(1_795_428_930_123_456),
        }
    }

    fn encode(event: &RecordedEvent) -> Vec<u8> {
        let mut out = Vec::new();
        let len = encode_event(
            &EventRecordRef {
                position: event.position,
                revision: event.revision,
                recorded_at: event.recorded_at,
                id: event.id,
                stream: &event.stream,
                event_type: &event.event_type,
                data: &event.data,
                metadata: event.metadata.as_ref(),
            },
            &mut out,
        );
        assert_eq!(len, out.len());
        assert!(
            len <= event_frame_len_bound(
                &event.stream,
                &event.event_type,
                &event.data,
                event.metadata.as_ref()
            )
        );
        out
    }

    #[test]
    fn json_event_round_trips() {
        let event = sample_event(
            Payload::Json(JsonText::parse(r#"{"total": 42.5}"#.to_owned()).expect("json")),
            Some(JsonText::parse(r#"{"c":1}"#.to_owned()).expect("json")),
        );
        assert_eq!(decode_event(&encode(&event)), Ok(event));
    }

    #[test]
    fn binary_event_round_trips() {
        let event = sample_event(
            Payload::Binary {
                content_type: "application/octet-stream".to_owned(),
                bytes: vec![0, 1, 2, 255],
            },
            None,
        );
        assert_eq!(decode_event(&encode(&event)), Ok(event));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let event = sample_event(
            Payload::Json(JsonText::parse("[1,2,3]".to_owned()).expect("json")),
            None,
        );
        let bytes = encode(&event);
        for index in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[index] ^= 1 << bit;
                assert!(
                    decode_event(&flipped).is_err(),
                    "flip of bit {bit} at byte {index} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn batch_header_round_trips_and_rejects_empty_batches() {
        let header = BatchHeader {
            first_position: Position(10),
            event_count: 3,
            body_len: 999,
            body_crc: 0xDEAD_BEEF,
        };
        let mut out = Vec::new();
        encode_batch_header(&header, &mut out);
        assert_eq!(out.len(), BATCH_HEADER_FRAME_LEN);
        assert_eq!(decode_batch_header(&out), Ok(header));
        let mut empty = Vec::new();
        encode_batch_header(
            &BatchHeader {
                event_count: 0,
                ..header
            },
            &mut empty,
        );
        assert!(decode_batch_header(&empty).is_err());
    }

    #[test]
    fn zero_word_marks_the_end() {
        assert_eq!(FrameHeader::decode(&[0u8; 8]), Ok(None));
    }

    #[test]
    fn segment_header_round_trips_and_refuses_future_versions() {
        let header = SegmentHeader {
            first_position: Position(1000),
            capacity_bytes: 1 << 20,
            created_at: RecordedAt(5),
        };
        let mut page = header.encode();
        assert_eq!(SegmentHeader::decode(&page), Ok(header));
        page[8] = 2;
        let crc = crc32c::crc32c(&page[0..40]);
        page[40..44].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            SegmentHeader::decode(&page),
            Err(FormatError::UnsupportedVersion(2))
        );
    }

    proptest! {
        #[test]
        fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            decode_everything(&bytes);
        }

        #[test]
        fn decoders_never_panic_on_mutated_records(
            data in "[a-z0-9]{0,64}",
            mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let event = sample_event(
                Payload::Json(JsonText::parse(format!("\"{data}\"")).expect("json")),
                None,
            );
            let mut bytes = encode(&event);
            for (index, value) in mutations {
                let at = index.index(bytes.len());
                bytes[at] = value;
            }
            let _ = decode_event(&bytes);
            let _ = decode_event(&bytes[..cut.index(bytes.len())]);
        }
    }
}
