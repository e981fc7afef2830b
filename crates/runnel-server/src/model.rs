//! The JSON shapes of API.md, in and out, and their conversion to and from the domain types.
//! Event data stays raw JSON text ([`JsonText`]) from the request to the log and back, so it is
//! stored and served byte for byte as the client sent it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use runnel_core::{
    AppendOutcome, EventType, ExpectedRevision, JsonText, Payload, ProposedEvent, RecordedEvent,
    Revision, StreamInfo, StreamTypeInfo,
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::problem::ApiError;

/// The longest `content_type` of a binary payload.
const MAX_CONTENT_TYPE_BYTES: usize = 256;

/// The deepest nesting of arrays and objects accepted in `data` and `metadata`. Raw JSON is
/// checked without recursion, so any depth would be stored; but common parsers (serde_json,
/// and so the Rust client) refuse more than 128 levels, and an event that subscribers cannot
/// parse would stop every one of them at that position.
pub(crate) const MAX_JSON_DEPTH: usize = 128;

/// An event as returned by every read (API.md "Event (as returned)").
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Event)]
pub(crate) struct EventView {
    #[schema(value_type = String, format = Uuid)]
    pub(crate) id: Uuid,
    #[schema(example = "order")]
    pub(crate) stream_type: String,
    #[schema(example = "o-1001")]
    pub(crate) stream_id: String,
    pub(crate) revision: u64,
    pub(crate) position: u64,
    #[serde(rename = "type")]
    #[schema(example = "OrderPlaced")]
    pub(crate) event_type: String,
    /// Any JSON value, as appended. Absent for binary payloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) data: Option<JsonText>,
    /// A binary payload, base64 (standard alphabet, padded). Absent for JSON payloads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_base64: Option<String>,
    /// The media type of a binary payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content_type: Option<String>,
    /// Any JSON value, or `null`.
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) metadata: Option<JsonText>,
    /// RFC 3339, UTC, microseconds.
    #[schema(example = "2026-11-23T10:15:30.123456Z")]
    pub(crate) recorded_at: String,
}

impl From<RecordedEvent> for EventView {
    fn from(event: RecordedEvent) -> Self {
        let (data, data_base64, content_type) = match event.data {
            Payload::Json(text) => (Some(text), None, None),
            Payload::Binary {
                content_type,
                bytes,
            } => (None, Some(BASE64.encode(bytes)), Some(content_type)),
        };
        Self {
            id: event.id,
            stream_type: event.stream.stream_type().as_str().to_owned(),
            stream_id: event.stream.stream_id().as_str().to_owned(),
            revision: event.revision.0,
            position: event.position.0,
            event_type: event.event_type.as_str().to_owned(),
            data,
            data_base64,
            content_type,
            metadata: event.metadata,
            recorded_at: event.recorded_at.to_rfc3339(),
        }
    }
}

/// The body of `POST /streams/{type}/{id}/events`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppendBody {
    /// `"any"` (default), `"no_stream"`, `"exists"`, or the exact last revision.
    #[serde(default)]
    #[schema(value_type = ExpectedRevisionSchema)]
    pub(crate) expected_revision: ExpectedRevisionBody,
    /// One or more events, written atomically with consecutive revisions.
    pub(crate) events: Vec<EventIn>,
}

/// The OpenAPI shape of `expected_revision`.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum ExpectedRevisionSchema {
    Keyword(ExpectedRevisionKeyword),
    Revision(u64),
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum ExpectedRevisionKeyword {
    Any,
    NoStream,
    Exists,
}

/// `expected_revision` as sent; parsed by hand so that a wrong value gets a precise message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExpectedRevisionBody(pub(crate) ExpectedRevision);

