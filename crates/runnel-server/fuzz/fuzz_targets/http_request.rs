//! Whole requests through the router over the in-memory reference store: whatever the method,
//! path, query, headers and body, the answer is never a 500 (what a panicking handler becomes
//! too) and every error is problem+json.
//!
//! Run with `cargo +nightly fuzz run http_request` from `crates/runnel-server`.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use runnel_server::fuzzing::{ADMIN_KEY, HttpApp};

#[derive(Debug, Arbitrary)]
enum Method {
    Get,
    Post,
    Delete,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Route {
    Streams,
    StreamType(String),
    Stream(String, String),
    StreamEvents(String, String),
    Events,
    Subscribe,
    Keys,
    Key(String),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: Method,
    route: Route,
    query: Option<String>,
    authorized: bool,
    content_type: Option<String>,
    last_event_id: Option<String>,
    body: Vec<u8>,
}

/// Percent-encodes every byte but RFC 3986's unreserved characters, as a client would.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn app() -> &'static HttpApp {
    static APP: OnceLock<HttpApp> = OnceLock::new();
    APP.get_or_init(|| {
        let store = runnel_testkit::model::ModelStore::new(runnel_core::AppendLimits::default());
        HttpApp::new(Arc::new(store))
    })
}

fuzz_target!(|input: Input| {
    let method = match &input.method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Other(other) => other.as_str(),
    };
    let path = match &input.route {
        Route::Streams => "/streams".to_owned(),
        Route::StreamType(t) => format!("/streams/{}", encode(t)),
        Route::Stream(t, id) => format!("/streams/{}/{}", encode(t), encode(id)),
        Route::StreamEvents(t, id) => format!("/streams/{}/{}/events", encode(t), encode(id)),
        Route::Events => "/events".to_owned(),
        Route::Subscribe => "/subscribe".to_owned(),
        Route::Keys => "/keys".to_owned(),
        Route::Key(id) => format!("/keys/{}", encode(id)),
        Route::Raw(raw) => format!("/{raw}"),
    };
    let target = match &input.query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let mut headers = Vec::new();
    if input.authorized {
        headers.push((
            "authorization".to_owned(),
            format!("Bearer {ADMIN_KEY}").into_bytes(),
        ));
    }
    if let Some(content_type) = input.content_type {
        headers.push(("content-type".to_owned(), content_type.into_bytes()));
    }
    if let Some(id) = input.last_event_id {
        headers.push(("last-event-id".to_owned(), id.into_bytes()));
    }
    let Some((status, content_type)) =
        app().request(method.as_bytes(), &target, &headers, input.body)
    else {
        return;
    };
    assert!(
        status < 500 || status == 503,
        "{method} {target} answered {status}"
    );
    if status >= 400 && method != "HEAD" {
        assert_eq!(
            content_type.as_deref(),
            Some(runnel_server::PROBLEM_JSON),
            "{method} {target} answered {status}"
        );
    }
});
