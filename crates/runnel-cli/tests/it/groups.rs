//! Consumer groups with pull delivery, over HTTP against the real binary: receive/ack, lease
//! expiry, nack retry/park/skip, parked events and replay, competing consumers, per-stream
//! ordering, long polls, filters, bad input, permissions, the CLI, and a kill -9 mid-consumption.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, TestServer, expect_problem};

/// A view of one server for a consumer task: its address and the admin key, cloneable.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn of(server: &TestServer) -> Self {
        Self::at(&server.base, ADMIN_KEY)
    }

    fn at(base: &str, key: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(40))
                .build()
                .expect("client"),
            base: base.to_owned(),
            key: key.to_owned(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn expect(&self, method: Method, path: &str, body: Option<Value>, status: u16) -> Value {
        let (got, answer) = self
            .call(method.clone(), path, body)
            .await
            .expect("request");
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer
    }

    async fn put(&self, name: &str, config: Value) -> Value {
        let (status, answer) = self
            .call(Method::PUT, &format!("/subscriptions/{name}"), Some(config))
            .await
            .expect("PUT");
        assert!(
            status == 201 || status == 200,
            "PUT {name}: {status} {answer}"
        );
        answer
    }

    async fn receive(&self, name: &str, max: u64, wait_ms: u64) -> Vec<Value> {
        let answer = self
            .expect(
                Method::POST,
                &format!("/subscriptions/{name}/receive"),
                Some(json!({"max": max, "wait_ms": wait_ms})),
                200,
            )
            .await;
        answer["messages"].as_array().expect("messages").clone()
    }

    async fn ack(&self, name: &str, messages: &[Value]) -> Value {
        self.expect(
            Method::POST,
            &format!("/subscriptions/{name}/ack"),
            Some(json!({"receipts": receipts(messages)})),
            200,
        )
        .await
    }

    async fn nack(&self, name: &str, messages: &[Value], body: Value) -> Value {
        let mut body = body;
        body["receipts"] = json!(receipts(messages));
        self.expect(
            Method::POST,
            &format!("/subscriptions/{name}/nack"),
            Some(body),
            200,
        )
        .await
    }

    async fn status(&self, name: &str) -> Value {
        self.expect(Method::GET, &format!("/subscriptions/{name}"), None, 200)
            .await["status"]
            .clone()
    }

    async fn append_n(&self, stream: &str, event_type: &str, count: usize) {
        let events: Vec<Value> = (0..count)
            .map(|n| json!({"type": event_type, "data": {"n": n}}))
            .collect();
        self.expect(
            Method::POST,
            &format!("/streams/{stream}/events"),
            Some(json!({"events": events})),
            200,
        )
        .await;
    }
}