impl<'de> Deserialize<'de> for ExpectedRevisionBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ExpectedRevisionBody;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""any", "no_stream", "exists" or a revision (an integer ≥ 0)"#)
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                match value {
                    "any" => Ok(ExpectedRevisionBody(ExpectedRevision::Any)),
                    "no_stream" => Ok(ExpectedRevisionBody(ExpectedRevision::NoStream)),
                    "exists" => Ok(ExpectedRevisionBody(ExpectedRevision::Exists)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(value), &self)),
                }
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
                Ok(ExpectedRevisionBody(ExpectedRevision::Exact(Revision(
                    value,
                ))))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
                u64::try_from(value)
                    .map(|v| ExpectedRevisionBody(ExpectedRevision::Exact(Revision(v))))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One event of an append: JSON `data`, or `data_base64` with `content_type`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProposedEvent)]
pub(crate) struct EventIn {
    /// Optional; the server assigns a UUIDv7 when absent. Store-wide unique: re-sending the same
    /// ids to the same stream and revisions is an idempotent retry.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub(crate) id: Option<Uuid>,
    #[serde(rename = "type")]
    #[schema(example = "OrderPlaced")]
    pub(crate) event_type: String,
    /// Any JSON value (including `null`), stored byte for byte.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) data: Option<JsonText>,
    /// A binary payload in base64 (standard alphabet), instead of `data`.
    #[serde(default)]
    pub(crate) data_base64: Option<String>,
    /// The media type of `data_base64` (required with it).
    #[serde(default)]
    #[schema(example = "application/octet-stream")]
    pub(crate) content_type: Option<String>,
    /// Any JSON value, or absent/`null`.
    #[serde(default)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub(crate) metadata: Option<JsonText>,
}

/// `data: null` is a value (JSON null), not an absent field.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<JsonText>, D::Error> {
    JsonText::deserialize(deserializer).map(Some)
}

impl EventIn {
    /// Validates the event at `index` of an append into what the store takes.
    pub(crate) fn into_proposed(self, index: usize) -> Result<ProposedEvent, ApiError> {
        let at = |field: &str| format!("events[{index}].{field}");
        let event_type = EventType::parse(&self.event_type)
            .map_err(|error| ApiError::invalid_name(at("type"), error))?;
        for (field, json) in [("data", &self.data), ("metadata", &self.metadata)] {
            if let Some(json) = json
                && json_depth(json.as_str()) > MAX_JSON_DEPTH
            {
                return Err(ApiError::InvalidBody(format!(
                    "{}: nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects",
                    at(field)
                )));
            }
        }
        let data = match (self.data, self.data_base64, self.content_type) {
            (Some(json), None, None) => Payload::Json(json),
            (None, Some(encoded), Some(content_type)) => {
                check_content_type(&content_type).map_err(|reason| {
                    ApiError::InvalidBody(format!("{}: {reason}", at("content_type")))
                })?;
                let bytes = BASE64.decode(encoded.as_bytes()).map_err(|error| {
                    ApiError::InvalidBody(format!(
                        "{}: not valid base64: {error}",
                        at("data_base64")
                    ))
                })?;
                Payload::Binary {
                    content_type,
                    bytes,
                }
            }
            (Some(_), Some(_), _) => {
                return Err(ApiError::InvalidBody(format!(
                    "events[{index}]: give either data or data_base64, not both"
                )));
            }
            (Some(_), None, Some(_)) => {
                return Err(ApiError::InvalidBody(format!(
                    "{}: only goes with data_base64 (JSON data needs no content type)",
                    at("content_type")
                )));
            }
            (None, Some(_), None) => {
                return Err(ApiError::InvalidBody(format!(
                    "{}: missing; data_base64 needs a content_type",
                    at("content_type")
                )));
            }
            (None, None, _) => {
                return Err(ApiError::InvalidBody(format!(
                    "{}: missing (give data, or data_base64 with content_type)",
                    at("data")
                )));
            }
        };
        Ok(ProposedEvent {
            id: self.id,
            event_type,
            data,
            metadata: self.metadata,
        })
    }
}

/// The deepest nesting of arrays and objects in valid JSON text, found without recursion.
fn json_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn check_content_type(content_type: &str) -> Result<(), &'static str> {
    if content_type.is_empty() || content_type.len() > MAX_CONTENT_TYPE_BYTES {
        return Err("must be 1 to 256 bytes");
    }
    if !content_type
        .bytes()
        .all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err("must be printable ASCII (a media type such as application/octet-stream)");
    }
    Ok(())
}

