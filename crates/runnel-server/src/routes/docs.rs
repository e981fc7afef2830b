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
        description = "An event store and event broker in one binary. Errors are `application/problem+json` (RFC 9457) with a stable `code`. Every request but the health probes and this documentation needs `Authorization: Bearer <API key>`: 401 `unauthenticated` without a valid key, 403 `forbidden` when the key's role or rules do not allow the request.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(openapi_json, docs_page),
    components(schemas(Problem)),
    tags(
        (name = "streams", description = "Append to streams, read them, list them"),
        (name = "events", description = "The store-wide log `$all`: read it, follow it live"),
        (name = "subscriptions", description = "Consumer groups: durable subscriptions with pull delivery (receive, ack, nack) or webhooks, retries and parked events"),
        (name = "keys", description = "API keys: create, list, revoke (role admin)"),
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

/// The name of the bearer scheme in the document.
const BEARER: &str = "bearer";

/// Paths served without a key (see `auth::middleware`); `/metrics` is public only when
/// configured so, which the document shows as optional authentication.
const PUBLIC_PATHS: [&str; 5] = [
    "/",
    "/docs/",
    "/openapi.json",
    "/health/live",
    "/health/ready",
];
const OPTIONALLY_PUBLIC_PATHS: [&str; 1] = ["/metrics"];

/// Declares the bearer scheme, requires it everywhere but on the public paths, and adds the
/// 401 and 403 answers to every operation that needs a key. Done on the assembled document,
/// so no route can be forgotten.
pub(crate) fn describe_security(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("rnl_<id>_<secret>")
                .description(Some(
                    "An API key: the bootstrap admin key (RUNNEL_ADMIN_KEY, or printed at first start) or one made with POST /keys",
                ))
                .build(),
        ),
    );
    document.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    for (path, item) in document.paths.paths.iter_mut() {
        let public = PUBLIC_PATHS.contains(&path.as_str());
        let optional = OPTIONALLY_PUBLIC_PATHS.contains(&path.as_str());
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            if public {
                operation.security = Some(Vec::new());
                continue;
            }
            if optional {
                operation.security = Some(vec![
                    SecurityRequirement::new(BEARER, Vec::<String>::new()),
                    SecurityRequirement::default(),
                ]);
            }
            add_problem_response(
                operation,
                "401",
                "`unauthenticated`: no API key, or not a valid one (with `WWW-Authenticate: Bearer`)",
            );
            add_problem_response(
                operation,
                "403",
                "`forbidden`: the key's role or rules do not allow this request",
            );
        }
    }
}

fn add_problem_response(
    operation: &mut utoipa::openapi::path::Operation,
    status: &str,
    description: &str,
) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            crate::problem::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    operation
        .responses
        .responses
        .insert(status.to_owned(), response.into());
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn document() -> Value {
        serde_json::to_value(crate::routes::openapi()).expect("serialises")
    }

    #[test]
    fn the_document_declares_the_bearer_scheme_and_requires_it_by_default() {
        let document = document();
        let scheme = &document["components"]["securitySchemes"]["bearer"];
        assert_eq!(scheme["type"], "http", "{scheme}");
        assert_eq!(scheme["scheme"], "bearer", "{scheme}");
        assert_eq!(document["security"], serde_json::json!([{"bearer": []}]));
    }

    #[test]
    fn every_protected_operation_documents_401_and_403_and_public_ones_need_no_key() {
        let document = document();
        let paths = document["paths"].as_object().expect("paths");
        let mut protected = 0;
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("path item") {
                let public = super::PUBLIC_PATHS.contains(&path.as_str());
                if public {
                    assert_eq!(
                        operation["security"],
                        serde_json::json!([]),
                        "{method} {path} is public"
                    );
                    continue;
                }
                protected += 1;
                for status in ["401", "403"] {
                    let response = &operation["responses"][status];
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} does not document {status}"
                    );
                }
            }
        }
        assert!(protected >= 10, "only {protected} protected operations");
        assert!(paths["/keys"]["post"]["responses"]["201"].is_object());
        assert!(paths["/keys/{id}"]["delete"]["responses"]["204"].is_object());
    }
}
