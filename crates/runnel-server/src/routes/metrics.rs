//! `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{Caller, Capability};
use crate::problem::ApiError;
use crate::state::AppState;
use crate::telemetry::{HEAD_POSITION, render_store_metrics};

/// Prometheus metrics: requests and latency per route, appends, subscriptions, and the store's
/// durable writes (commits, bytes, fsync latency).
///
/// Needs a key of role admin or operator, unless the server runs with `--metrics-public`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4", body = String))
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    caller: Option<Caller>,
) -> Result<Response, ApiError> {
    // Public metrics are served before authentication, so there is no caller to check.
    if !state.auth().metrics_public() {
        let caller = caller.ok_or_else(|| {
            ApiError::Internal("metrics were served without authentication".to_owned())
        })?;
        caller.require(Capability::Metrics)?;
    }
    if let Some(head) = state.store().watch_head().current() {
        metrics::gauge!(HEAD_POSITION).set(head.0 as f64);
    }
    let mut text = state.telemetry().render();
    render_store_metrics(&state.store().metrics(), &mut text);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