fn receipts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["receipt"].as_str().expect("receipt").to_owned())
        .collect()
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["event"]["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_received_message_is_acknowledged_once_and_not_delivered_again() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    let created = api.put("billing", json!({"start": "beginning"})).await;
    assert_eq!(created["name"], "billing");
    assert_eq!(created["delivery"], json!({"mode": "pull"}));
    api.append_n("order/o-1", "OrderPlaced", 3).await;

    let messages = api.receive("billing", 10, 0).await;
    assert_eq!(messages.len(), 3);
    for (revision, message) in messages.iter().enumerate() {
        assert_eq!(message["delivery"], 1);
        assert_eq!(message["event"]["stream_type"], "order");
        assert_eq!(message["event"]["stream_id"], "o-1");
        assert_eq!(message["event"]["revision"], revision);
        assert_eq!(message["event"]["type"], "OrderPlaced");
        assert_eq!(message["event"]["data"], json!({"n": revision}));
        assert!(message["event"]["metadata"].is_null());
    }
    let status = api.status("billing").await;
    assert_eq!(status["in_flight"], 3);

    let acked = api.ack("billing", &messages).await;
    assert_eq!(acked, json!({"acked": 3, "unknown": []}));
    assert!(api.receive("billing", 10, 0).await.is_empty());
    let again = api.ack("billing", &messages).await;
    assert_eq!(again["acked"], 0);
    assert_eq!(again["unknown"].as_array().expect("unknown").len(), 3);
    let status = api.status("billing").await;
    assert_eq!(status["in_flight"], 0);
    assert_eq!(status["delivered"], 3);
    assert_eq!(status["lag"], 0, "{status}");
    // Every field of the status. The group's own records are in `$all` too, so the head is at
    // or past the last event; the cursor is past the head, which is what a lag of 0 means.
    let last_position = messages[2]["event"]["position"].as_u64().expect("position");
    let head = status["head"].as_u64().expect("head");
    assert!(head >= last_position, "{status}");
    assert_eq!(status["cursor"], head + 1, "{status}");
    assert_eq!(status["parked"], 0, "{status}");
    assert_eq!(status["paused"], false, "{status}");
    assert_eq!(status["last_error"], Value::Null, "{status}");
    // The status gauges are refreshed in the background (every second or so), so wait for
    // them, within a bound.
    let series = [
        "runnel_group_deliveries_total{group=\"billing\"} 3",
        "runnel_group_acks_total{group=\"billing\"} 3",
        "runnel_group_lag_events{group=\"billing\"} 0",
        "runnel_group_in_flight{group=\"billing\"} 0",
        "runnel_group_parked{group=\"billing\"} 0",
        "runnel_group_paused{group=\"billing\"} 0",
        "runnel_group_cursor_position{group=\"billing\"}",
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = server.get("/metrics").await.text().await.expect("metrics");
        let missing: Vec<&str> = series
            .iter()
            .copied()
            .filter(|series| !metrics.contains(series))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{missing:?} missing:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_unacknowledged_message_comes_again_with_the_next_delivery_number() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    api.put(
        "billing",
        json!({"start": "beginning", "ack_timeout_ms": 300}),
    )
    .await;
    api.append_n("order/o-1", "OrderPlaced", 1).await;
    let first = api.receive("billing", 10, 0).await;
    assert_eq!(first.len(), 1);
    let started = Instant::now();
    let second = api.receive("billing", 10, 5_000).await;
    assert_eq!(second.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "redelivered when the lease ran out"
    );
    assert_eq!(second[0]["delivery"], 2);
    assert_eq!(ids(&second), ids(&first));
    assert_ne!(second[0]["receipt"], first[0]["receipt"]);
    let stale = api.ack("billing", &first).await;
    assert_eq!(stale["acked"], 0, "the first attempt's receipt is stale");
    assert_eq!(api.ack("billing", &second).await["acked"], 1);
}

#[tokio::test]
async fn nack_retries_after_its_delay_parks_and_skips() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    api.put("billing", json!({"start": "beginning"})).await;
    api.append_n("order/o-1", "OrderPlaced", 3).await;
    let messages = api.receive("billing", 10, 0).await;
    assert_eq!(messages.len(), 3);

    let retried = api
        .nack(
            "billing",
            &messages[..1],
            json!({"action": "retry", "delay_ms": 700, "error": "try later"}),
        )
        .await;
    assert_eq!(retried, json!({"nacked": 1, "unknown": []}));
    let started = Instant::now();
    assert!(
        api.receive("billing", 10, 0).await.is_empty(),
        "not due yet"
    );
    let again = api.receive("billing", 10, 5_000).await;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited for the delay"
    );
    assert_eq!(ids(&again), ids(&messages[..1]));
    assert_eq!(again[0]["delivery"], 2);

    api.nack(
        "billing",
        &messages[1..2],
        json!({"action": "park", "error": "bad data"}),
    )
    .await;
    api.nack("billing", &messages[2..], json!({"action": "skip"}))
        .await;
    api.ack("billing", &again).await;

    let parked = api
        .expect(Method::GET, "/subscriptions/billing/parked", None, 200)
        .await;
    let entries = parked["parked"].as_array().expect("parked");
    assert_eq!(entries.len(), 1, "{parked}");
    assert_eq!(entries[0]["last_error"], "bad data");
    assert_eq!(entries[0]["deliveries"], 1);
    assert_eq!(entries[0]["stream_type"], "order");
    assert_eq!(entries[0]["event"]["id"], messages[1]["event"]["id"]);
    assert_eq!(parked["next"], Value::Null);
    let status = api.status("billing").await;
    assert_eq!(status["parked"], 1);
    assert_eq!(status["delivered"], 1);
    assert_eq!(status["in_flight"], 0);
    assert_eq!(status["last_error"], "bad data");
    assert!(
        api.receive("billing", 10, 0).await.is_empty(),
        "skipped and parked stay out"
    );
}

#[tokio::test]
async fn an_event_is_parked_after_max_deliveries_and_replay_puts_it_back() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    api.put(
        "billing",
        json!({"start": "beginning", "ack_timeout_ms": 200, "max_deliveries": 2}),
    )
    .await;
    api.append_n("order/o-1", "OrderPlaced", 1).await;
    let first = api.receive("billing", 1, 0).await;
    assert_eq!(first[0]["delivery"], 1);
    // The lease runs out: delivery 2, the last one allowed.
    let second = api.receive("billing", 1, 5_000).await;
    assert_eq!(second[0]["delivery"], 2);
    api.nack("billing", &second, json!({"error": "still failing"}))
        .await;
    let status = api.status("billing").await;
    assert_eq!(status["parked"], 1, "{status}");

    let parked = api
        .expect(Method::GET, "/subscriptions/billing/parked", None, 200)
        .await;
    let entry = &parked["parked"][0];
    assert_eq!(entry["deliveries"], 2);
    assert!(
        entry["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("still failing")),
        "{entry}"
    );
    let position = entry["position"].as_u64().expect("position");

    let unknown = api
        .expect(
            Method::POST,
            "/subscriptions/billing/parked/replay",
            Some(json!({"positions": [position + 1000]})),
            200,
        )
        .await;
    assert_eq!(
        unknown,
        json!({"replayed": 0, "unknown": [position + 1000]})
    );
    let replayed = api
        .expect(
            Method::POST,
            "/subscriptions/billing/parked/replay",
            None,
            200,
        )
        .await;
    assert_eq!(replayed, json!({"replayed": 1, "unknown": []}));
    let back = api.receive("billing", 1, 0).await;
    assert_eq!(ids(&back), ids(&first));
    assert_eq!(back[0]["delivery"], 1, "a replay starts the count again");
    api.ack("billing", &back).await;
    assert_eq!(api.status("billing").await["parked"], 0);
}

