//! A property test of the whole HTTP layer: random methods, paths, query strings, headers and
//! bodies through the router over the real embedded engine. Whatever comes in, the answer is
//! never a 500 (which is also what a panicking handler becomes) and every error is problem+json.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::fuzzing::{ADMIN_KEY, HttpApp};
use crate::problem::PROBLEM_JSON;

/// Percent-encodes every byte but RFC 3986's unreserved characters.
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

/// One path segment: plausible names, hostile text, and broken percent-encoding.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-z][a-z0-9_.-]{0,10}",
        2 => any::<String>().prop_map(|text| encode(&text)),
        1 => "(%[0-9A-Fa-f]{0,2}|\\.|\\.\\.|%2F|%00|\\$[a-z]{1,5}){1,4}",
        1 => "[a-z]{300,400}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let a = segment;
    prop_oneof![
        1 => Just("/streams".to_owned()),
        1 => a().prop_map(|t| format!("/streams/{t}")),
        1 => (a(), a()).prop_map(|(t, i)| format!("/streams/{t}/{i}")),
        4 => (a(), a()).prop_map(|(t, i)| format!("/streams/{t}/{i}/events")),
        1 => Just("/events".to_owned()),
        1 => Just("/subscribe".to_owned()),
        1 => Just("/keys".to_owned()),
        1 => a().prop_map(|id| format!("/keys/{id}")),
        1 => Just("/health/ready".to_owned()),
        1 => Just("/health/live".to_owned()),
        1 => Just("/metrics".to_owned()),
        1 => Just("/".to_owned()),
        1 => Just("/openapi.json".to_owned()),
        1 => prop::collection::vec(a(), 0..5).prop_map(|parts| format!("/{}", parts.join("/"))),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("from".to_owned()),
        Just("limit".to_owned()),
        Just("direction".to_owned()),
        Just("after".to_owned()),
        Just("stream_type".to_owned()),
        Just("event_type".to_owned()),
        Just("stream".to_owned()),
        "[a-z_]{1,8}",
    ];
    let value = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        Just("end".to_owned()),
        Just("backward".to_owned()),
        Just("forward".to_owned()),
        "[a-z]{1,6}/[a-z0-9-]{1,6}",
        any::<String>().prop_map(|text| encode(&text)),
        "[%&=+;]{1,6}",
    ];
    let pairs = prop::collection::vec((name, value), 1..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    // Without a query most requests pass the parameter checks and reach the store.
    prop_oneof![1 => Just(String::new()), 1 => pairs]
}

