//! `runnel migrate` and `runnel serve --postgres`: the same HTTP API on the PostgreSQL engine,
//! and several servers sharing one database. Each test works in a fresh schema of the test
//! database (`RUNNEL_TEST_POSTGRES_URL`, default the local test server), dropped at the end.

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Sse, TestServer, expect_problem};

pub(crate) const WAIT: Duration = Duration::from_secs(30);
const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub(crate) fn admin_url() -> String {
    std::env::var("RUNNEL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned())
}

async fn admin() -> tokio_postgres::Client {
    let url = admin_url();
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(&url, tokio_postgres::NoTls),
    )
    .await
    .unwrap_or_else(|_| panic!("PostgreSQL at {url} did not answer within 10 s"))
    .unwrap_or_else(|error| {
        panic!("PostgreSQL is not reachable at {url} ({error}): these tests need a running server")
    });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A schema of the test's own; the URL puts Runnel's tables in it.
pub(crate) struct Schema {
    name: String,
    pub(crate) url: String,
}

impl Schema {
    async fn create() -> Self {
        let name = format!("runnel_cli_{}", uuid::Uuid::now_v7().simple());
        admin()
            .await
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|error| panic!("creating schema {name}: {error}"));
        let base = admin_url();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
        Self { name, url }
    }

    pub(crate) async fn migrated() -> Self {
        let schema = Self::create().await;
        let output = migrate(&schema.url);
        assert!(output.status.success(), "{}", text(&output));
        schema
    }

    pub(crate) async fn serve(&self) -> TestServer {
        TestServer::start_with(&["--postgres", &self.url]).await
    }

    pub(crate) async fn drop_now(self) {
        let _ = admin()
            .await
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await;
    }
}

pub(crate) fn runnel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .env_remove("RUNNEL_POSTGRES_URL")
        .env_remove("RUNNEL_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("the runnel binary runs")
}

