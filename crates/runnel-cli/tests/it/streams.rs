//! Appending to streams, reading them, describing them and listing them.

use serde_json::{Value, json};

use crate::harness::{TestServer, encode, expect_problem};

#[tokio::test]
async fn an_append_is_answered_and_read_back_in_the_documented_shapes() {
    let server = TestServer::start().await;
    let id = "0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e";
    let answer = server
        .append(
            "order/o-1001",
            json!({"expected_revision": "no_stream", "events": [
                {"id": id, "type": "OrderPlaced", "data": {"total": 42.5}, "metadata": {"correlation_id": "c-9"}},
                {"type": "OrderPaid", "data": [1, "two", null]}
            ]}),
        )
        .await;
    assert_eq!(
        answer,
        json!({"stream_type": "order", "stream_id": "o-1001", "first_revision": 0,
               "last_revision": 1, "first_position": 0, "last_position": 1})
    );

    let (status, page) = server.get_json("/streams/order/o-1001/events").await;
    assert_eq!(status, 200);
    assert_eq!(page["next"], Value::Null);
    let events = page["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    let first = events[0].as_object().expect("event object");
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "data",
            "id",
            "metadata",
            "position",
            "recorded_at",
            "revision",
            "stream_id",
            "stream_type",
            "type"
        ]
    );
    assert_eq!(first["id"], id);
    assert_eq!(first["type"], "OrderPlaced");
    assert_eq!(first["data"], json!({"total": 42.5}));
    assert_eq!(first["metadata"], json!({"correlation_id": "c-9"}));
    let recorded_at = first["recorded_at"].as_str().expect("recorded_at");
    assert!(
        recorded_at.ends_with('Z') && recorded_at.len() == 27,
        "{recorded_at}"
    );
    assert_eq!(events[1]["revision"], 1);
    assert_eq!(events[1]["position"], 1);
    assert_eq!(events[1]["metadata"], Value::Null);
    uuid::Uuid::parse_str(events[1]["id"].as_str().expect("id")).expect("server-assigned UUID");

    let (status, info) = server.get_json("/streams/order/o-1001").await;
    assert_eq!(status, 200);
    assert_eq!(info["stream_type"], "order");
    assert_eq!(info["stream_id"], "o-1001");
    assert_eq!(info["revision"], 1);
    assert!(
        info["created_at"].is_string() && info["updated_at"].is_string(),
        "{info}"
    );
}

