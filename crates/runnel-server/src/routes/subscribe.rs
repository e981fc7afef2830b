//! `GET /subscribe`: a live feed of `$all` over Server-Sent Events.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use runnel_core::Position;

use crate::auth::{Caller, Capability};
use crate::extract::{QueryParams, truncate};
use crate::problem::{ApiError, Problem};
use crate::routes::all::parse_filter;
use crate::state::AppState;
use crate::subscription::{Feed, FeedAccess, FeedLimits};

/// Follow `$all` live over Server-Sent Events.
///
/// First every matching stored event from `from`, then new events as they are committed, with
/// no gap and no duplicate at the switch. Each message has `id:` the event's position and
/// `data:` the Event JSON on one line. Reconnect with `Last-Event-ID` to resume right after that
/// position. `: keep-alive` comments come at least every 15 s. A client that falls too far
/// behind is closed with a comment and resumes with `Last-Event-ID`. Events outside the key's
/// rules are skipped silently (the next `Last-Event-ID` still resumes past them), and the
/// subscription closes when its key is revoked.
#[utoipa::path(
    get,
    path = "/subscribe",
    tag = "events",
    params(
        ("from" = Option<String>, Query, description = "A position, or `end` (default): only events committed from now on"),
        ("stream_type" = Option<Vec<String>>, Query, explode = true, description = "Only these stream types (repeatable)"),
        ("event_type" = Option<Vec<String>>, Query, explode = true, description = "Only these event types (repeatable)"),
        ("stream" = Option<Vec<String>>, Query, explode = true, description = "Only these streams, as {type}/{id} (repeatable)"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume right after this position (overrides `from`)"),
    ),
    responses(
        (status = 200, description = "An event stream: `id: <position>` and `data: <Event JSON>` per message", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad query parameter, name or Last-Event-ID", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_subscriptions` (with Retry-After): `limit` says whether `max_subscriptions` or `max_subscriptions_per_key`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Shutting down", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Response, ApiError> {
    caller.require(Capability::Subscribe)?;
    query.allow_only(&["from", "stream_type", "event_type", "stream"])?;
    let filter = parse_filter(&query)?;
    let from = match last_event_id(&headers)? {
        Some(seen) => Position(seen.saturating_add(1)),
        None => parse_from(&query, &state)?,
    };
    if state.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    // Per key first: a key at its bound must not take a global place even for a moment.
    let key_permit = match &caller.key_id {
        Some(key_id) => Some(
            state
                .key_subscription_permits()
                .try_acquire(key_id)
                .ok_or_else(|| ApiError::TooManySubscriptionsForKey {
                    max: state.key_subscription_permits().max(),
                })?,
        ),
        None => None,
    };
    let permit = state
        .subscription_permits()
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManySubscriptions {
            max: state.config().max_subscriptions,
        })?;
    let config = state.config();
    let limits = FeedLimits {
        heartbeat: config.heartbeat(),
        page_events: config.subscription_page_events,
        page_bytes: config.subscription_page_bytes,
        max_lag_events: config.subscription_max_lag_events,
    };
    let feed = Feed::new(
        state.store().clone(),
        FeedAccess {
            caller,
            auth: state.auth().clone(),
        },
        filter,
        from,
        state.shutdown_signal(),
        limits,
        permit,
    );
    // The key's place is held for as long as the body is, like the global permit in the feed.
    let body = feed.into_stream().map(move |chunk| {
        let _held = &key_permit;
        chunk
    });
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies that buffer responses would hold live events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    text.parse::<u64>().map(Some).map_err(|_| {
        ApiError::InvalidHeader(format!(
            "Last-Event-ID must be an event position (a non-negative integer), not {:?}",
            truncate(text)
        ))
    })
}

/// `from`: a position, or `end` (the default): the position after the current head.
fn parse_from(query: &QueryParams, state: &AppState) -> Result<Position, ApiError> {
    match query.single("from")? {
        None | Some("end") => Ok(state
            .store()
            .watch_head()
            .current()
            .map_or(Position(0), Position::next)),
        Some(raw) => raw.parse::<u64>().map(Position).map_err(|_| {
            ApiError::InvalidQuery(format!(
                "query parameter from must be a position (a non-negative integer) or end, not {:?}",
                truncate(raw)
            ))
        }),
    }
}
