//! `/subscriptions`: consumer groups (API.md "Consumer groups") — create, update, list,
//! describe and delete them; receive, acknowledge and reject their messages; list and replay
//! their parked events. The groups themselves live in `runnel_broker::group`; this file checks
//! permissions, shapes the JSON, and records administrative changes in `$audit/subscriptions`.
//!
//! Permissions: managing a group needs role admin or operator, or a consumer key whose rules
//! reach every stream type and event type the group's filter can select; receiving from a
//! group needs a role that consumes groups (admin, operator, consumer) and the same reach. A
//! key with rules must therefore name the stream types (and event types) it may read in the
//! group's filter.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use runnel_broker::event_json::EventDocument;
use runnel_broker::group::{
    ConsumerKind, GroupConfig, GroupName, GroupStatus, GroupView, NackAction, ParkedEvent,
    ReceivedMessage,
};
use runnel_core::{
    AppendRequest, EventType, ExpectedRevision, JsonText, ProposedEvent, RecordedAt, StreamId,
    StreamName, StreamType,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::{AUDIT_STREAM_TYPE, Caller, Capability};
use crate::extract::{JsonBody, QueryParams, truncate};
use crate::model::EventView;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// The longest receipt text accepted (real ones are 32 characters): bounds what `unknown`
/// echoes back.
const MAX_RECEIPT_CHARS: usize = 256;
/// The longest error text a nack may carry.
const MAX_NACK_ERROR_CHARS: usize = 4_096;
/// A long poll ends this long before the request timeout, so that its empty answer is not
/// overtaken by a 503.
const LONG_POLL_MARGIN: Duration = Duration::from_secs(1);
/// What a rule check uses for "every name": no pattern matches it but a rule's "everything"
/// (an empty list, or a lone `*`), because no valid name contains a NUL.
const ANY_NAME: &str = "\u{0}";

// ----- shapes ----------------------------------------------------------------------------------

/// The configuration of a subscription, as `PUT` takes it and `GET` returns it. Every field
/// is optional; the defaults are shown.
#[derive(Debug, ToSchema)]
#[schema(as = SubscriptionConfig)]
#[allow(dead_code)] // Describes the JSON for the document; the body is validated by the broker.
pub(crate) struct ConfigSchema {
    /// `{"stream_types": [...], "event_types": [...], "pattern": {...}}`, every part optional
    /// and all parts ANDed; `pattern` is an EventBridge event pattern over the Event JSON.
    /// Default: every event (system streams only when their type is named).
    #[schema(value_type = Object, example = json!({"stream_types": ["order"], "event_types": ["OrderPlaced"], "pattern": {"data": {"total": [{"numeric": [">", 100]}]}}}))]
    filter: Option<Value>,
    /// `"beginning"`, `"end"` (default: only events after the creation) or
    /// `{"position": N}`. Used when the subscription is created; ignored by updates.
    #[schema(value_type = Object, example = json!("beginning"))]
    start: Option<Value>,
    /// `{"mode": "pull"}` (default) or `{"mode": "webhook", "url", "secret": "whsec_…",
    /// "format": "json" | "cloudevents_structured" | "cloudevents_binary", "timeout_ms",
    /// "max_in_flight"}`. A webhook secret left out is generated (and shown once) on
    /// creation, and kept on updates.
    #[schema(value_type = Object, example = json!({"mode": "pull"}))]
    delivery: Option<Value>,
    /// `"none"` (default) or `"per_stream"`: at most one event of a stream in flight, in
    /// revision order.
    #[schema(example = "none")]
    ordering: Option<String>,
    /// How long a delivery is leased before it is delivered again: 100 to 43200000, default
    /// 30000.
    #[schema(example = 30000)]
    ack_timeout_ms: Option<u64>,
    /// Deliveries before an event is parked: 1 to 1000, default 10.
    #[schema(example = 10)]
    max_deliveries: Option<u32>,
}

/// How a subscription is doing.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SubscriptionStatus)]
pub(crate) struct StatusView {
    /// The next position of `$all` the subscription reads.
    cursor: u64,
    /// The last position of `$all`; `null` when the store is empty.
    head: Option<u64>,
    /// Positions of `$all` not read yet (`head + 1 - cursor`).
    lag: u64,
    /// Deliveries leased now.
    in_flight: usize,
    /// Events waiting: for a retry, after an expired lease, or behind an earlier event of
    /// their stream.
    pending: usize,
    /// Events parked.
    parked: usize,
    /// Events acknowledged since the subscription was created.
    delivered: u64,
    /// Whether delivery is paused (by request, by the webhook endpoint, or because the parked
    /// list is full).
    paused: bool,
    /// Why it is paused.
    paused_reason: Option<String>,
    /// The last error recorded (a nack's, a park's, a pause's).
    last_error: Option<String>,
}

impl From<GroupStatus> for StatusView {
    fn from(status: GroupStatus) -> Self {
        Self {
            cursor: status.cursor,
            head: status.head,
            lag: status.lag,
            in_flight: status.in_flight,
            pending: status.pending,
            parked: status.parked,
            delivered: status.delivered,
            paused: status.paused,
            paused_reason: status.paused_reason,
            last_error: status.last_error,
        }
    }
}

/// A subscription: its name, its configuration (the webhook secret masked) and its status.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Subscription)]
pub(crate) struct SubscriptionView {
    #[schema(example = "billing")]
    name: String,
    #[schema(value_type = Object)]
    filter: Value,
    #[schema(value_type = Object)]
    start: Value,
    #[schema(value_type = Object)]
    delivery: Value,
    #[schema(example = "none")]
    ordering: Value,
    ack_timeout_ms: u64,
    max_deliveries: u32,
    /// RFC 3339.
    created_at: String,
    status: StatusView,
}

impl SubscriptionView {
    fn new(view: GroupView, generated_secret: Option<String>) -> Self {
        let mut config = view.config.to_json(false);
        if let Some(secret) = generated_secret {
            // Made by the server in this request: shown now, never again.
            config["delivery"]["secret"] = Value::String(secret);
        }
        let mut take = |field: &str| config.get_mut(field).map(Value::take).unwrap_or_default();
        Self {
            name: view.name.as_str().to_owned(),
            filter: take("filter"),
            start: take("start"),
            delivery: take("delivery"),
            ordering: take("ordering"),
            ack_timeout_ms: view.config.ack_timeout_ms,
            max_deliveries: view.config.max_deliveries,
            created_at: millis_to_rfc3339(view.created_at_ms),
            status: view.status.into(),
        }
    }
}

/// A page of subscriptions in name order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SubscriptionList)]
pub(crate) struct SubscriptionListView {
    subscriptions: Vec<SubscriptionView>,
    /// The `after` of the following page, or `null`.
    next: Option<String>,
}

/// The body of a receive.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReceiveRequest)]
pub(crate) struct ReceiveBody {
    /// Messages at most: 1 to 1000, default 10.
    #[schema(example = 10)]
    max: Option<u64>,
    /// How long to wait when nothing is ready: 0 (default) to 30000. The answer comes as soon
    /// as something is ready.
    #[schema(example = 20000)]
    wait_ms: Option<u64>,
}

/// One leased delivery.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ReceivedMessage)]
pub(crate) struct MessageView {
    /// Acknowledges (or rejects) this delivery, and only this one.
    #[schema(example = "AAAAAAAAEmcAAAABq3Jx0V0sKPRpZy9K")]
    receipt: String,
    /// The attempt's number, from 1.
    delivery: u32,
    /// The event; its `id` is the idempotency key.
    #[schema(value_type = EventView)]
    event: Box<RawValue>,
}

impl MessageView {
    fn new(message: ReceivedMessage) -> Result<Self, ApiError> {
        // The Event JSON of the broker, so pull and webhook deliveries carry the same bytes.
        let bytes = EventDocument::new(&message.event).to_bytes();
        let text = String::from_utf8(bytes)
            .map_err(|_| ApiError::Internal("an event's JSON was not UTF-8".to_owned()))?;
        let event = RawValue::from_string(text)
            .map_err(|error| ApiError::Internal(format!("an event's JSON is invalid: {error}")))?;
        Ok(Self {
            receipt: message.receipt.as_str().to_owned(),
            delivery: message.delivery,
            event,
        })
    }
}

/// The answer of a receive.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ReceiveResult)]
pub(crate) struct ReceiveView {
    messages: Vec<MessageView>,
}

/// The body of an ack.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AckRequest)]
pub(crate) struct AckBody {
    /// 1 to 1000 receipts.
    receipts: Vec<String>,
}

/// The answer of an ack.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AckResult)]
pub(crate) struct AckView {
    /// Deliveries acknowledged: never delivered again.
    acked: usize,
    /// Receipts that acknowledge nothing (already acknowledged, from an attempt that was
    /// delivered again since, or never issued).
    unknown: Vec<String>,
}

/// What to do with rejected deliveries.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = NackAction)]
pub(crate) enum NackActionBody {
    /// Deliver again after `delay_ms` (parked instead once `max_deliveries` is reached).
    #[default]
    Retry,
    /// Park now.
    Park,
    /// Never deliver again.
    Skip,
}

/// The body of a nack.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NackRequest)]
pub(crate) struct NackBody {
    /// 1 to 1000 receipts.
    receipts: Vec<String>,
    /// Default `retry`.
    #[serde(default)]
    action: NackActionBody,
    /// For `retry`: how long until the events are due again, 0 (default) to 43200000.
    #[serde(default)]
    delay_ms: u64,
    /// What went wrong, kept as the events' last error (shown when they are parked).
    error: Option<String>,
}

/// The answer of a nack.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = NackResult)]
pub(crate) struct NackView {
    /// Deliveries rejected.
    nacked: usize,
    /// Receipts that matched no delivery in flight.
    unknown: Vec<String>,
}

/// A parked event.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ParkedEvent)]
pub(crate) struct ParkedView {
    /// Its position in `$all`; replay it by this.
    position: u64,
    stream_type: String,
    stream_id: String,
    /// Deliveries before it was parked.
    deliveries: u32,
    /// Why it was parked.
    last_error: Option<String>,
    /// RFC 3339.
    parked_at: String,
    /// The event (`null` if it can no longer be read).
    #[schema(value_type = Option<EventView>)]
    event: Option<Box<RawValue>>,
}

/// A page of parked events in position order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ParkedList)]
pub(crate) struct ParkedListView {
    parked: Vec<ParkedView>,
    /// The `after` of the following page, or `null`.
    next: Option<u64>,
}

/// The body of a replay; absent or `{}` replays every parked event.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReplayRequest)]
pub(crate) struct ReplayBody {
    /// The positions to replay (1 to 1000); absent: all.
    positions: Option<Vec<u64>>,
}

/// The answer of a replay.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ReplayResult)]
pub(crate) struct ReplayView {
    /// Events put back in line, with their delivery count reset.
    replayed: usize,
    /// Positions asked for that are not parked.
    unknown: Vec<u64>,
}

/// The body of a pause.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PauseRequest)]
pub(crate) struct PauseBody {
    /// Why, shown in the status.
    reason: Option<String>,
}

// ----- management ------------------------------------------------------------------------------

/// Create or update a subscription.
///
/// 201 when it is created, 200 when an existing one is updated (`start` is used only at
/// creation). Every bad part of the body is a 400 `invalid_subscription` whose `pointer`
/// names it. A webhook secret the server generates is shown in this answer only.
#[utoipa::path(
    put,
    path = "/subscriptions/{name}",
    tag = "subscriptions",
    params(("name" = String, Path, description = "1–128 of [A-Za-z0-9_.-]")),
    request_body = ConfigSchema,
    responses(
        (status = 201, description = "Created", body = SubscriptionView),
        (status = 200, description = "Updated (or unchanged)", body = SubscriptionView),
        (status = 400, description = "`invalid_subscription` (with `pointer`), `invalid_subscription_name`, malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`subscription_limit_reached`: max_groups subscriptions exist", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn put_subscription(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<SubscriptionView>), ApiError> {
    require_manage(&caller)?;
    let name = group_name(name)?;
    let groups = state.groups();
    // Check the reach of the new configuration before anything is written; the secret is
    // not needed for that, so a throwaway parse will do.
    let (config, _) =
        GroupConfig::parse(&body, None).map_err(runnel_broker::group::GroupError::from)?;
    check_reach(&caller, &config)?;
    if let Ok(existing) = groups.get(&name).await {
        check_reach(&caller, &existing.config)?;
    }
    let outcome = groups.put(&name, &body).await?;
    let (status, action, event_type) = if outcome.created {
        (
            StatusCode::CREATED,
            "subscription.created",
            "SubscriptionCreated",
        )
    } else {
        (
            StatusCode::OK,
            "subscription.updated",
            "SubscriptionUpdated",
        )
    };
    audit(
        &state,
        &caller,
        action,
        event_type,
        json!({"name": name.as_str(), "config": outcome.view.config.to_json(false)}),
    )
    .await?;
    Ok((
        status,
        Json(SubscriptionView::new(
            outcome.view,
            outcome.generated_secret,
        )),
    ))
}

/// List subscriptions, in name order.
#[utoipa::path(
    get,
    path = "/subscriptions",
    tag = "subscriptions",
    params(
        ("after" = Option<String>, Query, description = "Start after this name (the `next` of the previous page)"),
        ("limit" = Option<usize>, Query, description = "1–1000, default 100"),
    ),
    responses(
        (status = 200, description = "A page of subscriptions (those whose filter the key reaches)", body = SubscriptionListView),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Json<SubscriptionListView>, ApiError> {
    require_view(&caller)?;
    query.allow_only(&["after", "limit"])?;
    let after = query
        .single("after")?
        .map(|raw| {
            GroupName::parse(raw)
                .map_err(|error| ApiError::InvalidQuery(format!("query parameter after: {error}")))
        })
        .transpose()?;
    let limit = query.limit()?;
    let (views, next) = state.groups().list(after.as_ref(), limit).await?;
    Ok(Json(SubscriptionListView {
        subscriptions: views
            .into_iter()
            .filter(|view| check_reach(&caller, &view.config).is_ok())
            .map(|view| SubscriptionView::new(view, None))
            .collect(),
        next: next.map(|name| name.as_str().to_owned()),
    }))
}

/// Describe a subscription: its configuration (webhook secret masked) and status.
#[utoipa::path(
    get,
    path = "/subscriptions/{name}",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 400, description = "`invalid_subscription_name`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<SubscriptionView>, ApiError> {
    require_view(&caller)?;
    let name = group_name(name)?;
    let view = state.groups().get(&name).await?;
    check_reach(&caller, &view.config)?;
    Ok(Json(SubscriptionView::new(view, None)))
}

/// Delete a subscription, with its leases, waiting and parked events.
#[utoipa::path(
    delete,
    path = "/subscriptions/{name}",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`invalid_subscription_name`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn delete_subscription(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    require_manage(&caller)?;
    let name = group_name(name)?;
    let groups = state.groups();
    let view = groups.get(&name).await?;
    check_reach(&caller, &view.config)?;
    groups.delete(&name).await?;
    audit(
        &state,
        &caller,
        "subscription.deleted",
        "SubscriptionDeleted",
        json!({"name": name.as_str()}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause delivery until resumed.
#[utoipa::path(
    post,
    path = "/subscriptions/{name}/pause",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body = PauseBody,
    responses(
        (status = 200, description = "Paused (or already paused)", body = SubscriptionView),
        (status = 400, description = "`invalid_subscription_name`, or a body that is not JSON of the documented shape", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn pause_subscription(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    OptionalJsonBody(body): OptionalJsonBody<PauseBody>,
) -> Result<Json<SubscriptionView>, ApiError> {
    require_manage(&caller)?;
    let name = group_name(name)?;
    let groups = state.groups();
    check_reach(&caller, &groups.get(&name).await?.config)?;
    let reason = body
        .reason
        .unwrap_or_else(|| format!("paused by {}", caller.key_name));
    if groups.pause(&name, &reason).await? {
        audit(
            &state,
            &caller,
            "subscription.paused",
            "SubscriptionPaused",
            json!({"name": name.as_str(), "reason": reason}),
        )
        .await?;
    }
    Ok(Json(SubscriptionView::new(groups.get(&name).await?, None)))
}

/// Resume delivery after a pause.
#[utoipa::path(
    post,
    path = "/subscriptions/{name}/resume",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    responses(
        (status = 200, description = "Resumed (or was not paused)", body = SubscriptionView),
        (status = 400, description = "`invalid_subscription_name`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn resume_subscription(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<SubscriptionView>, ApiError> {
    require_manage(&caller)?;
    let name = group_name(name)?;
    let groups = state.groups();
    check_reach(&caller, &groups.get(&name).await?.config)?;
    if groups.resume(&name).await? {
        audit(
            &state,
            &caller,
            "subscription.resumed",
            "SubscriptionResumed",
            json!({"name": name.as_str()}),
        )
        .await?;
    }
    Ok(Json(SubscriptionView::new(groups.get(&name).await?, None)))
}

// ----- pull delivery ---------------------------------------------------------------------------

/// Receive messages: lease up to `max` deliveries for the subscription's `ack_timeout_ms`.
///
/// Long-polls up to `wait_ms` when nothing is ready, answering as soon as something is. The
/// answer comes only once the leases are durable. A delivery not acknowledged within the
/// lease is delivered again, with `delivery` one higher and a new receipt.
#[utoipa::path(
    post,
    path = "/subscriptions/{name}/receive",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body = ReceiveBody,
    responses(
        (status = 200, description = "Leased messages (none when the wait ended first)", body = ReceiveView),
        (status = 400, description = "Bad `max` or `wait_ms`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`wrong_delivery_mode`: a webhook subscription", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn receive(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    OptionalJsonBody(body): OptionalJsonBody<ReceiveBody>,
) -> Result<Json<ReceiveView>, ApiError> {
    caller.require(Capability::ConsumeGroups)?;
    let name = group_name(name)?;
    let groups = state.groups();
    let limits = *groups.limits();
    let max = body.max.unwrap_or(10);
    if max == 0 || max > limits.max_receive as u64 {
        return Err(ApiError::InvalidBody(format!(
            "max: must be an integer from 1 to {}, not {max}",
            limits.max_receive
        )));
    }
    let wait_ms = body.wait_ms.unwrap_or(0);
    if wait_ms > limits.max_wait_ms {
        return Err(ApiError::InvalidBody(format!(
            "wait_ms: must be an integer from 0 to {}, not {wait_ms}",
            limits.max_wait_ms
        )));
    }
    let wait = Duration::from_millis(wait_ms).min(
        state
            .config()
            .request_timeout()
            .saturating_sub(LONG_POLL_MARGIN),
    );
    check_reach(&caller, &*groups.config(&name).await?)?;
    let messages = groups
        .receive(&name, ConsumerKind::Pull, max as usize, wait)
        .await?;
    // The check above used this node's copy of the group's configuration, which may predate
    // another node's change to its filter. The receive's commit brought the copy up to date
    // with the group's stream, so checking again before answering means a key never sees
    // events of a filter it may not read; what it leased then expires and goes to others.
    if !messages.is_empty() {
        check_reach(&caller, &*groups.config(&name).await?)?;
    }
    Ok(Json(ReceiveView {
        messages: messages
            .into_iter()
            .map(MessageView::new)
            .collect::<Result<_, _>>()?,
    }))
}

/// Acknowledge deliveries: once this answers, they are never delivered again.
#[utoipa::path(
    post,
    path = "/subscriptions/{name}/ack",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body = AckBody,
    responses(
        (status = 200, description = "Acknowledged", body = AckView),
        (status = 400, description = "No receipts, or too many", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn ack(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<AckBody>,
) -> Result<Json<AckView>, ApiError> {
    caller.require(Capability::ConsumeGroups)?;
    let name = group_name(name)?;
    let groups = state.groups();
    check_receipts(&body.receipts, groups.limits().max_receipts)?;
    check_reach(&caller, &*groups.config(&name).await?)?;
    let outcome = groups.ack(&name, &body.receipts).await?;
    Ok(Json(AckView {
        acked: outcome.acked,
        unknown: outcome.unknown,
    }))
}

/// Reject deliveries: retry them (after `delay_ms`), park them, or skip them.
#[utoipa::path(
    post,
    path = "/subscriptions/{name}/nack",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body = NackBody,
    responses(
        (status = 200, description = "Rejected", body = NackView),
        (status = 400, description = "No receipts, too many, or a bad action or delay", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn nack(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<NackBody>,
) -> Result<Json<NackView>, ApiError> {
    caller.require(Capability::ConsumeGroups)?;
    let name = group_name(name)?;
    let groups = state.groups();
    let limits = *groups.limits();
    check_receipts(&body.receipts, limits.max_receipts)?;
    if body.delay_ms > limits.max_retry_delay_ms {
        return Err(ApiError::InvalidBody(format!(
            "delay_ms: must be an integer from 0 to {}, not {}",
            limits.max_retry_delay_ms, body.delay_ms
        )));
    }
    if let Some(error) = &body.error
        && error.chars().count() > MAX_NACK_ERROR_CHARS
    {
        return Err(ApiError::InvalidBody(format!(
            "error: must be at most {MAX_NACK_ERROR_CHARS} characters"
        )));
    }
    check_reach(&caller, &*groups.config(&name).await?)?;
    let action = match body.action {
        NackActionBody::Retry => NackAction::Retry,
        NackActionBody::Park => NackAction::Park,
        NackActionBody::Skip => NackAction::Skip,
    };
    let outcome = groups
        .nack(
            &name,
            &body.receipts,
            action,
            body.delay_ms,
            body.error.as_deref(),
        )
        .await?;
    Ok(Json(NackView {
        nacked: outcome.nacked,
        unknown: outcome.unknown,
    }))
}

// ----- parked events ---------------------------------------------------------------------------

/// List parked events, in position order, each with its last error and delivery count.
#[utoipa::path(
    get,
    path = "/subscriptions/{name}/parked",
    tag = "subscriptions",
    params(
        ("name" = String, Path, description = "The subscription's name"),
        ("after" = Option<u64>, Query, description = "Start after this position (the `next` of the previous page)"),
        ("limit" = Option<usize>, Query, description = "1–1000, default 100"),
    ),
    responses(
        (status = 200, description = "A page of parked events", body = ParkedListView),
        (status = 400, description = "`invalid_subscription_name`, or a bad query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_parked(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    query: QueryParams,
) -> Result<Json<ParkedListView>, ApiError> {
    require_view(&caller)?;
    let name = group_name(name)?;
    query.allow_only(&["after", "limit"])?;
    let after = query.u64("after")?;
    let limit = query.limit()?;
    let groups = state.groups();
    check_reach(&caller, &groups.get(&name).await?.config)?;
    let (parked, next) = groups.parked(&name, after, limit).await?;
    Ok(Json(ParkedListView {
        parked: parked
            .into_iter()
            .map(ParkedView::new)
            .collect::<Result<_, _>>()?,
        next,
    }))
}

impl ParkedView {
    fn new(parked: ParkedEvent) -> Result<Self, ApiError> {
        let (stream_type, stream_id) = parked
            .stream
            .split_once('/')
            .map(|(t, i)| (t.to_owned(), i.to_owned()))
            .unwrap_or_default();
        let event = parked
            .event
            .map(|event| {
                let bytes = EventDocument::new(&event).to_bytes();
                String::from_utf8(bytes)
                    .ok()
                    .and_then(|text| RawValue::from_string(text).ok())
                    .ok_or_else(|| ApiError::Internal("an event's JSON is invalid".to_owned()))
            })
            .transpose()?;
        Ok(Self {
            position: parked.position,
            stream_type,
            stream_id,
            deliveries: parked.deliveries,
            last_error: parked.last_error,
            parked_at: millis_to_rfc3339(parked.parked_at_ms),
            event,
        })
    }
}

/// Put parked events back in line (all, or `positions`), with their delivery count reset.
#[utoipa::path(
    post,
    path = "/subscriptions/{name}/parked/replay",
    tag = "subscriptions",
    params(("name" = String, Path, description = "The subscription's name")),
    request_body = ReplayBody,
    responses(
        (status = 200, description = "Replayed", body = ReplayView),
        (status = 400, description = "Too many positions", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`subscription_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn replay_parked(
    State(state): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    OptionalJsonBody(body): OptionalJsonBody<ReplayBody>,
) -> Result<Json<ReplayView>, ApiError> {
    require_manage(&caller)?;
    let name = group_name(name)?;
    let groups = state.groups();
    if let Some(positions) = &body.positions {
        let max = groups.limits().max_receipts;
        if positions.is_empty() || positions.len() > max {
            return Err(ApiError::InvalidBody(format!(
                "positions: must hold 1 to {max} positions (leave it out to replay all), not {}",
                positions.len()
            )));
        }
    }
    check_reach(&caller, &groups.get(&name).await?.config)?;
    let outcome = groups.replay(&name, body.positions.as_deref()).await?;
    if outcome.replayed > 0 {
        audit(
            &state,
            &caller,
            "subscription.replayed",
            "SubscriptionParkedReplayed",
            json!({"name": name.as_str(), "replayed": outcome.replayed}),
        )
        .await?;
    }
    Ok(Json(ReplayView {
        replayed: outcome.replayed,
        unknown: outcome.unknown,
    }))
}

// ----- helpers ---------------------------------------------------------------------------------

fn group_name(path: Result<Path<String>, PathRejection>) -> Result<GroupName, ApiError> {
    let Path(raw) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    GroupName::parse(&raw).map_err(ApiError::InvalidSubscriptionName)
}

/// Managing needs the role for it, or a consumer's (whose reach is then checked).
fn require_manage(caller: &Caller) -> Result<(), ApiError> {
    caller
        .require(Capability::ManageSubscriptions)
        .or_else(|denied| {
            caller
                .require(Capability::ConsumeGroups)
                .map_err(|_| denied)
        })
        .map_err(ApiError::from)
}

/// Looking at groups needs either right.
fn require_view(caller: &Caller) -> Result<(), ApiError> {
    require_manage(caller)
}

/// Whether the caller's rules reach every event the group's filter can select: each named
/// stream type (or every type) with each named event type (or every type). A key that may
/// not read all of it may neither make nor consume such a group.
fn check_reach(caller: &Caller, config: &GroupConfig) -> Result<(), ApiError> {
    let stream_types: Vec<&str> = config.filter.stream_types().map_or_else(
        || vec![ANY_NAME],
        |types| types.iter().map(StreamType::as_str).collect(),
    );
    let event_types: Vec<&str> = config.filter.event_types().map_or_else(
        || vec![ANY_NAME],
        |types| types.iter().map(EventType::as_str).collect(),
    );
    for stream_type in &stream_types {
        for event_type in &event_types {
            if !caller.may_see(stream_type, event_type) {
                let what = |name: &str, every: &str| {
                    if name == ANY_NAME {
                        every.to_owned()
                    } else {
                        name.to_owned()
                    }
                };
                return Err(ApiError::Forbidden(format!(
                    "this key may not read events of type {} in streams of type {}; name in the filter only the stream types and event types its rules allow",
                    what(event_type, "(every type)"),
                    what(stream_type, "(every type)"),
                )));
            }
        }
    }
    Ok(())
}

fn check_receipts(receipts: &[String], max: usize) -> Result<(), ApiError> {
    if receipts.is_empty() || receipts.len() > max {
        return Err(ApiError::InvalidBody(format!(
            "receipts: must hold 1 to {max} receipts, not {}",
            receipts.len()
        )));
    }
    if let Some(index) = receipts
        .iter()
        .position(|receipt| receipt.len() > MAX_RECEIPT_CHARS)
    {
        return Err(ApiError::InvalidBody(format!(
            "receipts[{index}]: {:?} is not a receipt",
            truncate(&receipts[index])
        )));
    }
    Ok(())
}

/// A JSON body that may be left out: no body reads as `{}`. A body that is there is checked
/// like any other ([`JsonBody`]: JSON media type, size, shape).
#[derive(Debug)]
pub(crate) struct OptionalJsonBody<T>(pub(crate) T);

impl<T: serde::de::DeserializeOwned + Default> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers();
        let empty = headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() == b"0")
            || (!headers.contains_key(header::CONTENT_LENGTH)
                && !headers.contains_key(header::TRANSFER_ENCODING));
        if empty {
            return Ok(Self(T::default()));
        }
        JsonBody::<T>::from_request(request, state)
            .await
            .map(|JsonBody(body)| Self(body))
    }
}

fn millis_to_rfc3339(ms: u64) -> String {
    RecordedAt(i64::try_from(ms.saturating_mul(1000)).unwrap_or(i64::MAX)).to_rfc3339()
}

/// Records an administrative change in `$audit/subscriptions`: who, what, when.
async fn audit(
    state: &AppState,
    caller: &Caller,
    action: &str,
    event_type: &str,
    target: Value,
) -> Result<(), ApiError> {
    let entry = json!({
        "action": action,
        "actor": {"key_id": caller.key_id, "key_name": caller.key_name},
        "at": RecordedAt::now().to_rfc3339(),
        "target": target,
    });
    let stream = StreamName::new(
        StreamType::parse(AUDIT_STREAM_TYPE)
            .map_err(|error| ApiError::Internal(error.to_string()))?,
        StreamId::parse("subscriptions").map_err(|error| ApiError::Internal(error.to_string()))?,
    );
    let event_type =
        EventType::parse(event_type).map_err(|error| ApiError::Internal(error.to_string()))?;
    state
        .store()
        .append_system(AppendRequest {
            stream,
            expected: ExpectedRevision::Any,
            events: vec![ProposedEvent::json(
                event_type,
                JsonText::from_value(&entry),
            )],
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::auth::{Role, Rules};

    fn caller(role: Role, rules: Value) -> Caller {
        Caller {
            key_id: Some("k".to_owned()),
            key_name: "test".to_owned(),
            role,
            rules: Arc::new(serde_json::from_value::<Rules>(rules).expect("rules")),
        }
    }

    fn config(filter: Value) -> GroupConfig {
        GroupConfig::parse(&json!({"filter": filter}), None)
            .expect("valid")
            .0
    }

    #[test]
    fn a_key_with_rules_reaches_only_groups_within_them() {
        let orders = caller(
            Role::Consumer,
            json!({"stream_types": ["order"], "event_types": ["Order*"]}),
        );
        let cases = [
            (json!({}), false),
            (json!({"stream_types": ["order"]}), false),
            (
                json!({"stream_types": ["order"], "event_types": ["OrderPlaced"]}),
                true,
            ),
            (
                json!({"stream_types": ["order"], "event_types": ["OrderPlaced", "Refund"]}),
                false,
            ),
            (
                json!({"stream_types": ["order", "payment"], "event_types": ["OrderPlaced"]}),
                false,
            ),
            (json!({"event_types": ["OrderPlaced"]}), false),
        ];
        for (filter, allowed) in cases {
            assert_eq!(
                check_reach(&orders, &config(filter.clone())).is_ok(),
                allowed,
                "{filter}"
            );
        }
        let everything = caller(Role::Consumer, json!([]));
        assert!(check_reach(&everything, &config(json!({}))).is_ok());
        let wildcard = caller(
            Role::Consumer,
            json!({"stream_types": ["*"], "event_types": ["Order*"]}),
        );
        assert!(check_reach(&wildcard, &config(json!({"event_types": ["OrderPlaced"]}))).is_ok());
        assert!(check_reach(&wildcard, &config(json!({}))).is_err());
    }

    #[test]
    fn system_streams_need_the_right_to_read_them() {
        let audit = config(json!({"stream_types": ["$audit"]}));
        assert!(check_reach(&caller(Role::Consumer, json!([])), &audit).is_err());
        assert!(check_reach(&caller(Role::Operator, json!([])), &audit).is_ok());
    }

    #[test]
    fn managing_needs_a_role_that_manages_or_consumes() {
        for (role, allowed) in [
            (Role::Admin, true),
            (Role::Operator, true),
            (Role::Consumer, true),
            (Role::Producer, false),
            (Role::Reader, false),
        ] {
            assert_eq!(
                require_manage(&caller(role, json!([]))).is_ok(),
                allowed,
                "{role}"
            );
        }
    }
}
