//! The CloudEvents 1.0 HTTP binding of a recorded event, in structured mode (one
//! `application/cloudevents+json` body) and binary mode (`ce-*` headers, the data as the body).
//!
//! How an event maps onto CloudEvents attributes:
//!
//! | attribute         | value                                                             |
//! |-------------------|-------------------------------------------------------------------|
//! | `id`              | the event id (unique store-wide, so unique within any source)     |
//! | `source`          | `/streams/{type}/{id}`, the stream's path in the HTTP API, each segment percent-encoded (a URI-reference, as the spec asks) |
//! | `type`            | the event type                                                    |
//! | `subject`         | the stream id, so routers can filter on the entity without parsing `source` |
//! | `time`            | `recorded_at`, RFC 3339 with microseconds                         |
//! | `datacontenttype` | `application/json` for JSON data, the payload's content type otherwise |
//! | `runnelposition`  | the event's position in `$all`                                    |
//! | `runnelrevision`  | the event's revision in its stream                                |
//!
//! The two extension attributes are Strings holding decimal numbers: CloudEvents' Integer type
//! is 32-bit, and positions and revisions are 64-bit. Event metadata is not carried (extension
//! attributes travel as headers in binary mode, where arbitrary JSON does not belong); a
//! subscription that needs it uses the `json` format.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use runnel_core::{JsonText, Payload, RecordedEvent, StreamName};
use serde::Serialize;

/// The CloudEvents version produced.
pub const SPEC_VERSION: &str = "1.0";
/// The `Content-Type` of a structured-mode request.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// The `datacontenttype` of JSON event data.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// The extension attribute carrying the event's position in `$all`.
pub const POSITION_EXTENSION: &str = "runnelposition";
/// The extension attribute carrying the event's revision in its stream.
pub const REVISION_EXTENSION: &str = "runnelrevision";

/// An HTTP request's headers (names lowercase) and body, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpMessage {
    /// Header names and values, values already encoded for the wire.
    pub headers: Vec<(&'static str, String)>,
    /// The request body.
    pub body: Vec<u8>,
}

impl HttpMessage {
    /// The value of the header `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The `source` of an event of `stream`: `/streams/{type}/{id}`, segments percent-encoded.
pub fn source(stream: &StreamName) -> String {
    format!(
        "/streams/{}/{}",
        encode_path_segment(stream.stream_type().as_str()),
        encode_path_segment(stream.stream_id().as_str())
    )
}

/// Structured mode: the whole CloudEvent in the body, as the JSON event format writes it. JSON
/// data goes in `data` byte for byte as appended; binary data in `data_base64`.
pub fn structured(event: &RecordedEvent) -> HttpMessage {
    let (data, data_base64, content_type) = match &event.data {
        Payload::Json(text) => (Some(text), None, JSON_CONTENT_TYPE),
        Payload::Binary {
            content_type,
            bytes,
        } => (None, Some(BASE64.encode(bytes)), content_type.as_str()),
    };
    let document = StructuredEvent {
        specversion: SPEC_VERSION,
        id: event.id.to_string(),
        source: source(&event.stream),
        event_type: event.event_type.as_str(),
        subject: event.stream.stream_id().as_str(),
        time: event.recorded_at.to_rfc3339(),
        datacontenttype: content_type,
        data,
        data_base64,
        runnelposition: event.position.0.to_string(),
        runnelrevision: event.revision.0.to_string(),
    };
    // Strings, numbers and validated JSON text always serialise; see `EventDocument::to_bytes`.
    let body = serde_json::to_vec(&document).unwrap_or_default();
    HttpMessage {
        headers: vec![("content-type", STRUCTURED_CONTENT_TYPE.to_owned())],
        body,
    }
}

/// Binary mode: every attribute in a `ce-` header (values percent-encoded as the HTTP binding
/// requires), `datacontenttype` as the `Content-Type`, and the data itself as the body.
pub fn binary(event: &RecordedEvent) -> HttpMessage {
    let (content_type, body) = match &event.data {
        Payload::Json(text) => (JSON_CONTENT_TYPE, text.as_str().as_bytes().to_vec()),
        Payload::Binary {
            content_type,
            bytes,
        } => (content_type.as_str(), bytes.clone()),
    };
    let headers = vec![
        ("ce-specversion", SPEC_VERSION.to_owned()),
        ("ce-id", event.id.to_string()),
        ("ce-source", encode_header_value(&source(&event.stream))),
        ("ce-type", encode_header_value(event.event_type.as_str())),
        (
            "ce-subject",
            encode_header_value(event.stream.stream_id().as_str()),
        ),
        ("ce-time", event.recorded_at.to_rfc3339()),
        ("ce-runnelposition", event.position.0.to_string()),
        ("ce-runnelrevision", event.revision.0.to_string()),
        ("content-type", content_type_header(content_type)),
    ];
    HttpMessage { headers, body }
}

/// The JSON event format of one CloudEvent.
#[derive(Serialize)]
struct StructuredEvent<'a> {
    specversion: &'static str,
    id: String,
    source: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    subject: &'a str,
    time: String,
    datacontenttype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a JsonText>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
    runnelposition: String,
    runnelrevision: String,
}

