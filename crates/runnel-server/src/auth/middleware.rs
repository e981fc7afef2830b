//! The authentication layer: turns the `Authorization` header into a [`Caller`] that handlers
//! extract, or answers 401 before any handler runs.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;
use crate::telemetry::REQUESTS_UNAUTHENTICATED;

/// Paths served without a key: probes (orchestrators do not hold keys), the API's own
/// description (it documents routes, not data), and metrics when configured public.
fn is_public(path: &str, metrics_public: bool) -> bool {
    path.starts_with("/health/")
        || path == "/"
        || path == "/openapi.json"
        || path == "/docs"
        || path.starts_with("/docs/")
        || (metrics_public && path == "/metrics")
}

/// Authenticates every request to a path that is not public, unknown paths included (so that
/// probing for routes without a key learns nothing but 401).
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let auth = state.auth();
    if is_public(request.uri().path(), auth.metrics_public()) {
        return next.run(request).await;
    }
    match auth.authenticate(request.headers()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(reason) => {
            metrics::counter!(REQUESTS_UNAUTHENTICATED).increment(1);
            ApiError::Unauthenticated(reason.to_string()).into_response()
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal("a route that needs a caller was served without one".to_owned())
        })
    }
}

/// For routes that are public or not depending on the configuration (`/metrics`).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Caller>().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_probes_docs_and_optionally_metrics_are_public() {
        for public in [
            "/health/live",
            "/health/ready",
            "/",
            "/openapi.json",
            "/docs",
            "/docs/",
            "/docs/swagger-ui.css",
        ] {
            assert!(is_public(public, false), "{public}");
        }
        for private in [
            "/streams",
            "/events",
            "/subscribe",
            "/keys",
            "/metrics",
            "/health",
            "/healthz",
            "/docsx",
            "/openapi.json/x",
            "/nope",
        ] {
            assert!(!is_public(private, false), "{private}");
        }
        assert!(is_public("/metrics", true));
    }
}
