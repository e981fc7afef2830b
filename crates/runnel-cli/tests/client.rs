//! The client and the CLI against the real `runnel serve`: what one writes the other reads,
//! errors come out as the documented exit codes, and subscriptions survive a server restart.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use runnel_client::{
    Client, ClientError, Event, EventFilter, ExpectedRevision, NewEvent, Revision, StreamName,
    SubscribeFrom,
};
use serde_json::{Value, json};
use tempfile::TempDir;
use uuid::Uuid;

/// How long a server may take to start, and a test to wait for any one thing.
const WAIT: Duration = Duration::from_secs(20);

/// The server's bootstrap admin key (`RUNNEL_ADMIN_KEY`), which the client and the CLI send.
const ADMIN_KEY: &str = "client-test-admin-key-0123456789abcdef0123456789";

/// `runnel serve` on a free port of 127.0.0.1 and a data directory of its own; killed on drop,
/// and its data directory removed with the last `Server` or [`Server::stop`] result holding it.
struct Server {
    child: Child,
    base: String,
    data_dir: Arc<TempDir>,
}

impl Server {
    fn start() -> Self {
        let data_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        Self::start_on(Arc::new(data_dir), "127.0.0.1:0")
    }

    fn start_on(data_dir: Arc<TempDir>, listen: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["serve", "--listen", listen, "--log-level", "warn"])
            // Small segments: each is zero-filled on disk, with a spare beside it.
            .args(["--segment-bytes", "16777216"])
            .arg("--data-dir")
            .arg(data_dir.path())
            .env_remove("RUNNEL_CONFIG")
            .env_remove("RUNNEL_KEY_PEPPER")
            .env("RUNNEL_ADMIN_KEY", ADMIN_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the runnel binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, banner) = mpsc::channel();
        // Reads the banner, then keeps draining so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines.send(line);
            }
        });
        let first = banner
            .recv_timeout(WAIT)
            .expect("the server prints where it listens");
        let addr = first
            .split("listening on http://")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .trim()
            .to_owned();
        Self {
            child,
            base: format!("http://{addr}"),
            data_dir,
        }
    }

    fn listen_addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn client(&self) -> Client {
        Client::builder(&self.base)
            .with_bearer_token(ADMIN_KEY)
            .build()
            .expect("valid base URL")
    }

    async fn ready(self) -> Self {
        let client = self.client();
        let deadline = Instant::now() + WAIT;
        while client.health_ready().await.is_err() {
            assert!(Instant::now() < deadline, "the server did not turn ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self
    }

    /// Runs a CLI command against this server.
    fn cli(&self, args: &[&str]) -> Output {
        cli(&self.base, args, None)
    }

    fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        cli(&self.base, args, Some(stdin))
    }

    fn stop(mut self) -> Arc<TempDir> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Arc::clone(&self.data_dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .env("RUNNEL_URL", url)
        .env("RUNNEL_API_KEY", ADMIN_KEY)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runnel binary starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("the command ends")
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stream(name: &str) -> StreamName {
    StreamName::parse(name).expect("valid stream name")
}

fn json_event(event_type: &str, data: Value) -> NewEvent {
    NewEvent::json(event_type, &data).expect("serializable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_by_the_client_read_back_through_the_cli_as_json_lines() {
    let server = Server::start().ready().await;
    let client = server.client();
    let order = stream("order/o-1");
    let id = Uuid::now_v7();
    let events = vec![
        json_event("OrderPlaced", json!({"total": 42.5, "items": ["a"]}))
            .with_id(id)
            .with_metadata(&json!({"correlation_id": "c-9"}))
            .expect("serializable"),
        json_event("OrderPaid", json!(null)),
        NewEvent::binary("Receipt", vec![0, 1, 2, 255], "application/pdf"),
    ];
    let written = client
        .append(&order, ExpectedRevision::NoStream, &events)
        .await
        .expect("appended");
    assert_eq!((written.first_revision, written.last_revision), (0, 2));

    let output = server.cli(&["read", "order/o-1", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["id"], json!(id.to_string()));
    assert_eq!(lines[0]["type"], "OrderPlaced");
    assert_eq!(lines[0]["data"], json!({"total": 42.5, "items": ["a"]}));
    assert_eq!(lines[0]["metadata"], json!({"correlation_id": "c-9"}));
    assert_eq!(lines[1]["data"], Value::Null);
    assert!(lines[1].get("data").is_some(), "null data is still data");
    assert_eq!(lines[2]["data_base64"], "AAEC/w==");
    assert_eq!(lines[2]["content_type"], "application/pdf");
    let revisions: Vec<_> = lines.iter().map(|l| l["revision"].clone()).collect();
    assert_eq!(revisions, vec![json!(0), json!(1), json!(2)]);

    let backward = server.cli(&["read", "order/o-1", "--json", "--backward", "--limit", "2"]);
    let revisions: Vec<_> = stdout_lines(&backward)
        .iter()
        .map(|l| l["revision"].clone())
        .collect();
    assert_eq!(revisions, vec![json!(2), json!(1)]);

    let table = server.cli(&["read", "order/o-1"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("REVISION  POSITION  TYPE"), "{text}");
    assert!(text.contains("OrderPaid"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_by_the_cli_read_back_through_the_client() {
    let server = Server::start().ready().await;
    let client = server.client();

    let one = server.cli(&[
        "append",
        "order/o-2",
        "OrderPlaced",
        r#"{"total":1,"a":[1,2]}"#,
        "--expect",
        "no_stream",
        "--metadata",
        r#"{"by":"cli"}"#,
        "--json",
    ]);
    assert!(one.status.success(), "{}", stderr(&one));
    assert_eq!(stdout_lines(&one)[0]["last_revision"], 0);

    let stdin = "{\"type\":\"A\",\"data\":{\"n\":1}}\n\n{\"type\":\"B\",\"data\":{\"n\":2}}\n{\"type\":\"C\",\"data\":{\"n\":3}}\n";
    let batched = server.cli_with_stdin(
        &[
            "append",
            "order/o-2",
            "--expect",
            "0",
            "--batch",
            "2",
            "--json",
        ],
        stdin,
    );
    assert!(batched.status.success(), "{}", stderr(&batched));
    let results = stdout_lines(&batched);
    assert_eq!(results.len(), 2, "two appends of at most two events");
    assert_eq!(results[0]["first_revision"], 1);
    assert_eq!(results[1]["last_revision"], 3);

    let events: Vec<Event> = client
        .read_stream(&stream("order/o-2"), None)
        .try_collect()
        .await
        .expect("read");
    let types: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["OrderPlaced", "A", "B", "C"]);
    // The payload is kept as written, key order included.
    assert_eq!(
        events[0].data.as_ref().map(|d| d.get()),
        Some(r#"{"total":1,"a":[1,2]}"#)
    );
    assert_eq!(
        events[0].metadata_as::<Value>().expect("json"),
        Some(json!({"by": "cli"}))
    );
    let info = client
        .stream_info(&stream("order/o-2"))
        .await
        .expect("stream info");
    assert_eq!(info.revision, 3);

    let listed = server.cli(&["streams", "--json"]);
    assert_eq!(
        stdout_lines(&listed),
        vec![json!({"stream_type": "order", "streams": 1})]
    );
    let of_type = server.cli(&["streams", "order", "--json"]);
    assert_eq!(stdout_lines(&of_type)[0]["stream_id"], "o-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_exit_with_1_and_the_problem_code_on_stderr() {
    let server = Server::start().ready().await;
    let client = server.client();
    let placed = [
        "append",
        "order/o-3",
        "OrderPlaced",
        "{}",
        "--expect",
        "no_stream",
    ];
    assert!(server.cli(&placed).status.success());

    let conflict = server.cli(&placed);
    assert_eq!(conflict.status.code(), Some(1));
    assert!(
        stderr(&conflict).starts_with("error[wrong_expected_revision]: "),
        "{}",
        stderr(&conflict)
    );
    assert!(conflict.stdout.is_empty());

    let missing = server.cli(&["read", "order/none"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).starts_with("error[stream_not_found]: "));

    // The same answers, typed, through the client.
    let stale = client
        .append(
            &stream("order/o-3"),
            ExpectedRevision::Exact(Revision(5)),
            &[json_event("X", json!({}))],
        )
        .await;
    assert!(
        matches!(
            stale,
            Err(ClientError::WrongExpectedRevision {
                current: Some(0),
                ..
            })
        ),
        "{stale:?}"
    );
    let nowhere = client
        .append(
            &stream("order/o-none"),
            ExpectedRevision::Exists,
            &[json_event("X", json!({}))],
        )
        .await;
    assert!(
        matches!(
            nowhere,
            Err(ClientError::WrongExpectedRevision { current: None, .. })
        ),
        "{nowhere:?}"
    );
    let not_found = client.stream_info(&stream("order/none")).await;
    assert!(matches!(not_found, Err(ClientError::StreamNotFound { .. })));

    let id = Uuid::now_v7();
    let first = [json_event("X", json!(1)).with_id(id)];
    client
        .append(&stream("order/o-4"), ExpectedRevision::Any, &first)
        .await
        .expect("first");
    let elsewhere = client
        .append(&stream("order/o-5"), ExpectedRevision::Any, &first)
        .await;
    assert!(
        matches!(elsewhere, Err(ClientError::DuplicateEventId { .. })),
        "{elsewhere:?}"
    );

    let bad_type = server.cli(&["streams", ".bad"]);
    assert_eq!(bad_type.status.code(), Some(1));
    assert!(
        stderr(&bad_type).starts_with("error["),
        "{}",
        stderr(&bad_type)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_through_the_client_returns_the_original_result() {
    let server = Server::start().ready().await;
    let client = server.client();
    let events = [
        json_event("A", json!(1)).with_id(Uuid::now_v7()),
        json_event("B", json!(2)).with_id(Uuid::now_v7()),
    ];
    let order = stream("order/o-6");
    let first = client
        .append(&order, ExpectedRevision::NoStream, &events)
        .await
        .expect("first");
    let again = client
        .append(&order, ExpectedRevision::NoStream, &events)
        .await
        .expect("a retry of the same append");
    assert_eq!(first, again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_exits_with_3() {
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["read", "order/o-1"],
        vec!["append", "order/o-1", "A", "{}"],
        vec!["streams"],
        vec!["tail", "--from", "0"],
    ] {
        let output = cli(&url, &args, None);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).starts_with("error: "),
            "{}",
            stderr(&output)
        );
    }
    let client = Client::new(&url).expect("valid");
    let error = client.health_live().await.expect_err("nothing listens");
    assert!(error.is_transport(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_with_2_and_help_documents_the_exit_codes() {
    for args in [
        vec!["append", "no-slash", "A", "{}"],
        vec!["append", "order/o-1", "A", "{not json"],
        vec!["append", "order/o-1", "A", "{}", "--expect", "soon"],
        vec!["append", "order/o-1", "A"],
        vec!["tail", "--from", "beginning"],
    ] {
        let output = cli("http://127.0.0.1:9", &args, None);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let empty_stdin = cli("http://127.0.0.1:9", &["append", "order/o-1"], Some(""));
    assert_eq!(empty_stdin.status.code(), Some(2));
    for command in ["append", "read", "streams", "tail"] {
        let help = cli("http://127.0.0.1:9", &[command, "--help"], None);
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("Exit codes:"), "{command}: {text}");
        assert!(text.contains("error[<code>]"), "{command}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_streams_cross_page_boundaries_in_both_directions() {
    let server = Server::start().ready().await;
    let client = Client::builder(&server.base)
        .with_bearer_token(ADMIN_KEY)
        .page_size(2)
        .build()
        .expect("valid");
    let order = stream("order/paged");
    let events: Vec<_> = (0..5).map(|n| json_event("N", json!(n))).collect();
    client
        .append(&order, ExpectedRevision::Any, &events)
        .await
        .expect("appended");
    for id in ["b", "a", "c"] {
        client
            .append(
                &stream(&format!("cart/{id}")),
                ExpectedRevision::Any,
                &[json_event("Added", json!({}))],
            )
            .await
            .expect("appended");
    }

    let forward: Vec<u64> = client
        .read_stream(&order, None)
        .map_ok(|e| e.revision)
        .try_collect()
        .await
        .expect("read");
    assert_eq!(forward, vec![0, 1, 2, 3, 4]);
    let backward: Vec<u64> = client
        .read_stream_backward(&order, Some(3))
        .map_ok(|e| e.revision)
        .try_collect()
        .await
        .expect("read");
    assert_eq!(backward, vec![3, 2, 1, 0]);

    let carts: Vec<String> = client
        .list_streams("cart")
        .map_ok(|s| s.stream_id)
        .try_collect()
        .await
        .expect("list");
    assert_eq!(carts, ["a", "b", "c"]);
    let types: Vec<(String, u64)> = client
        .list_stream_types()
        .map_ok(|t| (t.stream_type, t.streams))
        .try_collect()
        .await
        .expect("list");
    assert_eq!(types, [("cart".to_owned(), 3), ("order".to_owned(), 1)]);

    let only_carts: Vec<String> = client
        .read_all(0, EventFilter::default().stream_type("cart"))
        .map_ok(|e| e.stream())
        .try_collect()
        .await
        .expect("read all");
    assert_eq!(only_carts, ["cart/b", "cart/a", "cart/c"]);
    let one_stream: Vec<u64> = client
        .read_all(0, EventFilter::default().stream(stream("cart/a")))
        .map_ok(|e| e.position)
        .try_collect()
        .await
        .expect("read all");
    assert_eq!(one_stream, vec![6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_ids_with_reserved_url_characters_round_trip() {
    let server = Server::start().ready().await;
    let client = server.client();
    let odd = stream("order/a b?c%d#é&x=1");
    client
        .append(
            &odd,
            ExpectedRevision::NoStream,
            &[json_event("A", json!(1))],
        )
        .await
        .expect("appended");
    let info = client.stream_info(&odd).await.expect("info");
    assert_eq!(info.stream_id, "a b?c%d#é&x=1");
    let output = server.cli(&["read", "order/a b?c%d#é&x=1", "--json"]);
    assert_eq!(stdout_lines(&output)[0]["stream_id"], "a b?c%d#é&x=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_tail_prints_stored_then_live_events_once_each() {
    let server = Server::start().ready().await;
    let client = server.client();
    let order = stream("order/tailed");
    client
        .append(
            &order,
            ExpectedRevision::Any,
            &[json_event("A", json!(0)), json_event("A", json!(1))],
        )
        .await
        .expect("appended");
    client
        .append(
            &stream("other/x"),
            ExpectedRevision::Any,
            &[json_event("A", json!("skip"))],
        )
        .await
        .expect("appended");

    let mut tail = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args([
            "tail",
            "--from",
            "0",
            "--stream-type",
            "order",
            "--count",
            "4",
            "--json",
        ])
        .env("RUNNEL_URL", &server.base)
        .env("RUNNEL_API_KEY", ADMIN_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail starts");
    let stdout = tail.stdout.take().expect("piped");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // The two stored events arrive first; then two live ones.
    for _ in 0..2 {
        lines.recv_timeout(WAIT).expect("a stored event");
    }
    client
        .append(
            &order,
            ExpectedRevision::Any,
            &[json_event("A", json!(2)), json_event("A", json!(3))],
        )
        .await
        .expect("appended");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = tail.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "tail did not stop after --count");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success());
    let rest: Vec<String> = lines.try_iter().collect();
    assert_eq!(rest.len(), 2, "{rest:?}");
    let data: Vec<Value> = rest
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["data"].clone())
        .collect();
    assert_eq!(data, vec![json!(2), json!(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_subscription_sees_every_event_once_while_others_append() {
    const WRITERS: u64 = 2;
    const APPENDS_PER_WRITER: u64 = 50;
    let server = Server::start().ready().await;
    let client = server.client();
    // Some history first, so the subscription switches from catch-up to live mid-run.
    client
        .append(
            &stream("order/w-0"),
            ExpectedRevision::Any,
            &[json_event("Seed", json!(0))],
        )
        .await
        .expect("seed");
    let subscription = client.subscribe(
        SubscribeFrom::BEGINNING,
        EventFilter::default().stream_type("order"),
    );
    let writers: Vec<_> = (1..=WRITERS)
        .map(|writer| {
            let client = client.clone();
            tokio::spawn(async move {
                let name = stream(&format!("order/w-{writer}"));
                for n in 0..APPENDS_PER_WRITER {
                    client
                        .append(
                            &name,
                            ExpectedRevision::Any,
                            &[json_event("Tick", json!(n))],
                        )
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    let total = 1 + WRITERS * APPENDS_PER_WRITER;
    let received: Vec<Event> = tokio::time::timeout(
        WAIT,
        subscription.take(total as usize).try_collect::<Vec<_>>(),
    )
    .await
    .expect("every event in time")
    .expect("no error");
    for writer in writers {
        writer.await.expect("writer");
    }
    let positions: Vec<u64> = received.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate: {positions:?}"
    );
    for writer in 1..=WRITERS {
        let revisions: Vec<u64> = received
            .iter()
            .filter(|e| e.stream_id == format!("w-{writer}"))
            .map(|e| e.revision)
            .collect();
        assert_eq!(revisions, (0..APPENDS_PER_WRITER).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_subscription_resumes_after_the_server_restarts() {
    let server = Server::start().ready().await;
    let client = server.client();
    let order = stream("order/restart");
    let before: Vec<_> = (0..3).map(|n| json_event("Before", json!(n))).collect();
    client
        .append(&order, ExpectedRevision::Any, &before)
        .await
        .expect("appended");
    let mut subscription = client.subscribe(SubscribeFrom::BEGINNING, EventFilter::default());
    for expected in 0..3 {
        let event = tokio::time::timeout(WAIT, subscription.try_next())
            .await
            .expect("in time")
            .expect("no error")
            .expect("an event");
        assert_eq!(event.revision, expected);
    }

    // Kill the server under the open subscription and start it again on the same port.
    let listen = server.listen_addr().to_owned();
    let data_dir = server.stop();
    let restarted = Server::start_on(data_dir, &listen).ready().await;
    let after: Vec<_> = (0..3).map(|n| json_event("After", json!(n))).collect();
    restarted
        .client()
        .append(&order, ExpectedRevision::Exact(Revision(2)), &after)
        .await
        .expect("appended after the restart");

    let mut revisions = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(WAIT, subscription.try_next())
            .await
            .expect("in time")
            .expect("the subscription resumed")
            .expect("an event");
        revisions.push(event.revision);
    }
    assert_eq!(
        revisions,
        vec![3, 4, 5],
        "resumed right after the last event, nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_answer_through_the_client() {
    let server = Server::start().ready().await;
    let client = server.client();
    client.health_live().await.expect("live");
    client.health_ready().await.expect("ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_tail_exits_with_0() {
    let server = Server::start().ready().await;
    let mut tail = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["tail"])
        .env("RUNNEL_URL", &server.base)
        .env("RUNNEL_API_KEY", ADMIN_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tail starts");
    let mut header = String::new();
    BufReader::new(tail.stdout.take().expect("piped"))
        .read_line(&mut header)
        .expect("the header line");
    assert!(header.contains("POSITION"), "{header}");
    let interrupted = Command::new("kill")
        .args(["-INT", &tail.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(interrupted.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = tail.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "tail did not stop on SIGINT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
}
