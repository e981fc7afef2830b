//! A consumer group's configuration (API.md "Consumer groups"), validated field by field so
//! that every refusal names the JSON pointer of the offending part.
//!
//! One JSON form serves both the API and the group's state stream; the only difference is the
//! webhook secret, which the stream keeps (deliveries are signed with it) and the API shows
//! masked ([`GroupConfig::to_json`]).

use std::fmt;

use serde_json::{Map, Value, json};

use crate::filter::{FilterError, SubscriptionFilter};
use crate::webhook::WebhookSecret;

/// The shortest lease, in milliseconds.
pub const MIN_ACK_TIMEOUT_MS: u64 = 100;
/// The longest lease, in milliseconds (12 hours, as SQS's visibility timeout).
pub const MAX_ACK_TIMEOUT_MS: u64 = 12 * 60 * 60 * 1000;
/// The lease when none is given, in milliseconds.
pub const DEFAULT_ACK_TIMEOUT_MS: u64 = 30_000;
/// The most deliveries an event may be allowed before it is parked.
pub const MAX_MAX_DELIVERIES: u32 = 1_000;
/// Deliveries before parking when none is given.
pub const DEFAULT_MAX_DELIVERIES: u32 = 10;
/// The longest webhook URL, in bytes.
pub const MAX_WEBHOOK_URL_BYTES: usize = 2_048;
/// A webhook attempt's time limit when none is given, in milliseconds.
pub const DEFAULT_WEBHOOK_TIMEOUT_MS: u64 = 15_000;
/// The bounds of a webhook attempt's time limit, in milliseconds.
pub const MIN_WEBHOOK_TIMEOUT_MS: u64 = 100;
/// The longest a webhook attempt may be allowed to take, in milliseconds.
pub const MAX_WEBHOOK_TIMEOUT_MS: u64 = 60_000;
/// Concurrent webhook requests per group when none is given.
pub const DEFAULT_WEBHOOK_MAX_IN_FLIGHT: u32 = 16;
/// The most concurrent webhook requests one group may ask for.
pub const MAX_WEBHOOK_MAX_IN_FLIGHT: u32 = 1_000;
/// How a masked secret reads in answers.
pub const MASKED_SECRET: &str = "whsec_********";

/// Stream types a group may never follow: the keyring's hashes, and the groups' own state
/// (a group following `$group` would wake itself with every write it makes).
const FORBIDDEN_STREAM_TYPES: [&str; 2] = ["$keys", "$group"];

/// A group's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// Which events the group receives.
    pub filter: SubscriptionFilter,
    /// Where a new group starts reading `$all`. Used once, when the group is created.
    pub start: Start,
    /// Whether events of one stream are delivered one at a time, in order.
    pub ordering: GroupOrdering,
    /// How long a delivery is leased before it is delivered again.
    pub ack_timeout_ms: u64,
    /// Deliveries after which an event that keeps failing is parked.
    pub max_deliveries: u32,
    /// Pull (receive/ack/nack) or webhook.
    pub delivery: Delivery,
}

/// Where a new group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Every stored event that matches.
    Beginning,
    /// Only events committed after the group was created.
    End,
    /// From this position of `$all` on.
    Position(u64),
}

/// `ordering`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupOrdering {
    /// Any number of events of a stream in flight at once: the most parallelism.
    None,
    /// At most one event of a stream in flight, delivered in revision order.
    PerStream,
}

/// `delivery`.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Consumers call receive, ack and nack.
    Pull,
    /// The server POSTs each event to an endpoint.
    Webhook(WebhookDelivery),
}

/// `{"mode": "webhook", ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// An `http` or `https` URL.
    pub url: String,
    /// The key deliveries are signed with.
    pub secret: WebhookSecret,
    /// The body's shape.
    pub format: WebhookFormat,
    /// An attempt's time limit, in milliseconds.
    pub timeout_ms: u64,
    /// Requests to the endpoint at once.
    pub max_in_flight: u32,
}