/// Percent-encodes a header value as the HTTP binding (3.1.3.2) requires: space, `"`, `%` and
/// everything outside printable ASCII, byte by byte of its UTF-8, upper-case hex.
fn encode_header_value(value: &str) -> String {
    percent_encode(value, |b| {
        (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%'
    })
}

/// The HTTP `Content-Type` of binary-mode data: the payload's media type as it is (it is not
/// a `ce-` header and is not percent-encoded), unless it is not a valid header value, in which
/// case the body is declared as opaque bytes rather than the request failing to build.
fn content_type_header(content_type: &str) -> String {
    let valid = !content_type.is_empty()
        && content_type
            .bytes()
            .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b));
    if valid {
        content_type.to_owned()
    } else {
        "application/octet-stream".to_owned()
    }
}

/// Percent-encodes one path segment of a URI (RFC 3986 `pchar`s stay as they are).
fn encode_path_segment(segment: &str) -> String {
    percent_encode(segment, |b| {
        b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
    })
}

fn percent_encode(text: &str, keep: impl Fn(u8) -> bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(text.len());
    for b in text.bytes() {
        if keep(b) {
            encoded.push(char::from(b));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(b >> 4)]));
            encoded.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use runnel_core::{EventType, Position, RecordedAt, Revision};
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::*;

    fn recorded(stream: &str, data: Payload) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::parse_str("0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e").expect("uuid"),
            stream: StreamName::parse(stream).expect("name"),
            revision: Revision(7),
            position: Position(5_000_000_000),
            event_type: EventType::parse("OrderPlaced").expect("type"),
            data,
            metadata: Some(JsonText::parse("{\"m\":1}".to_owned()).expect("json")),
            recorded_at: RecordedAt(1_795_428_930_123_456),
        }
    }

    fn json_event() -> RecordedEvent {
        recorded(
            "order/o-1001",
            Payload::Json(JsonText::parse(r#"{"total": 42.5}"#.to_owned()).expect("json")),
        )
    }

    fn binary_event() -> RecordedEvent {
        recorded(
            "order/o-1001",
            Payload::Binary {
                content_type: "application/octet-stream".to_owned(),
                bytes: vec![0, 1, 2, 255],
            },
        )
    }

    #[test]
    fn structured_mode_carries_every_attribute_in_the_body() {
        let message = structured(&json_event());
        assert_eq!(
            message.header("content-type"),
            Some(STRUCTURED_CONTENT_TYPE)
        );
        let body: Value = serde_json::from_slice(&message.body).expect("json");
        assert_eq!(
            body,
            json!({
                "specversion": "1.0",
                "id": "0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e",
                "source": "/streams/order/o-1001",
                "type": "OrderPlaced",
                "subject": "o-1001",
                "time": "2026-11-23T10:15:30.123456Z",
                "datacontenttype": "application/json",
                "data": {"total": 42.5},
                "runnelposition": "5000000000",
                "runnelrevision": "7"
            })
        );
    }

    #[test]
    fn structured_mode_keeps_json_data_byte_for_byte() {
        let body = String::from_utf8(structured(&json_event()).body).expect("utf-8");
        assert!(body.contains(r#""data":{"total": 42.5}"#), "{body}");
    }

    #[test]
    fn structured_mode_sends_binary_data_as_base64() {
        let body: Value = serde_json::from_slice(&structured(&binary_event()).body).expect("json");
        assert_eq!(body["data_base64"], "AAEC/w==");
        assert_eq!(body["datacontenttype"], "application/octet-stream");
        assert!(body.get("data").is_none());
    }

    #[test]
    fn binary_mode_puts_attributes_in_headers_and_data_in_the_body() {
        let message = binary(&json_event());
        assert_eq!(message.body, br#"{"total": 42.5}"#);
        for (name, value) in [
            ("ce-specversion", "1.0"),
            ("ce-id", "0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e"),
            ("ce-source", "/streams/order/o-1001"),
            ("ce-type", "OrderPlaced"),
            ("ce-subject", "o-1001"),
            ("ce-time", "2026-11-23T10:15:30.123456Z"),
            ("ce-runnelposition", "5000000000"),
            ("ce-runnelrevision", "7"),
            ("content-type", "application/json"),
        ] {
            assert_eq!(message.header(name), Some(value), "{name}");
        }
        assert_eq!(message.header("ce-datacontenttype"), None);
    }

    #[test]
    fn binary_mode_sends_binary_data_raw_with_its_content_type() {
        let message = binary(&binary_event());
        assert_eq!(message.body, vec![0, 1, 2, 255]);
        assert_eq!(
            message.header("content-type"),
            Some("application/octet-stream")
        );
    }

    #[test]
    fn binary_mode_sends_the_content_type_unencoded_unless_invalid() {
        let with_type = |content_type: &str| {
            binary(&recorded(
                "order/1",
                Payload::Binary {
                    content_type: content_type.to_owned(),
                    bytes: vec![1],
                },
            ))
        };
        let message = with_type("text/plain; charset=utf-8");
        assert_eq!(
            message.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let message = with_type("text/plain\r\nx-injected: 1");
        assert_eq!(
            message.header("content-type"),
            Some("application/octet-stream")
        );
    }

    #[test]
    fn stream_ids_are_encoded_for_uris_and_headers() {
        let event = recorded(
            "$audit/Euro € 100%",
            Payload::Json(JsonText::parse("1".to_owned()).expect("json")),
        );
        assert_eq!(
            source(&event.stream),
            "/streams/$audit/Euro%20%E2%82%AC%20100%25"
        );
        let message = binary(&event);
        assert_eq!(
            message.header("ce-source"),
            Some("/streams/$audit/Euro%2520%25E2%2582%25AC%2520100%2525"),
            "the source is a string attribute and is encoded once more as a header"
        );
        assert_eq!(
            message.header("ce-subject"),
            Some("Euro%20%E2%82%AC%20100%25")
        );
        let body: Value = serde_json::from_slice(&structured(&event).body).expect("json");
        assert_eq!(body["subject"], "Euro € 100%");
    }

    #[test]
    fn header_values_encode_exactly_what_the_binding_requires() {
        // The example of the HTTP binding, section 3.1.3.2.
        assert_eq!(
            encode_header_value("Euro \u{20AC} \u{1F600}"),
            "Euro%20%E2%82%AC%20%F0%9F%98%80"
        );
        assert_eq!(encode_header_value("a\"b%c\td"), "a%22b%25c%09d");
        assert_eq!(
            encode_header_value("!#$&'()*+,/:;<=>?@[]^_`{|}~"),
            "!#$&'()*+,/:;<=>?@[]^_`{|}~"
        );
    }

    #[test]
    fn extension_names_follow_the_naming_rules() {
        // Lowercase a-z and 0-9, at most 20 characters (CloudEvents 1.0, "Attribute Naming").
        for name in [POSITION_EXTENSION, REVISION_EXTENSION] {
            assert!(name.len() <= 20, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{name}"
            );
        }
    }
}