/// The 200 answer of an append.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AppendResult)]
pub(crate) struct AppendResultView {
    pub(crate) stream_type: String,
    pub(crate) stream_id: String,
    pub(crate) first_revision: u64,
    pub(crate) last_revision: u64,
    pub(crate) first_position: u64,
    pub(crate) last_position: u64,
}

impl From<AppendOutcome> for AppendResultView {
    fn from(outcome: AppendOutcome) -> Self {
        Self {
            stream_type: outcome.stream.stream_type().as_str().to_owned(),
            stream_id: outcome.stream.stream_id().as_str().to_owned(),
            first_revision: outcome.first_revision.0,
            last_revision: outcome.last_revision.0,
            first_position: outcome.first_position.0,
            last_position: outcome.last_position.0,
        }
    }
}

/// A page of one stream.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StreamEvents)]
pub(crate) struct StreamEventsView {
    pub(crate) events: Vec<EventView>,
    /// The `from` revision of the following page, or `null` when there is no more.
    pub(crate) next: Option<u64>,
}

/// A page of `$all`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AllEvents)]
pub(crate) struct AllEventsView {
    pub(crate) events: Vec<EventView>,
    /// The `from` position of the following page, or `null` at the head. With filters it may
    /// lie past the last returned event, so non-matching events are not scanned again.
    pub(crate) next: Option<u64>,
}

/// One stream's summary.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Stream)]
pub(crate) struct StreamView {
    pub(crate) stream_type: String,
    pub(crate) stream_id: String,
    /// The last revision.
    pub(crate) revision: u64,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl From<StreamInfo> for StreamView {
    fn from(info: StreamInfo) -> Self {
        Self {
            stream_type: info.stream.stream_type().as_str().to_owned(),
            stream_id: info.stream.stream_id().as_str().to_owned(),
            revision: info.revision.0,
            created_at: info.created_at.to_rfc3339(),
            updated_at: info.updated_at.to_rfc3339(),
        }
    }
}

/// A page of the streams of one type, in stream-id order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StreamList)]
pub(crate) struct StreamListView {
    pub(crate) streams: Vec<StreamView>,
    /// The `after` of the following page (a stream id), or `null`.
    pub(crate) next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StreamType)]
pub(crate) struct StreamTypeView {
    pub(crate) stream_type: String,
    /// How many streams of this type have events.
    pub(crate) streams: u64,
}

impl From<StreamTypeInfo> for StreamTypeView {
    fn from(info: StreamTypeInfo) -> Self {
        Self {
            stream_type: info.stream_type.as_str().to_owned(),
            streams: info.streams,
        }
    }
}

/// A page of stream types, in name order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = StreamTypeList)]
pub(crate) struct StreamTypeListView {
    pub(crate) types: Vec<StreamTypeView>,
    /// The `after` of the following page (a stream type), or `null`.
    pub(crate) next: Option<String>,
}

/// The answer of the health endpoints.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Health)]
pub(crate) struct HealthView {
    #[schema(example = "ok")]
    pub(crate) status: &'static str,
    /// Readiness only: `true` when the server runs with `--insecure` (no authentication).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) insecure: Option<bool>,
    /// Readiness only: present when something is unsafe about how the server runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) warning: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;

