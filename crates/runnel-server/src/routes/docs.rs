//! The API's description: `GET /openapi.json` (generated from the handlers, so the document and
//! the routes cannot drift), `GET /docs` (Swagger UI, every asset served from the binary), and
//! `GET /` leading there.

use axum::response::Redirect;
use utoipa::OpenApi;

use crate::problem::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Runnel",
        description = "An event store and event broker in one binary. Errors are `application/problem+json` (RFC 9457) with a stable `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(openapi_json, docs_page),
    components(schemas(Problem)),
    tags(
        (name = "streams", description = "Append to streams, read them, list them"),
        (name = "events", description = "The store-wide log `$all`: read it, follow it live"),
        (name = "operations", description = "Health, metrics, and this documentation"),
    )
)]
pub(crate) struct ApiDoc;

/// Send a person to the interactive docs.
#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    responses((status = 307, description = "Redirect to /docs/"))
)]
pub(crate) async fn root() -> Redirect {
    Redirect::temporary("/docs/")
}

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
#[allow(dead_code)] // Served by Swagger UI's router; declared here to be part of the document.
fn openapi_json() {}

/// Interactive API documentation (Swagger UI), working without internet access.
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "operations",
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String))
)]
#[allow(dead_code)] // Served by Swagger UI's router; declared here to be part of the document.
fn docs_page() {}
