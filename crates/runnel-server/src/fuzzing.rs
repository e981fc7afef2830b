//! Entry points for the fuzz targets in `fuzz/`: every parser of outside input, as the server
//! runs it, and the whole router. Not a stable API.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use runnel_core::{EventType, Store, StreamId, StreamName, StreamType};
use tower::ServiceExt as _;

use crate::config::{Secret, ServerConfig};
use crate::extract::{QueryParams, parse_json};
use crate::model::AppendBody;
use crate::state::AppState;

/// Stream types, stream ids, `{type}/{id}` names and event types, from any text.
pub fn parse_names(text: &str) {
    let _ = StreamType::parse(text);
    let _ = StreamId::parse(text);
    let _ = StreamName::parse(text);
    let _ = EventType::parse(text);
}

/// The append body: JSON with error paths, then each event's validation (names, payload,
/// base64, content type, nesting depth).
pub fn parse_append_body(bytes: &[u8]) {
    if let Ok(body) = parse_json::<AppendBody>(bytes) {
        for (index, event) in body.events.into_iter().enumerate() {
            let _ = event.into_proposed(index);
        }
    }
}

/// A query string through every parameter parser of the read, list and subscribe endpoints.
pub fn parse_query(query: &str) {
    let params = QueryParams::parse(query);
    let _ = params.allow_only(&["from", "limit", "stream_type", "event_type", "stream"]);
    let _ = params.u64("from");
    let _ = params.limit();
    let _ = crate::routes::all::parse_filter(&params);
    let _ = params.single("direction");
    if let Ok(Some(after)) = params.single("after") {
        parse_names(after);
    }
}

/// The admin key of [`HttpApp`]: requests that carry it reach every handler.
pub const ADMIN_KEY: &str = "fuzzing-admin-key-0123456789abcdef";

/// The whole router over a store, on a runtime of its own, for requests one at a time.
#[derive(Debug)]
pub struct HttpApp {
    runtime: tokio::runtime::Runtime,
    router: Router,
    store: Arc<dyn Store>,
}

impl HttpApp {
    /// Panics if the runtime or the keyring cannot be set up: a fuzzing harness has nothing
    /// better to do then.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut config = ServerConfig::default();
        config.auth.admin_key = Some(Secret::new(ADMIN_KEY));
        let router = runtime.block_on(async {
            let (auth, _) = crate::auth::Auth::open(Arc::clone(&store), &config)
                .await
                .expect("the keyring opens");
            crate::routes::app(AppState::new(Arc::clone(&store), config, auth))
        });
        Self {
            runtime,
            router,
            store,
        }
    }

    /// Closes the store, so that what was written is synced and its threads end.
    pub fn close(self) {
        let _ = self.runtime.block_on(self.store.close());
    }

    /// Sends one request and returns the status and `Content-Type` of the answer (its body is
    /// not read: a subscription's never ends). `None` when the request cannot be built (a
    /// method or header that HTTP itself refuses, which no server would receive).
    pub fn request(
        &self,
        method: &[u8],
        target: &str,
        headers: &[(String, Vec<u8>)],
        body: Vec<u8>,
    ) -> Option<(u16, Option<String>)> {
        let mut builder = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_slice());
        }
        let request = builder.body(Body::from(body)).ok()?;
        let router = self.router.clone();
        let response = self
            .runtime
            .block_on(async move { router.oneshot(request).await })
            .unwrap_or_else(|never| match never {});
        let content_type = response
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Some((response.status().as_u16(), content_type))
    }
}
