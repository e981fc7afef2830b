//! `/streams`: append to a stream, read it, describe it, and list stream types and streams.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use runnel_core::{
    AppendRequest, Direction, Revision, StoreError, StreamId, StreamName, StreamType,
};

use crate::auth::{Caller, Capability, Reach};
use crate::extract::{JsonBody, QueryParams, StreamPath, StreamTypePath};
use crate::model::{
    AppendBody, AppendResultView, EventView, StreamEventsView, StreamListView, StreamTypeListView,
    StreamTypeView, StreamView,
};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::telemetry::{APPEND_SECONDS, BYTES_APPENDED, EVENTS_APPENDED};

/// Append events to a stream.
///
/// Atomic: all events are written with consecutive revisions, or none. Acknowledged once durable.
/// Re-sending events whose ids were already written at the same stream and revisions returns the
/// original answer and writes nothing.
#[utoipa::path(
    post,
    path = "/streams/{type}/{id}/events",
    tag = "streams",
    params(
        ("type" = String, Path, description = "Stream type: 1–128 of [A-Za-z0-9_.-], not starting with '.' or '-'"),
        ("id" = String, Path, description = "Stream id: 1–256 bytes of UTF-8, no control characters, no '/' (percent-encode)"),
    ),
    request_body = AppendBody,
    responses(
        (status = 200, description = "Written (or an idempotent retry of a write)", body = AppendResultView),
        (status = 400, description = "Malformed JSON, wrong types, missing fields, bad names", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the key may not append this stream type or one of these event types; `system_stream`: a type starting with '$'", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`wrong_expected_revision` (with `current_revision`) or `duplicate_event_id`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`body_too_large` or `limit_exceeded` (events per append, bytes per event, bytes per append)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Overloaded or shutting down (with Retry-After), or the store stopped writing", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn append(
    State(state): State<AppState>,
    caller: Caller,
    StreamPath(stream): StreamPath,
    JsonBody(body): JsonBody<AppendBody>,
) -> Result<Json<AppendResultView>, ApiError> {
    caller.require(Capability::Append)?;
    let events = body
        .events
        .into_iter()
        .enumerate()
        .map(|(index, event)| event.into_proposed(index))
        .collect::<Result<Vec<_>, _>>()?;
    // Every event must be within the key's rules, or nothing is written.
    caller.check_append(
        stream.stream_type().as_str(),
        events.iter().map(|event| event.event_type.as_str()),
    )?;
    let event_count = events.len() as u64;
    let bytes: usize = events.iter().map(|e| e.size_bytes()).sum();
    let request = AppendRequest {
        stream,
        expected: body.expected_revision.0,
        events,
    };
    let started = Instant::now();
    let outcome = state.store().append(request).await?;
    metrics::histogram!(APPEND_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::counter!(EVENTS_APPENDED).increment(event_count);
    metrics::counter!(BYTES_APPENDED).increment(bytes as u64);
    Ok(Json(outcome.into()))
}

/// Read a stream's events, forward or backward, a page at a time.
///
/// Events of types outside the key's rules are left out of the page; `next` still moves on.
#[utoipa::path(
    get,
    path = "/streams/{type}/{id}/events",
    tag = "streams",
    params(
        ("type" = String, Path, description = "Stream type"),
        ("id" = String, Path, description = "Stream id (percent-encoded)"),
        ("from" = Option<u64>, Query, description = "First revision to return (default: 0 forward, the last revision backward)"),
        ("limit" = Option<usize>, Query, description = "1–1000, default 100"),
        ("direction" = Option<String>, Query, description = "`forward` (default) or `backward`"),
    ),
    responses(
        (status = 200, description = "A page of events; `next` is the `from` of the following page or null", body = StreamEventsView),
        (status = 400, description = "Bad name or query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`stream_not_found`: the stream has no events", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn read_stream(
    State(state): State<AppState>,
    caller: Caller,
    StreamPath(stream): StreamPath,
    query: QueryParams,
) -> Result<Json<StreamEventsView>, ApiError> {
    check_read(&caller, &stream)?;
    query.allow_only(&["from", "limit", "direction"])?;
    let from = query.u64("from")?.map(Revision);
    let limit = query.limit()?;
    let direction = match query.single("direction")? {
        None | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(other) => {
            return Err(ApiError::InvalidQuery(format!(
                "query parameter direction must be forward or backward, not {:?}",
                crate::extract::truncate(other)
            )));
        }
    };
    let slice = state
        .store()
        .read_stream(&stream, from, direction, limit)
        .await?;
    Ok(Json(StreamEventsView {
        events: slice
            .events
            .into_iter()
            .filter(|event| {
                caller.may_see(
                    event.stream.stream_type().as_str(),
                    event.event_type.as_str(),
                )
            })
            .map(EventView::from)
            .collect(),
        next: slice.next.map(|r| r.0),
    }))
}

/// Describe a stream: its last revision and when it was created and last written.
#[utoipa::path(
    get,
    path = "/streams/{type}/{id}",
    tag = "streams",
    params(
        ("type" = String, Path, description = "Stream type"),
        ("id" = String, Path, description = "Stream id (percent-encoded)"),
    ),
    responses(
        (status = 200, description = "The stream", body = StreamView),
        (status = 400, description = "Bad name", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`stream_not_found`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn stream_info(
    State(state): State<AppState>,
    caller: Caller,
    StreamPath(stream): StreamPath,
    query: QueryParams,
) -> Result<Json<StreamView>, ApiError> {
    check_read(&caller, &stream)?;
    query.allow_only(&[])?;
    let info = state.store().stream_info(&stream).await?;
    Ok(Json(info.into()))
}

/// List the stream types, in name order, with how many streams each has.
///
/// Only the types within the key's reach are listed; `next` still moves on.
#[utoipa::path(
    get,
    path = "/streams",
    tag = "streams",
    params(
        ("after" = Option<String>, Query, description = "Start after this stream type (the `next` of the previous page)"),
        ("limit" = Option<usize>, Query, description = "1–1000, default 100"),
    ),
    responses(
        (status = 200, description = "A page of stream types", body = StreamTypeListView),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_types(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Json<StreamTypeListView>, ApiError> {
    caller.require(Capability::Read)?;
    query.allow_only(&["after", "limit"])?;
    let after = query
        .single("after")?
        .map(StreamType::parse)
        .transpose()
        .map_err(|error| ApiError::invalid_name("query parameter after", error))?;
    let limit = query.limit()?;
    let page = state
        .store()
        .list_stream_types(after.as_ref(), limit)
        .await?;
    Ok(Json(StreamTypeListView {
        types: page
            .items
            .into_iter()
            .filter(|info| caller.may_list(info.stream_type.as_str()))
            .map(StreamTypeView::from)
            .collect(),
        next: page.next.map(|t| t.as_str().to_owned()),
    }))
}

/// List the streams of one type, in stream-id order.
#[utoipa::path(
    get,
    path = "/streams/{type}",
    tag = "streams",
    params(
        ("type" = String, Path, description = "Stream type"),
        ("after" = Option<String>, Query, description = "Start after this stream id (the `next` of the previous page)"),
        ("limit" = Option<usize>, Query, description = "1–1000, default 100"),
    ),
    responses(
        (status = 200, description = "A page of streams (empty when the type has none)", body = StreamListView),
        (status = 400, description = "Bad name or query parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_streams(
    State(state): State<AppState>,
    caller: Caller,
    StreamTypePath(stream_type): StreamTypePath,
    query: QueryParams,
) -> Result<Json<StreamListView>, ApiError> {
    let reach = caller.check_read_stream_type(stream_type.as_str())?;
    query.allow_only(&["after", "limit"])?;
    let after = query
        .single("after")?
        .map(StreamId::parse)
        .transpose()
        .map_err(|error| ApiError::invalid_name("query parameter after", error))?;
    let limit = query.limit()?;
    if reach == Reach::Hidden {
        return Ok(Json(StreamListView {
            streams: Vec::new(),
            next: None,
        }));
    }
    let page = state
        .store()
        .list_streams(&stream_type, after.as_ref(), limit)
        .await?;
    Ok(Json(StreamListView {
        streams: page.items.into_iter().map(StreamView::from).collect(),
        next: page.next.map(|id| id.as_str().to_owned()),
    }))
}

/// Reading one stream: refused outside the key's reach, and for `$keys` answered as if the
/// stream did not exist.
fn check_read(caller: &Caller, stream: &StreamName) -> Result<(), ApiError> {
    match caller.check_read_stream_type(stream.stream_type().as_str())? {
        Reach::Visible => Ok(()),
        Reach::Hidden => Err(StoreError::StreamNotFound {
            stream: stream.clone(),
        }
        .into()),
    }
}
