//! The Event JSON of API.md ("Event (as returned)"), built from a recorded event in one place,
//! so that what a pattern matches, what a webhook carries and what a read returns agree.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use runnel_core::{JsonText, Payload, RecordedEvent};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// An event shaped as API.md returns it, borrowing from the recorded event. JSON data and
/// metadata serialise byte for byte as they were appended; a binary payload becomes
/// `data_base64` (standard alphabet, padded) plus `content_type`. `metadata` is always present,
/// `null` when the event has none, as the read endpoints return it.
#[derive(Debug, Clone, Serialize)]
pub struct EventDocument<'a> {
    id: Uuid,
    stream_type: &'a str,
    stream_id: &'a str,
    revision: u64,
    position: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a JsonText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    metadata: Option<&'a JsonText>,
    recorded_at: String,
}

impl<'a> EventDocument<'a> {
    /// The document of `event`.
    pub fn new(event: &'a RecordedEvent) -> Self {
        let (data, data_base64, content_type) = match &event.data {
            Payload::Json(text) => (Some(text), None, None),
            Payload::Binary {
                content_type,
                bytes,
            } => (
                None,
                Some(BASE64.encode(bytes)),
                Some(content_type.as_str()),
            ),
        };
        Self {
            id: event.id,
            stream_type: event.stream.stream_type().as_str(),
            stream_id: event.stream.stream_id().as_str(),
            revision: event.revision.0,
            position: event.position.0,
            event_type: event.event_type.as_str(),
            data,
            data_base64,
            content_type,
            metadata: event.metadata.as_ref(),
            recorded_at: event.recorded_at.to_rfc3339(),
        }
    }

    /// Compact JSON bytes, with data and metadata exactly as appended (a webhook body).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising borrowed strings, numbers and validated JSON text cannot fail; an error
        // would mean a stored JsonText was corrupted, which the engines check on read.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The Event JSON of `event` as a value, with `data` and `metadata` parsed: what event
/// patterns are matched against.
pub fn event_json(event: &RecordedEvent) -> Value {
    // As in `to_bytes`, this cannot fail for a valid stored event.
    serde_json::to_value(EventDocument::new(event)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use runnel_core::{EventType, Position, RecordedAt, Revision, StreamName};
    use serde_json::json;

    use super::*;

    fn recorded(data: Payload, metadata: Option<&str>) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::parse_str("0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e").expect("uuid"),
            stream: StreamName::parse("order/o-1001").expect("name"),
            revision: Revision(0),
            position: Position(4711),
            event_type: EventType::parse("OrderPlaced").expect("type"),
            data,
            metadata: metadata.map(|m| JsonText::parse(m.to_owned()).expect("json")),
            recorded_at: RecordedAt(1_795_428_930_123_456),
        }
    }

    fn json_data(text: &str) -> Payload {
        Payload::Json(JsonText::parse(text.to_owned()).expect("json"))
    }

    #[test]
    fn a_json_event_has_the_shape_of_the_api() {
        let event = recorded(
            json_data(r#"{"total": 42.5}"#),
            Some(r#"{"correlation_id": "c-9"}"#),
        );
        assert_eq!(
            event_json(&event),
            json!({
                "id": "0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e",
                "stream_type": "order",
                "stream_id": "o-1001",
                "revision": 0,
                "position": 4711,
                "type": "OrderPlaced",
                "data": {"total": 42.5},
                "metadata": {"correlation_id": "c-9"},
                "recorded_at": "2026-11-23T10:15:30.123456Z"
            })
        );
    }

    #[test]
    fn missing_metadata_is_null_as_reads_return_it() {
        let value = event_json(&recorded(json_data("1"), None));
        assert_eq!(value["metadata"], Value::Null);
        assert!(value.as_object().expect("object").contains_key("metadata"));
    }

    #[test]
    fn a_binary_event_carries_data_base64_and_content_type() {
        let event = recorded(
            Payload::Binary {
                content_type: "application/octet-stream".to_owned(),
                bytes: vec![0, 1, 2, 255],
            },
            None,
        );
        let value = event_json(&event);
        assert_eq!(value["data_base64"], "AAEC/w==");
        assert_eq!(value["content_type"], "application/octet-stream");
        assert!(value.get("data").is_none());
    }

    #[test]
    fn bytes_keep_the_data_exactly_as_appended() {
        let event = recorded(json_data(r#"{ "b":1,  "a" : [1,2] }"#), Some("{}"));
        let body = String::from_utf8(EventDocument::new(&event).to_bytes()).expect("utf-8");
        assert_eq!(
            body,
            r#"{"id":"0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e","stream_type":"order","stream_id":"o-1001","revision":0,"position":4711,"type":"OrderPlaced","data":{ "b":1,  "a" : [1,2] },"metadata":{},"recorded_at":"2026-11-23T10:15:30.123456Z"}"#
        );
    }
}
