//! Events: what a client proposes to append, and what the store records.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::names::{EventType, StreamName};
use crate::numbers::{Position, Revision};

/// JSON text that is known to be valid, kept as text so that an event's data is stored and
/// served byte for byte as it arrived, without being parsed and re-serialised on every read.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonText(String);

impl JsonText {
    /// Validates `text` as one JSON value.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<&RawValue>(&text)?;
        Ok(Self(text))
    }

    pub fn from_value(value: &serde_json::Value) -> Self {
        Self(value.to_string())
    }

    /// Text that an engine stored after validating it, read back under a checksum. Nothing from
    /// outside the process may come through here: use [`JsonText::parse`].
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn to_value(&self) -> serde_json::Value {
        // Valid by construction; a failure here would mean a stored record was corrupted
        // under a matching checksum, which the engines assert against on read.
        serde_json::from_str(&self.0).unwrap_or(serde_json::Value::Null)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(Self(String::from(Box::<str>::from(raw))))
    }
}

/// An event's body: JSON, or opaque bytes with a media type (as in CloudEvents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Json(JsonText),
    Binary {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl Payload {
    pub fn len(&self) -> usize {
        match self {
            Self::Json(text) => text.len(),
            Self::Binary {
                content_type,
                bytes,
            } => content_type.len() + bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// When the store recorded an event: microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordedAt(pub i64);

impl RecordedAt {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_micros())
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// RFC 3339 with microseconds, as the API returns it: `2026-11-23T10:15:30.123456Z`.
    pub fn to_rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_micros(self.0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl fmt::Display for RecordedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// An event as a client proposes it, before the store numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedEvent {
    /// `None` lets the store assign a UUIDv7.
    pub id: Option<Uuid>,
    pub event_type: EventType,
    pub data: Payload,
    pub metadata: Option<JsonText>,
}

impl ProposedEvent {
    pub fn json(event_type: EventType, data: JsonText) -> Self {
        Self {
            id: None,
            event_type,
            data: Payload::Json(data),
            metadata: None,
        }
    }

    /// The bytes this event counts against the per-event and per-append limits: its type, data
    /// and metadata, as sent.
    pub fn size_bytes(&self) -> usize {
        self.event_type.as_str().len()
            + self.data.len()
            + self.metadata.as_ref().map_or(0, JsonText::len)
    }
}

/// An event as the store recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub id: Uuid,
    pub stream: StreamName,
    pub revision: Revision,
    pub position: Position,
    pub event_type: EventType,
    pub data: Payload,
    pub metadata: Option<JsonText>,
    pub recorded_at: RecordedAt,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_keeps_the_original_bytes() {
        let text = JsonText::parse(r#"{ "b":1,  "a" : [1,2] }"#.to_owned()).expect("valid");
        assert_eq!(text.as_str(), r#"{ "b":1,  "a" : [1,2] }"#);
        let out = serde_json::to_string(&serde_json::json!({"data": text})).expect("serialises");
        assert!(out.contains("\"a\""), "{out}");
    }

    #[test]
    fn json_text_rejects_invalid_and_trailing_input() {
        assert!(JsonText::parse("{".to_owned()).is_err());
        assert!(JsonText::parse("1 2".to_owned()).is_err());
        assert!(JsonText::parse(String::new()).is_err());
    }

    #[test]
    fn recorded_at_formats_with_microseconds() {
        let at = RecordedAt(1_795_428_930_123_456);
        assert_eq!(at.to_rfc3339(), "2026-11-23T10:15:30.123456Z");
    }
}
