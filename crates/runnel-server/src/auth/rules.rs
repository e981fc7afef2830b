//! Rules: what narrows a key to some stream types and event types.
//!
//! A key has a list of rules. An empty list leaves the key as wide as its role. Otherwise an
//! event is within reach when at least one rule matches it, and a rule matches when its
//! `stream_types` match the event's stream type and its `event_types` match its event type (an
//! empty list matches everything). Patterns are exact names or a prefix ending in `*`
//! (`Order*`); `*` alone matches every name.

use runnel_core::{EventType, MAX_EVENT_TYPE_LEN, MAX_STREAM_TYPE_LEN, StreamType};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// The most rules one key may have.
pub(crate) const MAX_RULES: usize = 16;
/// The most patterns in one rule's `stream_types` or `event_types`.
pub(crate) const MAX_PATTERNS: usize = 64;

/// A name, or a prefix of names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NamePattern {
    Exact(String),
    /// Every name starting with this (the empty prefix: every name).
    Prefix(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    StreamType,
    EventType,
}

impl NamePattern {
    fn parse(raw: &str, kind: NameKind) -> Result<Self, String> {
        let Some(prefix) = raw.strip_suffix('*') else {
            let checked = match kind {
                NameKind::StreamType => StreamType::parse(raw).map(drop),
                NameKind::EventType => EventType::parse(raw).map(drop),
            };
            return checked
                .map(|()| Self::Exact(raw.to_owned()))
                .map_err(|error| error.to_string());
        };
        let (max_len, allowed): (usize, fn(u8) -> bool) = match kind {
            NameKind::StreamType => (MAX_STREAM_TYPE_LEN, |b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'$')
            }),
            NameKind::EventType => (MAX_EVENT_TYPE_LEN, |b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
            }),
        };
        if prefix.len() > max_len {
            return Err(format!("{raw:?} is longer than any name ({max_len})"));
        }
        if !prefix.bytes().all(allowed) {
            return Err(format!(
                "{:?}: a pattern is a name or a prefix followed by one '*' at the end",
                crate::extract::truncate(raw)
            ));
        }
        Ok(Self::Prefix(prefix.to_owned()))
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == name,
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }

    fn to_text(&self) -> String {
        match self {
            Self::Exact(exact) => exact.clone(),
            Self::Prefix(prefix) => format!("{prefix}*"),
        }
    }
}

impl Serialize for NamePattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_text())
    }
}

/// One rule: the stream types and event types it lets a key reach.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub(crate) struct Rule {
    pub(crate) stream_types: Vec<NamePattern>,
    pub(crate) event_types: Vec<NamePattern>,
}

impl Rule {
    fn matches_stream_type(&self, stream_type: &str) -> bool {
        any_matches(&self.stream_types, stream_type)
    }

    fn matches_event(&self, stream_type: &str, event_type: &str) -> bool {
        self.matches_stream_type(stream_type) && any_matches(&self.event_types, event_type)
    }
}

/// An empty list of patterns places no limit.
fn any_matches(patterns: &[NamePattern], name: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|pattern| pattern.matches(name))
}

/// A key's rules; empty means "as wide as the role".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub(crate) struct Rules(Vec<Rule>);

impl Rules {
    pub(crate) fn unrestricted() -> Self {
        Self(Vec::new())
    }

    #[cfg(test)]
    pub(crate) fn is_unrestricted(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some events of streams of this type are within reach.
    pub(crate) fn permit_stream_type(&self, stream_type: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|r| r.matches_stream_type(stream_type))
    }