    fn one_event(json: &str) -> Result<ProposedEvent, ApiError> {
        let body: AppendBody = parse_json(format!(r#"{{"events": [{json}]}}"#).as_bytes())?;
        body.events
            .into_iter()
            .next()
            .expect("one event")
            .into_proposed(0)
    }

    #[test]
    fn expected_revision_accepts_keywords_and_integers_only() {
        let parse = |v: &str| {
            parse_json::<AppendBody>(
                format!(r#"{{"expected_revision": {v}, "events": []}}"#).as_bytes(),
            )
            .map(|b| b.expected_revision.0)
        };
        assert_eq!(parse(r#""any""#).expect("any"), ExpectedRevision::Any);
        assert_eq!(
            parse(r#""no_stream""#).expect("ns"),
            ExpectedRevision::NoStream
        );
        assert_eq!(parse(r#""exists""#).expect("ex"), ExpectedRevision::Exists);
        assert_eq!(parse("7").expect("7"), ExpectedRevision::Exact(Revision(7)));
        for bad in ["-1", "1.5", r#""7""#, r#""nope""#, "null", "[]"] {
            let error = parse(bad).expect_err(bad);
            assert!(
                error.to_string().starts_with("expected_revision"),
                "{bad}: {error}"
            );
        }
        let default = parse_json::<AppendBody>(br#"{"events": []}"#).expect("default");
        assert_eq!(default.expected_revision.0, ExpectedRevision::Any);
    }

    #[test]
    fn json_data_is_kept_byte_for_byte_and_null_is_a_value() {
        let event = one_event(r#"{"type": "A", "data": {"z": 1,  "a": 2.50}}"#).expect("valid");
        assert_eq!(
            event.data,
            Payload::Json(JsonText::parse(r#"{"z": 1,  "a": 2.50}"#.into()).expect("json"))
        );
        let event = one_event(r#"{"type": "A", "data": null}"#).expect("null data");
        assert_eq!(
            event.data,
            Payload::Json(JsonText::parse("null".into()).expect("json"))
        );
    }

    #[test]
    fn binary_payloads_need_base64_and_a_content_type() {
        let event =
            one_event(r#"{"type": "A", "data_base64": "AAEC", "content_type": "application/x"}"#)
                .expect("binary");
        assert_eq!(
            event.data,
            Payload::Binary {
                content_type: "application/x".into(),
                bytes: vec![0, 1, 2]
            }
        );
        for (bad, field) in [
            (r#"{"type": "A", "data_base64": "AAEC"}"#, "content_type"),
            (
                r#"{"type": "A", "data_base64": "!!", "content_type": "a/b"}"#,
                "data_base64",
            ),
            (
                r#"{"type": "A", "data": 1, "data_base64": "AAEC", "content_type": "a/b"}"#,
                "not both",
            ),
            (r#"{"type": "A"}"#, "data"),
            (r#"{"type": "A B", "data": 1}"#, "events[0].type"),
            (r#"{"type": "A", "data": 1, "extra": 1}"#, "extra"),
        ] {
            let error = one_event(bad).expect_err(bad);
            assert!(error.to_string().contains(field), "{bad}: {error}");
        }
    }

    #[test]
    fn json_depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth("1"), 0);
        assert_eq!(json_depth(r#"{"a": [1, {"b": []}]}"#), 4);
        assert_eq!(json_depth(r#"["[[[", "\\\"{{"]"#), 1);
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        let error =
            one_event(&format!(r#"{{"type": "A", "data": {deep}}}"#)).expect_err("too deep");
        assert!(
            error
                .to_string()
                .starts_with("events[0].data: nested deeper"),
            "{error}"
        );
        let ok = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(one_event(&format!(r#"{{"type": "A", "metadata": {ok}, "data": 1}}"#)).is_ok());
    }

    #[test]
    fn events_serialise_in_the_documented_shape() {
        let event = RecordedEvent {
            id: Uuid::nil(),
            stream: runnel_core::StreamName::parse("order/o-1").expect("valid"),
            revision: Revision(0),
            position: runnel_core::Position(4711),
            event_type: EventType::parse("OrderPlaced").expect("valid"),
            data: Payload::Json(JsonText::parse(r#"{"total":42.5}"#.into()).expect("json")),
            metadata: None,
            recorded_at: runnel_core::RecordedAt(1_795_428_930_123_456),
        };
        let json = serde_json::to_string(&EventView::from(event)).expect("serialises");
        assert_eq!(
            json,
            r#"{"id":"00000000-0000-0000-0000-000000000000","stream_type":"order","stream_id":"o-1","revision":0,"position":4711,"type":"OrderPlaced","data":{"total":42.5},"metadata":null,"recorded_at":"2026-11-23T10:15:30.123456Z"}"#
        );
    }
}