#[tokio::test]
async fn competing_consumers_receive_every_event_exactly_once() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    api.put("work", json!({"start": "beginning"})).await;
    for stream in 0..10 {
        api.append_n(&format!("job/j-{stream}"), "JobQueued", 20)
            .await;
    }
    let consume = |api: Api| {
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let messages = api.receive("work", 10, 500).await;
                if messages.is_empty() {
                    return seen;
                }
                let acked = api.ack("work", &messages).await;
                assert_eq!(acked["unknown"], json!([]), "every receipt acknowledges");
                seen.extend(ids(&messages));
            }
        })
    };
    let a = consume(api.clone());
    let b = consume(api.clone());
    let mut all = a.await.expect("consumer a");
    all.extend(b.await.expect("consumer b"));
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "an event was delivered twice");
    assert_eq!(all.len(), 200);
    assert_eq!(api.status("work").await["delivered"], 200);
}

#[tokio::test]
async fn per_stream_ordering_keeps_one_event_of_a_stream_in_flight_in_revision_order() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    api.put(
        "ordered",
        json!({"start": "beginning", "ordering": "per_stream"}),
    )
    .await;
    for _ in 0..4 {
        for stream in 0..5 {
            api.append_n(&format!("account/a-{stream}"), "Posted", 5)
                .await;
        }
    }
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let order: Arc<Mutex<BTreeMap<String, Vec<u64>>>> = Arc::default();
    let consume = |api: Api| {
        let in_flight = Arc::clone(&in_flight);
        let order = Arc::clone(&order);
        tokio::spawn(async move {
            loop {
                let messages = api.receive("ordered", 5, 700).await;
                if messages.is_empty() {
                    return;
                }
                for message in &messages {
                    let stream = message["event"]["stream_id"]
                        .as_str()
                        .expect("id")
                        .to_owned();
                    let revision = message["event"]["revision"].as_u64().expect("revision");
                    assert!(
                        in_flight.lock().expect("lock").insert(stream.clone()),
                        "two events of {stream} in flight at once"
                    );
                    order
                        .lock()
                        .expect("lock")
                        .entry(stream)
                        .or_default()
                        .push(revision);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                // Out of the in-flight set before the ack: once acknowledged, the stream's next
                // event may go to another consumer at once.
                for message in &messages {
                    let stream = message["event"]["stream_id"].as_str().expect("id");
                    in_flight.lock().expect("lock").remove(stream);
                }
                api.ack("ordered", &messages).await;
            }
        })
    };
    let consumers: Vec<_> = (0..3).map(|_| consume(api.clone())).collect();
    for consumer in consumers {
        consumer.await.expect("consumer");
    }
    let order = order.lock().expect("lock");
    assert_eq!(order.len(), 5);
    for (stream, revisions) in order.iter() {
        assert_eq!(
            *revisions,
            (0..20).collect::<Vec<u64>>(),
            "{stream} out of order"
        );
    }
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_an_event_arrives() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    api.put("live", json!({})).await;
    let waiting = {
        let api = api.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let messages = api.receive("live", 10, 20_000).await;
            (messages, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.append_n("order/o-9", "OrderPlaced", 1).await;
    let (messages, waited) = waiting.await.expect("receiver");
    assert_eq!(messages.len(), 1);
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");
    // And a wait with nothing to deliver ends at wait_ms, empty.
    let started = Instant::now();
    assert!(api.receive("live", 10, 300).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn filters_select_by_stream_type_event_type_and_content() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    api.put(
        "big-orders",
        json!({
            "start": "beginning",
            "filter": {
                "stream_types": ["order"],
                "event_types": ["OrderPlaced"],
                "pattern": {"data": {"total": [{"numeric": [">", 100]}], "country": [{"prefix": "N"}]}}
            }
        }),
    )
    .await;
    let append = |stream: &'static str, event_type: &'static str, data: Value| {
        let api = api.clone();
        async move {
            api.expect(
                Method::POST,
                &format!("/streams/{stream}/events"),
                Some(json!({"events": [{"type": event_type, "data": data}]})),
                200,
            )
            .await
        }
    };
    append(
        "order/o-1",
        "OrderPlaced",
        json!({"total": 150, "country": "NL"}),
    )
    .await;
    append(
        "order/o-2",
        "OrderPlaced",
        json!({"total": 50, "country": "NL"}),
    )
    .await;
    append(
        "order/o-3",
        "OrderShipped",
        json!({"total": 150, "country": "NL"}),
    )
    .await;
    append(
        "cart/c-1",
        "OrderPlaced",
        json!({"total": 150, "country": "NL"}),
    )
    .await;
    append(
        "order/o-4",
        "OrderPlaced",
        json!({"total": 101, "country": "BE"}),
    )
    .await;
    append(
        "order/o-5",
        "OrderPlaced",
        json!({"total": 999, "country": "NO"}),
    )
    .await;
    let messages = api.receive("big-orders", 100, 0).await;
    let streams: Vec<&str> = messages
        .iter()
        .map(|m| m["event"]["stream_id"].as_str().expect("id"))
        .collect();
    assert_eq!(streams, ["o-1", "o-5"]);
}

#[tokio::test]
async fn bad_configurations_are_refused_with_the_pointer_of_the_fault() {
    let server = TestServer::start().await;
    let cases = [
        (
            json!({"filter": {"stream_types": ["order", "-bad"]}}),
            "/filter/stream_types/1",
        ),
        (
            json!({"filter": {"pattern": {"data": {"total": [{"numeric": [">"]}]}}}}),
            "/filter/pattern/data/total/0/numeric",
        ),
        (
            json!({"filter": {"pattern": {"data": {"$or": [
                {"total": [{"numeric": [">", 100]}]},
                {"lines": {"sku": [{"begins-with": "A"}]}}
            ]}}}}),
            "/filter/pattern/data/$or/1/lines/sku/0/begins-with",
        ),
        (
            json!({"filter": {"pattern": {"type": [{"anything-but": {"prefix": ""}}]}}}),
            "/filter/pattern/type/0/anything-but/prefix",
        ),
        (json!({"start": "yesterday"}), "/start"),
        (json!({"ordering": "strict"}), "/ordering"),
        (json!({"ack_timeout_ms": 0}), "/ack_timeout_ms"),
        (json!({"max_deliveries": 0}), "/max_deliveries"),
        (
            json!({"delivery": {"mode": "webhook", "url": "ftp://x"}}),
            "/delivery/url",
        ),
        (
            json!({"delivery": {"mode": "webhook", "url": "http://x", "secret": "nope"}}),
            "/delivery/secret",
        ),
        (json!({"filtr": {}}), "/filtr"),
    ];
    for (body, pointer) in cases {
        let response = server
            .request(Method::PUT, "/subscriptions/bad")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("sent");
        let problem = expect_problem(response, 400, "invalid_subscription").await;
        assert_eq!(problem["pointer"], pointer, "{body}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .expect("detail")
                .contains(pointer),
            "{problem}"
        );
    }
    let response = server
        .request(Method::PUT, "/subscriptions/bad%20name")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("sent");
    expect_problem(response, 400, "invalid_subscription_name").await;
    let response = server
        .request(Method::PUT, "/subscriptions/x")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .expect("sent");
    expect_problem(response, 400, "malformed_json").await;
    // Nothing was created by any of them.
    let (_, list) = server.get_json("/subscriptions").await;
    assert_eq!(list["subscriptions"], json!([]));

    let api = Api::of(&server);
    api.put("ok", json!({})).await;
    for (body, field) in [
        (json!({"max": 0}), "max"),
        (json!({"max": 1001}), "max"),
        (json!({"wait_ms": 30001}), "wait_ms"),
        (json!({"maximum": 1}), "maximum"),
    ] {
        let response = server
            .post("/subscriptions/ok/receive", body.to_string())
            .await;
        let problem = expect_problem(response, 400, "invalid_body").await;
        assert!(
            problem["detail"].as_str().expect("detail").contains(field),
            "{problem}"
        );
    }
    // The body may be left out, but a body must be JSON.
    let response = server
        .request(Method::POST, "/subscriptions/ok/receive")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let response = server
        .request(Method::POST, "/subscriptions/ok/receive")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("max=1")
        .send()
        .await
        .expect("sent");
    expect_problem(response, 415, "unsupported_media_type").await;
    let response = server
        .post("/subscriptions/ok/ack", json!({"receipts": []}).to_string())
        .await;
    expect_problem(response, 400, "invalid_body").await;
    let response = server
        .post(
            "/subscriptions/ok/nack",
            json!({"receipts": ["x"], "action": "drop"}).to_string(),
        )
        .await;
    expect_problem(response, 400, "invalid_body").await;
}

#[tokio::test]
async fn an_unknown_subscription_is_404_everywhere() {
    let server = TestServer::start().await;
    let checks = [
        (Method::GET, "/subscriptions/nope", None),
        (Method::DELETE, "/subscriptions/nope", None),
        (Method::POST, "/subscriptions/nope/receive", Some(json!({}))),
        (
            Method::POST,
            "/subscriptions/nope/ack",
            Some(json!({"receipts": ["r"]})),
        ),
        (
            Method::POST,
            "/subscriptions/nope/nack",
            Some(json!({"receipts": ["r"]})),
        ),
        (Method::GET, "/subscriptions/nope/parked", None),
        (
            Method::POST,
            "/subscriptions/nope/parked/replay",
            Some(json!({})),
        ),
    ];
    for (method, path, body) in checks {
        let mut request = server.request(method, path);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("sent");
        expect_problem(response, 404, "subscription_not_found").await;
    }
}

#[tokio::test]
async fn subscriptions_are_created_updated_listed_and_deleted_with_an_audit_trail() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    let (status, created) = api
        .call(
            Method::PUT,
            "/subscriptions/hooks",
            Some(json!({"delivery": {"mode": "webhook", "url": "https://example.com/hook"}})),
        )
        .await
        .expect("PUT");
    assert_eq!(status, 201, "{created}");
    let secret = created["delivery"]["secret"].as_str().expect("secret");
    assert!(
        secret.starts_with("whsec_") && secret.len() > 20,
        "generated and shown once: {secret}"
    );
    let shown = api
        .expect(Method::GET, "/subscriptions/hooks", None, 200)
        .await;
    assert_eq!(shown["delivery"]["secret"], "whsec_********");
    assert!(!shown.to_string().contains(&secret[6..]));
    // Receiving from a webhook subscription by pull is refused.
    let (status, problem) = api
        .call(
            Method::POST,
            "/subscriptions/hooks/receive",
            Some(json!({})),
        )
        .await
        .expect("receive");
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("wrong_delivery_mode"))
    );

    let (status, updated) = api
        .call(
            Method::PUT,
            "/subscriptions/hooks",
            Some(json!({"delivery": {"mode": "webhook", "url": "https://example.com/v2"}, "max_deliveries": 5})),
        )
        .await
        .expect("PUT");
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["max_deliveries"], 5);
    assert_eq!(
        updated["delivery"]["secret"], "whsec_********",
        "the secret is kept, not shown"
    );

    for name in ["b-pull", "a-pull"] {
        api.put(name, json!({})).await;
    }
    let first = api
        .expect(Method::GET, "/subscriptions?limit=2", None, 200)
        .await;
    let names: Vec<&str> = first["subscriptions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["a-pull", "b-pull"]);
    assert_eq!(first["next"], "b-pull");
    let second = api
        .expect(Method::GET, "/subscriptions?after=b-pull", None, 200)
        .await;
    assert_eq!(second["subscriptions"][0]["name"], "hooks");
    assert_eq!(second["next"], Value::Null);

    let response = server
        .request(Method::DELETE, "/subscriptions/hooks")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let response = server.get("/subscriptions/hooks").await;
    expect_problem(response, 404, "subscription_not_found").await;

    let audit = api
        .expect(
            Method::GET,
            "/streams/$audit/subscriptions/events",
            None,
            200,
        )
        .await;
    let types: Vec<&str> = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "SubscriptionCreated",
            "SubscriptionUpdated",
            "SubscriptionCreated",
            "SubscriptionCreated",
            "SubscriptionDeleted"
        ]
    );
    assert_eq!(
        audit["events"][0]["data"]["actor"]["key_name"],
        "admin key (RUNNEL_ADMIN_KEY)"
    );
    assert!(
        !audit.to_string().contains(&secret[6..]),
        "the audit trail never holds the secret"
    );
}

