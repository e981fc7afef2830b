//! The JSON shapes of API.md as Rust types. Field names and meanings mirror the documents
//! exactly; payloads stay raw JSON text so that what the server stored is what a caller sees
//! (key order and number formatting included) until the caller decodes it.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use runnel_core::{ExpectedRevision, StreamName};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::error::ClientError;

/// An event as the server returns it (API.md, "Event (as returned)").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    pub stream_type: String,
    pub stream_id: String,
    pub revision: u64,
    pub position: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The JSON payload, exactly as stored. `None` for binary events (see `data_base64`).
    #[serde(
        default,
        deserialize_with = "present_raw_json",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<Box<RawValue>>,
    /// A non-JSON payload, base64-encoded, with its `content_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `None` when the server sent no metadata or `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Box<RawValue>>,
    pub recorded_at: DateTime<Utc>,
}

/// `data` may legitimately be the JSON value `null`, which must not read as "no data" (that
/// would make it look like a binary event): a present field is always `Some`.
fn present_raw_json<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

impl Event {
    /// The stream's full name, `{type}/{id}`.
    pub fn stream(&self) -> String {
        format!("{}/{}", self.stream_type, self.stream_id)
    }

    /// Decodes the JSON payload into `T`.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        let raw = self.data.as_ref().ok_or_else(|| {
            ClientError::Decode(format!(
                "event {} has a binary payload, not JSON data",
                self.id
            ))
        })?;
        serde_json::from_str(raw.get()).map_err(|error| {
            ClientError::Decode(format!(
                "data of event {} as requested type: {error}",
                self.id
            ))
        })
    }

    /// Decodes the metadata into `T`; `None` when the event has none.
    pub fn metadata_as<T: DeserializeOwned>(&self) -> Result<Option<T>, ClientError> {
        self.metadata
            .as_ref()
            .map(|raw| {
                serde_json::from_str(raw.get()).map_err(|error| {
                    ClientError::Decode(format!(
                        "metadata of event {} as requested type: {error}",
                        self.id
                    ))
                })
            })
            .transpose()
    }

    /// The payload's bytes: the JSON text for JSON events, the decoded bytes for binary ones.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, ClientError> {
        if let Some(raw) = &self.data {
            return Ok(raw.get().as_bytes().to_vec());
        }
        let encoded = self.data_base64.as_deref().unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| {
                ClientError::Decode(format!("data_base64 of event {}: {error}", self.id))
            })
    }
}

/// An event to append. Build one with [`NewEvent::json`], [`NewEvent::raw_json`] or
/// [`NewEvent::binary`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Option<Uuid>,
    pub event_type: String,
    pub payload: NewPayload,
    pub metadata: Option<Box<RawValue>>,
}

#[derive(Debug, Clone)]
pub enum NewPayload {
    Json(Box<RawValue>),
    Binary {
        bytes: Vec<u8>,
        content_type: String,
    },
}

impl NewEvent {
    /// An event whose data is `data` serialized as JSON.
    pub fn json(event_type: impl Into<String>, data: &impl Serialize) -> Result<Self, ClientError> {
        let raw = serde_json::value::to_raw_value(data)
            .map_err(|error| ClientError::InvalidArgument(format!("event data: {error}")))?;
        Ok(Self::raw_json(event_type, raw))
    }

    /// An event whose data is JSON text the caller already has.
    pub fn raw_json(event_type: impl Into<String>, data: Box<RawValue>) -> Self {
        Self {
            id: None,
            event_type: event_type.into(),
            payload: NewPayload::Json(data),
            metadata: None,
        }
    }

    /// An event with a non-JSON payload, sent as `data_base64` plus `content_type`.
    pub fn binary(
        event_type: impl Into<String>,
        bytes: Vec<u8>,
        content_type: impl Into<String>,
    ) -> Self {
        Self {
            id: None,
            event_type: event_type.into(),
            payload: NewPayload::Binary {
                bytes,
                content_type: content_type.into(),
            },
            metadata: None,
        }
    }

    /// Sets the event id. Retrying an append with the same ids is idempotent (API.md).
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }

    pub fn with_metadata(mut self, metadata: &impl Serialize) -> Result<Self, ClientError> {
        let raw = serde_json::value::to_raw_value(metadata)
            .map_err(|error| ClientError::InvalidArgument(format!("event metadata: {error}")))?;
        self.metadata = Some(raw);
        Ok(self)
    }

    pub fn with_raw_metadata(mut self, metadata: Box<RawValue>) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// The wire form of [`NewEvent`].
