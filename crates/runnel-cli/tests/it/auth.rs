//! API keys, roles and rules, over HTTP against the real binary: who may do what, what a key
//! may see, revocation, the audit trail, the bootstrap admin key and `--insecure`.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, Sse, SseReader, TestServer, expect_problem};

const WAIT: Duration = Duration::from_secs(10);

/// A well-formed key that no server ever issued.
const UNKNOWN_KEY: &str =
    "rnl_0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Creates a key as the admin; returns its id and the key itself.
async fn create_key(server: &TestServer, name: &str, role: &str, rules: Value) -> (String, String) {
    let (status, body) = server
        .post_json(
            "/keys",
            &json!({"name": name, "role": role, "rules": rules}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().expect("id").to_owned(),
        body["key"].as_str().expect("key").to_owned(),
    )
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = server.request_as(method, path, key);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    request.send().await.expect("request sent")
}

async fn status_of(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> u16 {
    send(server, method, path, Some(key), body)
        .await
        .status()
        .as_u16()
}

fn one_event(event_type: &str) -> Value {
    json!({"events": [{"type": event_type, "data": {}}]})
}

/// Every `{method, path, body}` of the API that needs a key, one per route.
fn protected_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/streams", None),
        (Method::GET, "/streams/order", None),
        (Method::GET, "/streams/order/o-1", None),
        (Method::GET, "/streams/order/o-1/events", None),
        (
            Method::POST,
            "/streams/order/o-1/events",
            Some(one_event("OrderPlaced")),
        ),
        (Method::GET, "/events", None),
        (Method::GET, "/subscribe?from=0", None),
        (
            Method::POST,
            "/keys",
            Some(json!({"name": "x", "role": "reader"})),
        ),
        (Method::GET, "/keys", None),
        (Method::GET, "/keys/0123456789abcdef", None),
        (Method::DELETE, "/keys/0123456789abcdef", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/no-such-route", None),
    ]
}

#[tokio::test]
async fn every_route_refuses_a_missing_malformed_unknown_or_revoked_key_with_the_same_401() {
    let server = TestServer::start().await;
    let (id, revoked) = create_key(&server, "soon revoked", "admin", json!([])).await;
    let response = server
        .request(Method::DELETE, &format!("/keys/{id}"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 204);

    for (method, path, body) in protected_routes() {
        let mut details = Vec::new();
        for key in [None, Some(UNKNOWN_KEY), Some("nonsense"), Some(&revoked)] {
            let response = send(&server, method.clone(), path, key, body.clone()).await;
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Bearer realm="runnel""#,
                "{method} {path}"
            );
            let problem = expect_problem(response, 401, "unauthenticated").await;
            details.push(problem["detail"].clone());
        }
        // An unknown key and a revoked one read the same: nothing tells which keys exist.
        assert_eq!(details[1], details[2], "{method} {path}");
        assert_eq!(details[1], details[3], "{method} {path}");
        let basic = server
            .request_as(method.clone(), path, None)
            .header("authorization", "Basic YWRtaW46YWRtaW4=")
            .send()
            .await
            .expect("sent");
        expect_problem(basic, 401, "unauthenticated").await;
    }
    for public in ["/health/live", "/health/ready", "/openapi.json", "/docs/"] {
        let response = send(&server, Method::GET, public, None, None).await;
        assert_eq!(response.status(), 200, "{public} is public");
    }
}

/// Role × request → allowed? A refused request is a 403 `forbidden`, never a 401.
#[tokio::test]
async fn each_role_may_make_exactly_the_requests_of_its_role() {
    let server = TestServer::start().await;
    server.append_n("order/o-1", "OrderPlaced", 1).await;
    let mut keys = Vec::new();
    for role in ["admin", "operator", "producer", "consumer", "reader"] {
        let (_, key) = create_key(&server, role, role, json!([])).await;
        keys.push((role, key));
    }
    // (method, path, body, roles allowed)
    let cases: Vec<(Method, &str, Option<Value>, &[&str])> = vec![
        (
            Method::POST,
            "/streams/order/o-2/events",
            Some(one_event("OrderPlaced")),
            &["admin", "producer"],
        ),
        (
            Method::GET,
            "/streams/order/o-1/events",
            None,
            &["admin", "operator", "consumer", "reader"],
        ),
        (
            Method::GET,
            "/streams/order/o-1",
            None,
            &["admin", "operator", "consumer", "reader"],
        ),
        (
            Method::GET,
            "/streams",
            None,
            &["admin", "operator", "consumer", "reader"],
        ),
        (
            Method::GET,
            "/streams/order",
            None,
            &["admin", "operator", "consumer", "reader"],
        ),
        (
            Method::GET,
            "/events",
            None,
            &["admin", "operator", "consumer", "reader"],
        ),
        (
            Method::GET,
            "/streams/$audit/keys/events",
            None,
            &["admin", "operator"],
        ),
        (Method::GET, "/metrics", None, &["admin", "operator"]),
        (Method::GET, "/keys", None, &["admin"]),
        (
            Method::POST,
            "/keys",
            Some(json!({"name": "made by", "role": "reader"})),
            &["admin"],
        ),
    ];
    for (method, path, body, allowed) in cases {
        for (role, key) in &keys {
            let response = send(&server, method.clone(), path, Some(key), body.clone()).await;
            if allowed.contains(role) {
                assert!(
                    response.status().is_success(),
                    "{role} {method} {path}: {}",
                    response.status()
                );
            } else {
                let problem = expect_problem(response, 403, "forbidden").await;
                let detail = problem["detail"].as_str().expect("detail");
                assert!(detail.starts_with("this key"), "{detail}");
            }
        }
    }
    // Live subscriptions: consumers yes, readers and producers no.
    for (role, key) in &keys {
        let response = send(&server, Method::GET, "/subscribe", Some(key), None).await;
        let expected = if ["admin", "operator", "consumer"].contains(role) {
            200
        } else {
            403
        };
        assert_eq!(response.status(), expected, "{role} subscribe");
    }
}

#[tokio::test]
async fn a_producer_limited_to_order_streams_and_order_events_cannot_write_anything_else() {
    let server = TestServer::start().await;
    let (_, producer) = create_key(
        &server,
        "orders",
        "producer",
        json!({"stream_types": ["order"], "event_types": ["Order*"]}),
    )
    .await;
    let append = |path: &'static str, body: Value| {
        send(&server, Method::POST, path, Some(&producer), Some(body))
    };
    let written = append("/streams/order/o-1/events", one_event("OrderPlaced")).await;
    assert_eq!(written.status(), 200);

    let refused = append("/streams/payment/p-1/events", one_event("OrderPlaced")).await;
    let problem = expect_problem(refused, 403, "forbidden").await;
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("streams of type payment"),
        "{problem}"
    );
    // One event out of reach refuses the whole append: nothing is written.
    let mixed =
        json!({"events": [{"type": "OrderPaid", "data": {}}, {"type": "Refund", "data": {}}]});
    let refused = append("/streams/order/o-1/events", mixed).await;
    let problem = expect_problem(refused, 403, "forbidden").await;
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("Refund"),
        "{problem}"
    );
    let (_, stream) = server.get_json("/streams/order/o-1").await;
    assert_eq!(stream["revision"], 0, "{stream}");
    expect_problem(
        server.get("/streams/payment/p-1").await,
        404,
        "stream_not_found",
    )
    .await;
}