/// How a webhook carries the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The Event JSON.
    Json,
    /// A CloudEvent in structured mode.
    CloudEventsStructured,
    /// A CloudEvent in binary mode.
    CloudEventsBinary,
}

impl WebhookFormat {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::CloudEventsStructured => "cloudevents_structured",
            Self::CloudEventsBinary => "cloudevents_binary",
        }
    }
}

/// Where a webhook's secret came from, so an answer can show a generated one once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// Not a webhook group.
    None,
    /// Given in the request (or read from the state stream).
    Given,
    /// Not given: the previous configuration's secret is kept.
    Kept,
    /// Not given and none before: the server made one, to be shown in this answer only.
    Generated,
}

/// A configuration that is not valid: the JSON pointer of the offending part (within the
/// request body) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", if pointer.is_empty() { "body" } else { pointer.as_str() })]
pub struct ConfigError {
    /// RFC 6901 pointer into the body (`/filter/stream_types/1`).
    pub pointer: String,
    /// What is wrong, as a predicate of that part.
    pub message: String,
}

impl ConfigError {
    fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl GroupConfig {
    /// Validates a configuration given as JSON. `previous` is the configuration being updated,
    /// if any: a webhook's secret left out of an update is kept from it.
    pub fn parse(
        body: &Value,
        previous: Option<&GroupConfig>,
    ) -> Result<(Self, SecretSource), ConfigError> {
        let object = body
            .as_object()
            .ok_or_else(|| ConfigError::new("", "must be a JSON object"))?;
        refuse_unknown(
            object,
            "",
            &[
                "filter",
                "start",
                "delivery",
                "ordering",
                "ack_timeout_ms",
                "max_deliveries",
            ],
        )?;
        let filter = match object.get("filter") {
            None | Some(Value::Null) => SubscriptionFilter::everything(),
            Some(value) => parse_filter(value)?,
        };
        let start = match object.get("start") {
            None | Some(Value::Null) => Start::End,
            Some(value) => parse_start(value)?,
        };
        let ordering = match object.get("ordering") {
            None | Some(Value::Null) => GroupOrdering::None,
            Some(Value::String(text)) if text == "none" => GroupOrdering::None,
            Some(Value::String(text)) if text == "per_stream" => GroupOrdering::PerStream,
            Some(_) => {
                return Err(ConfigError::new(
                    "/ordering",
                    "must be \"none\" or \"per_stream\"",
                ));
            }
        };
        let ack_timeout_ms = bounded(
            object.get("ack_timeout_ms"),
            "/ack_timeout_ms",
            MIN_ACK_TIMEOUT_MS,
            MAX_ACK_TIMEOUT_MS,
            DEFAULT_ACK_TIMEOUT_MS,
        )?;
        let max_deliveries = bounded(
            object.get("max_deliveries"),
            "/max_deliveries",
            1,
            u64::from(MAX_MAX_DELIVERIES),
            u64::from(DEFAULT_MAX_DELIVERIES),
        )? as u32;
        let previous_secret = previous.and_then(|config| match &config.delivery {
            Delivery::Webhook(webhook) => Some(&webhook.secret),
            Delivery::Pull => None,
        });
        let (delivery, secret_source) = match object.get("delivery") {
            None | Some(Value::Null) => (Delivery::Pull, SecretSource::None),
            Some(value) => parse_delivery(value, previous_secret)?,
        };
        Ok((
            Self {
                filter,
                start,
                ordering,
                ack_timeout_ms,
                max_deliveries,
                delivery,
            },
            secret_source,
        ))
    }

    /// The configuration as JSON, in the form [`GroupConfig::parse`] reads. The webhook secret
    /// is written out only when `reveal_secret` (for the group's own state stream, or once
    /// after the server generated it); otherwise it is masked.
    pub fn to_json(&self, reveal_secret: bool) -> Value {
        let start = match self.start {
            Start::Beginning => json!("beginning"),
            Start::End => json!("end"),
            Start::Position(position) => json!({"position": position}),
        };
        let delivery = match &self.delivery {
            Delivery::Pull => json!({"mode": "pull"}),
            Delivery::Webhook(webhook) => json!({
                "mode": "webhook",
                "url": webhook.url,
                "secret": if reveal_secret { webhook.secret.to_whsec() } else { MASKED_SECRET.to_owned() },
                "format": webhook.format.as_str(),
                "timeout_ms": webhook.timeout_ms,
                "max_in_flight": webhook.max_in_flight,
            }),
        };
        json!({
            "filter": self.filter,
            "start": start,
            "delivery": delivery,
            "ordering": match self.ordering {
                GroupOrdering::None => "none",
                GroupOrdering::PerStream => "per_stream",
            },
            "ack_timeout_ms": self.ack_timeout_ms,
            "max_deliveries": self.max_deliveries,
        })
    }

    /// The delivery mode's name: `pull` or `webhook`.
    pub fn mode(&self) -> &'static str {
        match self.delivery {
            Delivery::Pull => "pull",
            Delivery::Webhook(_) => "webhook",
        }
    }

