//! Health, metrics, the OpenAPI document, the docs page, and the answers to unknown routes and
//! wrong methods.

use serde_json::json;

use crate::harness::{ADMIN_KEY, TestServer, expect_problem};

#[tokio::test]
async fn start_on_an_empty_directory_is_quick_and_prints_address_docs_and_data_directory() {
    let server = TestServer::start().await;
    // Well under a second in a release build; a debug build on a busy machine gets slack.
    assert!(
        server.startup < std::time::Duration::from_secs(3),
        "ready after {:?}",
        server.startup
    );
    let banner = server.banner.join("\n");
    assert!(banner.contains(&server.base), "{banner}");
    assert!(
        banner.contains(&format!("{}/docs/", server.base)),
        "{banner}"
    );
    assert!(
        banner.contains(&server.data_dir.display().to_string()),
        "{banner}"
    );
}

#[tokio::test]
async fn health_endpoints_answer_200_when_serving() {
    let server = TestServer::start().await;
    let (status, body) = server.get_json("/health/live").await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let (status, body) = server.get_json("/health/ready").await;
    assert_eq!(
        (status, body),
        (200, json!({"status": "ready", "insecure": false}))
    );
}

#[tokio::test]
async fn metrics_count_requests_per_route_template_and_appends() {
    let server = TestServer::start().await;
    server.append_n("order/o-1", "OrderPlaced", 3).await;
    server.get("/streams/order/o-1/events").await;
    server.get("/streams/order/o-2/events").await;
    drop(server.subscribe("", None).await);
    let response = server.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain"),
        "{:?}",
        response.headers()
    );
    let text = response.text().await.expect("body");
    for expected in [
        r#"runnel_http_requests_total{method="GET",route="/streams/{type}/{id}/events",status="200"} 1"#,
        r#"runnel_http_requests_total{method="GET",route="/streams/{type}/{id}/events",status="404"} 1"#,
        r#"runnel_http_request_duration_seconds_bucket{method="POST",route="/streams/{type}/{id}/events",le="#,
        "runnel_append_duration_seconds_bucket",
        "runnel_events_appended_total 3",
        "runnel_bytes_appended_total",
        "runnel_head_position 2",
        "runnel_store_sync_duration_seconds_bucket{le=\"+Inf\"}",
        "runnel_store_events_written_total 3",
        "runnel_subscriptions_open ",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(
        !text.contains("o-1"),
        "raw paths must not become labels:\n{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_docs_work_offline() {
    let server = TestServer::start().await;
    let (status, document) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "/streams",
        "/streams/{type}",
        "/streams/{type}/{id}",
        "/streams/{type}/{id}/events",
        "/events",
        "/subscribe",
        "/health/live",
        "/health/ready",
        "/metrics",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} is not documented"
        );
    }
    let append = &document["paths"]["/streams/{type}/{id}/events"]["post"]["responses"];
    for status in ["200", "400", "409", "413", "503"] {
        assert!(
            append[status].is_object(),
            "append does not document {status}"
        );
    }

    let root = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(server.url("/"))
        .send()
        .await
        .expect("GET /");
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], "/docs/");

    let page = server.get("/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.to_lowercase().contains("swagger"), "{html}");
    // Every script and stylesheet the page loads is served by the binary itself.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        .collect();
    assert!(!assets.is_empty(), "{html}");
    for asset in assets {
        assert!(
            !asset.starts_with("http"),
            "{asset} comes from the internet"
        );
        let path = asset.trim_start_matches("./");
        let response = server.get(&format!("/docs/{path}")).await;
        assert_eq!(response.status(), 200, "{asset}");
    }
    let initializer = server.get("/docs/swagger-initializer.js").await;
    assert!(
        initializer
            .text()
            .await
            .expect("js")
            .contains("/openapi.json")
    );
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_as_problems() {
    let server = TestServer::start().await;
    let body = expect_problem(server.get("/nope").await, 404, "route_not_found").await;
    assert!(
        body["detail"].as_str().expect("detail").contains("/nope"),
        "{body}"
    );
    expect_problem(
        server.get("/streams/order/o-1/events/extra").await,
        404,
        "route_not_found",
    )
    .await;

    let delete = server
        .http
        .delete(server.url("/streams/order/o-1/events"))
        .send()
        .await
        .expect("DELETE");
    let body = expect_problem(delete, 405, "method_not_allowed").await;
    assert!(
        body["detail"].as_str().expect("detail").contains("DELETE"),
        "{body}"
    );
    let post = server.post("/events", "{}").await;
    expect_problem(post, 405, "method_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_requests_are_shed_with_503_and_slow_ones_time_out() {
    use std::io::{Read as _, Write as _};
    let server = TestServer::start_with(&[
        "--max-concurrent-requests",
        "1",
        "--request-timeout-ms",
        "1000",
    ])
    .await;
    // A request whose body never arrives holds the only slot until it times out.
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.write_all(
        format!("POST /streams/order/o-1/events HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {ADMIN_KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{").as_bytes(),
    )
    .expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let (live, _) = server.get_json("/health/live").await;
    assert_eq!(live, 200, "liveness is never shed");
    let shed = server.get("/streams").await;
    assert_eq!(shed.headers()["retry-after"], "1");
    let body = expect_problem(shed, 503, "overloaded").await;
    assert_eq!(body["limit"], "max_concurrent_requests");

    let answer = tokio::task::spawn_blocking(move || {
        slow.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let mut buffer = vec![0u8; 4096];
        let read = slow.read(&mut buffer).expect("an answer");
        String::from_utf8_lossy(&buffer[..read]).into_owned()
    })
    .await
    .expect("reader");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("application/problem+json") && answer.contains("request_timeout"),
        "{answer}"
    );
    let (status, _) = server.get_json("/streams").await;
    assert_eq!(status, 200, "the slot is free again");
}
