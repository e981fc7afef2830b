//! The permission model as pure functions: who is calling ([`Caller`]) and whether they may do
//! what they ask. Routes call these; nothing here does I/O.
//!
//! Three things decide: the key's role (what kinds of requests it may make), its rules (which
//! stream types and event types those requests reach), and the system streams: `$keys` (the
//! key hashes) and `$group` (consumer-group state, webhook secrets included) are hidden from
//! every caller, and other system streams (`$audit`) need a role that may read them.

use std::sync::Arc;

use crate::auth::role::{Capability, Role};
use crate::auth::rules::Rules;

/// The system stream type that holds the keyring. No request ever sees it.
pub(crate) const KEYS_STREAM_TYPE: &str = "$keys";

/// Who made a request, as their key says.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The key's id; `None` for the configured admin key and for `--insecure`.
    pub(crate) key_id: Option<String>,
    pub(crate) key_name: String,
    pub(crate) role: Role,
    pub(crate) rules: Arc<Rules>,
}

/// Why a request was refused. Its message talks about the caller's own key only, never about
/// other keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Denied {
    #[error("this key (role {role}) may not {}", capability.describe())]
    Role { role: Role, capability: Capability },

    #[error("this key may not read streams of type {stream_type}")]
    ReadStreamType { stream_type: String },

    #[error("this key may not append to streams of type {stream_type}")]
    AppendStreamType { stream_type: String },

    #[error("this key may not append events of type {event_type} to streams of type {stream_type}")]
    AppendEventType {
        stream_type: String,
        event_type: String,
    },
}

/// Whether a stream type can be read by a caller, or is to be treated as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    Visible,
    /// `$keys`: answered as if it held nothing.
    Hidden,
}

/// Streams no key may read through the API: `$keys` holds key hashes and the pepper, and the
/// consumer groups' `$group` streams hold webhook secrets. The server reads them itself.
fn is_hidden(stream_type: &str) -> bool {
    stream_type == KEYS_STREAM_TYPE || stream_type == runnel_broker::group::GROUP_STREAM_TYPE
}

fn is_system(stream_type: &str) -> bool {
    stream_type.starts_with('$')
}

impl Caller {
    /// Everything, for `--insecure`: no key was asked for.
    pub(crate) fn insecure() -> Self {
        Self {
            key_id: None,
            key_name: "insecure mode".to_owned(),
            role: Role::Admin,
            rules: Arc::new(Rules::unrestricted()),
        }
    }

    pub(crate) fn require(&self, capability: Capability) -> Result<(), Denied> {
        if self.role.can(capability) {
            Ok(())
        } else {
            Err(Denied::Role {
                role: self.role,
                capability,
            })
        }
    }

