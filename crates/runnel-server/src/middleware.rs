//! Request-wide behaviour: shedding load, the request timeout, per-route metrics, and turning
//! panics, unknown routes and wrong methods into problem+json.

use std::any::Any;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::ApiError;
use crate::state::AppState;
use crate::telemetry::{HTTP_REQUEST_SECONDS, HTTP_REQUESTS};

/// The liveness probe is never shed nor timed out: an overloaded server is alive, and an
/// orchestrator that read a 503 there would restart it, making the overload worse.
const LIVENESS_PATH: &str = "/health/live";

/// Sheds a request with 503 when `max_concurrent_requests` are already being handled, rather
/// than queueing it without bound. The permit is held until the response starts, so a long-lived
/// subscription body does not hold one.
pub(crate) async fn shed_load(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == LIVENESS_PATH {
        return next.run(request).await;
    }
    let Ok(_permit) = state.request_permits().try_acquire() else {
        return ApiError::Busy {
            max: state.config().max_concurrent_requests,
        }
        .into_response();
    };
    next.run(request).await
}

/// Answers 503 when a handler does not produce its response within `request_timeout_ms`. An
/// append cut off this way may still be written: the client must treat it as unknown, and an
/// idempotent retry with the same event ids settles it.
pub(crate) async fn time_out(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limit = state.config().request_timeout();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout {
            ms: state.config().request_timeout_ms,
        }
        .into_response(),
    }
}

/// Counts requests and times them per route template (`/streams/{type}/{id}`), never per raw
/// path, so the number of series stays bounded whatever clients send.
pub(crate) async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_REQUEST_SECONDS, "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

pub(crate) async fn route_not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound {
        path: crate::extract::truncate(uri.path()),
    }
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: crate::extract::truncate(uri.path()),
    }
}

/// A panic in a handler is a bug; the client still gets problem+json, and the log gets the
/// message.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "a request handler panicked");
    ApiError::Internal("the server hit a bug while handling this request".to_owned())
        .into_response()
}