#[tokio::test]
async fn json_data_is_stored_and_served_byte_for_byte() {
    let server = TestServer::start().await;
    let data = r#"{ "z" : 1,  "a": 2.50, "big": 123456789012345678901234567890 }"#;
    let body = format!(r#"{{"events": [{{"type": "T", "data": {data}, "metadata": [ 1 ]}}]}}"#);
    assert_eq!(
        server.post("/streams/raw/r-1/events", body).await.status(),
        200
    );
    let text = server
        .get("/streams/raw/r-1/events")
        .await
        .text()
        .await
        .expect("body");
    assert!(text.contains(data), "{text}");
    assert!(text.contains("[ 1 ]"), "{text}");
}

#[tokio::test]
async fn binary_payloads_round_trip_as_base64_with_their_content_type() {
    let server = TestServer::start().await;
    server
        .append(
            "blob/b-1",
            json!({"events": [{"type": "Uploaded", "data_base64": "AAEC/w==", "content_type": "application/octet-stream"}]}),
        )
        .await;
    let (_, page) = server.get_json("/streams/blob/b-1/events").await;
    let event = &page["events"][0];
    assert_eq!(event["data_base64"], "AAEC/w==");
    assert_eq!(event["content_type"], "application/octet-stream");
    assert!(event.get("data").is_none(), "{event}");
}

#[tokio::test]
async fn expected_revision_is_checked_and_a_failed_check_writes_nothing() {
    let server = TestServer::start().await;
    let one = |expected: Value| json!({"expected_revision": expected, "events": [{"type": "E", "data": 1}]});
    let path = "/streams/acct/a-1/events";

    let body = expect_problem(
        server.post(path, one(json!("exists")).to_string()).await,
        409,
        "wrong_expected_revision",
    )
    .await;
    assert_eq!(body["current_revision"], Value::Null);
    assert!(
        body.as_object()
            .expect("object")
            .contains_key("current_revision")
    );
    let body = expect_problem(
        server.post(path, one(json!(0)).to_string()).await,
        409,
        "wrong_expected_revision",
    )
    .await;
    assert_eq!(body["current_revision"], Value::Null);

    server.append("acct/a-1", one(json!("no_stream"))).await;
    let body = expect_problem(
        server.post(path, one(json!("no_stream")).to_string()).await,
        409,
        "wrong_expected_revision",
    )
    .await;
    assert_eq!(body["current_revision"], 0);

    server.append("acct/a-1", one(json!(0))).await;
    server.append("acct/a-1", one(json!("exists"))).await;
    server.append("acct/a-1", one(json!("any"))).await;
    let stale = json!({"expected_revision": 1, "events": [{"type": "E", "data": 1}, {"type": "E", "data": 2}]});
    let body = expect_problem(
        server.post(path, stale.to_string()).await,
        409,
        "wrong_expected_revision",
    )
    .await;
    assert_eq!(body["current_revision"], 3);

    let (_, info) = server.get_json("/streams/acct/a-1").await;
    assert_eq!(info["revision"], 3, "the rejected append wrote nothing");
    let (_, all) = server.get_json("/events").await;
    assert_eq!(all["events"].as_array().expect("events").len(), 4);
}

#[tokio::test]
async fn a_retried_append_gets_the_original_answer_and_a_reused_id_elsewhere_is_409() {
    let server = TestServer::start().await;
    let body = json!({"expected_revision": "no_stream", "events": [
        {"id": "0192f3c4-6a1e-7b2c-9d3e-000000000001", "type": "E", "data": 1},
        {"id": "0192f3c4-6a1e-7b2c-9d3e-000000000002", "type": "E", "data": 2}
    ]});
    let first = server.append("order/o-1", body.clone()).await;
    let retry = server.append("order/o-1", body.clone()).await;
    assert_eq!(first, retry);
    let (_, info) = server.get_json("/streams/order/o-1").await;
    assert_eq!(info["revision"], 1, "the retry wrote nothing");

    let elsewhere = server
        .post("/streams/order/o-2/events", body.to_string())
        .await;
    let problem = expect_problem(elsewhere, 409, "duplicate_event_id").await;
    assert_eq!(problem["event_id"], "0192f3c4-6a1e-7b2c-9d3e-000000000001");
    expect_problem(
        server.get("/streams/order/o-2").await,
        404,
        "stream_not_found",
    )
    .await;
}

#[tokio::test]
async fn stream_ids_are_percent_decoded_path_segments_including_utf8() {
    let server = TestServer::start().await;
    let id = "Zürich 🚚 #1?x=y&z";
    let path = format!("/streams/shipment/{}/events", encode(id));
    let (status, answer) = server
        .post_json(&path, &json!({"events": [{"type": "Left", "data": {}}]}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["stream_id"], id);
    let (_, page) = server.get_json(&path).await;
    assert_eq!(page["events"][0]["stream_id"], id);
    let (_, info) = server
        .get_json(&format!("/streams/shipment/{}", encode(id)))
        .await;
    assert_eq!(info["stream_id"], id);
    let (_, list) = server.get_json("/streams/shipment").await;
    assert_eq!(list["streams"][0]["stream_id"], id);

    // An encoded slash decodes inside the id, which may not hold one: it never splits the path.
    let slash = server
        .post(
            "/streams/shipment/a%2Fb/events",
            json!({"events": [{"type": "E", "data": 1}]}).to_string(),
        )
        .await;
    let body = expect_problem(slash, 400, "invalid_stream_id").await;
    assert!(
        body["detail"].as_str().expect("detail").contains('/'),
        "{body}"
    );
    expect_problem(
        server.get("/streams/shipment/a%2Fb").await,
        400,
        "invalid_stream_id",
    )
    .await;
    expect_problem(
        server.get("/streams/shipment/a%0Ab/events").await,
        400,
        "invalid_stream_id",
    )
    .await;
    let too_long = "é".repeat(129);
    expect_problem(
        server
            .get(&format!("/streams/shipment/{}", encode(&too_long)))
            .await,
        400,
        "invalid_stream_id",
    )
    .await;
    expect_problem(
        server.get("/streams/shipment/%FF%FE").await,
        400,
        "invalid_path",
    )
    .await;
}

#[tokio::test]
async fn reads_page_forward_and_backward_with_next() {
    let server = TestServer::start().await;
    server.append_n("order/o-1", "E", 5).await;

    let mut revisions = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let (status, page) = server
            .get_json(&format!("/streams/order/o-1/events{query}"))
            .await;
        assert_eq!(status, 200, "{page}");
        revisions.extend(
            page["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["revision"].as_u64().expect("rev")),
        );
        match page["next"].as_u64() {
            Some(next) => query = format!("?limit=2&from={next}"),
            None => break,
        }
    }
    assert_eq!(revisions, [0, 1, 2, 3, 4]);

    let (_, page) = server
        .get_json("/streams/order/o-1/events?direction=backward&limit=2")
        .await;
    let backward: Vec<u64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["revision"].as_u64().expect("rev"))
        .collect();
    assert_eq!(backward, [4, 3]);
    assert_eq!(page["next"], 2);
    let (_, page) = server
        .get_json("/streams/order/o-1/events?direction=backward&from=1")
        .await;
    assert_eq!(page["events"].as_array().expect("events").len(), 2);
    assert_eq!(page["next"], Value::Null);

    expect_problem(
        server.get("/streams/order/o-9/events").await,
        404,
        "stream_not_found",
    )
    .await;
    expect_problem(
        server.get("/streams/order/o-9").await,
        404,
        "stream_not_found",
    )
    .await;
    expect_problem(
        server
            .get("/streams/order/o-1/events?direction=sideways")
            .await,
        400,
        "invalid_query",
    )
    .await;
}

#[tokio::test]
async fn stream_types_and_streams_are_listed_in_order_with_paging() {
    let server = TestServer::start().await;
    for stream_type in ["cart", "order", "account"] {
        for n in 0..3 {
            server
                .append_n(&format!("{stream_type}/{stream_type}-{n}"), "E", 1)
                .await;
        }
    }
    let (_, page) = server.get_json("/streams?limit=2").await;
    assert_eq!(
        page["types"],
        json!([{"stream_type": "account", "streams": 3}, {"stream_type": "cart", "streams": 3}])
    );
    let after = page["next"].as_str().expect("next").to_owned();
    let (_, page) = server
        .get_json(&format!("/streams?limit=2&after={after}"))
        .await;
    assert_eq!(
        page["types"],
        json!([{"stream_type": "order", "streams": 3}])
    );
    assert_eq!(page["next"], Value::Null);

    let mut ids = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let (status, page) = server.get_json(&format!("/streams/order{query}")).await;
        assert_eq!(status, 200, "{page}");
        for stream in page["streams"].as_array().expect("streams") {
            assert_eq!(stream["revision"], 0);
            assert!(stream["created_at"].is_string(), "{stream}");
            ids.push(stream["stream_id"].as_str().expect("id").to_owned());
        }
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=2&after={}", crate::harness::encode(next)),
            None => break,
        }
    }
    assert_eq!(ids, ["order-0", "order-1", "order-2"]);
    let (status, empty) = server.get_json("/streams/nothing").await;
    assert_eq!((status, empty), (200, json!({"streams": [], "next": null})));
}

#[tokio::test]
async fn system_streams_cannot_be_written() {
    let server = TestServer::start().await;
    let response = server
        .post(
            "/streams/$audit/a-1/events",
            json!({"events": [{"type": "E", "data": 1}]}).to_string(),
        )
        .await;
    expect_problem(response, 403, "system_stream").await;
}
