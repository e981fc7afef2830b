//! Webhook delivery of consumer groups, against the real binary and a real HTTP receiver on
//! 127.0.0.1 that checks every signature with its own implementation of the Standard Webhooks
//! scheme (HMAC-SHA256 over `{id}.{timestamp}.{body}`), not the server's.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit, Mac as _};
use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::TestServer;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Flags that make retries and the circuit breaker quick enough for tests, and allow the
/// loopback receiver.
const FAST: &[&str] = &[
    "--webhook-allow-private",
    "--webhook-retry-min-ms",
    "50",
    "--webhook-retry-max-ms",
    "200",
    "--webhook-circuit-failures",
    "0",
];

/// How the receiver answers.
#[derive(Debug, Clone)]
enum Answer {
    Ok,
    /// A 2xx after this long.
    SlowOk(Duration),
    /// A 307 to this location.
    Redirect(String),
    Status(u16, Option<&'static str>),
    Sleep(Duration),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    at: Instant,
    content_type: String,
    body: Vec<u8>,
    /// Whether the answer was a 2xx.
    accepted: bool,
}

#[derive(Default)]
struct ReceiverState {
    /// The answers to the next requests, in order; when empty, `otherwise`.
    script: Vec<Answer>,
    otherwise: Option<Answer>,
    received: Vec<Received>,
    bad_signatures: Vec<String>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: usize,
    most_in_flight: usize,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        let app = Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            state,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReceiverState> {
        self.state.lock().expect("receiver lock")
    }

    fn answer_next(&self, answers: Vec<Answer>) {
        self.lock().script = answers;
    }

    fn answer_always(&self, answer: Answer) {
        self.lock().otherwise = Some(answer);
    }

    fn received(&self) -> Vec<Received> {
        let state = self.lock();
        assert!(
            state.bad_signatures.is_empty(),
            "bad signatures: {:?}",
            state.bad_signatures
        );
        state.received.clone()
    }

    fn accepted_ids(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| r.accepted)
            .map(|r| r.id)
            .collect()
    }

    async fn wait_for(&self, what: &str, within: Duration, done: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.received()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {:?}",
                self.received()
                    .iter()
                    .map(|r| (&r.id, r.accepted))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn receive(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = header("webhook-id");
    let timestamp = header("webhook-timestamp");
    let signature = header("webhook-signature");
    let valid = signature_is_valid(SECRET, &id, &timestamp, &body, &signature);
    let answer = {
        let mut state = state.lock().expect("receiver lock");
        state.in_flight += 1;
        state.most_in_flight = state.most_in_flight.max(state.in_flight);
        if !valid {
            state
                .bad_signatures
                .push(format!("{id} {timestamp} {signature}"));
        }
        if state.script.is_empty() {
            state.otherwise.clone().unwrap_or(Answer::Ok)
        } else {
            state.script.remove(0)
        }
    };
    let accepted = matches!(answer, Answer::Ok | Answer::SlowOk(_));
    let record = Received {
        id,
        at: Instant::now(),
        content_type: header("content-type"),
        body: body.to_vec(),
        accepted,
    };
    state.lock().expect("receiver lock").received.push(record);
    let response = answer_with(answer).await;
    state.lock().expect("receiver lock").in_flight -= 1;
    response
}

async fn answer_with(answer: Answer) -> Response {
    match answer {
        Answer::Ok => StatusCode::NO_CONTENT.into_response(),
        Answer::SlowOk(duration) => {
            tokio::time::sleep(duration).await;
            StatusCode::OK.into_response()
        }
        Answer::Status(code, retry_after) => {
            let status = StatusCode::from_u16(code).expect("a status");
            match retry_after {
                Some(seconds) => (status, [("retry-after", seconds)], "not now").into_response(),
                None => (status, "failing on purpose").into_response(),
            }
        }
        Answer::Redirect(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", location)],
            "moved",
        )
            .into_response(),
        Answer::Sleep(duration) => {
            tokio::time::sleep(duration).await;
            StatusCode::OK.into_response()
        }
    }
}

/// The Standard Webhooks check, written from the specification: the key is the base64 after
/// `whsec_`; the signed content is `{id}.{timestamp}.{body}`; the header holds space-separated
/// `v1,<base64 HMAC-SHA256>` entries; the timestamp must be within five minutes of now.
fn signature_is_valid(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|key| BASE64.decode(key).ok())
    else {
        return false;
    };
    let Ok(sent_at) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    if now.abs_diff(sent_at) > 300 || id.is_empty() {
        return false;
    }
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = BASE64.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .any(|signature| signature == expected)
}

fn webhook(receiver: &Receiver, format: &str, extra: Value) -> Value {
    let mut delivery = json!({
        "mode": "webhook",
        "url": receiver.url,
        "secret": SECRET,
        "format": format,
        "timeout_ms": 2000,
        "max_in_flight": 4,
    });
    if let (Some(target), Some(extra)) = (delivery.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            target.insert(key.clone(), value.clone());
        }
    }
    delivery
}