    /// An append of events of `event_types` to a stream of `stream_type`: every event must be
    /// within reach, or nothing is written. (System streams are refused by the store itself.)
    pub(crate) fn check_append<'a>(
        &self,
        stream_type: &str,
        event_types: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Denied> {
        self.require(Capability::Append)?;
        if !self.rules.permit_stream_type(stream_type) {
            return Err(Denied::AppendStreamType {
                stream_type: stream_type.to_owned(),
            });
        }
        for event_type in event_types {
            if !self.rules.permit_event(stream_type, event_type) {
                return Err(Denied::AppendEventType {
                    stream_type: stream_type.to_owned(),
                    event_type: event_type.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Reading one stream (its events or its summary), or listing the streams of a type.
    /// Events of types the rules exclude are then left out one by one with [`Self::may_see`].
    pub(crate) fn check_read_stream_type(&self, stream_type: &str) -> Result<Reach, Denied> {
        self.require(Capability::Read)?;
        if is_hidden(stream_type) {
            return Ok(Reach::Hidden);
        }
        if self.reaches_stream_type(stream_type) {
            Ok(Reach::Visible)
        } else {
            Err(Denied::ReadStreamType {
                stream_type: stream_type.to_owned(),
            })
        }
    }

    /// Whether a stream type shows in `GET /streams`.
    pub(crate) fn may_list(&self, stream_type: &str) -> bool {
        !is_hidden(stream_type) && self.reaches_stream_type(stream_type)
    }

    /// Whether one event may be shown to this caller (reads of streams and `$all`, live
    /// subscriptions). Events that fail are skipped silently: a reader never learns of them.
    pub(crate) fn may_see(&self, stream_type: &str, event_type: &str) -> bool {
        !is_hidden(stream_type)
            && self.reaches_stream_type(stream_type)
            && self.rules.permit_event(stream_type, event_type)
    }

    fn reaches_stream_type(&self, stream_type: &str) -> bool {
        (!is_system(stream_type) || self.role.can(Capability::ReadSystemStreams))
            && self.rules.permit_stream_type(stream_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::rules::rules;
    use serde_json::json;

    fn caller(role: Role, rules_json: serde_json::Value) -> Caller {
        Caller {
            key_id: Some("k".to_owned()),
            key_name: "test".to_owned(),
            role,
            rules: Arc::new(rules(rules_json)),
        }
    }

    #[test]
    fn appends_need_the_role_and_every_event_in_reach() {
        let none = json!([]);
        let orders = json!({"stream_types": ["order"]});
        let order_events = json!({"stream_types": ["order"], "event_types": ["Order*"]});
        // role × rules × (stream type, event types) → allowed?
        let cases: [(Role, &serde_json::Value, &str, &[&str], bool); 12] = [
            (Role::Admin, &none, "payment", &["Paid"], true),
            (Role::Producer, &none, "payment", &["Paid"], true),
            (Role::Operator, &none, "order", &["OrderPlaced"], false),
            (Role::Consumer, &none, "order", &["OrderPlaced"], false),
            (Role::Reader, &none, "order", &["OrderPlaced"], false),
            (Role::Producer, &orders, "order", &["Anything"], true),
            (Role::Producer, &orders, "payment", &["Paid"], false),
            (
                Role::Producer,
                &order_events,
                "order",
                &["OrderPlaced"],
                true,
            ),
            (
                Role::Producer,
                &order_events,
                "order",
                &["OrderPlaced", "Paid"],
                false,
            ),
            (
                Role::Producer,
                &order_events,
                "orders",
                &["OrderPlaced"],
                false,
            ),
            (Role::Admin, &orders, "payment", &["Paid"], false),
            (Role::Admin, &orders, "order", &["Paid"], true),
        ];
        for (role, rules_json, stream_type, event_types, expected) in cases {
            let outcome = caller(role, rules_json.clone())
                .check_append(stream_type, event_types.iter().copied());
            assert_eq!(
                outcome.is_ok(),
                expected,
                "{role} {rules_json} append {event_types:?} to {stream_type}: {outcome:?}"
            );
        }
    }

    #[test]
    fn a_refused_event_type_is_named_in_the_refusal() {
        let producer = caller(
            Role::Producer,
            json!({"stream_types": ["order"], "event_types": ["Order*"]}),
        );
        let denied = producer
            .check_append("order", ["OrderPlaced", "Refund"])
            .expect_err("Refund is out of reach");
        assert_eq!(
            denied.to_string(),
            "this key may not append events of type Refund to streams of type order"
        );
        let denied = producer
            .check_append("payment", ["OrderPlaced"])
            .expect_err("payment is out of reach");
        assert_eq!(
            denied.to_string(),
            "this key may not append to streams of type payment"
        );
    }

    #[test]
    fn reading_a_stream_type_needs_the_role_the_rules_and_for_system_streams_the_right() {
        let none = json!([]);
        let orders = json!({"stream_types": ["order"]});
        let visible = Ok(Reach::Visible);
        let hidden = Ok(Reach::Hidden);
        let refused = |stream_type: &str| {
            Err(Denied::ReadStreamType {
                stream_type: stream_type.to_owned(),
            })
        };
        let cases = [
            (Role::Admin, &none, "order", visible.clone()),
            (Role::Operator, &none, "order", visible.clone()),
            (Role::Consumer, &none, "order", visible.clone()),
            (Role::Reader, &none, "order", visible.clone()),
            (Role::Reader, &orders, "order", visible.clone()),
            (Role::Reader, &orders, "payment", refused("payment")),
            (Role::Admin, &none, "$audit", visible.clone()),
            (Role::Operator, &none, "$audit", visible.clone()),
            (Role::Consumer, &none, "$audit", refused("$audit")),
            (Role::Reader, &none, "$audit", refused("$audit")),
            (Role::Operator, &orders, "$audit", refused("$audit")),
            (Role::Admin, &none, "$keys", hidden.clone()),
            (Role::Reader, &orders, "$keys", hidden.clone()),
        ];
        for (role, rules_json, stream_type, expected) in cases {
            assert_eq!(
                caller(role, rules_json.clone()).check_read_stream_type(stream_type),
                expected,
                "{role} {rules_json} reading {stream_type}"
            );
        }
        let producer = caller(Role::Producer, none);
        assert_eq!(
            producer.check_read_stream_type("order"),
            Err(Denied::Role {
                role: Role::Producer,
                capability: Capability::Read
            })
        );
    }

    #[test]
    fn events_are_seen_only_within_the_rules_and_never_in_the_keyring() {
        let none = json!([]);
        let order_events = json!({"event_types": ["Order*"]});
        let cases = [
            (Role::Admin, &none, "order", "OrderPlaced", true),
            (Role::Admin, &none, "$keys", "KeyCreated", false),
            (Role::Admin, &none, "$audit", "KeyCreated", true),
            (Role::Operator, &none, "$audit", "KeyCreated", true),
            (Role::Consumer, &none, "$audit", "KeyCreated", false),
            (Role::Consumer, &order_events, "order", "OrderPlaced", true),
            (
                Role::Consumer,
                &order_events,
                "invoice",
                "OrderInvoiced",
                true,
            ),
            (Role::Consumer, &order_events, "order", "PaymentMade", false),
            (Role::Operator, &order_events, "$audit", "KeyCreated", false),
        ];
        for (role, rules_json, stream_type, event_type, expected) in cases {
            assert_eq!(
                caller(role, rules_json.clone()).may_see(stream_type, event_type),
                expected,
                "{role} {rules_json} seeing {stream_type}/{event_type}"
            );
        }
        assert!(!Caller::insecure().may_see("$keys", "KeyCreated"));
        assert!(!Caller::insecure().may_list("$keys"));
        assert!(!Caller::insecure().may_see("$group", "GroupCreated"));
        assert!(!Caller::insecure().may_list("$group"));
    }

    #[test]
    fn listings_show_only_types_in_reach() {
        let reader = caller(Role::Reader, json!({"stream_types": ["ord*"]}));
        assert!(reader.may_list("order"));
        assert!(!reader.may_list("payment"));
        assert!(!reader.may_list("$audit"));
        let operator = caller(Role::Operator, json!([]));
        assert!(operator.may_list("$audit"));
        assert!(!operator.may_list("$keys"));
    }
}
