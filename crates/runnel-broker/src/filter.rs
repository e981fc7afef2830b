//! A subscription's filter (API.md "Consumer groups"):
//! `{"stream_types": [...], "event_types": [...], "pattern": {...}}`, every part optional and
//! all parts ANDed.

use runnel_core::{AllFilter, EventType, NameError, RecordedEvent, StreamType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event_json::event_json;
use crate::pattern::{Pattern, PatternError};

/// The most stream types one filter may name.
pub const MAX_FILTER_STREAM_TYPES: usize = 100;
/// The most event types one filter may name.
pub const MAX_FILTER_EVENT_TYPES: usize = 100;

/// Which events a consumer group receives. A part left out accepts everything; an event must
/// pass every part that is given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "FilterSpec", into = "FilterSpec")]
pub struct SubscriptionFilter {
    stream_types: Option<Vec<StreamType>>,
    event_types: Option<Vec<EventType>>,
    pattern: Option<Pattern>,
}

/// A filter that is not valid, with the JSON pointer (within the filter object) of the
/// offending part. `Display` is written for a 400 response's `detail`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// A stream type that is not a valid name.
    #[error("stream_types[{index}]: {source}")]
    StreamType {
        /// Its index in `stream_types`.
        index: usize,
        /// Why it is invalid.
        #[source]
        source: NameError,
    },
    /// An event type that is not a valid name.
    #[error("event_types[{index}]: {source}")]
    EventType {
        /// Its index in `event_types`.
        index: usize,
        /// Why it is invalid.
        #[source]
        source: NameError,
    },
    /// A list given but empty: it would accept nothing, which is never what was meant.
    #[error("{field} is empty; leave it out to accept every {noun}")]
    EmptyList {
        /// The field (`stream_types` or `event_types`).
        field: &'static str,
        /// What the list names.
        noun: &'static str,
    },
    /// A list over its limit.
    #[error("{field} names more than {max} entries")]
    TooMany {
        /// The field (`stream_types` or `event_types`).
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// A pattern that does not compile.
    #[error("{0}")]
    Pattern(#[source] PatternError),
}

impl FilterError {
    /// The JSON pointer of the offending part, relative to the filter object.
    pub fn pointer(&self) -> String {
        match self {
            Self::StreamType { index, .. } => format!("/stream_types/{index}"),
            Self::EventType { index, .. } => format!("/event_types/{index}"),
            Self::EmptyList { field, .. } | Self::TooMany { field, .. } => format!("/{field}"),
            Self::Pattern(error) => format!("/pattern{}", error.pointer()),
        }
    }
}

impl SubscriptionFilter {
    /// Validates and compiles a filter.
    pub fn new(
        stream_types: Option<&[String]>,
        event_types: Option<&[String]>,
        pattern: Option<&Value>,
    ) -> Result<Self, FilterError> {
        let stream_types = stream_types
            .map(|names| {
                parse_names(names, &STREAM_TYPES, StreamType::parse, |index, source| {
                    FilterError::StreamType { index, source }
                })
            })
            .transpose()?;
        let event_types = event_types
            .map(|names| {
                parse_names(names, &EVENT_TYPES, EventType::parse, |index, source| {
                    FilterError::EventType { index, source }
                })
            })
            .transpose()?;
        let pattern = pattern
            .map(Pattern::compile)
            .transpose()
            .map_err(FilterError::Pattern)?;
        Ok(Self {
            stream_types,
            event_types,
            pattern,
        })
    }

    /// A filter that accepts every event.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The stream types accepted, when restricted.
    pub fn stream_types(&self) -> Option<&[StreamType]> {
        self.stream_types.as_deref()
    }

    /// The event types accepted, when restricted.
    pub fn event_types(&self) -> Option<&[EventType]> {
        self.event_types.as_deref()
    }

    /// The content pattern, when there is one.
    pub fn pattern(&self) -> Option<&Pattern> {
        self.pattern.as_ref()
    }

    /// The part of this filter a store can apply while reading `$all` (names only), so that
    /// events of other types are not read only to be dropped. [`SubscriptionFilter::matches`]
    /// still decides.
    pub fn store_filter(&self) -> AllFilter {
        AllFilter {
            stream_types: self.stream_types.clone().unwrap_or_default(),
            event_types: self.event_types.clone().unwrap_or_default(),
            streams: Vec::new(),
        }
    }

    /// Whether `event` passes the filter. The Event JSON is built only when there is a pattern
    /// to match it against, and only after the cheaper name checks pass.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        let stream_type = event.stream.stream_type();
        self.stream_types
            .as_ref()
            .is_none_or(|types| types.contains(stream_type))
            && self
                .event_types
                .as_ref()
                .is_none_or(|types| types.contains(&event.event_type))
            && self
                .pattern
                .as_ref()
                .is_none_or(|pattern| pattern.matches(&event_json(event)))
    }
}

/// One of the filter's name lists, for its error messages and its limit.
struct NameList {
    field: &'static str,
    noun: &'static str,
    max: usize,
}

const STREAM_TYPES: NameList = NameList {
    field: "stream_types",
    noun: "stream type",
    max: MAX_FILTER_STREAM_TYPES,
};

const EVENT_TYPES: NameList = NameList {
    field: "event_types",
    noun: "event type",
    max: MAX_FILTER_EVENT_TYPES,
};

/// Parses every name of a list, dropping repeats (the order of first appearance is kept).
fn parse_names<T: PartialEq>(
    names: &[String],
    list: &NameList,
    parse: impl Fn(&str) -> Result<T, NameError>,
    invalid: impl Fn(usize, NameError) -> FilterError,
) -> Result<Vec<T>, FilterError> {
    if names.is_empty() {
        return Err(FilterError::EmptyList {
            field: list.field,
            noun: list.noun,
        });
    }
    if names.len() > list.max {
        return Err(FilterError::TooMany {
            field: list.field,
            max: list.max,
        });
    }
    let mut parsed = Vec::with_capacity(names.len());
    for (index, raw) in names.iter().enumerate() {
        let name = parse(raw).map_err(|source| invalid(index, source))?;
        if !parsed.contains(&name) {
            parsed.push(name);
        }
    }
    Ok(parsed)
}

/// The JSON form of a filter, as API.md writes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stream_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pattern: Option<Value>,
}

