//! `/health`: liveness and readiness, for orchestrators and load balancers.

use axum::Json;
use axum::extract::State;

use crate::model::HealthView;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// What `/health/ready` says while authentication is off, so that monitoring can alert on it.
const INSECURE_WARNING: &str =
    "authentication is off (--insecure): every client may read, write and manage everything";

/// 200 while the process runs.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    responses((status = 200, description = "The process runs", body = HealthView))
)]
pub(crate) async fn live() -> Json<HealthView> {
    Json(HealthView {
        status: "ok",
        insecure: None,
        warning: None,
    })
}

/// 200 when the server serves reads and writes; 503 while starting, shutting down, or when the
/// store cannot write. The body says whether authentication is off (`--insecure`).
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Serving reads and writes", body = HealthView),
        (status = 503, description = "`not_ready` or `shutting_down`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<HealthView>, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::ShuttingDown);
    }
    state.store().ready().await.map_err(ApiError::NotReady)?;
    let insecure = state.auth().insecure();
    Ok(Json(HealthView {
        status: "ready",
        insecure: Some(insecure),
        warning: insecure.then_some(INSECURE_WARNING),
    }))
}
