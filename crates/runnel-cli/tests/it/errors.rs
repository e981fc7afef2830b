//! Bad input is a 4xx problem whose detail says what is wrong and where; never a 500.

use serde_json::json;

use crate::harness::{TestServer, expect_problem};

fn detail(body: &serde_json::Value) -> &str {
    body["detail"].as_str().expect("detail")
}

#[tokio::test]
async fn malformed_json_and_wrong_shapes_name_the_position_or_field() {
    let server = TestServer::start().await;
    let path = "/streams/order/o-1/events";

    let body = expect_problem(
        server.post(path, r#"{"events": [{"type": "E""#).await,
        400,
        "malformed_json",
    )
    .await;
    assert!(detail(&body).contains("line 1"), "{body}");
    expect_problem(server.post(path, "").await, 400, "malformed_json").await;
    expect_problem(
        server.post(path, r#"{"events": []} trailing"#).await,
        400,
        "malformed_json",
    )
    .await;

    let wrong_type = json!({"events": [{"type": "E", "data": 1}, {"type": 7, "data": 1}]});
    let body = expect_problem(
        server.post(path, wrong_type.to_string()).await,
        400,
        "invalid_body",
    )
    .await;
    assert!(detail(&body).starts_with("events[1].type"), "{body}");

    let body = expect_problem(
        server.post(path, r#"{"expected_revision": "any"}"#).await,
        400,
        "invalid_body",
    )
    .await;
    assert!(detail(&body).contains("events"), "{body}");

    let body = expect_problem(
        server
            .post(path, json!({"events": [{"type": "E"}]}).to_string())
            .await,
        400,
        "invalid_body",
    )
    .await;
    assert!(detail(&body).contains("events[0].data"), "{body}");

    let body = expect_problem(
        server.post(path, json!({"events": "E"}).to_string()).await,
        400,
        "invalid_body",
    )
    .await;
    assert!(detail(&body).starts_with("events"), "{body}");

    let body = expect_problem(
        server
            .post(
                path,
                json!({"expected_revision": -1, "events": []}).to_string(),
            )
            .await,
        400,
        "invalid_body",
    )
    .await;
    assert!(detail(&body).starts_with("expected_revision"), "{body}");

    let body = expect_problem(
        server
            .post(
                path,
                json!({"expected_version": 1, "events": []}).to_string(),
            )
            .await,
        400,
        "invalid_body",
    )
    .await;
    assert!(detail(&body).contains("expected_version"), "{body}");

    let body = expect_problem(
        server
            .post(
                path,
                json!({"events": [{"id": "nope", "type": "E", "data": 1}]}).to_string(),
            )
            .await,
        400,
        "invalid_body",
    )
    .await;
    assert!(detail(&body).starts_with("events[0].id"), "{body}");

    let body = expect_problem(
        server
            .post(
                path,
                json!({"events": [{"type": "E", "data_base64": "***", "content_type": "a/b"}]})
                    .to_string(),
            )
            .await,
        400,
        "invalid_body",
    )
    .await;
    assert!(detail(&body).starts_with("events[0].data_base64"), "{body}");

    expect_problem(
        server.post(path, json!({"events": []}).to_string()).await,
        400,
        "empty_append",
    )
    .await;

    let form = server
        .http
        .post(server.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("events=1")
        .send()
        .await
        .expect("POST");
    expect_problem(form, 415, "unsupported_media_type").await;
    let (_, all) = server.get_json("/events").await;
    assert_eq!(all["events"], json!([]), "nothing was written");
}

#[tokio::test]
async fn bad_names_are_refused_with_the_rule_they_break() {
    let server = TestServer::start().await;
    let event = json!({"events": [{"type": "E", "data": 1}]}).to_string();
    let too_long = "x".repeat(129);
    for stream_type in [".order", "or%20der", "-x", too_long.as_str()] {
        let body = expect_problem(
            server
                .post(&format!("/streams/{stream_type}/o-1/events"), event.clone())
                .await,
            400,
            "invalid_stream_type",
        )
        .await;
        assert!(detail(&body).contains("path {type}"), "{body}");
        assert!(detail(&body).contains("stream type"), "{body}");
        expect_problem(
            server.get(&format!("/streams/{stream_type}/o-1")).await,
            400,
            "invalid_stream_type",
        )
        .await;
    }
    let bad_type =
        json!({"events": [{"type": "E", "data": 1}, {"type": "Order Placed", "data": 1}]});
    let body = expect_problem(
        server
            .post("/streams/order/o-1/events", bad_type.to_string())
            .await,
        400,
        "invalid_event_type",
    )
    .await;
    assert!(detail(&body).starts_with("events[1].type"), "{body}");
    expect_problem(
        server.get("/streams/bad%20type").await,
        400,
        "invalid_stream_type",
    )
    .await;
    expect_problem(
        server.get("/events?stream_type=.x").await,
        400,
        "invalid_stream_type",
    )
    .await;
    expect_problem(
        server.get("/events?event_type=a%20b").await,
        400,
        "invalid_event_type",
    )
    .await;
    expect_problem(
        server.get("/events?stream=order").await,
        400,
        "invalid_stream",
    )
    .await;
}

#[tokio::test]
async fn query_parameters_are_checked_on_every_listing() {
    let server = TestServer::start().await;
    server.append_n("order/o-1", "E", 1).await;
    for listing in [
        "/events",
        "/streams",
        "/streams/order",
        "/streams/order/o-1/events",
    ] {
        for bad in ["limit=1001", "limit=0", "limit=ten", "limit=1&limit=2"] {
            let separator = if listing.contains('?') { '&' } else { '?' };
            let body = expect_problem(
                server.get(&format!("{listing}{separator}{bad}")).await,
                400,
                "invalid_query",
            )
            .await;
            assert!(detail(&body).contains("limit"), "{listing}?{bad}: {body}");
        }
        let (status, _) = server.get_json(&format!("{listing}?limit=1000")).await;
        assert_eq!(status, 200, "{listing}?limit=1000");
        let body = expect_problem(
            server.get(&format!("{listing}?limt=5")).await,
            400,
            "invalid_query",
        )
        .await;
        assert!(detail(&body).contains("limt"), "{body}");
    }
    expect_problem(server.get("/events?from=-1").await, 400, "invalid_query").await;
    expect_problem(
        server.get("/streams/order/o-1/events?from=x").await,
        400,
        "invalid_query",
    )
    .await;
    expect_problem(
        server.get("/subscribe?from=soon").await,
        400,
        "invalid_query",
    )
    .await;
    let bad_id = server
        .http
        .get(server.url("/subscribe"))
        .header("last-event-id", "abc")
        .send()
        .await
        .expect("GET");
    expect_problem(bad_id, 400, "invalid_header").await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let server = TestServer::start_with(&["--max-body-bytes", "65536"]).await;
    let big = json!({"events": [{"type": "E", "data": "x".repeat(70_000)}]}).to_string();
    let body = expect_problem(
        server.post("/streams/order/o-1/events", big).await,
        413,
        "body_too_large",
    )
    .await;
    assert_eq!(body["limit"], "max_body_bytes");
    assert_eq!(body["max"], 65536);
}

#[tokio::test]
async fn oversized_events_and_appends_are_413_naming_the_limit() {
    let server = TestServer::start_with(&[
        "--max-event-bytes",
        "1000",
        "--max-events-per-append",
        "10",
        "--max-append-bytes",
        "5000",
    ])
    .await;
    let path = "/streams/order/o-1/events";
    let oversized =
        json!({"events": [{"type": "E", "data": 1}, {"type": "E", "data": "x".repeat(2_000)}]});
    let body = expect_problem(
        server.post(path, oversized.to_string()).await,
        413,
        "limit_exceeded",
    )
    .await;
    assert_eq!(body["limit"], "max_event_bytes");
    assert_eq!(body["max"], 1000);
    assert_eq!(body["index"], 1);
    assert!(body["actual"].as_u64().expect("actual") > 2_000, "{body}");

    let many: Vec<_> = (0..11).map(|n| json!({"type": "E", "data": n})).collect();
    let body = expect_problem(
        server.post(path, json!({"events": many}).to_string()).await,
        413,
        "limit_exceeded",
    )
    .await;
    assert_eq!(body["limit"], "max_events_per_append");
    assert_eq!(body["max"], 10);

    let heavy: Vec<_> = (0..8)
        .map(|_| json!({"type": "E", "data": "y".repeat(900)}))
        .collect();
    let body = expect_problem(
        server
            .post(path, json!({"events": heavy}).to_string())
            .await,
        413,
        "limit_exceeded",
    )
    .await;
    assert_eq!(body["limit"], "max_append_bytes");
    expect_problem(
        server.get("/streams/order/o-1").await,
        404,
        "stream_not_found",
    )
    .await;
}

#[tokio::test]
async fn garbage_never_gets_a_500() {
    let server = TestServer::start().await;
    let bodies = [
        "null",
        "[]",
        "1",
        "\"x\"",
        "{}",
        "{\"events\": null}",
        "{\"events\": [null]}",
        "{\"events\": [[]]}",
        "{\"events\": [{}]}",
        "\u{0}",
        "{\"events\": [{\"type\": \"E\", \"data\": 1e999}]}",
        "{\"events\": [{\"type\": \"E\", \"data\": \"\\ud800\"}]}",
    ];
    let deep = format!(
        r#"{{"events": [{{"type": "E", "data": {}{}}}]}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let status = server
        .post("/streams/order/o-1/events", deep)
        .await
        .status()
        .as_u16();
    assert_eq!(status, 400, "deeply nested JSON");
    for body in bodies {
        let status = server
            .post("/streams/order/o-1/events", body)
            .await
            .status()
            .as_u16();
        assert!(status < 500, "{body:?} got {status}");
    }
    for path in [
        "/streams/%",
        "/streams/order/%ZZ",
        "/events?from=99999999999999999999",
        "/events?limit=",
        "/streams/order/o-1/events?from=18446744073709551615",
        "/subscribe?stream=a/b/c",
        "/%00",
    ] {
        let status = server.get(path).await.status().as_u16();
        assert!(status < 500, "{path} got {status}");
    }
}