/// JSON values, nested a little.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        "[A-Za-z][A-Za-z0-9]{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Append bodies: mostly the documented shape with random values, then random JSON, then
/// random bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    // Each field is mostly valid, so that whole appends are often written, and sometimes not.
    let event_type = prop_oneof![
        8 => "[A-Za-z][A-Za-z0-9]{0,10}".prop_map(serde_json::Value::from),
        1 => json(),
    ];
    let metadata = prop_oneof![3 => Just(None), 1 => json().prop_map(Some)];
    let id = prop_oneof![
        6 => Just(None),
        1 => Just(Some(serde_json::Value::from(uuid::Uuid::nil().to_string()))),
        1 => json().prop_map(Some),
    ];
    let binary = prop_oneof![
        6 => Just(None),
        1 => Just(Some(("AAEC".to_owned(), "application/octet-stream".to_owned()))),
        1 => ("[A-Za-z0-9+/=]{0,12}", "[a-z/]{0,12}").prop_map(Some),
    ];
    let event = (event_type, json(), metadata, id, binary)
        .prop_map(|(event_type, data, metadata, id, binary)| {
            let mut event = serde_json::Map::new();
            event.insert("type".into(), event_type);
            match binary {
                Some((encoded, content_type)) => {
                    event.insert("data_base64".into(), encoded.into());
                    event.insert("content_type".into(), content_type.into());
                }
                None => {
                    event.insert("data".into(), data);
                }
            }
            if let Some(metadata) = metadata {
                event.insert("metadata".into(), metadata);
            }
            if let Some(id) = id {
                event.insert("id".into(), id);
            }
            serde_json::Value::Object(event)
        })
        .boxed();
    let expected = prop_oneof![
        4 => Just(None),
        1 => Just(Some(serde_json::Value::from("any"))),
        1 => Just(Some(serde_json::Value::from("no_stream"))),
        1 => any::<u8>().prop_map(|n| Some(serde_json::Value::from(n))),
        1 => json().prop_map(Some),
    ];
    let events = prop_oneof![
        9 => prop::collection::vec(event.clone(), 1..4),
        1 => prop::collection::vec(event, 0..1),
    ];
    let shaped = (events, expected).prop_map(|(events, expected)| {
        let mut body = serde_json::json!({ "events": events });
        if let Some(expected) = expected {
            body["expected_revision"] = expected;
        }
        body.to_string().into_bytes()
    });
    prop_oneof![
        6 => shaped,
        2 => json().prop_map(|value| value.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => Just(Vec::new()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let authorization = prop_oneof![
        8 => Just(format!("Bearer {ADMIN_KEY}").into_bytes()),
        1 => "Bearer [A-Za-z0-9._-]{0,40}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ];
    let content_type = prop_oneof![
        Just("application/json".to_owned()),
        Just("application/cloudevents+json; charset=utf-8".to_owned()),
        Just("text/plain".to_owned()),
        "[ -~]{0,30}",
    ];
    (
        authorization,
        prop::option::of(content_type),
        prop::option::of(prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            "[ -~]{0,12}"
        ]),
    )
        .prop_map(|(authorization, content_type, last_event_id)| {
            let mut headers = vec![("authorization".to_owned(), authorization)];
            if let Some(content_type) = content_type {
                headers.push(("content-type".to_owned(), content_type.into_bytes()));
            }
            if let Some(id) = last_event_id {
                headers.push(("last-event-id".to_owned(), id.into_bytes()));
            }
            headers
        })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("GET".to_owned()),
        4 => Just("POST".to_owned()),
        1 => Just("DELETE".to_owned()),
        1 => Just("PUT".to_owned()),
        1 => Just("HEAD".to_owned()),
        1 => Just("OPTIONS".to_owned()),
        1 => "[A-Z]{1,8}",
    ]
}

#[test]
fn no_request_gets_a_500_and_every_error_is_problem_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = runnel_embedded::EngineConfig {
        segment_bytes: 8 * 1024 * 1024,
        ..runnel_embedded::EngineConfig::default()
    };
    let store = runnel_embedded::EmbeddedStore::open(dir.path(), engine).expect("store opens");
    let app = HttpApp::new(Arc::new(store));
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let anything = (method(), path(), query(), headers(), body());
    // Appends that are mostly valid, to the same few streams, so reads and expected revisions
    // meet real data.
    let append = ("(order|payment|user)", "[a-c][0-9]", headers(), body()).prop_map(
        |(stream_type, id, mut headers, body)| {
            headers[0].1 = format!("Bearer {ADMIN_KEY}").into_bytes();
            (
                "POST".to_owned(),
                format!("/streams/{stream_type}/{id}/events"),
                String::new(),
                headers,
                body,
            )
        },
    );
    let request = prop_oneof![1 => anything, 1 => append];
    runner
        .run(&request, |(method, path, query, headers, body)| {
            let target = if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            };
            let Some((status, content_type)) =
                app.request(method.as_bytes(), &target, &headers, body)
            else {
                return Ok(());
            };
            if status >= 500 && status != 503 {
                return Err(TestCaseError::fail(format!(
                    "{method} {target} answered {status}"
                )));
            }
            if status >= 400 && method != "HEAD" && content_type.as_deref() != Some(PROBLEM_JSON) {
                return Err(TestCaseError::fail(format!(
                    "{method} {target} answered {status} with {content_type:?}, not problem+json"
                )));
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    app.close();
}
