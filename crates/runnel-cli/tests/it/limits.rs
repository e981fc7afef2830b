//! The connection-level limits against hostile or broken clients: the size of a request head,
//! the time to send it (slowloris), and the number of open connections. Each answers with a
//! problem that names the limit, or closes the connection where HTTP cannot answer.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::{TestServer, expect_problem};

/// A client that opens a new connection for every request, so the test knows which
/// connections are open.
fn unpooled() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

fn authority(server: &TestServer) -> String {
    server
        .base
        .strip_prefix("http://")
        .expect("plain HTTP")
        .to_owned()
}

#[tokio::test]
async fn a_request_head_over_max_header_bytes_gets_431_naming_the_limit() {
    let server = TestServer::start_with(&["--insecure", "--max-header-bytes", "4096"]).await;
    let client = unpooled();

    let fits = client
        .get(server.url("/health/live"))
        .header("x-padding", "a".repeat(3_000))
        .send()
        .await
        .expect("sent");
    assert_eq!(fits.status(), 200);

    let over = client
        .get(server.url("/streams"))
        .header("x-padding", "a".repeat(5_000))
        .send()
        .await
        .expect("sent");
    let body = expect_problem(over, 431, "headers_too_large").await;
    assert_eq!(body["limit"], "max_header_bytes");
    assert_eq!(body["max"], 4096);
    assert!(body["actual"].as_u64().expect("actual") > 5_000, "{body}");

    // Far over (twice the limit), the HTTP parser stops reading: still 431, without a body.
    let far_over = client
        .get(server.url("/streams"))
        .header("x-padding", "a".repeat(20_000))
        .send()
        .await
        .expect("sent");
    assert_eq!(far_over.status(), 431);

    // The server is unharmed.
    assert_eq!(server.get("/health/live").await.status(), 200);
}

/// Reads until the server closes the connection; returns when it did, or `None` if it stayed
/// open for `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut buffer = [0u8; 4096];
    while started.elapsed() < within {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_headers_is_disconnected() {
    let server = TestServer::start_with(&["--insecure", "--header-read-timeout-ms", "600"]).await;
    let addr = authority(&server);
    let handle = tokio::task::spawn_blocking(move || {
        // Slowloris: a head that starts and never ends, one header line at a time.
        let mut slow = TcpStream::connect(&addr).expect("connects");
        slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        let started = Instant::now();
        let mut dripping = true;
        let mut closed = None;
        while started.elapsed() < Duration::from_secs(10) {
            if dripping && slow.write_all(b"X-Slow: 1\r\n").is_err() {
                dripping = false;
            }
            if let Some(after) = closed_within(&mut slow, Duration::from_millis(200)) {
                closed = Some(started.elapsed().max(after));
                break;
            }
        }
        // A connection that says nothing at all is closed as well.
        let mut silent = TcpStream::connect(&addr).expect("connects");
        let silent_closed = closed_within(&mut silent, Duration::from_secs(10));
        (closed, silent_closed)
    });
    let (slow, silent) = handle.await.expect("joins");
    let slow = slow.expect("the slow client was never disconnected");
    assert!(slow >= Duration::from_millis(400), "closed after {slow:?}");
    let silent = silent.expect("the silent client was never disconnected");
    assert!(
        silent >= Duration::from_millis(400),
        "closed after {silent:?}"
    );
    // Everyone else is still served.
    assert_eq!(server.get("/health/live").await.status(), 200);
}

#[tokio::test]
async fn connections_beyond_max_connections_are_answered_503_and_closed() {
    let server =
        TestServer::start_with_client(&["--insecure", "--max-connections", "2"], unpooled()).await;
    // Two live subscriptions hold the two connections (a subscription's response never ends).
    // The readiness probe's connection may take a moment to be released: retry.
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.len() < 2 {
        let response = unpooled()
            .get(server.url("/subscribe"))
            .send()
            .await
            .expect("sent");
        if response.status() == 200 {
            held.push(response);
        } else {
            assert!(Instant::now() < deadline, "cannot open two subscriptions");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let refused = unpooled()
        .get(server.url("/health/live"))
        .send()
        .await
        .expect("a refusal is an answer");
    assert_eq!(
        refused
            .headers()
            .get("connection")
            .map(|v| v.to_str().unwrap_or_default().to_owned()),
        Some("close".to_owned())
    );
    assert!(refused.headers().contains_key("retry-after"));
    let body = expect_problem(refused, 503, "too_many_connections").await;
    assert_eq!(body["limit"], "max_connections");
    assert_eq!(body["max"], 2);

    // Closing one frees its place.
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = unpooled()
            .get(server.url("/health/live"))
            .send()
            .await
            .expect("sent")
            .status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed connection was not reused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        server.log().contains("refusing connections"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn subscriptions_beyond_max_subscriptions_get_429_naming_the_limit() {
    let server = TestServer::start_with(&["--insecure", "--max-subscriptions", "1"]).await;
    let _first = server.subscribe("", None).await;
    let second = unpooled()
        .get(server.url("/subscribe"))
        .send()
        .await
        .expect("sent");
    let body = expect_problem(second, 429, "too_many_subscriptions").await;
    assert_eq!(body["limit"], "max_subscriptions");
    assert_eq!(body["max"], 1);
}

#[tokio::test]
async fn one_key_cannot_hold_more_than_max_subscriptions_per_key() {
    let server = TestServer::start_with(&["--max-subscriptions-per-key", "2"]).await;
    let mut keys = Vec::new();
    for name in ["first", "second"] {
        let (status, body) = server
            .post_json(
                "/keys",
                &serde_json::json!({"name": name, "role": "consumer", "rules": []}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        keys.push(body["key"].as_str().expect("key").to_owned());
    }
    let subscribe = |key: &str| {
        server
            .request_as(reqwest::Method::GET, "/subscribe", Some(key))
            .send()
    };
    let first = subscribe(&keys[0]).await.expect("sent");
    let second = subscribe(&keys[0]).await.expect("sent");
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = subscribe(&keys[0]).await.expect("sent");
    let body = expect_problem(third, 429, "too_many_subscriptions").await;
    assert_eq!(body["limit"], "max_subscriptions_per_key");
    assert_eq!(body["max"], 2);

    // Another key is not affected, and closing a subscription gives its place back.
    let other = subscribe(&keys[1]).await.expect("sent");
    assert_eq!(other.status(), 200);
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = subscribe(&keys[0]).await.expect("sent");
        if again.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed subscription's place was not given back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
