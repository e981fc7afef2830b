//! `GET /subscribe`: catch-up then live over SSE, resume, filters, heartbeats, limits, and a
//! stalled reader that must not grow the server's memory.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Sse, TestServer, expect_problem};

const WAIT: Duration = Duration::from_secs(30);

/// Appends from a task that does not borrow the server.
async fn append_raw(http: &reqwest::Client, base: &str, stream: &str, body: &Value) {
    let response = http
        .post(format!("{base}/streams/{stream}/events"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("append sent");
    assert_eq!(
        response.status(),
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_then_live_delivers_every_event_once_in_order_while_others_append() {
    let server = TestServer::start().await;
    for n in 0..3 {
        server
            .append_n(&format!("order/pre-{n}"), "Before", 100)
            .await;
    }
    const WRITERS: usize = 4;
    const APPENDS: usize = 50;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let http = server.http.clone();
            let base = server.base.clone();
            tokio::spawn(async move {
                for a in 0..APPENDS {
                    let body = json!({"events": [{"type": "During", "data": {"a": a}}, {"type": "During", "data": {"a": a}}]});
                    append_raw(&http, &base, &format!("live/w-{w}"), &body).await;
                }
            })
        })
        .collect();
    // Subscribe while the writers run, so the switch from catch-up to live happens under load.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut reader = server.subscribe("?from=0", None).await;
    let total = 300 + WRITERS * APPENDS * 2;
    let events = reader.events(total, WAIT).await;
    for writer in writers {
        writer.await.expect("writer");
    }

    let positions: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        positions,
        (0..total as u64).collect::<Vec<_>>(),
        "every position once, in order"
    );
    let ids: HashSet<&str> = events
        .iter()
        .map(|(_, e)| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), total);
    let mut revisions: HashMap<String, Vec<u64>> = HashMap::new();
    for (id, event) in &events {
        assert_eq!(event["position"], *id, "the SSE id is the position");
        let stream = format!(
            "{}/{}",
            event["stream_type"].as_str().expect("t"),
            event["stream_id"].as_str().expect("i")
        );
        revisions
            .entry(stream)
            .or_default()
            .push(event["revision"].as_u64().expect("revision"));
    }
    for (stream, revs) in revisions {
        assert_eq!(revs, (0..revs.len() as u64).collect::<Vec<_>>(), "{stream}");
    }
    assert_eq!(
        reader.next_event(Duration::from_millis(300)).await,
        None,
        "no extra event"
    );
}

#[tokio::test]
async fn from_end_is_the_default_and_sees_only_new_events() {
    let server = TestServer::start().await;
    server.append_n("order/o-1", "Old", 3).await;
    let mut reader = server.subscribe("", None).await;
    assert!(
        matches!(reader.next(WAIT).await, Some(Sse::Comment(_))),
        "a greeting comes first"
    );
    server.append_n("order/o-1", "New", 2).await;
    let events = reader.events(2, WAIT).await;
    assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4]);
    assert!(events.iter().all(|(_, e)| e["type"] == "New"));
    let mut explicit = server.subscribe("?from=end", None).await;
    server.append_n("order/o-1", "Newer", 1).await;
    assert_eq!(explicit.events(1, WAIT).await[0].0, 5);
}

#[tokio::test]
async fn last_event_id_resumes_right_after_that_position() {
    let server = TestServer::start().await;
    server.append_n("order/o-1", "E", 10).await;
    let mut reader = server.subscribe("?from=0", Some(6)).await;
    let events = reader.events(3, WAIT).await;
    assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [7, 8, 9]);
    server.append_n("order/o-1", "E", 1).await;
    assert_eq!(reader.events(1, WAIT).await[0].0, 10);
}

#[tokio::test]
async fn filters_select_stream_types_event_types_and_streams() {
    let server = TestServer::start().await;
    server.append_n("order/o-1", "OrderPlaced", 2).await;
    server.append_n("cart/c-1", "ItemAdded", 2).await;
    server.append_n("order/o-2", "OrderPaid", 2).await;

    let mut by_type = server.subscribe("?from=0&stream_type=order", None).await;
    assert_eq!(
        by_type
            .events(4, WAIT)
            .await
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        [0, 1, 4, 5]
    );
    let mut by_event = server
        .subscribe("?from=0&event_type=ItemAdded&event_type=OrderPaid", None)
        .await;
    assert_eq!(
        by_event
            .events(4, WAIT)
            .await
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        [2, 3, 4, 5]
    );
    let mut by_stream = server.subscribe("?from=0&stream=order/o-2", None).await;
    assert_eq!(
        by_stream
            .events(2, WAIT)
            .await
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        [4, 5]
    );

    server.append_n("cart/c-1", "ItemAdded", 1).await;
    server.append_n("order/o-2", "OrderPaid", 1).await;
    assert_eq!(by_type.events(1, WAIT).await[0].0, 7);
    assert_eq!(
        by_event
            .events(2, WAIT)
            .await
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        [6, 7]
    );
    assert_eq!(by_stream.events(1, WAIT).await[0].0, 7);
}