async fn put(server: &TestServer, name: &str, config: Value) {
    let response = server
        .request(Method::PUT, &format!("/subscriptions/{name}"))
        .header("content-type", "application/json")
        .body(config.to_string())
        .send()
        .await
        .expect("PUT sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    assert!(
        status == 201 || status == 200,
        "PUT {name}: {status} {text}"
    );
}

async fn status_of(server: &TestServer, name: &str) -> Value {
    let (status, view) = server.get_json(&format!("/subscriptions/{name}")).await;
    assert_eq!(status, 200, "{view}");
    view["status"].clone()
}

async fn wait_for_status(
    server: &TestServer,
    name: &str,
    what: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let status = status_of(server, name).await;
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The ids of the events of `stream` (`type/id`) among `server_events`, in order.
fn ids_of(stream: &str, server_events: &[Value]) -> Vec<String> {
    server_events
        .iter()
        .filter(|event| {
            format!(
                "{}/{}",
                event["stream_type"].as_str().unwrap_or_default(),
                event["stream_id"].as_str().unwrap_or_default()
            ) == stream
        })
        .filter_map(|event| event["id"].as_str().map(str::to_owned))
        .collect()
}

async fn events_of(server: &TestServer, stream: &str) -> Vec<Value> {
    let (status, page) = server.get_json(&format!("/streams/{stream}/events")).await;
    assert_eq!(status, 200, "{page}");
    page["events"].as_array().cloned().unwrap_or_default()
}

/// Who the audit trail names for what webhook delivery does on its own.
const DELIVERY_ACTOR: &str = "runnel (webhook delivery)";

/// The data of the `$audit/subscriptions` records of `event_type` made by the server itself
/// (not by a key), read with the admin key.
async fn server_actions(server: &TestServer, event_type: &str) -> Vec<Value> {
    let (status, page) = server
        .get_json("/streams/$audit/subscriptions/events?limit=1000")
        .await;
    assert_eq!(status, 200, "{page}");
    page["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|event| event["type"] == event_type)
        .map(|event| event["data"].clone())
        .filter(|data| {
            data["actor"]["key_name"] == DELIVERY_ACTOR && data["actor"]["key_id"].is_null()
        })
        .collect()
}

/// Which delivery format a request used: CloudEvents structured mode has its own content type,
/// the Event JSON carries the event's id, and binary mode carries only the data.
fn format_of(received: &Received) -> &'static str {
    if received
        .content_type
        .starts_with("application/cloudevents+json")
    {
        return "cloudevents_structured";
    }
    let body: Value = serde_json::from_slice(&received.body).unwrap_or(Value::Null);
    if body.get("id").is_some() && body.get("type").is_some() {
        "json"
    } else {
        "cloudevents_binary"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_in_each_format() {
    let server = TestServer::start_with(FAST).await;
    let receiver = Receiver::start().await;
    for format in ["json", "cloudevents_structured", "cloudevents_binary"] {
        put(
            &server,
            &format!("hook-{format}"),
            json!({"start": "beginning", "filter": {"stream_types": ["order"]},
                   "delivery": webhook(&receiver, format, json!({}))}),
        )
        .await;
    }
    server.append_n("order/o-1", "OrderPlaced", 3).await;
    let events = events_of(&server, "order/o-1").await;
    let ids = ids_of("order/o-1", &events);
    assert_eq!(ids.len(), 3);
    // Delivery is at least once: a slow moment on a loaded machine may send an event twice, so
    // the test waits for every (event, format) pair rather than for a number of requests.
    receiver
        .wait_for(
            "three deliveries in each of three formats",
            Duration::from_secs(15),
            |r| {
                r.iter()
                    .filter(|r| r.accepted)
                    .map(|r| (r.id.clone(), format_of(r)))
                    .collect::<HashSet<_>>()
                    .len()
                    >= 9
            },
        )
        .await;
    let received = receiver.received();
    for id in &ids {
        let of_id: Vec<&Received> = received.iter().filter(|r| &r.id == id).collect();
        let formats: HashSet<&str> = of_id.iter().map(|r| format_of(r)).collect();
        assert_eq!(
            formats,
            HashSet::from(["json", "cloudevents_structured", "cloudevents_binary"]),
            "{id} arrives in every format"
        );
        for delivery in of_id {
            let body: Value = serde_json::from_slice(&delivery.body).expect("a JSON body");
            match format_of(delivery) {
                "cloudevents_structured" => {
                    assert_eq!(body["id"], json!(id));
                    assert_eq!(body["specversion"], "1.0");
                }
                // The Event JSON carries the id; binary mode carries only the data.
                "json" => {
                    assert_eq!(body["id"], json!(id));
                    assert_eq!(body["type"], "OrderPlaced");
                }
                _ => assert!(body.get("n").is_some(), "{body}"),
            }
        }
    }
    wait_for_status(
        &server,
        "hook-json",
        "three acknowledged",
        Duration::from_secs(5),
        |s| s["delivered"] == 3 && s["in_flight"] == 0,
    )
    .await;
    let metrics = server.get("/metrics").await.text().await.expect("metrics");
    for series in [
        "runnel_webhook_attempts_total{group=\"hook-json\",outcome=\"success\"} 3",
        "runnel_webhook_delivery_latency_seconds",
        "runnel_webhook_in_flight{group=\"hook-json\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_with_500s_then_recovering_gets_every_event_in_stream_order() {
    let server = TestServer::start_with(FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(vec![Answer::Status(500, None); 8]);
    put(
        &server,
        "ordered",
        json!({"start": "beginning", "ordering": "per_stream", "max_deliveries": 50,
               "filter": {"stream_types": ["order"]},
               "delivery": webhook(&receiver, "json", json!({"max_in_flight": 8}))}),
    )
    .await;
    server.append_n("order/a", "OrderPlaced", 5).await;
    server.append_n("order/b", "OrderPlaced", 5).await;
    let a = ids_of("order/a", &events_of(&server, "order/a").await);
    let b = ids_of("order/b", &events_of(&server, "order/b").await);
    receiver
        .wait_for("all ten events accepted", Duration::from_secs(30), |r| {
            let accepted: Vec<&String> = r.iter().filter(|r| r.accepted).map(|r| &r.id).collect();
            a.iter().chain(&b).all(|id| accepted.contains(&id))
        })
        .await;
    let received = receiver.received();
    assert!(
        received.iter().any(|r| !r.accepted),
        "the first answers were 500s"
    );
    let accepted = receiver.accepted_ids();
    for stream in [&a, &b] {
        // The first acceptance of each event, in the order the receiver saw them.
        let mut first = Vec::new();
        for id in &accepted {
            if stream.contains(id) && !first.contains(id) {
                first.push(id.clone());
            }
        }
        assert_eq!(&first, stream, "per-stream order");
        // And never an event of the stream before the previous one was accepted.
        for (index, id) in stream.iter().enumerate().skip(1) {
            let earliest_attempt = received.iter().position(|r| &r.id == id).expect("seen");
            let previous_accepted = received
                .iter()
                .position(|r| r.accepted && r.id == stream[index - 1])
                .expect("accepted");
            assert!(
                earliest_attempt > previous_accepted,
                "{id} overtook its predecessor"
            );
        }
    }
    let status = wait_for_status(
        &server,
        "ordered",
        "ten delivered",
        Duration::from_secs(5),
        |s| s["delivered"] == 10,
    )
    .await;
    assert_eq!(status["parked"], 0, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let server = TestServer::start_with(FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(vec![Answer::Status(503, Some("2"))]);
    put(
        &server,
        "patient",
        json!({"start": "beginning", "delivery": webhook(&receiver, "json", json!({}))}),
    )
    .await;
    server.append_n("order/r", "OrderPlaced", 1).await;
    receiver
        .wait_for("a retry that is accepted", Duration::from_secs(15), |r| {
            r.iter().any(|r| r.accepted)
        })
        .await;
    let received = receiver.received();
    assert_eq!(
        received[0].id, received[1].id,
        "the same webhook-id on the retry"
    );
    let waited = received[1].at.duration_since(received[0].at);
    // Without Retry-After the wait would be 50 to 200 ms.
    assert!(
        waited >= Duration::from_millis(1_800),
        "retried after {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_pauses_the_subscription_until_it_is_resumed() {
    let server = TestServer::start_with(FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(vec![Answer::Status(410, None)]);
    put(
        &server,
        "gone",
        json!({"start": "beginning",
               "delivery": webhook(&receiver, "json", json!({"max_in_flight": 1}))}),
    )
    .await;
    server.append_n("order/g", "OrderPlaced", 2).await;
    let status = wait_for_status(&server, "gone", "a pause", Duration::from_secs(10), |s| {
        s["paused"] == true
    })
    .await;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("410"),
        "{status}"
    );
    // The server's own pause is in the audit trail, with the reason and the endpoint.
    let paused = server_actions(&server, "SubscriptionPaused").await;
    assert_eq!(paused.len(), 1, "{paused:?}");
    assert_eq!(paused[0]["target"]["name"], "gone");
    assert_eq!(paused[0]["target"]["endpoint"], receiver.url.as_str());
    assert!(
        paused[0]["target"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("410"),
        "{paused:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.received().len(), 1, "nothing is sent while paused");
    let (code, answer) = server
        .post_json("/subscriptions/gone/resume", &json!({}))
        .await;
    assert_eq!(code, 200, "{answer}");
    receiver
        .wait_for(
            "both events after the resume",
            Duration::from_secs(10),
            |r| r.iter().filter(|r| r.accepted).count() >= 2,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_event_is_parked_after_max_deliveries_and_replay_delivers_it() {
    let server = TestServer::start_with(FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Sleep(Duration::from_millis(1_500)));
    put(
        &server,
        "slow",
        json!({"start": "beginning", "max_deliveries": 2,
               "delivery": webhook(&receiver, "json", json!({"timeout_ms": 300}))}),
    )
    .await;
    server.append_n("order/s", "OrderPlaced", 1).await;
    let status = wait_for_status(
        &server,
        "slow",
        "the event parked",
        Duration::from_secs(15),
        |s| s["parked"] == 1,
    )
    .await;
    assert_eq!(status["delivered"], 0, "{status}");
    let (code, parked) = server.get_json("/subscriptions/slow/parked").await;
    assert_eq!(code, 200, "{parked}");
    let entry = &parked["parked"][0];
    assert_eq!(entry["deliveries"], 2, "{parked}");
    let error = entry["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out"), "{error}");
    assert_eq!(receiver.received().len(), 2, "two attempts, then parked");

    receiver.answer_always(Answer::Ok);
    let (code, answer) = server
        .post_json("/subscriptions/slow/parked/replay", &json!({}))
        .await;
    assert_eq!(code, 200, "{answer}");
    receiver
        .wait_for("the replayed event", Duration::from_secs(10), |r| {
            r.iter().any(|r| r.accepted)
        })
        .await;
    wait_for_status(
        &server,
        "slow",
        "one delivered",
        Duration::from_secs(5),
        |s| s["delivered"] == 1 && s["parked"] == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_opens_the_circuit_and_a_successful_probe_closes_it() {
    let server = TestServer::start_with(&breaker_flags("3", "2500")).await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Status(500, None));
    put(
        &server,
        "breaker",
        json!({"start": "beginning", "max_deliveries": 100,
               "delivery": webhook(&receiver, "json", json!({"max_in_flight": 1}))}),
    )
    .await;
    server.append_n("order/c", "OrderPlaced", 3).await;
    let status = wait_for_status(
        &server,
        "breaker",
        "the circuit to open",
        Duration::from_secs(10),
        |s| s["paused"] == true,
    )
    .await;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("circuit open"),
        "{status}"
    );
    let at_opening = receiver.received().len();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        receiver.received().len(),
        at_opening,
        "nothing is sent while open"
    );

    receiver.answer_always(Answer::Ok);
    receiver
        .wait_for(
            "every event after the probe",
            Duration::from_secs(15),
            |r| r.iter().filter(|r| r.accepted).count() >= 3,
        )
        .await;
    let status = wait_for_status(&server, "breaker", "resumed", Duration::from_secs(5), |s| {
        s["paused"] == false && s["delivered"] == 3
    })
    .await;
    assert_eq!(status["parked"], 0, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_endpoints_are_refused_without_the_allow_private_flag() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    put(
        &server,
        "inside",
        json!({"start": "beginning", "max_deliveries": 1,
               "delivery": webhook(&receiver, "json", json!({}))}),
    )
    .await;
    server.append_n("order/x", "OrderPlaced", 1).await;
    wait_for_status(
        &server,
        "inside",
        "the event parked",
        Duration::from_secs(10),
        |s| s["parked"] == 1,
    )
    .await;
    let (_, parked) = server.get_json("/subscriptions/inside/parked").await;
    let error = parked["parked"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("refused to connect to 127.0.0.1"), "{error}");

    // A name that resolves only to loopback is refused where it is resolved.
    let by_name = receiver.url.replace("127.0.0.1", "localhost");
    put(
        &server,
        "inside-by-name",
        json!({"start": "beginning", "max_deliveries": 1,
               "delivery": {"mode": "webhook", "url": by_name, "secret": SECRET}}),
    )
    .await;
    wait_for_status(
        &server,
        "inside-by-name",
        "the event parked",
        Duration::from_secs(10),
        |s| s["parked"] == 1,
    )
    .await;
    let (_, parked) = server
        .get_json("/subscriptions/inside-by-name/parked")
        .await;
    let error = parked["parked"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("refused to connect to"), "{error}");
    assert!(
        receiver.received().is_empty(),
        "no request reached the receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let server = TestServer::start_with(FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer_next(vec![Answer::Redirect(receiver.url.clone())]);
    put(
        &server,
        "moved",
        json!({"start": "beginning", "max_deliveries": 1,
               "delivery": webhook(&receiver, "json", json!({}))}),
    )
    .await;
    server.append_n("order/v", "OrderPlaced", 1).await;
    wait_for_status(
        &server,
        "moved",
        "the event parked",
        Duration::from_secs(10),
        |s| s["parked"] == 1,
    )
    .await;
    let (_, parked) = server.get_json("/subscriptions/moved/parked").await;
    let error = parked["parked"][0]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("HTTP 307"), "{error}");
    assert!(error.contains("redirects are not followed"), "{error}");
    assert_eq!(
        receiver.received().len(),
        1,
        "the redirect was not followed"
    );
}

/// kill -9 in the middle of delivering, then a restart on the same data: every event arrives,
/// and the only events delivered again are those whose attempt was in flight at the kill (at
/// most `max_in_flight`): an acknowledged delivery is never repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_kill_9_mid_delivery_every_event_arrives_and_acknowledged_ones_do_not_repeat() {
    const EVENTS: usize = 60;
    const MAX_IN_FLIGHT: usize = 4;
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let server = TestServer::start_in(&data_dir, FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::SlowOk(Duration::from_millis(20)));
    put(
        &server,
        "durable",
        json!({"start": "beginning", "ack_timeout_ms": 1000, "filter": {"stream_types": ["order"]},
               "delivery": webhook(&receiver, "json", json!({"max_in_flight": MAX_IN_FLIGHT}))}),
    )
    .await;
    server.append_n("order/k", "OrderPlaced", EVENTS).await;
    let ids = ids_of("order/k", &events_of(&server, "order/k").await);
    assert_eq!(ids.len(), EVENTS);
    receiver
        .wait_for("a third of the events", Duration::from_secs(30), |r| {
            r.iter().filter(|r| r.accepted).count() >= EVENTS / 3
        })
        .await;
    let killed = std::process::Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    drop(server);
    let before: Vec<String> = receiver.accepted_ids();
    assert!(before.len() < EVENTS, "the kill came before the end");

    let restarted = TestServer::start_in(&data_dir, FAST).await;
    receiver
        .wait_for(
            "every event after the restart",
            Duration::from_secs(30),
            |r| {
                let accepted: std::collections::HashSet<&String> =
                    r.iter().filter(|r| r.accepted).map(|r| &r.id).collect();
                ids.iter().all(|id| accepted.contains(id))
            },
        )
        .await;
    let after: Vec<String> = receiver.accepted_ids().split_off(before.len());
    let repeated: Vec<&String> = after.iter().filter(|id| before.contains(id)).collect();
    assert!(
        repeated.len() <= MAX_IN_FLIGHT,
        "{} events were delivered again after the restart: {repeated:?}",
        repeated.len()
    );
    wait_for_status(
        &restarted,
        "durable",
        "all acknowledged",
        Duration::from_secs(10),
        |s| s["delivered"].as_u64() >= Some(EVENTS as u64) && s["in_flight"] == 0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_a_subscription_paused_by_its_circuit_delivers_at_once() {
    let server = TestServer::start_with(&breaker_flags("2", "600000")).await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::Status(502, None));
    put(
        &server,
        "manual",
        json!({"start": "beginning", "max_deliveries": 100,
               "delivery": webhook(&receiver, "json", json!({"max_in_flight": 1}))}),
    )
    .await;
    server.append_n("order/m", "OrderPlaced", 2).await;
    wait_for_status(
        &server,
        "manual",
        "the circuit to open",
        Duration::from_secs(10),
        |s| s["paused"] == true,
    )
    .await;
    receiver.answer_always(Answer::Ok);
    let (code, answer) = server
        .post_json("/subscriptions/manual/resume", &json!({}))
        .await;
    assert_eq!(code, 200, "{answer}");
    // The cool-down is ten minutes: only the resume can explain a delivery now.
    receiver
        .wait_for(
            "both events after the resume",
            Duration::from_secs(10),
            |r| r.iter().filter(|r| r.accepted).count() >= 2,
        )
        .await;
}

/// Flags for the breaker tests: quick retries, and `failures` failed attempts in a row open an
/// endpoint's breaker for `cool_down_ms`.
fn breaker_flags(failures: &'static str, cool_down_ms: &'static str) -> Vec<&'static str> {
    vec![
        "--webhook-allow-private",
        "--webhook-retry-min-ms",
        "50",
        "--webhook-retry-max-ms",
        "100",
        "--webhook-circuit-failures",
        failures,
        "--webhook-circuit-cool-down-ms",
        cool_down_ms,
    ]
}

/// Puts two subscriptions delivering to `receiver`, appends two events, and waits for both
/// subscriptions to be paused by the endpoint's breaker.
async fn two_subscriptions_paused_by_one_breaker(server: &TestServer, receiver: &Receiver) {
    receiver.answer_always(Answer::Status(500, None));
    for name in ["first", "second"] {
        put(
            server,
            name,
            json!({"start": "beginning", "max_deliveries": 100,
                   "filter": {"stream_types": ["order"]},
                   "delivery": webhook(receiver, "json", json!({"max_in_flight": 1}))}),
        )
        .await;
    }
    server.append_n("order/shared", "OrderPlaced", 2).await;
    for name in ["first", "second"] {
        let status = wait_for_status(
            server,
            name,
            "the endpoint's circuit to open",
            Duration::from_secs(15),
            |s| s["paused"] == true,
        )
        .await;
        assert!(
            status["paused_reason"]
                .as_str()
                .unwrap_or_default()
                .starts_with("circuit open"),
            "{name}: {status}"
        );
    }
}

/// Two subscriptions to one failing endpoint share its breaker: their failures add up, it
/// opens once for both, both are paused, and the audit trail names each, the reason and the
/// endpoint. A person resuming one closes the endpoint's breaker, and the server resumes the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_to_one_endpoint_share_its_circuit_breaker() {
    // A ten-minute cool-down: no probe comes during the test.
    let server = TestServer::start_with(&breaker_flags("3", "600000")).await;
    let receiver = Receiver::start().await;
    two_subscriptions_paused_by_one_breaker(&server, &receiver).await;
    // Separate breakers would each need three failures (six requests). The shared one opens
    // at the third; the other subscription may have had one attempt in flight then.
    let at_opening = receiver.received().len();
    assert!(
        (3..=4).contains(&at_opening),
        "{at_opening} requests before the breaker opened"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        at_opening,
        "nothing is sent while open"
    );

    let paused = server_actions(&server, "SubscriptionPaused").await;
    assert_eq!(target_names(&paused), ["first", "second"], "{paused:?}");
    for data in &paused {
        assert_eq!(data["action"], "subscription.paused", "{data}");
        assert_eq!(data["target"]["endpoint"], receiver.url.as_str(), "{data}");
        let reason = data["target"]["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with("circuit open"), "{reason}");
        assert!(reason.contains("500"), "{reason}");
    }
    let metrics = server.get("/metrics").await.text().await.expect("metrics");
    for series in [
        "runnel_group_paused{group=\"first\"} 1",
        "runnel_group_paused{group=\"second\"} 1",
        "runnel_webhook_circuit_open{group=\"first\"} 1",
        "runnel_webhook_circuit_open{group=\"second\"} 1",
        "runnel_webhook_attempts_total{group=\"first\",outcome=\"http_error\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }

    receiver.answer_always(Answer::Ok);
    let (code, answer) = server
        .post_json("/subscriptions/first/resume", &json!({}))
        .await;
    assert_eq!(code, 200, "{answer}");
    wait_until_both_resumed_and_delivered(&server).await;
    let resumed = server_actions(&server, "SubscriptionResumed").await;
    assert_eq!(
        resumed.len(),
        1,
        "the person's resume is theirs: {resumed:?}"
    );
    assert_eq!(resumed[0]["target"]["name"], "second");
    assert_eq!(resumed[0]["target"]["endpoint"], receiver.url.as_str());
    assert_eq!(
        resumed[0]["target"]["reason"],
        "the endpoint's circuit breaker closed"
    );
}

/// After the cool-down, one probe decides for every subscription on the endpoint: when it
/// succeeds, both are resumed and every event arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_successful_probe_resumes_every_subscription_on_the_endpoint() {
    let server = TestServer::start_with(&breaker_flags("3", "1500")).await;
    let receiver = Receiver::start().await;
    two_subscriptions_paused_by_one_breaker(&server, &receiver).await;
    receiver.answer_always(Answer::Ok);
    wait_until_both_resumed_and_delivered(&server).await;
    let resumed = server_actions(&server, "SubscriptionResumed").await;
    let mut names = target_names(&resumed);
    names.dedup();
    assert_eq!(names, ["first", "second"], "{resumed:?}");
}

/// Waits until the subscriptions `first` and `second` run again and delivered both events.
async fn wait_until_both_resumed_and_delivered(server: &TestServer) {
    for name in ["first", "second"] {
        wait_for_status(
            server,
            name,
            "resumed, both events delivered",
            Duration::from_secs(20),
            |s| s["paused"] == false && s["delivered"] == 2,
        )
        .await;
    }
}

/// The subscription names of audit records, sorted.
fn target_names(records: &[Value]) -> Vec<&str> {
    let mut names: Vec<&str> = records
        .iter()
        .map(|data| data["target"]["name"].as_str().unwrap_or_default())
        .collect();
    names.sort_unstable();
    names
}

/// The server leases ahead of its requests and commits the acks of several deliveries
/// together: still at most `max_in_flight` requests at once, every event delivered and
/// acknowledged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasing_ahead_keeps_to_max_in_flight_and_acknowledges_each_event_once() {
    const EVENTS: usize = 120;
    const MAX_IN_FLIGHT: usize = 3;
    let server = TestServer::start_with(FAST).await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::SlowOk(Duration::from_millis(15)));
    put(
        &server,
        "ahead",
        json!({"start": "beginning", "filter": {"stream_types": ["order"]},
               "delivery": webhook(&receiver, "json", json!({"max_in_flight": MAX_IN_FLIGHT}))}),
    )
    .await;
    for stream in 0..4 {
        server
            .append_n(&format!("order/a-{stream}"), "OrderPlaced", EVENTS / 4)
            .await;
    }
    wait_for_status(
        &server,
        "ahead",
        "every event acknowledged",
        Duration::from_secs(30),
        |s| s["delivered"].as_u64() >= Some(EVENTS as u64) && s["in_flight"] == 0,
    )
    .await;
    let accepted = receiver.accepted_ids();
    let unique: std::collections::HashSet<&String> = accepted.iter().collect();
    assert_eq!(unique.len(), EVENTS, "every event arrives");
    assert_eq!(accepted.len(), EVENTS, "no event arrives twice");
    let most = receiver.lock().most_in_flight;
    assert!(
        (1..=MAX_IN_FLIGHT).contains(&most),
        "{most} requests at once, max_in_flight is {MAX_IN_FLIGHT}"
    );
    let status = wait_for_status(&server, "ahead", "settled", Duration::from_secs(5), |_| {
        true
    })
    .await;
    assert_eq!(
        status["delivered"].as_u64(),
        Some(EVENTS as u64),
        "{status}"
    );
}