    /// Whether an event of `stream_type` can reach this group at all. System streams are left
    /// out unless the filter names their type, so that a group over "everything" never sees
    /// the server's own records (nor the group state it writes itself).
    pub fn admits_stream_type(&self, stream_type: &runnel_core::StreamType) -> bool {
        if !stream_type.is_system() {
            return true;
        }
        self.filter
            .stream_types()
            .is_some_and(|types| types.contains(stream_type))
    }

    /// Whether two configurations select the same events (an update that changes the filter
    /// forgets what was scanned ahead under the old one).
    pub fn same_selection(&self, other: &Self) -> bool {
        self.filter == other.filter
    }
}

impl fmt::Display for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Beginning => f.write_str("beginning"),
            Self::End => f.write_str("end"),
            Self::Position(position) => write!(f, "position {position}"),
        }
    }
}

fn refuse_unknown(
    object: &Map<String, Value>,
    at: &str,
    known: &[&str],
) -> Result<(), ConfigError> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => Err(ConfigError::new(
            format!("{at}/{}", escape_pointer(key)),
            format!("unknown field; expected one of {}", known.join(", ")),
        )),
    }
}

/// RFC 6901: `~` and `/` in a key are escaped.
fn escape_pointer(key: &str) -> String {
    let short: String = key.chars().take(64).collect();
    short.replace('~', "~0").replace('/', "~1")
}

fn parse_filter(value: &Value) -> Result<SubscriptionFilter, ConfigError> {
    let object = value
        .as_object()
        .ok_or_else(|| ConfigError::new("/filter", "must be a JSON object"))?;
    refuse_unknown(
        object,
        "/filter",
        &["stream_types", "event_types", "pattern"],
    )?;
    let stream_types = string_list(object.get("stream_types"), "/filter/stream_types")?;
    let event_types = string_list(object.get("event_types"), "/filter/event_types")?;
    if let Some(types) = &stream_types
        && let Some(index) = types
            .iter()
            .position(|t| FORBIDDEN_STREAM_TYPES.contains(&t.as_str()))
    {
        return Err(ConfigError::new(
            format!("/filter/stream_types/{index}"),
            format!("{} streams cannot be subscribed to", types[index]),
        ));
    }
    let pattern = object.get("pattern").filter(|value| !value.is_null());
    SubscriptionFilter::new(stream_types.as_deref(), event_types.as_deref(), pattern).map_err(
        |error| {
            // The pointer says where; the message need not say it again.
            let message = match &error {
                FilterError::StreamType { source, .. } | FilterError::EventType { source, .. } => {
                    source.to_string()
                }
                other => other.to_string(),
            };
            ConfigError::new(format!("/filter{}", error.pointer()), message)
        },
    )
}