#[tokio::test]
async fn an_idle_subscription_gets_keep_alive_comments() {
    let server = TestServer::start_with(&["--heartbeat-ms", "200"]).await;
    let mut reader = server.subscribe("", None).await;
    let mut keep_alives = 0;
    let started = std::time::Instant::now();
    while keep_alives < 2 {
        match reader.next(Duration::from_secs(5)).await {
            Some(Sse::Comment(text)) if text == "keep-alive" => keep_alives += 1,
            Some(Sse::Comment(_)) => {}
            other => panic!("expected a keep-alive, got {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn subscriptions_beyond_the_limit_get_429_until_one_closes() {
    let server = TestServer::start_with(&["--max-subscriptions", "1"]).await;
    let first = server.subscribe("", None).await;
    let second = server.get("/subscribe").await;
    assert!(second.headers().contains_key("retry-after"));
    let body = expect_problem(second, 429, "too_many_subscriptions").await;
    assert_eq!(body["limit"], "max_subscriptions");
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = server.get("/subscribe").await;
        if response.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed subscription's slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client that stops reading must not grow the server's memory: the server reads the log at
/// the client's pace. Once it reads again, the server closes it for lagging, and the client
/// resumes with Last-Event-ID and gets every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_keeps_server_memory_bounded_and_resumes_after_being_closed() {
    const EVENT_BYTES: usize = 10 * 1024;
    const EVENTS_PER_APPEND: usize = 50;
    const APPENDS: usize = 80; // 40 MiB of event data
    let server = TestServer::start_with(&["--subscription-max-lag-events", "500"]).await;
    let payload = "x".repeat(EVENT_BYTES);
    let body = json!({"events": (0..EVENTS_PER_APPEND).map(|_| json!({"type": "Big", "data": payload})).collect::<Vec<_>>()});
    // Warm up the allocator and the engine with the same kind of traffic first.
    for _ in 0..10 {
        server.append("warm/w-1", body.clone()).await;
    }
    let mut reader = server.subscribe("", None).await;
    assert!(matches!(reader.next(WAIT).await, Some(Sse::Comment(_))));
    let first_position = 10 * EVENTS_PER_APPEND as u64;
    let before = server.rss_kib();

    let writers: Vec<_> = (0..2)
        .map(|w| {
            let http = server.http.clone();
            let base = server.base.clone();
            let body = body.clone();
            tokio::spawn(async move {
                for _ in 0..APPENDS / 2 {
                    append_raw(&http, &base, &format!("big/b-{w}"), &body).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let after = server.rss_kib();
    let appended_kib = (APPENDS * EVENTS_PER_APPEND * EVENT_BYTES / 1024) as u64;
    let growth = after.saturating_sub(before);
    eprintln!("rss before {before} KiB, after {after} KiB, appended {appended_kib} KiB");
    assert!(
        growth < appended_kib / 2,
        "server RSS grew by {growth} KiB while {appended_kib} KiB were appended with a stalled reader"
    );

    // Reading again: what was already in flight arrives, then the server closes the lagging
    // subscription; resuming with Last-Event-ID delivers the rest, each event once.
    let total = (APPENDS * EVENTS_PER_APPEND) as u64;
    let mut positions = Vec::new();
    let mut closed_for_lag = false;
    while let Some(message) = reader.next(WAIT).await {
        match message {
            Sse::Event { id, .. } => positions.push(id),
            Sse::Comment(text) if text.starts_with("closing") => {
                closed_for_lag = text.contains("behind");
            }
            Sse::Comment(_) => {}
        }
    }
    eprintln!("read {} events before the close", positions.len());
    assert!(
        closed_for_lag,
        "the lagging subscription was not closed ({} events read)",
        positions.len()
    );
    assert!(
        (positions.len() as u64) < total,
        "it was closed before the end"
    );
    let last = positions.last().copied().unwrap_or(first_position - 1);
    let mut resumed = server.subscribe("", Some(last)).await;
    let rest = resumed
        .events((total - positions.len() as u64) as usize, WAIT)
        .await;
    positions.extend(rest.iter().map(|e| e.0));
    assert_eq!(
        positions,
        (first_position..first_position + total).collect::<Vec<_>>()
    );
}