impl TryFrom<FilterSpec> for SubscriptionFilter {
    type Error = FilterError;

    fn try_from(spec: FilterSpec) -> Result<Self, FilterError> {
        Self::new(
            spec.stream_types.as_deref(),
            spec.event_types.as_deref(),
            spec.pattern.as_ref(),
        )
    }
}

impl From<SubscriptionFilter> for FilterSpec {
    fn from(filter: SubscriptionFilter) -> Self {
        Self {
            stream_types: names_as_strings(filter.stream_types),
            event_types: names_as_strings(filter.event_types),
            pattern: filter.pattern.map(|pattern| pattern.as_json().clone()),
        }
    }
}

fn names_as_strings<T: ToString>(names: Option<Vec<T>>) -> Option<Vec<String>> {
    names.map(|names| names.iter().map(T::to_string).collect())
}

#[cfg(test)]
mod tests {
    use runnel_core::{JsonText, Payload, Position, RecordedAt, Revision, StreamName};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn event(stream: &str, event_type: &str, data: &str) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::nil(),
            stream: StreamName::parse(stream).expect("name"),
            revision: Revision(0),
            position: Position(1),
            event_type: EventType::parse(event_type).expect("type"),
            data: Payload::Json(JsonText::parse(data.to_owned()).expect("json")),
            metadata: None,
            recorded_at: RecordedAt(0),
        }
    }

    fn filter(value: Value) -> SubscriptionFilter {
        serde_json::from_value(value).expect("valid filter")
    }

    #[test]
    fn an_empty_filter_accepts_everything() {
        let everything = filter(json!({}));
        assert_eq!(everything, SubscriptionFilter::everything());
        assert!(everything.matches(&event("order/1", "OrderPlaced", "{}")));
        assert!(everything.store_filter().is_empty());
    }

    #[test]
    fn every_given_part_must_pass() {
        let f = filter(json!({
            "stream_types": ["order", "invoice"],
            "event_types": ["OrderPlaced"],
            "pattern": {"data": {"total": [{"numeric": [">", 100]}]}}
        }));
        assert!(f.matches(&event("order/1", "OrderPlaced", r#"{"total": 150}"#)));
        assert!(!f.matches(&event("order/1", "OrderPlaced", r#"{"total": 50}"#)));
        assert!(!f.matches(&event("order/1", "OrderShipped", r#"{"total": 150}"#)));
        assert!(!f.matches(&event("cart/1", "OrderPlaced", r#"{"total": 150}"#)));
        assert!(f.matches(&event("invoice/9", "OrderPlaced", r#"{"total": 101}"#)));
    }

    #[test]
    fn the_pattern_sees_the_event_json() {
        let f = filter(json!({"pattern": {
            "stream_id": [{"prefix": "o-"}],
            "type": ["OrderPlaced"],
            "metadata": [null]
        }}));
        assert!(f.matches(&event("order/o-1", "OrderPlaced", "{}")));
        assert!(!f.matches(&event("order/x-1", "OrderPlaced", "{}")));
    }

    #[test]
    fn the_store_filter_carries_the_names() {
        let f = filter(json!({"stream_types": ["order"], "event_types": ["A", "B", "A"]}));
        let store = f.store_filter();
        assert_eq!(
            store.stream_types,
            vec![StreamType::parse("order").expect("type")]
        );
        assert_eq!(store.event_types.len(), 2, "repeats are dropped");
        assert!(store.streams.is_empty());
    }

    #[test]
    fn a_filter_serialises_as_it_was_written() {
        let written = json!({
            "stream_types": ["order"],
            "pattern": {"type": [{"prefix": "Order"}]}
        });
        let f = filter(written.clone());
        assert_eq!(serde_json::to_value(&f).expect("serialises"), written);
    }

    #[test]
    fn invalid_filters_name_the_offending_part() {
        let cases = [
            (
                json!({"stream_types": ["order", "-bad"]}),
                "/stream_types/1",
            ),
            (json!({"event_types": ["A B"]}), "/event_types/0"),
            (json!({"stream_types": []}), "/stream_types"),
            (json!({"event_types": []}), "/event_types"),
            (
                json!({"pattern": {"data": {"total": [{"numeric": [">"]}]}}}),
                "/pattern/data/total/0/numeric",
            ),
            (json!({"pattern": "x"}), "/pattern"),
        ];
        for (value, pointer) in cases {
            let spec: FilterSpec = serde_json::from_value(value.clone()).expect("shape");
            let error = SubscriptionFilter::try_from(spec).expect_err("invalid");
            assert_eq!(error.pointer(), pointer, "{value}: {error}");
        }
        let too_many: Vec<String> = (0..=MAX_FILTER_EVENT_TYPES)
            .map(|i| format!("T{i}"))
            .collect();
        let error = SubscriptionFilter::new(None, Some(&too_many), None).expect_err("too many");
        assert_eq!(error.pointer(), "/event_types");
    }

    #[test]
    fn errors_read_as_a_problem_detail() {
        let error = serde_json::from_value::<SubscriptionFilter>(json!({"stream_types": ["-x"]}))
            .expect_err("invalid");
        assert!(
            error
                .to_string()
                .starts_with("stream_types[0]: invalid stream type \"-x\""),
            "{error}"
        );
        let error = serde_json::from_value::<SubscriptionFilter>(json!({"stream_typo": ["x"]}))
            .expect_err("unknown field");
        assert!(error.to_string().contains("stream_typo"), "{error}");
    }
}
