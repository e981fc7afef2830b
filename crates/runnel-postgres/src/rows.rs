//! Turning rows back into events, checking on the way what the schema cannot: that names are
//! still valid names and numbers are not negative.

use chrono::{DateTime, Utc};
use runnel_core::{
    EventType, JsonText, Payload, Position, RecordedAt, RecordedEvent, Revision, StoreError,
    StreamId, StreamName, StreamType,
};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;
use uuid::Uuid;

/// A value that does not fit this engine's invariants: corruption, or another writer.
pub(crate) fn corrupt_row(what: impl std::fmt::Display) -> StoreError {
    StoreError::Index {
        action: "reading a row from PostgreSQL".to_owned(),
        cause: what.to_string(),
    }
}

pub(crate) fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|error| corrupt_row(format!("column {index}: {error}")))
}

pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt_row(format!("negative {what} {value}")))
}

/// Positions and revisions beyond `i64::MAX` cannot exist in the database; reads from there
/// start at the largest value it can hold, which is past any event.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn recorded_at(at: DateTime<Utc>) -> RecordedAt {
    RecordedAt(at.timestamp_micros())
}

pub(crate) fn stream_name(stream_type: &str, stream_id: &str) -> Result<StreamName, StoreError> {
    let stream_type = StreamType::parse(stream_type).map_err(corrupt_row)?;
    let stream_id = StreamId::parse(stream_id).map_err(corrupt_row)?;
    Ok(StreamName::new(stream_type, stream_id))
}

/// The event columns of the read queries, starting at `first`: position, stream type, stream
/// id, revision, id, event type, data_json, data_binary, content_type, metadata, recorded_at.
/// The stream columns are skipped when `stream` is given (the query selected by stream).
pub(crate) struct EventColumns {
    pub(crate) first: usize,
}

impl EventColumns {
    /// Whether the row carries an event at all (a LEFT JOIN with no match leaves them NULL).
    pub(crate) fn present(&self, row: &Row) -> Result<bool, StoreError> {
        Ok(column::<Option<i64>>(row, self.first)?.is_some())
    }

    /// Decodes an event from a `$all` row: position, stream type, stream id, revision, id,
    /// event type, data_json, data_binary, content_type, metadata, recorded_at.
    pub(crate) fn decode(&self, row: &Row) -> Result<RecordedEvent, StoreError> {
        let at = self.first;
        let stream = stream_name(column(row, at + 1)?, column(row, at + 2)?)?;
        self.decode_rest(row, at, at + 3, stream)
    }

    /// Decodes an event from a stream-read row: revision, position, id, event type, data_json,
    /// data_binary, content_type, metadata, recorded_at.
    pub(crate) fn decode_in_stream(
        &self,
        row: &Row,
        stream: &StreamName,
    ) -> Result<RecordedEvent, StoreError> {
        let at = self.first;
        self.decode_rest(row, at + 1, at, stream.clone())
    }

    fn decode_rest(
        &self,
        row: &Row,
        position_at: usize,
        revision_at: usize,
        stream: StreamName,
    ) -> Result<RecordedEvent, StoreError> {
        let tail = position_at.max(revision_at) + 1;
        let position = to_u64(column(row, position_at)?, "position")?;
        let revision = to_u64(column(row, revision_at)?, "revision")?;
        let id: Uuid = column(row, tail)?;
        let event_type = EventType::parse(column(row, tail + 1)?).map_err(corrupt_row)?;
        let data_json: Option<String> = column(row, tail + 2)?;
        let data_binary: Option<Vec<u8>> = column(row, tail + 3)?;
        let content_type: Option<String> = column(row, tail + 4)?;
        let metadata: Option<String> = column(row, tail + 5)?;
        let at: DateTime<Utc> = column(row, tail + 6)?;
        let data = match (data_json, data_binary, content_type) {
            (Some(text), None, None) => Payload::Json(JsonText::from_stored(text)),
            (None, Some(bytes), Some(content_type)) => Payload::Binary {
                content_type,
                bytes,
            },
            _ => {
                return Err(corrupt_row(format!(
                    "event at position {position} has neither JSON nor binary data"
                )));
            }
        };
        Ok(RecordedEvent {
            id,
            stream,
            revision: Revision(revision),
            position: Position(position),
            event_type,
            data,
            metadata: metadata.map(JsonText::from_stored),
            recorded_at: recorded_at(at),
        })
    }
}