/// Appends, as the admin, `OrderPlaced` and `PaymentMade` events alternately to `order/…` and
/// `payment/…` streams; returns how many `Order*` events were written.
async fn append_mixed(server: &TestServer, rounds: usize, tag: &str) -> usize {
    for n in 0..rounds {
        server
            .append(
                &format!("order/{tag}-{n}"),
                json!({"events": [{"type": "OrderPlaced", "data": {"n": n}}]}),
            )
            .await;
        server
            .append(
                &format!("payment/{tag}-{n}"),
                json!({"events": [{"type": "PaymentMade", "data": {"n": n}}, {"type": "PaymentMade", "data": {"n": n}}]}),
            )
            .await;
    }
    rounds
}

#[tokio::test]
async fn a_consumer_limited_to_order_events_reads_only_them_from_all_and_next_moves_on() {
    let server = TestServer::start().await;
    let (_, consumer) = create_key(
        &server,
        "order events",
        "consumer",
        json!({"event_types": ["Order*"]}),
    )
    .await;
    let orders = append_mixed(&server, 6, "a").await;

    // Page through $all three events at a time: pages hold fewer (some none), but `next`
    // always moves and the read ends.
    let mut from = 0u64;
    let mut seen = Vec::new();
    for _ in 0..100 {
        let response = send(
            &server,
            Method::GET,
            &format!("/events?from={from}&limit=3"),
            Some(&consumer),
            None,
        )
        .await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("json");
        for event in page["events"].as_array().expect("events") {
            seen.push((
                event["position"].as_u64().expect("position"),
                event["type"].as_str().expect("type").to_owned(),
            ));
        }
        match page["next"].as_u64() {
            Some(next) => {
                assert!(next > from, "next {next} does not move past {from}");
                from = next;
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), orders, "{seen:?}");
    assert!(seen.iter().all(|(_, t)| t == "OrderPlaced"), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");

    // Reading a payment stream directly shows none of its events.
    let response = send(
        &server,
        Method::GET,
        "/streams/payment/a-0/events",
        Some(&consumer),
        None,
    )
    .await;
    let page: Value = response.json().await.expect("json");
    assert_eq!(page["events"], json!([]), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_limited_to_order_events_follows_only_them_live_and_resumes_past_the_rest() {
    let server = TestServer::start().await;
    let (_, consumer) = create_key(
        &server,
        "order events",
        "consumer",
        json!({"event_types": ["Order*"]}),
    )
    .await;
    append_mixed(&server, 3, "before").await;
    let response = send(
        &server,
        Method::GET,
        "/subscribe?from=0",
        Some(&consumer),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut feed = SseReader::new(response);
    let stored = feed.events(3, WAIT).await;
    append_mixed(&server, 3, "live").await;
    let live = feed.events(3, WAIT).await;
    let all: Vec<_> = stored.iter().chain(&live).collect();
    for (_, event) in &all {
        assert_eq!(event["type"], "OrderPlaced", "{event}");
    }
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    // Nothing else arrives: the payments were skipped, not delayed.
    assert_eq!(feed.next_event(Duration::from_millis(300)).await, None);
    drop(feed);

    // Resuming after the last event seen: the payments after it are skipped, the next order
    // arrives.
    let last_seen = all.last().expect("events").0;
    append_mixed(&server, 1, "after").await;
    let response = server
        .request_as(Method::GET, "/subscribe", Some(&consumer))
        .header("last-event-id", last_seen.to_string())
        .send()
        .await
        .expect("resume");
    let mut resumed = SseReader::new(response);
    let (id, event) = resumed.next_event(WAIT).await.expect("the next order");
    assert!(id > last_seen);
    assert_eq!(event["stream_id"], "after-0", "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_by_the_next_request_and_its_subscription_closes() {
    let server = TestServer::start().await;
    let (id, key) = create_key(&server, "temporary", "consumer", json!([])).await;
    assert_eq!(
        status_of(&server, Method::GET, "/streams", &key, None).await,
        200
    );
    let response = send(&server, Method::GET, "/subscribe", Some(&key), None).await;
    let mut feed = SseReader::new(response);
    assert!(matches!(feed.next(WAIT).await, Some(Sse::Comment(_))));

    let revoked = server
        .request(Method::DELETE, &format!("/keys/{id}"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status(), 204);
    expect_problem(
        send(&server, Method::GET, "/streams", Some(&key), None).await,
        401,
        "unauthenticated",
    )
    .await;
    // The open subscription ends without delivering what comes after the revocation.
    server.append_n("order/o-1", "OrderPlaced", 1).await;
    match feed.next(WAIT).await {
        Some(Sse::Comment(comment)) => assert!(comment.contains("revoked"), "{comment}"),
        other => panic!("expected the closing comment, got {other:?}"),
    }
    assert_eq!(feed.next(Duration::from_millis(300)).await, None);

    // Revoking again, or an id that never was, is a 404.
    for path in [
        format!("/keys/{id}"),
        "/keys/0123456789abcdef".to_owned(),
        "/keys/nope".to_owned(),
    ] {
        let response = server
            .request(Method::DELETE, &path)
            .send()
            .await
            .expect("sent");
        expect_problem(response, 404, "key_not_found").await;
    }
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_their_creation_and_revocation_are_audited() {
    let server = TestServer::start().await;
    let (kept, kept_key) = create_key(
        &server,
        "orders in",
        "producer",
        json!([{"stream_types": ["order"]}]),
    )
    .await;
    let (gone, _) = create_key(&server, "gone", "reader", json!([])).await;
    let response = server
        .request(Method::DELETE, &format!("/keys/{gone}"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 204);

    let (status, listing) = server.get_json("/keys?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(listing["keys"].as_array().expect("keys").len(), 1);
    let (_, listing) = server.get_json("/keys").await;
    let keys = listing["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "the revoked key is not listed: {listing}");
    assert_eq!(keys[0]["id"], kept.as_str());
    assert_eq!(keys[0]["role"], "producer");
    assert_eq!(
        keys[0]["rules"],
        json!([{"stream_types": ["order"], "event_types": []}])
    );
    assert_eq!(
        keys[0]["created_by"],
        json!({"key_id": null, "key_name": "admin key (RUNNEL_ADMIN_KEY)"})
    );
    let secret = kept_key.rsplit('_').next().expect("secret");
    assert!(!listing.to_string().contains(secret));

    let (status, audit) = server.get_json("/streams/$audit/keys/events").await;
    assert_eq!(status, 200, "{audit}");
    let records: Vec<(String, Value)> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["type"].as_str().expect("type").to_owned(),
                e["data"].clone(),
            )
        })
        .collect();
    let kinds: Vec<&str> = records.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(kinds, ["KeyCreated", "KeyCreated", "KeyRevoked"]);
    let (_, revocation) = &records[2];
    assert_eq!(revocation["action"], "key.revoked");
    assert_eq!(revocation["target"]["key_id"], gone.as_str());
    assert_eq!(revocation["target"]["name"], "gone");
    assert_eq!(
        revocation["actor"]["key_name"],
        "admin key (RUNNEL_ADMIN_KEY)"
    );
    assert!(revocation["at"].is_string());
    assert!(
        !audit.to_string().contains(secret),
        "no secret in the audit trail"
    );
    assert!(
        !audit.to_string().contains("hash"),
        "no hash in the audit trail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyring_stream_is_invisible_to_every_read() {
    let server = TestServer::start().await;
    let (_, key) = create_key(&server, "k", "reader", json!([])).await;
    let secret = key.rsplit('_').next().expect("secret").to_owned();
    server.append_n("order/o-1", "OrderPlaced", 2).await;

    let (_, types) = server.get_json("/streams").await;
    let names: Vec<&str> = types["types"]
        .as_array()
        .expect("types")
        .iter()
        .map(|t| t["stream_type"].as_str().expect("type"))
        .collect();
    assert!(
        names.contains(&"order") && names.contains(&"$audit"),
        "{names:?}"
    );
    assert!(!names.contains(&"$keys"), "{names:?}");
    let (status, listing) = server.get_json("/streams/$keys").await;
    assert_eq!((status, &listing["streams"]), (200, &json!([])));
    for path in ["/streams/$keys/keys", "/streams/$keys/keys/events"] {
        expect_problem(server.get(path).await, 404, "stream_not_found").await;
    }
    for query in ["", "?stream_type=$keys"] {
        let (_, page) = server.get_json(&format!("/events{query}")).await;
        for event in page["events"].as_array().expect("events") {
            assert_ne!(event["stream_type"], "$keys", "{event}");
        }
        assert!(!page.to_string().contains(&secret));
    }
    let mut feed = server.subscribe("?from=0", None).await;
    let mut types = Vec::new();
    while let Some((_, event)) = feed.next_event(Duration::from_millis(500)).await {
        types.push(event["stream_type"].as_str().expect("type").to_owned());
    }
    assert!(types.contains(&"order".to_owned()), "{types:?}");
    assert!(!types.contains(&"$keys".to_owned()), "{types:?}");
}

/// Reads stdout lines until one holds `RUNNEL_API_KEY=`; returns the key.
fn printed_key(server: &TestServer) -> Option<String> {
    while let Some(line) = server.next_stdout_line(Duration::from_millis(500)) {
        if let Some(key) = line.trim().strip_prefix("RUNNEL_API_KEY=") {
            return Some(key.to_owned());
        }
    }
    None
}

#[tokio::test]
async fn a_first_start_prints_a_generated_admin_key_once_and_later_starts_keep_it() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let mut first = TestServer::start_without_admin_key(&data_dir, &[]).await;
    let key = printed_key(&first).expect("the first start prints a key");
    assert!(key.starts_with("rnl_"), "{key}");
    expect_problem(first.get("/streams").await, 401, "unauthenticated").await;
    first.key = Some(key.clone());
    assert_eq!(
        first.get("/keys").await.status(),
        200,
        "the key is an admin's"
    );
    first.terminate(WAIT);

    let mut second = TestServer::start_without_admin_key(&data_dir, &[]).await;
    assert_eq!(
        printed_key(&second),
        None,
        "nothing secret is printed again"
    );
    second.key = Some(key);
    let (status, keys) = second.get_json("/keys").await;
    assert_eq!(status, 200);
    assert_eq!(
        keys["keys"][0]["name"], "admin (generated at first start)",
        "{keys}"
    );
    second.terminate(WAIT);
    let secret = second
        .key
        .as_deref()
        .and_then(|k| k.rsplit('_').next())
        .expect("secret");
    let mut files = vec![data_dir];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .expect("dir")
                    .map(|e| e.expect("entry").path()),
            );
            continue;
        }
        let bytes = std::fs::read(&path).expect("file");
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "the key's secret is in {}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked > 0);
}

#[tokio::test]
async fn a_configured_admin_key_is_used_and_no_key_is_generated() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/keys").await.status(), 200);
    let (_, keys) = server.get_json("/keys").await;
    assert_eq!(keys["keys"], json!([]), "nothing generated: {keys}");
    // Nothing was written at all: the keyring is created with the first key.
    let (_, events) = server.get_json("/events").await;
    assert_eq!(events["events"], json!([]));
    assert_eq!(printed_key(&server), None);

    let short = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_dir.with_extension("short"))
        .env("RUNNEL_ADMIN_KEY", "too-short")
        .env_remove("RUNNEL_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert!(!short.status.success());
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
}

#[tokio::test]
async fn insecure_mode_needs_no_key_and_says_so_at_start_and_in_readiness() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server =
        TestServer::start_without_admin_key(&temp.path().join("data"), &["--insecure"]).await;
    let mut printed = Vec::new();
    while let Some(line) = server.next_stdout_line(Duration::from_millis(300)) {
        printed.push(line);
    }
    assert!(
        printed
            .iter()
            .any(|line| line.contains("authentication is OFF")),
        "{printed:?}"
    );
    assert!(!printed.iter().any(|line| line.contains("RUNNEL_API_KEY=")));
    server.append_n("order/o-1", "OrderPlaced", 1).await;
    let (status, body) = server.get_json("/streams/order/o-1/events").await;
    assert_eq!(status, 200, "{body}");
    let (status, ready) = server.get_json("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(ready["insecure"], true, "{ready}");
    assert!(
        ready["warning"]
            .as_str()
            .expect("warning")
            .contains("authentication is off"),
        "{ready}"
    );
}

#[tokio::test]
async fn public_metrics_need_no_key() {
    let server = TestServer::start_with(&["--metrics-public"]).await;
    let response = send(&server, Method::GET, "/metrics", None, None).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    assert!(text.contains("runnel_"), "{text}");
    expect_problem(
        send(&server, Method::GET, "/streams", None, None).await,
        401,
        "unauthenticated",
    )
    .await;
}

fn runnel(server: &TestServer, key: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runnel"));
    command
        .args(args)
        .env("RUNNEL_URL", &server.base)
        .env_remove("RUNNEL_API_KEY")
        .stdin(Stdio::null());
    if let Some(key) = key {
        command.env("RUNNEL_API_KEY", key);
    }
    command.output().expect("runnel runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_lists_and_revokes_keys() {
    let server = TestServer::start().await;
    let created = runnel(
        &server,
        Some(ADMIN_KEY),
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--role",
            "producer",
            "--stream-type",
            "order",
            "--json",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).expect("one JSON line");
    let id = created["id"].as_str().expect("id").to_owned();
    let key = created["key"].as_str().expect("key").to_owned();
    assert_eq!(
        created["rules"],
        json!([{"stream_types": ["order"], "event_types": []}])
    );

    let appended = runnel(
        &server,
        Some(&key),
        &["append", "order/o-1", "OrderPlaced", "{}"],
    );
    assert!(
        appended.status.success(),
        "{}",
        String::from_utf8_lossy(&appended.stderr)
    );
    let refused = runnel(
        &server,
        Some(&key),
        &["append", "payment/p-1", "Paid", "{}"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).starts_with("error[forbidden]"));

    let listed = runnel(&server, Some(ADMIN_KEY), &["keys", "list"]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains(&id) && table.contains("stream_types=order"),
        "{table}"
    );
    assert!(!table.contains(&key));

    let revoked = runnel(&server, Some(ADMIN_KEY), &["keys", "revoke", &id]);
    assert!(revoked.status.success());
    let after = runnel(&server, Some(&key), &["streams"]);
    assert_eq!(after.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&after.stderr);
    assert!(stderr.starts_with("error[unauthenticated]"), "{stderr}");
    assert!(stderr.contains("RUNNEL_API_KEY"), "{stderr}");

    let again = runnel(&server, Some(ADMIN_KEY), &["keys", "revoke", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).starts_with("error[key_not_found]"));
}

#[tokio::test]
async fn bad_key_requests_are_400_and_name_the_field() {
    let server = TestServer::start().await;
    for (body, needle) in [
        (json!({"name": "x", "role": "root"}), "role"),
        (json!({"name": "", "role": "reader"}), "name"),
        (
            json!({"name": "x", "role": "reader", "rules": [{"stream_types": ["or*der"]}]}),
            "rules",
        ),
        (json!({"name": "x", "role": "reader", "extra": 1}), "extra"),
    ] {
        let response = server.post("/keys", body.to_string()).await;
        let problem = expect_problem(response, 400, "invalid_body").await;
        assert!(
            problem["detail"].as_str().expect("detail").contains(needle),
            "{problem}"
        );
    }
    expect_problem(server.get("/keys?after=zzz").await, 400, "invalid_query").await;
}
