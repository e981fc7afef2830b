//! The router: one file per REST resource, assembled here with the request-wide layers.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::middleware::authenticate;
use crate::middleware::{
    method_not_allowed, panic_response, record_metrics, route_not_found, shed_load, time_out,
};
use crate::state::AppState;

pub(crate) mod all;
pub(crate) mod docs;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod metrics;
pub(crate) mod streams;
pub(crate) mod subscribe;
pub(crate) mod subscriptions;

/// Every documented route, with the document built from them.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .routes(routes!(streams::list_types))
        .routes(routes!(streams::list_streams))
        .routes(routes!(streams::stream_info))
        .routes(routes!(streams::append, streams::read_stream))
        .routes(routes!(all::read_all))
        .routes(routes!(subscribe::subscribe))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::get_key, keys::revoke_key))
        .routes(routes!(subscriptions::list_subscriptions))
        .routes(routes!(
            subscriptions::put_subscription,
            subscriptions::get_subscription,
            subscriptions::delete_subscription
        ))
        .routes(routes!(subscriptions::pause_subscription))
        .routes(routes!(subscriptions::resume_subscription))
        .routes(routes!(subscriptions::receive))
        .routes(routes!(subscriptions::ack))
        .routes(routes!(subscriptions::nack))
        .routes(routes!(subscriptions::list_parked))
        .routes(routes!(subscriptions::replay_parked))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::metrics))
        .routes(routes!(docs::root))
}

/// The OpenAPI 3.1 document of [`app`], as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = api_router().into_openapi();
    docs::describe_security(&mut document);
    document
}

/// The whole HTTP API over `state`, with its limits, metrics and error answers; no socket.
pub fn app(state: AppState) -> Router {
    let (api, mut openapi) = api_router().split_for_parts();
    docs::describe_security(&mut openapi);
    let max_body_bytes = state.config().max_body_bytes;
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .route_layer(from_fn(record_metrics))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Inside the load shedding and the timeout: unauthenticated floods are shed too.
        .layer(from_fn_with_state(state.clone(), authenticate))
        .layer(from_fn_with_state(state.clone(), time_out))
        .layer(from_fn_with_state(state.clone(), shed_load))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_describes_every_route() {
        let document = serde_json::to_value(openapi()).expect("serialises");
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().expect("paths");
        for (path, method) in [
            ("/streams", "get"),
            ("/streams/{type}", "get"),
            ("/streams/{type}/{id}", "get"),
            ("/streams/{type}/{id}/events", "get"),
            ("/streams/{type}/{id}/events", "post"),
            ("/events", "get"),
            ("/subscribe", "get"),
            ("/health/live", "get"),
            ("/health/ready", "get"),
            ("/metrics", "get"),
            ("/openapi.json", "get"),
            ("/docs/", "get"),
            ("/", "get"),
            ("/keys", "post"),
            ("/keys", "get"),
            ("/keys/{id}", "get"),
            ("/keys/{id}", "delete"),
            ("/subscriptions", "get"),
            ("/subscriptions/{name}", "put"),
            ("/subscriptions/{name}", "get"),
            ("/subscriptions/{name}", "delete"),
            ("/subscriptions/{name}/receive", "post"),
            ("/subscriptions/{name}/ack", "post"),
            ("/subscriptions/{name}/nack", "post"),
            ("/subscriptions/{name}/parked", "get"),
            ("/subscriptions/{name}/parked/replay", "post"),
            ("/subscriptions/{name}/pause", "post"),
            ("/subscriptions/{name}/resume", "post"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing"
            );
        }
        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for schema in [
            "Event",
            "Problem",
            "AppendBody",
            "AppendResult",
            "ProposedEvent",
        ] {
            assert!(
                schemas.contains_key(schema),
                "schema {schema} missing: {:?}",
                schemas.keys()
            );
        }
    }
}