pub(crate) fn migrate(url: &str) -> Output {
    runnel(&["migrate", "--postgres", url])
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `(position, stream id)` of the events in `$all` whose stream is of `stream_type` (the log
/// also holds the server's own records, such as its keys).
async fn all_of(server: &TestServer, stream_type: &str) -> Vec<(u64, String)> {
    let (status, page) = server.get_json("/events?limit=1000").await;
    assert_eq!(status, 200, "{page}");
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["stream_type"] == stream_type)
        .map(|e| {
            (
                e["position"].as_u64().expect("position"),
                e["stream_id"].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn serve_on_an_unmigrated_schema_refuses_and_names_runnel_migrate() {
    let schema = Schema::create().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let output = runnel(&[
        "serve",
        "--postgres",
        &schema.url,
        "--data-dir",
        data_dir.to_str().expect("utf-8 path"),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("runnel migrate"),
        "{}",
        text(&output)
    );
    assert!(!data_dir.exists(), "the embedded engine was not opened");
    schema.drop_now().await;
}

#[tokio::test]
async fn migrate_twice_applies_once_and_then_finds_the_schema_up_to_date() {
    let schema = Schema::create().await;
    let first = migrate(&schema.url);
    assert!(first.status.success(), "{}", text(&first));
    assert!(
        text(&first).contains("applied migration(s) 1"),
        "{}",
        text(&first)
    );
    let second = migrate(&schema.url);
    assert!(second.status.success(), "{}", text(&second));
    let said = text(&second);
    assert!(said.contains("up to date"), "{said}");
    assert!(said.contains("schema version 2"), "{said}");
    schema.drop_now().await;
}

#[tokio::test]
async fn migrate_then_serve_appends_reads_checks_revisions_and_streams_events() {
    let schema = Schema::migrated().await;
    let server = schema.serve().await;
    assert!(
        server
            .banner
            .iter()
            .any(|line| line.contains("PostgreSQL at")),
        "{:?}",
        server.banner
    );

    server.append_n("order/o-1", "Placed", 3).await;
    server.append_n("order/o-2", "Placed", 2).await;
    let (status, page) = server.get_json("/streams/order/o-1/events").await;
    assert_eq!(status, 200, "{page}");
    let revisions: Vec<u64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["revision"].as_u64().expect("revision"))
        .collect();
    assert_eq!(revisions, [0, 1, 2]);

    let all = all_of(&server, "order").await;
    let streams: Vec<&str> = all.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(streams, ["o-1", "o-1", "o-1", "o-2", "o-2"]);
    assert!(all.windows(2).all(|pair| pair[0].0 < pair[1].0), "{all:?}");

    expect_problem(
        server
            .post(
                "/streams/order/o-1/events",
                json!({"expected_revision": 0, "events": [{"type": "Late", "data": {}}]})
                    .to_string(),
            )
            .await,
        409,
        "wrong_expected_revision",
    )
    .await;

    let mut reader = server.subscribe("?from=0&event_type=Placed", None).await;
    let caught_up = reader.events(5, WAIT).await;
    let positions: Vec<u64> = caught_up.iter().map(|(id, _)| *id).collect();
    let expected: Vec<u64> = all.iter().map(|(position, _)| *position).collect();
    assert_eq!(positions, expected);
    server.append_n("order/o-3", "Placed", 1).await;
    let (_, live) = reader.next_event(WAIT).await.expect("the live event");
    assert_eq!(live["stream_id"], "o-3", "{live}");
    drop(reader);
    drop(server);
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_on_one_node_reaches_a_subscriber_on_another_within_a_second() {
    let schema = Schema::migrated().await;
    let a = schema.serve().await;
    let b = schema.serve().await;
    let mut reader = b.subscribe("?from=0&event_type=Shipped", None).await;
    // Wait out the catch-up of the empty log, so that what arrives next came live.
    assert!(
        reader
            .next_event(Duration::from_millis(300))
            .await
            .is_none()
    );

    let sent = Instant::now();
    a.append_n("parcel/p-1", "Shipped", 1).await;
    let (position, event) = reader
        .next_event(Duration::from_secs(5))
        .await
        .expect("the event reaches node B");
    let took = sent.elapsed();
    assert_eq!(event["stream_id"], "p-1", "{event}");
    assert!(took < Duration::from_secs(1), "took {took:?}");

    let (status, page) = b.get_json("/streams/parcel/p-1/events").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"][0]["position"].as_u64(), Some(position));
    drop(reader);
    drop((a, b));
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_with_concurrent_writers_give_every_reader_every_event_once_in_order() {
    const NODES: usize = 3;
    const APPENDS_PER_NODE: usize = 30;
    let schema = Schema::migrated().await;
    let mut nodes = Vec::with_capacity(NODES);
    for _ in 0..NODES {
        nodes.push(schema.serve().await);
    }
    let mut readers = Vec::with_capacity(NODES);
    for node in &nodes {
        readers.push(node.subscribe("?from=0&event_type=Moved", None).await);
    }

    let writers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(n, node)| {
            let http = node.http.clone();
            let base = node.base.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::with_capacity(APPENDS_PER_NODE);
                for a in 0..APPENDS_PER_NODE {
                    let body = json!({"events": [{"type": "Moved", "data": {"n": n, "a": a}}]});
                    let response = http
                        .post(format!("{base}/streams/crate/c-{n}-{}/events", a % 3))
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await
                        .expect("append sent");
                    assert_eq!(response.status(), 200);
                    let answer: Value = response.json().await.expect("json answer");
                    acknowledged.push(answer);
                }
                acknowledged
            })
        })
        .collect();
    let mut total = 0;
    for writer in writers {
        total += writer.await.expect("writer").len();
    }
    assert_eq!(total, NODES * APPENDS_PER_NODE);

    let mut seen_by_first: Option<Vec<u64>> = None;
    for reader in &mut readers {
        let events = reader.events(total, WAIT).await;
        let positions: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "not in position order: {positions:?}"
        );
        let distinct: HashSet<(u64, u64)> = events
            .iter()
            .map(|(_, e)| {
                (
                    e["data"]["n"].as_u64().expect("n"),
                    e["data"]["a"].as_u64().expect("a"),
                )
            })
            .collect();
        assert_eq!(distinct.len(), total, "an event is missing or repeated");
        assert!(
            reader
                .next_event(Duration::from_millis(200))
                .await
                .is_none(),
            "more events than were appended"
        );
        match &seen_by_first {
            None => seen_by_first = Some(positions),
            Some(first) => assert_eq!(first, &positions, "readers disagree on the order"),
        }
    }
    drop(readers);
    drop(nodes);
    schema.drop_now().await;
}

#[tokio::test]
async fn postgres_settings_out_of_bounds_are_refused_naming_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let url = admin_url();
    let serve = |extra: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_runnel"));
        command
            .env_remove("RUNNEL_POSTGRES_URL")
            .env_remove("RUNNEL_CONFIG")
            .args(["serve", "--postgres", &url, "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        command.output().expect("the runnel binary runs")
    };
    let file = dir.path().join("runnel.toml");
    std::fs::write(&file, "postgres_connect_timeout_ms = 0\n").expect("write the file");
    let file = file.to_str().expect("utf-8 path").to_owned();
    for (output, setting) in [
        (
            serve(&["--postgres-pool-size", "0"], &[]),
            "postgres_pool_size",
        ),
        (
            serve(&["--postgres-pool-size", "100000"], &[]),
            "postgres_pool_size",
        ),
        (
            serve(&[], &[("RUNNEL_POSTGRES_STATEMENT_TIMEOUT_MS", "0")]),
            "postgres_statement_timeout_ms",
        ),
        (
            serve(&["--postgres-pool-wait-timeout-ms", "0"], &[]),
            "postgres_pool_wait_timeout_ms",
        ),
        (
            serve(&["--config", &file], &[]),
            "postgres_connect_timeout_ms",
        ),
    ] {
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(text(&output).contains(setting), "{}", text(&output));
    }
    // In bounds, the settings reach the engine: a pool of one still serves everyone.
    let schema = Schema::migrated().await;
    let server = TestServer::start_with(&[
        "--postgres",
        &schema.url,
        "--postgres-pool-size",
        "1",
        "--postgres-pool-wait-timeout-ms",
        "5000",
    ])
    .await;
    server.append_n("meter/m-1", "Read", 3).await;
    // One pooled connection serves many concurrent reads, one after another.
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let http = server.http.clone();
            let url = server.url("/streams/meter/m-1/events");
            tokio::spawn(async move { http.get(url).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for read in reads {
        assert_eq!(read.await.expect("task").expect("answer"), 200);
    }
    drop(server);
    schema.drop_now().await;
}

/// Positions on PostgreSQL have gaps (each commit takes 65,536 of them), so a live
/// subscription's lag is counted in events, not taken from the difference of positions: a
/// subscriber that keeps up with many commits is never closed for lagging, even with a limit far
/// below the positions one commit spans. (The limit itself is tested on the embedded engine in
/// subscribe.rs, and the counting on both engines by the conformance suite.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_subscription_on_postgres_is_not_closed_for_the_gaps_between_positions() {
    let schema = Schema::migrated().await;
    let server = TestServer::start_with(&[
        "--postgres",
        &schema.url,
        "--subscription-max-lag-events",
        "300",
    ])
    .await;
    let mut reader = server.subscribe("", None).await;
    let mut positions = Vec::new();
    for _ in 0..60 {
        server.append_n("order/o-1", "Placed", 1).await;
        loop {
            match reader.next(WAIT).await {
                Some(Sse::Event { id, .. }) => {
                    positions.push(id);
                    break;
                }
                Some(Sse::Comment(text)) => {
                    assert!(
                        !text.starts_with("closing"),
                        "closed after {} events: {text}",
                        positions.len()
                    );
                }
                None => panic!("the subscription ended after {} events", positions.len()),
            }
        }
    }
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(
        positions[59] - positions[0] > 300,
        "the positions span more than the limit: {positions:?}"
    );
    drop(reader);
    drop(server);
    schema.drop_now().await;
}