#[tokio::test]
async fn a_consumer_key_makes_and_consumes_only_groups_over_what_it_may_read() {
    let server = TestServer::start().await;
    let admin = Api::of(&server);
    let key = |role: &'static str, rules: Value| {
        let admin = admin.clone();
        async move {
            let created = admin
                .expect(
                    Method::POST,
                    "/keys",
                    Some(json!({"name": role, "role": role, "rules": rules})),
                    201,
                )
                .await;
            created["key"].as_str().expect("key").to_owned()
        }
    };
    let consumer = Api::at(
        &server.base,
        &key(
            "consumer",
            json!({"stream_types": ["order"], "event_types": ["Order*"]}),
        )
        .await,
    );
    let producer = Api::at(&server.base, &key("producer", json!([])).await);

    let (status, _) = consumer
        .call(Method::PUT, "/subscriptions/everything", Some(json!({})))
        .await
        .expect("PUT");
    assert_eq!(status, 403, "a group over every type is out of its reach");
    let (status, _) = consumer
        .call(
            Method::PUT,
            "/subscriptions/payments",
            Some(json!({"filter": {"stream_types": ["payment"], "event_types": ["OrderPaid"]}})),
        )
        .await
        .expect("PUT");
    assert_eq!(status, 403);
    let mine = json!({"start": "beginning", "filter": {"stream_types": ["order"], "event_types": ["OrderPlaced"]}});
    let (status, _) = consumer
        .call(Method::PUT, "/subscriptions/mine", Some(mine))
        .await
        .expect("PUT");
    assert_eq!(status, 201);
    admin.append_n("order/o-1", "OrderPlaced", 2).await;
    let messages = consumer.receive("mine", 10, 0).await;
    assert_eq!(messages.len(), 2);
    assert_eq!(consumer.ack("mine", &messages).await["acked"], 2);

    // A group the admin made over everything: the consumer may not receive from it.
    admin.put("all", json!({})).await;
    let (status, _) = consumer
        .call(Method::POST, "/subscriptions/all/receive", Some(json!({})))
        .await
        .expect("receive");
    assert_eq!(status, 403);
    let listed = consumer
        .expect(Method::GET, "/subscriptions", None, 200)
        .await;
    let names: Vec<&str> = listed["subscriptions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["mine"], "groups out of reach are not listed");

    for (method, path, body) in [
        (Method::PUT, "/subscriptions/p", Some(json!({}))),
        (Method::GET, "/subscriptions", None),
        (Method::POST, "/subscriptions/mine/receive", Some(json!({}))),
    ] {
        let (status, problem) = producer.call(method, path, body).await.expect("call");
        assert_eq!(
            (status, problem["code"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_cli_creates_receives_acks_and_replays() {
    let server = TestServer::start().await;
    let api = Api::of(&server);
    let runnel = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(args)
            .args(["--url", &server.base])
            .env("RUNNEL_API_KEY", ADMIN_KEY)
            .stdin(Stdio::null())
            .output()
            .expect("runnel runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, out, err) = runnel(&[
        "subs",
        "create",
        "cli",
        "--stream-type",
        "order",
        "--start",
        "beginning",
        "--pattern",
        r#"{"data": {"n": [{"numeric": ["<", 2]}]}}"#,
        "--max-deliveries",
        "3",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("subscription cli created"), "{out}");
    api.append_n("order/o-1", "OrderPlaced", 4).await;

    let (code, out, err) = runnel(&["subs", "receive", "cli", "--json", "--wait-ms", "0"]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON lines"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["event"]["data"]["n"], 0);
    let status = api.status("cli").await;
    assert_eq!(
        status["delivered"], 2,
        "receive acknowledged what it printed"
    );

    let (code, out, _) = runnel(&["subs", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("cli"), "{out}");
    let (code, out, _) = runnel(&["subs", "show", "cli"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("delivered       2"), "{out}");

    api.append_n("order/o-2", "OrderPlaced", 1).await;
    let messages = api.receive("cli", 10, 0).await;
    api.nack(
        "cli",
        &messages,
        json!({"action": "park", "error": "broken"}),
    )
    .await;
    let (code, out, _) = runnel(&["subs", "parked", "cli"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("broken") && out.contains("order/o-2"), "{out}");
    let position = messages[0]["event"]["position"].to_string();
    let (code, out, _) = runnel(&["subs", "replay", "cli", "--position", &position]);
    assert_eq!(code, Some(0));
    assert!(out.contains("replayed 1"), "{out}");
    let (code, _, err) = runnel(&["subs", "show", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("error[subscription_not_found]"), "{err}");
    let (code, _, _) = runnel(&["subs", "delete", "cli"]);
    assert_eq!(code, Some(0));
}

/// Pull consumption with a kill -9 of the server in the middle, then a restart on the same
/// data: nothing whose ack was answered is delivered again, and every event is delivered.
#[tokio::test]
async fn after_a_kill_9_no_acknowledged_event_comes_again_and_none_is_lost() {
    const EVENTS: usize = 300;
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let server = TestServer::start_in(&data_dir, &[]).await;
    let api = Api::of(&server);
    api.put(
        "crash",
        json!({"start": "beginning", "ack_timeout_ms": 1000}),
    )
    .await;
    let mut expected = HashSet::new();
    for batch in 0..(EVENTS / 50) {
        let events: Vec<Value> = (0..50)
            .map(|n| json!({"type": "Job", "data": {"n": batch * 50 + n}}))
            .collect();
        let written = api
            .expect(
                Method::POST,
                &format!("/streams/job/j-{batch}/events"),
                Some(json!({"events": events})),
                200,
            )
            .await;
        let first = written["first_position"].as_u64().expect("position");
        expected.extend(first..first + 50);
    }

    // Consume with acks until the server dies under the consumer.
    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let delivered: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let consumer = {
        let api = api.clone();
        let acked = Arc::clone(&acked);
        let delivered = Arc::clone(&delivered);
        tokio::spawn(async move {
            loop {
                let Ok((200, answer)) = api
                    .call(
                        Method::POST,
                        "/subscriptions/crash/receive",
                        Some(json!({"max": 7, "wait_ms": 200})),
                    )
                    .await
                else {
                    return;
                };
                let messages = answer["messages"].as_array().cloned().unwrap_or_default();
                let positions: Vec<u64> = messages
                    .iter()
                    .map(|m| m["event"]["position"].as_u64().expect("position"))
                    .collect();
                {
                    let mut delivered = delivered.lock().expect("lock");
                    for position in &positions {
                        *delivered.entry(*position).or_default() += 1;
                    }
                }
                let body = json!({"receipts": receipts(&messages)});
                match api
                    .call(Method::POST, "/subscriptions/crash/ack", Some(body))
                    .await
                {
                    // Only an answered ack is known to be durable.
                    Ok((200, answer)) if answer["unknown"] == json!([]) => {
                        acked.lock().expect("lock").extend(positions);
                    }
                    Ok((200, _)) => {}
                    _ => return,
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < EVENTS / 3 {
        assert!(Instant::now() < deadline, "consumption did not progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let status = Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    consumer.await.expect("consumer ends with the server");
    drop(server);

    let acked_before: HashSet<u64> = acked.lock().expect("lock").clone();
    let restarted = TestServer::start_in(&data_dir, &[]).await;
    let api = Api::of(&restarted);
    let after = drain_until_quiet(&api, "crash").await;
    let again: Vec<&u64> = after.iter().filter(|p| acked_before.contains(p)).collect();
    assert!(
        again.is_empty(),
        "acknowledged before the crash, delivered again: {again:?}"
    );
    let delivered_before: HashSet<u64> = delivered.lock().expect("lock").keys().copied().collect();
    let all: HashSet<u64> = delivered_before
        .union(&after.iter().copied().collect())
        .copied()
        .collect();
    let missing: Vec<&u64> = expected.difference(&all).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    let status = api.status("crash").await;
    assert_eq!(status["in_flight"], 0, "{status}");
    assert_eq!(
        status["delivered"].as_u64(),
        Some(EVENTS as u64),
        "{status}"
    );
}

/// Receives, acks and nacks of many consumers at once are committed together, several to an
/// append: each event is still acknowledged exactly once, an ack answered is final, and a
/// retried event comes back with its next delivery number.
#[tokio::test]
async fn concurrent_receives_acks_and_nacks_of_many_consumers_are_each_applied_once() {
    const STREAMS: usize = 12;
    const PER_STREAM: usize = 25;
    const CONSUMERS: usize = 8;
    let server = TestServer::start().await;
    let api = Api::of(&server);
    api.put("busy", json!({"start": "beginning"})).await;
    for stream in 0..STREAMS {
        api.append_n(&format!("job/b-{stream}"), "JobQueued", PER_STREAM)
            .await;
    }
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                // (event id, delivery number) of every acknowledged delivery.
                let mut acked: Vec<(String, u64)> = Vec::new();
                let mut nacked: Vec<String> = Vec::new();
                loop {
                    let messages = api.receive("busy", 6, 400).await;
                    if messages.is_empty() {
                        return (acked, nacked);
                    }
                    // Each message answered on its own and all at once, so that the acks
                    // and nacks of one consumer meet in the same commits too.
                    let answers = messages.iter().map(|message| {
                        let api = api.clone();
                        let message = message.clone();
                        async move {
                            let n = message["event"]["data"]["n"].as_u64().expect("n");
                            let delivery = message["delivery"].as_u64().expect("delivery");
                            let id = message["event"]["id"].as_str().expect("id").to_owned();
                            let one = std::slice::from_ref(&message);
                            if n % 7 == 0 && delivery == 1 {
                                let answer = api
                                    .nack("busy", one, json!({"action": "retry", "delay_ms": 0}))
                                    .await;
                                assert_eq!(answer["nacked"], 1, "{answer}");
                                (id, delivery, false)
                            } else {
                                let answer = api.ack("busy", one).await;
                                assert_eq!(answer["acked"], 1, "{answer}");
                                assert_eq!(answer["unknown"], json!([]), "{answer}");
                                (id, delivery, true)
                            }
                        }
                    });
                    for (id, delivery, was_acked) in futures::future::join_all(answers).await {
                        if was_acked {
                            acked.push((id, delivery));
                        } else {
                            nacked.push(id);
                        }
                    }
                }
            })
        })
        .collect();
    let mut acked: Vec<(String, u64)> = Vec::new();
    let mut nacked: Vec<String> = Vec::new();
    for consumer in consumers {
        let (a, n) = consumer.await.expect("consumer");
        acked.extend(a);
        nacked.extend(n);
    }
    let total = STREAMS * PER_STREAM;
    let unique: HashSet<&String> = acked.iter().map(|(id, _)| id).collect();
    assert_eq!(unique.len(), acked.len(), "an event was acknowledged twice");
    assert_eq!(acked.len(), total, "every event is acknowledged");
    let retried: HashSet<&String> = nacked.iter().collect();
    assert_eq!(retried.len(), nacked.len(), "an event was retried twice");
    assert_eq!(nacked.len(), STREAMS * PER_STREAM.div_ceil(7));
    for (id, delivery) in &acked {
        let expected = if retried.contains(id) { 2 } else { 1 };
        assert_eq!(*delivery, expected, "event {id}");
    }
    let status = api.status("busy").await;
    assert_eq!(status["delivered"].as_u64(), Some(total as u64), "{status}");
    assert_eq!(status["in_flight"], 0, "{status}");
    assert_eq!(status["pending"], 0, "{status}");
}

/// Kill -9 while several consumers receive and ack at once (so that leases and acks of
/// several requests are in one append): after the restart, nothing whose ack was answered
/// comes again, and nothing is lost.
#[tokio::test]
async fn after_a_kill_9_during_concurrent_commits_no_acknowledged_event_comes_again() {
    const EVENTS: usize = 400;
    const CONSUMERS: usize = 6;
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let server = TestServer::start_in(&data_dir, &[]).await;
    let api = Api::of(&server);
    api.put(
        "crash-many",
        json!({"start": "beginning", "ack_timeout_ms": 1000}),
    )
    .await;
    let mut expected = HashSet::new();
    for batch in 0..(EVENTS / 50) {
        let events: Vec<Value> = (0..50)
            .map(|n| json!({"type": "Job", "data": {"n": batch * 50 + n}}))
            .collect();
        let written = api
            .expect(
                Method::POST,
                &format!("/streams/job/m-{batch}/events"),
                Some(json!({"events": events})),
                200,
            )
            .await;
        let first = written["first_position"].as_u64().expect("position");
        expected.extend(first..first + 50);
    }
    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let delivered: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let api = api.clone();
            let acked = Arc::clone(&acked);
            let delivered = Arc::clone(&delivered);
            tokio::spawn(async move {
                loop {
                    let Ok((200, answer)) = api
                        .call(
                            Method::POST,
                            "/subscriptions/crash-many/receive",
                            Some(json!({"max": 5, "wait_ms": 200})),
                        )
                        .await
                    else {
                        return;
                    };
                    let messages = answer["messages"].as_array().cloned().unwrap_or_default();
                    let positions: Vec<u64> = messages
                        .iter()
                        .map(|m| m["event"]["position"].as_u64().expect("position"))
                        .collect();
                    delivered.lock().expect("lock").extend(&positions);
                    let body = json!({"receipts": receipts(&messages)});
                    match api
                        .call(Method::POST, "/subscriptions/crash-many/ack", Some(body))
                        .await
                    {
                        // Only an answered ack is known to be durable.
                        Ok((200, answer)) if answer["unknown"] == json!([]) => {
                            acked.lock().expect("lock").extend(positions);
                        }
                        Ok((200, _)) => {}
                        _ => return,
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < EVENTS / 3 {
        assert!(Instant::now() < deadline, "consumption did not progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let status = Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    for consumer in consumers {
        consumer.await.expect("consumer ends with the server");
    }
    drop(server);

    let acked_before: HashSet<u64> = acked.lock().expect("lock").clone();
    let restarted = TestServer::start_in(&data_dir, &[]).await;
    let api = Api::of(&restarted);
    let after = drain_until_quiet(&api, "crash-many").await;
    let again: Vec<&u64> = after.iter().filter(|p| acked_before.contains(p)).collect();
    assert!(
        again.is_empty(),
        "acknowledged before the crash, delivered again: {again:?}"
    );
    let after_set: HashSet<u64> = after.iter().copied().collect();
    assert_eq!(
        after_set.len(),
        after.len(),
        "delivered twice after the restart"
    );
    let all: HashSet<u64> = delivered
        .lock()
        .expect("lock")
        .union(&after_set)
        .copied()
        .collect();
    let missing: Vec<&u64> = expected.difference(&all).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    let status = api.status("crash-many").await;
    assert_eq!(status["in_flight"], 0, "{status}");
    assert_eq!(
        status["delivered"].as_u64(),
        Some(EVENTS as u64),
        "{status}"
    );
}

/// Receives and acknowledges until nothing has come for longer than the leases from before a
/// crash can last (their ack_timeout_ms); the positions received, in order.
async fn drain_until_quiet(api: &Api, group: &str) -> Vec<u64> {
    let mut after: Vec<u64> = Vec::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while quiet_since.elapsed() < Duration::from_millis(2_500) {
        assert!(
            Instant::now() < deadline,
            "consumption after the restart did not finish"
        );
        let messages = api.receive(group, 50, 300).await;
        if messages.is_empty() {
            continue;
        }
        quiet_since = Instant::now();
        after.extend(
            messages
                .iter()
                .map(|m| m["event"]["position"].as_u64().expect("position")),
        );
        api.ack(group, &messages).await;
    }
    after
}