#[derive(Serialize)]
struct NewEventBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a RawValue>,
}

impl Serialize for NewEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (data, data_base64, content_type) = match &self.payload {
            NewPayload::Json(raw) => (Some(raw.as_ref()), None, None),
            NewPayload::Binary {
                bytes,
                content_type,
            } => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
                Some(content_type.as_str()),
            ),
        };
        NewEventBody {
            id: self.id,
            event_type: &self.event_type,
            data,
            data_base64,
            content_type,
            metadata: self.metadata.as_deref(),
        }
        .serialize(serializer)
    }
}

/// The body of `POST /streams/{type}/{id}/events`.
#[derive(Serialize)]
pub(crate) struct AppendBody<'a> {
    #[serde(serialize_with = "serialize_expected_revision")]
    pub(crate) expected_revision: ExpectedRevision,
    pub(crate) events: &'a [NewEvent],
}

/// `"any"`, `"no_stream"`, `"exists"`, or the revision as an integer (API.md, "Append").
fn serialize_expected_revision<S: serde::Serializer>(
    expected: &ExpectedRevision,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match expected {
        ExpectedRevision::Any => serializer.serialize_str("any"),
        ExpectedRevision::NoStream => serializer.serialize_str("no_stream"),
        ExpectedRevision::Exists => serializer.serialize_str("exists"),
        ExpectedRevision::Exact(revision) => serializer.serialize_u64(revision.0),
    }
}

/// What an acknowledged append wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendResult {
    pub stream_type: String,
    pub stream_id: String,
    pub first_revision: u64,
    pub last_revision: u64,
    pub first_position: u64,
    pub last_position: u64,
}

/// One stream, from `GET /streams/{type}/{id}` or a listing of a type's streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub stream_type: String,
    pub stream_id: String,
    /// The last revision.
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
}

/// One stream type with how many streams it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTypeInfo {
    pub stream_type: String,
    pub streams: u64,
}

/// `{"events": [...], "next": <revision or null>}` of a stream read.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamEventsPage {
    pub events: Vec<Event>,
    pub next: Option<u64>,
}

/// `{"events": [...], "next": <position or null>}` of a `$all` read.
#[derive(Debug, Clone, Deserialize)]
pub struct AllEventsPage {
    pub events: Vec<Event>,
    pub next: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamTypesPage {
    pub types: Vec<StreamTypeInfo>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamsPage {
    pub streams: Vec<StreamInfo>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Forward,
    Backward,
}

impl Direction {
    pub(crate) fn as_query(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Backward => "backward",
        }
    }
}

/// Which events of `$all` a read or a subscription delivers. Within each list any value
/// matches; the lists that are not empty must all match (API.md, "Read everything").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub stream_types: Vec<String>,
    pub event_types: Vec<String>,
    /// Whole streams (`stream={type}/{id}`).
    pub streams: Vec<StreamName>,
}

impl EventFilter {
    pub fn stream_type(mut self, stream_type: impl Into<String>) -> Self {
        self.stream_types.push(stream_type.into());
        self
    }

    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_types.push(event_type.into());
        self
    }

    pub fn stream(mut self, stream: StreamName) -> Self {
        self.streams.push(stream);
        self
    }

    pub(crate) fn query_pairs(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        let types = self.stream_types.iter().map(|t| ("stream_type", t.clone()));
        let events = self.event_types.iter().map(|e| ("event_type", e.clone()));
        let streams = self.streams.iter().map(|s| ("stream", s.to_string()));
        types.chain(events).chain(streams)
    }
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscribeFrom {
    /// Every matching stored event from this position on, then live ones.
    Position(u64),
    /// Only events committed after the subscription starts.
    #[default]
    End,
}

