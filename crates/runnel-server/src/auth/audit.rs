//! The audit trail: every administrative action (a key created or revoked; later subscriptions
//! and configuration) is appended to a `$audit/<subject>` system stream, with who did it, what,
//! and when. Admins and operators can read it like any stream; nobody can write it.

use std::sync::Arc;

use runnel_broker::delivery::{AuditFuture, AuditTrail, ServerAction, ServerActionRecord};
use runnel_core::{
    AppendRequest, EventType, ExpectedRevision, JsonText, ProposedEvent, RecordedAt, Store,
    StoreError,
};
use serde::Serialize;
use serde_json::json;

use crate::auth::events::{Actor, system_stream};

/// The system stream type of the audit trail.
pub(crate) const AUDIT_STREAM_TYPE: &str = "$audit";

/// One audit record.
#[derive(Debug, Serialize)]
pub(crate) struct AuditEntry {
    /// What happened, e.g. `key.created`.
    pub(crate) action: &'static str,
    /// Who did it.
    pub(crate) actor: Actor,
    /// When, in RFC 3339 (the event's `recorded_at` says when it was stored).
    pub(crate) at: String,
    /// What it was done to, e.g. the key's id, name, role and rules (never its secret).
    pub(crate) target: serde_json::Value,
}

impl AuditEntry {
    pub(crate) fn new(action: &'static str, actor: Actor, target: serde_json::Value) -> Self {
        Self {
            action,
            actor,
            at: RecordedAt::now().to_rfc3339(),
            target,
        }
    }
}

/// Appends `entry` as an event of `event_type` to `$audit/{subject}`.
pub(crate) async fn record(
    store: &dyn Store,
    subject: &str,
    event_type: &str,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let data = serde_json::to_value(entry).unwrap_or_default();
    let event = ProposedEvent::json(
        EventType::parse(event_type).expect("audit event types are valid names"),
        JsonText::from_value(&data),
    );
    store
        .append_system(AppendRequest {
            stream: system_stream(AUDIT_STREAM_TYPE, subject),
            expected: ExpectedRevision::Any,
            events: vec![event],
        })
        .await
        .map(drop)
}

/// The audit trail of what webhook delivery does to subscriptions on its own (a 410, a circuit
/// breaker opening, probing or closing): the same `$audit/subscriptions` stream and event
/// types as a person's pause and resume, with the server as the actor.
pub(crate) struct DeliveryAuditTrail {
    store: Arc<dyn Store>,
}

impl DeliveryAuditTrail {
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

/// Who the audit trail names for the server's own actions.
const DELIVERY_ACTOR: &str = "runnel (webhook delivery)";

impl AuditTrail for DeliveryAuditTrail {
    fn record<'a>(&'a self, record: &'a ServerActionRecord) -> AuditFuture<'a> {
        Box::pin(async move {
            let (action, event_type) = match record.action {
                ServerAction::Paused => ("subscription.paused", "SubscriptionPaused"),
                ServerAction::Resumed => ("subscription.resumed", "SubscriptionResumed"),
            };
            let actor = Actor {
                key_id: None,
                key_name: DELIVERY_ACTOR.to_owned(),
            };
            let target = json!({
                "name": record.group.as_str(),
                "reason": record.reason,
                "endpoint": record.endpoint,
            });
            let entry = AuditEntry::new(action, actor, target);
            self::record(self.store.as_ref(), "subscriptions", event_type, &entry)
                .await
                .map_err(|error| error.to_string())
        })
    }
}