    /// Whether events of this type in streams of this type are within reach.
    pub(crate) fn permit_event(&self, stream_type: &str, event_type: &str) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|r| r.matches_event(stream_type, event_type))
    }

    /// Checks and builds rules from their JSON form; errors name the offending element
    /// (`rules[0].event_types[2]: …`).
    fn from_input(input: Vec<RuleInput>) -> Result<Self, String> {
        if input.len() > MAX_RULES {
            return Err(format!(
                "rules: at most {MAX_RULES} rules per key, not {}",
                input.len()
            ));
        }
        let mut rules = Vec::with_capacity(input.len());
        for (index, rule) in input.into_iter().enumerate() {
            let patterns = |list: Vec<String>, field: &str, kind| {
                if list.len() > MAX_PATTERNS {
                    return Err(format!(
                        "rules[{index}].{field}: at most {MAX_PATTERNS} patterns, not {}",
                        list.len()
                    ));
                }
                list.iter()
                    .enumerate()
                    .map(|(at, raw)| {
                        NamePattern::parse(raw, kind)
                            .map_err(|error| format!("rules[{index}].{field}[{at}]: {error}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            };
            rules.push(Rule {
                stream_types: patterns(rule.stream_types, "stream_types", NameKind::StreamType)?,
                event_types: patterns(rule.event_types, "event_types", NameKind::EventType)?,
            });
        }
        Ok(Self(rules))
    }
}

/// The JSON form of one rule.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = KeyRule)]
pub(crate) struct RuleInput {
    /// Stream types this rule reaches: exact names or prefixes ending in `*`. Empty: all.
    #[serde(default)]
    #[schema(example = json!(["order"]))]
    stream_types: Vec<String>,
    /// Event types this rule reaches: exact names or prefixes ending in `*`. Empty: all.
    #[serde(default)]
    #[schema(example = json!(["Order*"]))]
    event_types: Vec<String>,
}

/// Rules are a list of rule objects; a single object is taken as a list of one, so
/// `{"stream_types": ["order"]}` and `[{"stream_types": ["order"]}]` mean the same.
impl<'de> Deserialize<'de> for Rules {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RulesVisitor;

        impl<'de> Visitor<'de> for RulesVisitor {
            type Value = Vec<RuleInput>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of rules, or one rule object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let rule = RuleInput::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(vec![rule])
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut rules = Vec::new();
                while let Some(rule) = seq.next_element::<RuleInput>()? {
                    // Stop reading early: a huge list is refused anyway.
                    if rules.len() == MAX_RULES {
                        return Err(de::Error::custom(format!(
                            "at most {MAX_RULES} rules per key"
                        )));
                    }
                    rules.push(rule);
                }
                Ok(rules)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Vec::new())
            }
        }

        let input = deserializer.deserialize_any(RulesVisitor)?;
        Rules::from_input(input).map_err(de::Error::custom)
    }
}

#[cfg(test)]
pub(crate) fn rules(json: serde_json::Value) -> Rules {
    serde_json::from_value(json).expect("valid rules")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_are_exact_names_or_prefixes() {
        let cases = [
            ("order", "order", true),
            ("order", "orders", false),
            ("ord*", "order", true),
            ("ord*", "ord", true),
            ("ord*", "payment", false),
            ("*", "anything", true),
            ("*", "$audit", true),
            ("$audit", "$audit", true),
        ];
        for (pattern, name, expected) in cases {
            let parsed = NamePattern::parse(pattern, NameKind::StreamType).expect(pattern);
            assert_eq!(parsed.matches(name), expected, "{pattern} vs {name}");
        }
    }

    #[test]
    fn malformed_patterns_are_refused_with_their_place() {
        for bad in [
            json!([{"stream_types": ["or*der"]}]),
            json!([{"stream_types": ["**"]}]),
            json!([{"stream_types": ["a/b"]}]),
            json!([{"stream_types": [""]}]),
            json!([{"event_types": ["Order Placed"]}]),
            json!([{"stream_type": ["order"]}]),
            json!("order"),
        ] {
            assert!(
                serde_json::from_value::<Rules>(bad.clone()).is_err(),
                "{bad} was accepted"
            );
        }
        let error = serde_json::from_value::<Rules>(json!([{}, {"event_types": ["ok", "no pe"]}]))
            .expect_err("bad event type");
        assert!(
            error.to_string().contains("rules[1].event_types[1]"),
            "{error}"
        );
    }

    #[test]
    fn an_object_is_a_list_of_one_and_null_or_empty_is_unrestricted() {
        let one = rules(json!({"stream_types": ["order"]}));
        let list = rules(json!([{"stream_types": ["order"]}]));
        assert_eq!(one, list);
        assert_eq!(
            serde_json::to_value(&one).expect("serialises"),
            json!([{"stream_types": ["order"], "event_types": []}])
        );
        assert!(rules(json!([])).is_unrestricted());
        assert!(rules(json!(null)).is_unrestricted());
    }

    #[test]
    fn lists_are_bounded() {
        let many_rules: Vec<_> = (0..=MAX_RULES).map(|_| json!({})).collect();
        assert!(serde_json::from_value::<Rules>(json!(many_rules)).is_err());
        let many_patterns: Vec<_> = (0..=MAX_PATTERNS).map(|n| format!("t{n}")).collect();
        assert!(serde_json::from_value::<Rules>(json!({"stream_types": many_patterns})).is_err());
    }

    /// Rules × (stream type, event type) → within reach?
    #[test]
    fn events_are_in_reach_when_one_rule_matches_both_names() {
        let unrestricted = rules(json!([]));
        let orders = rules(json!({"stream_types": ["order"]}));
        let order_events = rules(json!({"event_types": ["Order*"]}));
        let both = rules(json!({"stream_types": ["order"], "event_types": ["Order*"]}));
        let union = rules(json!([
            {"stream_types": ["order"], "event_types": ["Order*"]},
            {"stream_types": ["pay*"]}
        ]));
        let cases: [(&Rules, &str, &str, bool); 14] = [
            (&unrestricted, "payment", "Anything", true),
            (&orders, "order", "Anything", true),
            (&orders, "payment", "OrderPlaced", false),
            (&order_events, "payment", "OrderPlaced", true),
            (&order_events, "order", "PaymentMade", false),
            (&both, "order", "OrderPlaced", true),
            (&both, "order", "PaymentMade", false),
            (&both, "payment", "OrderPlaced", false),
            (&union, "order", "OrderPlaced", true),
            (&union, "order", "PaymentMade", false),
            (&union, "payment", "PaymentMade", true),
            (&union, "payout", "Anything", true),
            (&union, "customer", "OrderPlaced", false),
            (&orders, "$audit", "KeyCreated", false),
        ];
        for (rules, stream_type, event_type, expected) in cases {
            assert_eq!(
                rules.permit_event(stream_type, event_type),
                expected,
                "{rules:?} on {stream_type}/{event_type}"
            );
        }
        assert!(both.permit_stream_type("order"));
        assert!(!both.permit_stream_type("payment"));
        assert!(order_events.permit_stream_type("payment"));
        assert!(union.permit_stream_type("payment"));
    }
}