impl SubscribeFrom {
    pub const BEGINNING: Self = Self::Position(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_core::Revision;

    const EVENT_JSON: &str = r#"{"id":"0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e","stream_type":"order","stream_id":"o-1001","revision":0,"position":4711,"type":"OrderPlaced","data":{"total":42.5,"a":1},"metadata":{"correlation_id":"c-9"},"recorded_at":"2026-11-23T10:15:30.123456Z"}"#;

    #[test]
    fn an_event_decodes_from_the_documented_json_and_keeps_its_payload_text() {
        let event: Event = serde_json::from_str(EVENT_JSON).expect("documented shape");
        assert_eq!(event.stream(), "order/o-1001");
        assert_eq!(event.revision, 0);
        assert_eq!(event.position, 4711);
        assert_eq!(event.event_type, "OrderPlaced");
        // Key order is the stored one, not sorted.
        assert_eq!(
            event.data.as_ref().map(|d| d.get()),
            Some(r#"{"total":42.5,"a":1}"#)
        );
        let data: serde_json::Value = event.data_as().expect("json data");
        assert_eq!(data["total"], 42.5);
        assert_eq!(
            event
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "2026-11-23T10:15:30.123456Z"
        );
        // And it serializes back to the same document.
        assert_eq!(
            serde_json::to_string(&event).expect("serializes"),
            EVENT_JSON
        );
    }

    #[test]
    fn null_data_is_data_and_null_metadata_is_none() {
        let json = EVENT_JSON
            .replace(r#"{"total":42.5,"a":1}"#, "null")
            .replace(r#"{"correlation_id":"c-9"}"#, "null");
        let event: Event = serde_json::from_str(&json).expect("valid");
        assert_eq!(event.data.as_ref().map(|d| d.get()), Some("null"));
        assert!(event.metadata.is_none());
    }

    #[test]
    fn binary_events_decode_their_base64_payload() {
        let json = EVENT_JSON.replace(
            r#""data":{"total":42.5,"a":1}"#,
            r#""data_base64":"AAEC/w==","content_type":"application/octet-stream""#,
        );
        let event: Event = serde_json::from_str(&json).expect("valid");
        assert!(event.data.is_none());
        assert_eq!(event.payload_bytes().expect("base64"), vec![0u8, 1, 2, 255]);
        assert!(event.data_as::<serde_json::Value>().is_err());
    }

    #[test]
    fn new_events_serialize_to_the_append_shape() {
        let id = Uuid::parse_str("0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e").expect("uuid");
        let json_event = NewEvent::json("OrderPlaced", &serde_json::json!({"total": 1}))
            .expect("serializable")
            .with_id(id)
            .with_metadata(&serde_json::json!({"by": "me"}))
            .expect("serializable");
        let binary = NewEvent::binary("Blob", vec![0, 1, 2, 255], "application/octet-stream");
        let events = [json_event, binary];
        let body = AppendBody {
            expected_revision: ExpectedRevision::Exact(Revision(7)),
            events: &events,
        };
        assert_eq!(
            serde_json::to_string(&body).expect("serializes"),
            r#"{"expected_revision":7,"events":[{"id":"0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e","type":"OrderPlaced","data":{"total":1},"metadata":{"by":"me"}},{"type":"Blob","data_base64":"AAEC/w==","content_type":"application/octet-stream"}]}"#
        );
    }

    #[test]
    fn expected_revisions_use_the_documented_words() {
        for (expected, json) in [
            (ExpectedRevision::Any, r#""any""#),
            (ExpectedRevision::NoStream, r#""no_stream""#),
            (ExpectedRevision::Exists, r#""exists""#),
            (ExpectedRevision::Exact(Revision(0)), "0"),
        ] {
            let body = AppendBody {
                expected_revision: expected,
                events: &[],
            };
            let text = serde_json::to_string(&body).expect("serializes");
            assert_eq!(
                text,
                format!(r#"{{"expected_revision":{json},"events":[]}}"#)
            );
        }
    }

    #[test]
    fn filters_become_repeated_query_parameters() {
        let filter = EventFilter::default()
            .stream_type("order")
            .stream_type("invoice")
            .event_type("OrderPlaced")
            .stream(StreamName::parse("order/o-1").expect("valid"));
        let pairs: Vec<_> = filter.query_pairs().collect();
        assert_eq!(
            pairs,
            vec![
                ("stream_type", "order".to_owned()),
                ("stream_type", "invoice".to_owned()),
                ("event_type", "OrderPlaced".to_owned()),
                ("stream", "order/o-1".to_owned()),
            ]
        );
    }
}