fn string_list(value: Option<&Value>, at: &str) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let items = value
        .as_array()
        .ok_or_else(|| ConfigError::new(at, "must be an array of strings"))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ConfigError::new(format!("{at}/{index}"), "must be a string"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn parse_start(value: &Value) -> Result<Start, ConfigError> {
    const EXPECTED: &str = "must be \"beginning\", \"end\" or {\"position\": N}";
    match value {
        Value::String(text) if text == "beginning" => Ok(Start::Beginning),
        Value::String(text) if text == "end" => Ok(Start::End),
        Value::Object(object) => {
            refuse_unknown(object, "/start", &["position"])?;
            object
                .get("position")
                .and_then(Value::as_u64)
                .map(Start::Position)
                .ok_or_else(|| {
                    ConfigError::new("/start/position", "must be a non-negative integer")
                })
        }
        _ => Err(ConfigError::new("/start", EXPECTED)),
    }
}

fn bounded(
    value: Option<&Value>,
    at: &str,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, ConfigError> {
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(default);
    };
    value
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| ConfigError::new(at, format!("must be an integer from {min} to {max}")))
}

fn parse_delivery(
    value: &Value,
    previous_secret: Option<&WebhookSecret>,
) -> Result<(Delivery, SecretSource), ConfigError> {
    let object = value
        .as_object()
        .ok_or_else(|| ConfigError::new("/delivery", "must be a JSON object"))?;
    match object.get("mode").and_then(Value::as_str) {
        Some("pull") => {
            refuse_unknown(object, "/delivery", &["mode"])?;
            Ok((Delivery::Pull, SecretSource::None))
        }
        Some("webhook") => parse_webhook(object, previous_secret),
        _ => Err(ConfigError::new(
            "/delivery/mode",
            "must be \"pull\" or \"webhook\"",
        )),
    }
}

fn parse_webhook(
    object: &Map<String, Value>,
    previous_secret: Option<&WebhookSecret>,
) -> Result<(Delivery, SecretSource), ConfigError> {
    refuse_unknown(
        object,
        "/delivery",
        &[
            "mode",
            "url",
            "secret",
            "format",
            "timeout_ms",
            "max_in_flight",
        ],
    )?;
    let url = object
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| ConfigError::new("/delivery/url", "is required: an http or https URL"))?;
    check_url(url)?;
    let (secret, source) = match object.get("secret").filter(|value| !value.is_null()) {
        Some(Value::String(text)) if text == MASKED_SECRET && previous_secret.is_some() => (
            previous_secret
                .cloned()
                .unwrap_or_else(WebhookSecret::generate),
            SecretSource::Kept,
        ),
        Some(Value::String(text)) => (
            WebhookSecret::parse(text)
                .map_err(|error| ConfigError::new("/delivery/secret", error.to_string()))?,
            SecretSource::Given,
        ),
        Some(_) => {
            return Err(ConfigError::new(
                "/delivery/secret",
                "must be a string \"whsec_<base64>\"",
            ));
        }
        None => match previous_secret {
            Some(secret) => (secret.clone(), SecretSource::Kept),
            None => (WebhookSecret::generate(), SecretSource::Generated),
        },
    };
    let format = match object.get("format").filter(|value| !value.is_null()) {
        None => WebhookFormat::Json,
        Some(Value::String(text)) if text == "json" => WebhookFormat::Json,
        Some(Value::String(text)) if text == "cloudevents_structured" => {
            WebhookFormat::CloudEventsStructured
        }
        Some(Value::String(text)) if text == "cloudevents_binary" => {
            WebhookFormat::CloudEventsBinary
        }
        Some(_) => {
            return Err(ConfigError::new(
                "/delivery/format",
                "must be \"json\", \"cloudevents_structured\" or \"cloudevents_binary\"",
            ));
        }
    };
    let timeout_ms = bounded(
        object.get("timeout_ms"),
        "/delivery/timeout_ms",
        MIN_WEBHOOK_TIMEOUT_MS,
        MAX_WEBHOOK_TIMEOUT_MS,
        DEFAULT_WEBHOOK_TIMEOUT_MS,
    )?;
    let max_in_flight = bounded(
        object.get("max_in_flight"),
        "/delivery/max_in_flight",
        1,
        u64::from(MAX_WEBHOOK_MAX_IN_FLIGHT),
        u64::from(DEFAULT_WEBHOOK_MAX_IN_FLIGHT),
    )? as u32;
    Ok((
        Delivery::Webhook(WebhookDelivery {
            url: url.to_owned(),
            secret,
            format,
            timeout_ms,
            max_in_flight,
        }),
        source,
    ))
}

