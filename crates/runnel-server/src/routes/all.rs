//! `GET /events`: read `$all`, the store-wide log, in position order.

use axum::Json;
use axum::extract::State;
use runnel_core::{AllFilter, EventType, Position, StreamName, StreamType};

use crate::auth::{Caller, Capability};
use crate::extract::QueryParams;
use crate::model::{AllEventsView, EventView};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// Read every event in position order, optionally filtered.
///
/// `stream_type`, `event_type` and `stream` may each be repeated: an event matches when it
/// matches any given value of each given filter. With filters, `next` may skip past
/// non-matching events so they are not scanned again. Events outside the key's rules are
/// skipped the same way, silently: a page may hold fewer events than `limit`, even none, while
/// `next` moves on.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(
        ("from" = Option<u64>, Query, description = "First position to return (default 0)"),
        ("limit" = Option<usize>, Query, description = "1–1000, default 100"),
        ("stream_type" = Option<Vec<String>>, Query, explode = true, description = "Only these stream types (repeatable)"),
        ("event_type" = Option<Vec<String>>, Query, explode = true, description = "Only these event types (repeatable)"),
        ("stream" = Option<Vec<String>>, Query, explode = true, description = "Only these streams, as {type}/{id} (repeatable)"),
    ),
    responses(
        (status = 200, description = "A page of events; `next` is the `from` of the following page, or null at the head", body = AllEventsView),
        (status = 400, description = "Bad query parameter or name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn read_all(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Json<AllEventsView>, ApiError> {
    caller.require(Capability::Read)?;
    query.allow_only(&["from", "limit", "stream_type", "event_type", "stream"])?;
    let from = Position(query.u64("from")?.unwrap_or(0));
    let limit = query.limit()?;
    let filter = parse_filter(&query)?;
    let slice = state.store().read_all(from, &filter, limit).await?;
    Ok(Json(AllEventsView {
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
        next: slice.next.map(|p| p.0),
    }))
}

/// The most values all filters of one request may hold together: each read checks every
/// event against them.
const MAX_FILTER_VALUES: usize = 100;

/// The repeatable filters of `$all` reads and subscriptions.
pub(crate) fn parse_filter(query: &QueryParams) -> Result<AllFilter, ApiError> {
    let values = ["stream_type", "event_type", "stream"]
        .iter()
        .map(|name| query.all(name).count())
        .sum::<usize>();
    if values > MAX_FILTER_VALUES {
        return Err(ApiError::InvalidQuery(format!(
            "at most {MAX_FILTER_VALUES} values of stream_type, event_type and stream together, not {values}"
        )));
    }
    let stream_types = query
        .all("stream_type")
        .map(|raw| {
            StreamType::parse(raw)
                .map_err(|error| ApiError::invalid_name("query parameter stream_type", error))
        })
        .collect::<Result<_, _>>()?;
    let event_types = query
        .all("event_type")
        .map(|raw| {
            EventType::parse(raw)
                .map_err(|error| ApiError::invalid_name("query parameter event_type", error))
        })
        .collect::<Result<_, _>>()?;
    let streams = query
        .all("stream")
        .map(|raw| {
            StreamName::parse(raw)
                .map_err(|error| ApiError::invalid_name("query parameter stream", error))
        })
        .collect::<Result<_, _>>()?;
    Ok(AllFilter {
        stream_types,
        event_types,
        streams,
    })
}