/// An absolute `http` or `https` URL with a host. Whether the host may be reached (private
/// addresses) is decided when delivering, where the address is resolved.
fn check_url(text: &str) -> Result<(), ConfigError> {
    let invalid = |message: &str| ConfigError::new("/delivery/url", message);
    if text.len() > MAX_WEBHOOK_URL_BYTES {
        return Err(invalid("is longer than 2048 bytes"));
    }
    let url = url::Url::parse(text).map_err(|error| invalid(&format!("is not a URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host"));
    }
    if url.fragment().is_some() {
        return Err(invalid("must not have a fragment (#...)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn parse(body: Value) -> Result<GroupConfig, ConfigError> {
        GroupConfig::parse(&body, None).map(|(config, _)| config)
    }

    fn pointer_of(body: Value) -> String {
        parse(body.clone())
            .expect_err(&format!("{body} must be refused"))
            .pointer
    }

    #[test]
    fn an_empty_body_gives_the_documented_defaults() {
        let config = parse(json!({})).expect("valid");
        assert_eq!(config.filter, SubscriptionFilter::everything());
        assert_eq!(config.start, Start::End);
        assert_eq!(config.ordering, GroupOrdering::None);
        assert_eq!(config.ack_timeout_ms, DEFAULT_ACK_TIMEOUT_MS);
        assert_eq!(config.max_deliveries, DEFAULT_MAX_DELIVERIES);
        assert_eq!(config.delivery, Delivery::Pull);
    }

    #[test]
    fn the_example_of_the_api_parses_and_round_trips() {
        let body = json!({
            "filter": {"stream_types": ["order"], "event_types": ["OrderPlaced"],
                       "pattern": {"data": {"total": [{"numeric": [">", 100]}]}}},
            "start": "beginning",
            "delivery": {"mode": "pull"},
            "ordering": "per_stream",
            "ack_timeout_ms": 30000,
            "max_deliveries": 10
        });
        let config = parse(body.clone()).expect("valid");
        assert_eq!(config.ordering, GroupOrdering::PerStream);
        assert_eq!(config.to_json(false), body);
        assert_eq!(parse(config.to_json(true)).expect("round trip"), config);
    }

    #[test]
    fn every_bad_part_is_named_by_its_pointer() {
        let cases = [
            (json!([]), ""),
            (json!({"filtr": {}}), "/filtr"),
            (json!({"filter": 5}), "/filter"),
            (
                json!({"filter": {"stream_types": "order"}}),
                "/filter/stream_types",
            ),
            (
                json!({"filter": {"stream_types": ["order", 5]}}),
                "/filter/stream_types/1",
            ),
            (
                json!({"filter": {"stream_types": ["order", "-x"]}}),
                "/filter/stream_types/1",
            ),
            (
                json!({"filter": {"stream_types": ["$keys"]}}),
                "/filter/stream_types/0",
            ),
            (
                json!({"filter": {"stream_types": ["$group"]}}),
                "/filter/stream_types/0",
            ),
            (
                json!({"filter": {"event_types": ["A B"]}}),
                "/filter/event_types/0",
            ),
            (
                json!({"filter": {"pattern": {"data": {"total": [{"numeric": [">"]}]}}}}),
                "/filter/pattern/data/total/0/numeric",
            ),
            (json!({"filter": {"x": 1}}), "/filter/x"),
            (json!({"start": "middle"}), "/start"),
            (json!({"start": {"position": -1}}), "/start/position"),
            (json!({"start": {"pos": 1}}), "/start/pos"),
            (json!({"ordering": "strict"}), "/ordering"),
            (json!({"ack_timeout_ms": 5}), "/ack_timeout_ms"),
            (json!({"ack_timeout_ms": "30000"}), "/ack_timeout_ms"),
            (json!({"max_deliveries": 0}), "/max_deliveries"),
            (json!({"max_deliveries": 1001}), "/max_deliveries"),
            (json!({"delivery": {"mode": "push"}}), "/delivery/mode"),
            (
                json!({"delivery": {"mode": "pull", "url": "x"}}),
                "/delivery/url",
            ),
            (json!({"delivery": {"mode": "webhook"}}), "/delivery/url"),
            (
                json!({"delivery": {"mode": "webhook", "url": "ftp://x"}}),
                "/delivery/url",
            ),
            (
                json!({"delivery": {"mode": "webhook", "url": "not a url"}}),
                "/delivery/url",
            ),
            (
                json!({"delivery": {"mode": "webhook", "url": "http://h", "secret": "abc"}}),
                "/delivery/secret",
            ),
            (
                json!({"delivery": {"mode": "webhook", "url": "http://h", "secret": "whsec_AAAA"}}),
                "/delivery/secret",
            ),
            (
                json!({"delivery": {"mode": "webhook", "url": "http://h", "format": "xml"}}),
                "/delivery/format",
            ),
            (
                json!({"delivery": {"mode": "webhook", "url": "http://h", "timeout_ms": 0}}),
                "/delivery/timeout_ms",
            ),
            (
                json!({"delivery": {"mode": "webhook", "url": "http://h", "max_in_flight": 0}}),
                "/delivery/max_in_flight",
            ),
        ];
        for (body, pointer) in cases {
            assert_eq!(pointer_of(body.clone()), pointer, "{body}");
        }
    }

    #[test]
    fn errors_read_as_pointer_and_reason() {
        let error = parse(json!({"max_deliveries": 0})).expect_err("invalid");
        assert_eq!(
            error.to_string(),
            "/max_deliveries: must be an integer from 1 to 1000"
        );
        let error = parse(json!(null)).expect_err("invalid");
        assert_eq!(error.to_string(), "body: must be a JSON object");
    }

    #[test]
    fn a_webhook_secret_is_masked_unless_revealed() {
        let body = json!({"delivery": {"mode": "webhook", "url": "https://example.com/hook",
                                       "secret": SECRET, "format": "cloudevents_binary"}});
        let (config, source) = GroupConfig::parse(&body, None).expect("valid");
        assert_eq!(source, SecretSource::Given);
        let shown = config.to_json(false);
        assert_eq!(shown["delivery"]["secret"], MASKED_SECRET);
        assert!(!shown.to_string().contains("MfKQ9r8"));
        let stored = config.to_json(true);
        assert_eq!(stored["delivery"]["secret"], SECRET);
        assert_eq!(stored["delivery"]["timeout_ms"], DEFAULT_WEBHOOK_TIMEOUT_MS);
        assert_eq!(
            stored["delivery"]["max_in_flight"],
            DEFAULT_WEBHOOK_MAX_IN_FLIGHT
        );
    }

    #[test]
    fn a_missing_secret_is_generated_once_and_then_kept() {
        let body = json!({"delivery": {"mode": "webhook", "url": "http://127.0.0.1:9/x"}});
        let (first, source) = GroupConfig::parse(&body, None).expect("valid");
        assert_eq!(source, SecretSource::Generated);
        let (second, source) = GroupConfig::parse(&body, Some(&first)).expect("valid");
        assert_eq!(source, SecretSource::Kept);
        assert_eq!(second, first);
        // Sending back the masked form, as a GET showed it, keeps the secret too.
        let (third, source) =
            GroupConfig::parse(&first.to_json(false), Some(&first)).expect("valid");
        assert_eq!(source, SecretSource::Kept);
        assert_eq!(third, first);
    }

    #[test]
    fn system_streams_are_admitted_only_when_named() {
        let audit = runnel_core::StreamType::parse("$audit").expect("valid");
        let order = runnel_core::StreamType::parse("order").expect("valid");
        let everything = parse(json!({})).expect("valid");
        assert!(everything.admits_stream_type(&order));
        assert!(!everything.admits_stream_type(&audit));
        let named = parse(json!({"filter": {"stream_types": ["$audit"]}})).expect("valid");
        assert!(named.admits_stream_type(&audit));
    }
}
