//! Failures on the PostgreSQL engine, against the real binary and a real PostgreSQL:
//!
//! - a consumer group served by two nodes over one database: every event acknowledged exactly
//!   once, and a node killed with -9 while it holds leases has them delivered by the other;
//! - the database itself stopped and started again under running appends, on a private
//!   cluster of this test's own (initdb + pg_ctl), so the shared server stays undisturbed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{ADMIN_KEY, TestServer};
use crate::postgres::{Schema, migrate, text};

/// The longest any one request may take before the test calls it hung. Generous on purpose:
/// it is a bound, not a measurement.
const HUNG_AFTER: Duration = Duration::from_secs(10);

/// One node's HTTP API, cloneable into tasks, every request bounded by [`HUNG_AFTER`].
#[derive(Clone)]
struct Node {
    http: reqwest::Client,
    base: String,
}

impl Node {
    fn of(server: &TestServer) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(HUNG_AFTER)
                .build()
                .expect("client"),
            base: server.base.clone(),
        }
    }

    /// Status, content type and JSON body (`Null` when the body is not JSON).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<(u16, String, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await?;
        Ok((
            status,
            content_type,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        ))
    }

    /// A call that must answer in time and with `status`.
    async fn expect(&self, method: Method, path: &str, body: Option<&Value>, status: u16) -> Value {
        let (got, _, answer) = self
            .call(method.clone(), path, body)
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        assert_eq!(got, status, "{method} {path}: {answer}");
        answer
    }
}

// ----- a consumer group over two nodes ------------------------------------------------------

/// One delivery a consumer received.
#[derive(Debug, Clone)]
struct Delivered {
    id: String,
    delivery: u64,
    receipt: String,
}

impl Node {
    async fn create_group(&self, name: &str, ack_timeout_ms: u64) {
        let config = json!({"start": "beginning", "ack_timeout_ms": ack_timeout_ms});
        let (status, _, answer) = self
            .call(
                Method::PUT,
                &format!("/subscriptions/{name}"),
                Some(&config),
            )
            .await
            .expect("PUT subscription");
        assert_eq!(status, 201, "{answer}");
    }

    /// Leases up to `max`; `None` when the group was contended (another node kept changing it
    /// first: 503 `subscription_contended`, which a consumer retries).
    async fn receive(&self, group: &str, max: u64, wait_ms: u64) -> Option<Vec<Delivered>> {
        let body = json!({"max": max, "wait_ms": wait_ms});
        let (status, _, answer) = self
            .call(
                Method::POST,
                &format!("/subscriptions/{group}/receive"),
                Some(&body),
            )
            .await
            .unwrap_or_else(|error| panic!("receive from {group}: {error}"));
        if status == 503 && answer["code"] == "subscription_contended" {
            return None;
        }
        assert_eq!(status, 200, "receive: {answer}");
        let messages = answer["messages"].as_array().expect("messages");
        Some(
            messages
                .iter()
                .map(|message| Delivered {
                    id: message["event"]["id"].as_str().expect("id").to_owned(),
                    delivery: message["delivery"].as_u64().expect("delivery"),
                    receipt: message["receipt"].as_str().expect("receipt").to_owned(),
                })
                .collect(),
        )
    }

    /// Acknowledges `messages`, retrying a contended group; every receipt must be known.
    async fn ack_all(&self, group: &str, messages: &[Delivered]) {
        let receipts: Vec<&str> = messages.iter().map(|m| m.receipt.as_str()).collect();
        let body = json!({"receipts": receipts});
        let deadline = Instant::now() + HUNG_AFTER;
        loop {
            let (status, _, answer) = self
                .call(
                    Method::POST,
                    &format!("/subscriptions/{group}/ack"),
                    Some(&body),
                )
                .await
                .unwrap_or_else(|error| panic!("ack on {group}: {error}"));
            if status == 503 && answer["code"] == "subscription_contended" {
                assert!(Instant::now() < deadline, "acks stayed contended");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            assert_eq!(status, 200, "ack: {answer}");
            assert_eq!(
                answer,
                json!({"acked": messages.len(), "unknown": []}),
                "every lease in flight is acknowledged, on whichever node"
            );
            return;
        }
    }

    async fn group_status(&self, group: &str) -> Value {
        self.expect(Method::GET, &format!("/subscriptions/{group}"), None, 200)
            .await["status"]
            .clone()
    }

    /// Appends `count` events to each of `streams` streams `job/j-<n>`; returns their ids.
    async fn append_jobs(&self, streams: usize, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(streams * count);
        for stream in 0..streams {
            let events: Vec<Value> = (0..count)
                .map(|n| {
                    let id = uuid::Uuid::now_v7().to_string();
                    ids.push(id.clone());
                    json!({"id": id, "type": "Job", "data": {"n": n}})
                })
                .collect();
            self.expect(
                Method::POST,
                &format!("/streams/job/j-{stream}/events"),
                Some(&json!({"events": events})),
                200,
            )
            .await;
        }
        ids
    }
}

/// Receives and acknowledges until a receive comes back empty; returns what it acknowledged.
/// With an ack timeout longer than the test, nothing is delivered twice, so an empty receive
/// means everything is leased or done.
async fn consume_until_empty(node: Node, group: &'static str) -> Vec<Delivered> {
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        assert!(Instant::now() < deadline, "consumption did not finish");
        let Some(messages) = node.receive(group, 10, 300).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if messages.is_empty() {
            return acked;
        }
        node.ack_all(group, &messages).await;
        acked.extend(messages);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_on_two_nodes_acknowledges_every_event_exactly_once() {
    const GROUP: &str = "shared";
    let schema = Schema::migrated().await;
    let a_server = schema.serve().await;
    let b_server = schema.serve().await;
    let (a, b) = (Node::of(&a_server), Node::of(&b_server));
    // Longer than the test: any second delivery would be a second lease, not a retry.
    a.create_group(GROUP, 600_000).await;
    let mut ids = a.append_jobs(5, 20).await;
    ids.extend(b.append_jobs(5, 20).await);

    // B last read the group before A leased: its lease must not be one of A's, and each node
    // acknowledges the other's receipts.
    let from_a = a.receive(GROUP, 10, 0).await.expect("uncontended");
    let from_b = b.receive(GROUP, 10, 0).await.expect("uncontended");
    assert_eq!((from_a.len(), from_b.len()), (10, 10));
    let first: HashSet<&str> = from_a.iter().map(|m| m.id.as_str()).collect();
    assert!(
        from_b.iter().all(|m| !first.contains(m.id.as_str())),
        "B leased an event A holds"
    );
    b.ack_all(GROUP, &from_a).await;
    a.ack_all(GROUP, &from_b).await;

    // Then two consumers on each node compete for the rest.
    let consumers = [
        tokio::spawn(consume_until_empty(a.clone(), GROUP)),
        tokio::spawn(consume_until_empty(a.clone(), GROUP)),
        tokio::spawn(consume_until_empty(b.clone(), GROUP)),
        tokio::spawn(consume_until_empty(b.clone(), GROUP)),
    ];
    let mut acked: Vec<Delivered> = from_a.into_iter().chain(from_b).collect();
    for consumer in consumers {
        acked.extend(consumer.await.expect("consumer"));
    }

    let mut times: HashMap<&str, usize> = HashMap::new();
    for message in &acked {
        assert_eq!(message.delivery, 1, "{message:?} was delivered before");
        *times.entry(message.id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "acknowledged more than once: {twice:?}");
    let expected: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let got: HashSet<&str> = times.keys().copied().collect();
    assert_eq!(got, expected, "every event, and nothing else");
    for node in [&a, &b] {
        let status = node.group_status(GROUP).await;
        assert_eq!(status["delivered"], ids.len(), "{status}");
        assert_eq!(status["in_flight"], 0, "{status}");
        assert_eq!(status["pending"], 0, "{status}");
    }
    drop((a_server, b_server));
    schema.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_leases_of_a_node_killed_with_9_are_delivered_by_the_other() {
    const GROUP: &str = "failover";
    const ACK_TIMEOUT_MS: u64 = 2_000;
    let schema = Schema::migrated().await;
    let mut a_server = schema.serve().await;
    let b_server = schema.serve().await;
    let (a, b) = (Node::of(&a_server), Node::of(&b_server));
    a.create_group(GROUP, ACK_TIMEOUT_MS).await;
    let ids = a.append_jobs(6, 10).await;

    // Both nodes consume a little, with acks; then A leases more and dies holding them.
    let mut acked_before: Vec<Delivered> = Vec::new();
    for node in [&a, &b] {
        let messages = node.receive(GROUP, 10, 0).await.expect("uncontended");
        assert_eq!(messages.len(), 10);
        node.ack_all(GROUP, &messages).await;
        acked_before.extend(messages);
    }
    let held = a.receive(GROUP, 15, 0).await.expect("uncontended");
    assert_eq!(held.len(), 15);
    let status = Command::new("kill")
        .args(["-9", &a_server.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    a_server.wait_exit(Duration::from_secs(10));
    drop(a_server);

    // B drains the group: the rest at once, A's leases once they run out.
    let held_ids: HashSet<&str> = held.iter().map(|m| m.id.as_str()).collect();
    let mut after: Vec<Delivered> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while acked_before.len() + after.len() < ids.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} events were acknowledged",
            acked_before.len() + after.len(),
            ids.len()
        );
        let Some(messages) = b.receive(GROUP, 10, 1_000).await else {
            continue;
        };
        if messages.is_empty() {
            continue;
        }
        b.ack_all(GROUP, &messages).await;
        after.extend(messages);
    }
    // And nothing more comes, even after another ack timeout.
    let extra = b
        .receive(GROUP, 10, ACK_TIMEOUT_MS + 500)
        .await
        .unwrap_or_default();
    assert!(extra.is_empty(), "delivered again: {extra:?}");

    let before: HashSet<&str> = acked_before.iter().map(|m| m.id.as_str()).collect();
    let again: Vec<&Delivered> = after
        .iter()
        .filter(|m| before.contains(m.id.as_str()))
        .collect();
    assert!(
        again.is_empty(),
        "acknowledged, then delivered again: {again:?}"
    );
    for message in &after {
        let expected = if held_ids.contains(message.id.as_str()) {
            2
        } else {
            1
        };
        assert_eq!(message.delivery, expected, "{message:?}");
    }
    let redelivered: HashSet<&str> = after
        .iter()
        .filter(|m| m.delivery == 2)
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(redelivered, held_ids, "B delivered every lease A held");
    let all: Vec<&str> = acked_before
        .iter()
        .chain(&after)
        .map(|m| m.id.as_str())
        .collect();
    let distinct: HashSet<&str> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an event was acknowledged twice");
    assert_eq!(
        distinct,
        ids.iter().map(String::as_str).collect::<HashSet<_>>()
    );
    let status = b.group_status(GROUP).await;
    assert_eq!(status["delivered"], ids.len(), "{status}");
    assert_eq!(status["in_flight"], 0, "{status}");
    drop(b_server);
    schema.drop_now().await;
}

// ----- the database restarting under load ---------------------------------------------------

/// A PostgreSQL cluster of the test's own, in a temporary directory on a free port; stopped
/// (immediately) when dropped. As root, its programs run as the `postgres` user, since
/// PostgreSQL refuses to run as root.
pub(crate) struct PrivateCluster {
    bin_dir: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    run_as: Option<&'static str>,
    /// Server settings of the test's own (`-c name=value …`), added at every start.
    settings: String,
}

impl PrivateCluster {
    /// The newest `/usr/lib/postgresql/<version>/bin` with initdb and pg_ctl.
    pub(crate) fn bin_dir() -> Option<PathBuf> {
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
                    .then_some((version, bin))
            })
            .collect();
        found.sort();
        found.pop().map(|(_, bin)| bin)
    }

    fn start(bin_dir: PathBuf) -> Self {
        let cluster = Self::initialised(bin_dir);
        cluster.start_again();
        cluster
    }

    /// A cluster created but not started yet, so that files it needs (a certificate) can be
    /// put in [`Self::dir`] first; start it with [`Self::start_with`].
    pub(crate) fn initialised(bin_dir: PathBuf) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let status = Command::new("chown")
                .arg(user)
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot give the cluster's directory to {user}"
            );
        }
        let port = free_port();
        let cluster = Self {
            bin_dir,
            dir,
            port,
            run_as,
            settings: String::new(),
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster
    }

    /// Starts the cluster with `settings` (`-c name=value …`) besides the usual ones.
    pub(crate) fn start_with(&mut self, settings: &str) {
        self.settings = settings.to_owned();
        self.start_again();
    }

    /// The cluster's own temporary directory (its data directory is inside).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Makes `path` the server's own, as PostgreSQL wants of its key file.
    pub(crate) fn give_to_server(&self, path: &Path) {
        if let Some(user) = self.run_as {
            let status = Command::new("chown")
                .arg(user)
                .arg(path)
                .status()
                .expect("chown runs");
            assert!(status.success(), "cannot give {} to {user}", path.display());
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    /// `host:port` of the server.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@{}/postgres", self.address())
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    fn start_again(&self) {
        // fsync off: only the server process stops in this test, never the machine, so what
        // a commit wrote is in the kernel's cache either way; the test runs faster for it.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60 \
             -c shared_buffers=16MB {}",
            self.port,
            self.dir.path().display(),
            self.settings
        );
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.data_dir()),
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops the cluster: `immediate` is a crash (the server's processes end at once, and the
    /// next start recovers from the WAL); `fast` disconnects every client and shuts down.
    fn stop(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &["-D", path_str(&self.data_dir()), "-m", mode, "-w", "stop"],
        );
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin_dir.join(tool);
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("running {}: {error}", program.display()));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}",
            text(&output)
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let program = self.bin_dir.join("pg_ctl");
        let data = self.data_dir();
        let mut command = match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let _ = command
            .args(["-D", path_str(&data), "-m", "immediate", "-w", "stop"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

pub(crate) fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// What the writers of the restart test saw.
#[derive(Default)]
struct Tally {
    /// Per writer, the ids whose append was answered 200, in the order they were sent, with
    /// the revision the answer gave.
    acknowledged: Mutex<HashMap<usize, Vec<(String, u64)>>>,
    /// Appends answered 503 (then sent again with the same ids).
    refused: AtomicUsize,
    stop: AtomicBool,
}

/// Appends one event at a time to `ledger/w-<writer>`, each with an id of its own; an append
/// answered 503 is sent again with the same id until it is answered 200. Anything else — a
/// request that hangs past [`HUNG_AFTER`], a 500, a 503 that is not problem+json — fails the
/// test.
async fn write_until_stopped(node: Node, writer: usize, tally: Arc<Tally>) {
    let path = format!("/streams/ledger/w-{writer}/events");
    let mut sequence = 0_u64;
    while !tally.stop.load(Ordering::Relaxed) {
        let id = uuid::Uuid::now_v7().to_string();
        let body = json!({"events": [{"id": id, "type": "Entry", "data": {"writer": writer, "n": sequence}}]});
        loop {
            let sent = Instant::now();
            let (status, content_type, answer) = node
                .call(Method::POST, &path, Some(&body))
                .await
                .unwrap_or_else(|error| {
                    panic!(
                        "append {id} of writer {writer} got no answer within {HUNG_AFTER:?} \
                             (after {:?}): {error}",
                        sent.elapsed()
                    )
                });
            match status {
                200 => {
                    let revision = answer["first_revision"].as_u64().expect("revision");
                    let mut acknowledged = tally.acknowledged.lock().expect("lock");
                    acknowledged
                        .entry(writer)
                        .or_default()
                        .push((id.clone(), revision));
                    break;
                }
                503 => {
                    assert_eq!(content_type, "application/problem+json", "{answer}");
                    assert_eq!(answer["code"], "store_unavailable", "{answer}");
                    tally.refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("append answered {other}: {answer}"),
            }
        }
        sequence += 1;
    }
}

/// Polls `/health/ready` until it answers `want` (200 or 503), within `within`.
async fn wait_readiness(node: &Node, want: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, content_type, answer) = node
            .call(Method::GET, "/health/ready", None)
            .await
            .unwrap_or_else(|error| panic!("/health/ready hung: {error}"));
        if status == want {
            if want == 503 {
                assert_eq!(content_type, "application/problem+json", "{answer}");
            }
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "/health/ready still answers {status} after {within:?}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `done` holds, within `within`, or fails the test naming `what`.
async fn wait_until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every event of `ledger/w-<writer>`, as `(revision, id)`, read back in pages.
async fn read_ledger(node: &Node, writer: usize) -> Vec<(u64, String)> {
    let mut events = Vec::new();
    let mut from = 0_u64;
    loop {
        let page = node
            .expect(
                Method::GET,
                &format!("/streams/ledger/w-{writer}/events?from={from}&limit=1000"),
                None,
                200,
            )
            .await;
        for event in page["events"].as_array().expect("events") {
            events.push((
                event["revision"].as_u64().expect("revision"),
                event["id"].as_str().expect("id").to_owned(),
            ));
        }
        match page["next"].as_u64() {
            Some(next) => from = next,
            None => return events,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_under_appends_fails_fast_recovers_and_loses_or_doubles_nothing() {
    const WRITERS: usize = 8;
    let Some(bin_dir) = PrivateCluster::bin_dir() else {
        eprintln!(
            "\n######## SKIPPED postgres_restart_under_appends…: no PostgreSQL binaries \
             (initdb, pg_ctl) in /usr/lib/postgresql/*/bin; install the postgresql package to \
             run this test ########\n"
        );
        return;
    };
    let cluster = PrivateCluster::start(bin_dir);
    let migrated = migrate(&cluster.url());
    assert!(migrated.status.success(), "{}", text(&migrated));
    let server = TestServer::start_with(&[
        "--postgres",
        &cluster.url(),
        // Short bounds, so that the outage is noticed and left quickly.
        "--postgres-connect-timeout-ms",
        "1000",
        "--postgres-statement-timeout-ms",
        "1000",
        "--postgres-pool-wait-timeout-ms",
        "1000",
    ])
    .await;
    let node = Node::of(&server);
    let tally = Arc::new(Tally::default());
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            tokio::spawn(write_until_stopped(
                node.clone(),
                writer,
                Arc::clone(&tally),
            ))
        })
        .collect();
    let acknowledged = |tally: &Tally| -> usize {
        tally
            .acknowledged
            .lock()
            .expect("lock")
            .values()
            .map(Vec::len)
            .sum()
    };
    wait_until(
        "20 appends before the stop",
        Duration::from_secs(20),
        || acknowledged(&tally) >= 20,
    )
    .await;

    // A crash (every server process ends at once, with appends in flight), then a fast
    // shutdown (the server disconnects every client first); each time the database comes
    // back without anyone touching Runnel.
    for mode in ["immediate", "fast"] {
        cluster.stop(mode);
        let not_ready = wait_readiness(&node, 503, Duration::from_secs(15)).await;
        assert_eq!(not_ready["code"], "not_ready", "{not_ready}");
        let (status, content_type, read) = node
            .call(Method::GET, "/streams/ledger/w-0/events", None)
            .await
            .expect("a read during the outage answers in time");
        assert_eq!(status, 503, "{read}");
        assert_eq!(content_type, "application/problem+json", "{read}");
        assert_eq!(read["code"], "store_unavailable", "{read}");
        let refused_then = tally.refused.load(Ordering::Relaxed);
        wait_until(
            "appends refused with 503 during the outage",
            Duration::from_secs(15),
            || tally.refused.load(Ordering::Relaxed) >= refused_then + WRITERS,
        )
        .await;

        cluster.start_again();
        let ready = wait_readiness(&node, 200, Duration::from_secs(30)).await;
        assert_eq!(ready["status"], "ready", "{ready}");
        let before = acknowledged(&tally);
        wait_until(
            "20 appends after the database came back",
            Duration::from_secs(30),
            || acknowledged(&tally) >= before + 20,
        )
        .await;
    }
    tally.stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }

    // Every acknowledged append once, in the order acknowledged, with gapless revisions.
    let acknowledged = std::mem::take(&mut *tally.acknowledged.lock().expect("lock"));
    for writer in 0..WRITERS {
        let sent = acknowledged.get(&writer).cloned().unwrap_or_default();
        let stored = read_ledger(&node, writer).await;
        let revisions: Vec<u64> = stored.iter().map(|(revision, _)| *revision).collect();
        let gapless: Vec<u64> = (0..stored.len() as u64).collect();
        assert_eq!(revisions, gapless, "writer {writer}: revisions have a gap");
        let stored_ids: Vec<&str> = stored.iter().map(|(_, id)| id.as_str()).collect();
        let sent_ids: Vec<&str> = sent.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            stored_ids, sent_ids,
            "writer {writer}: the stream is not exactly what was acknowledged"
        );
        for (index, (_, revision)) in sent.iter().enumerate() {
            assert_eq!(
                *revision, index as u64,
                "writer {writer}: answered revision"
            );
        }
    }
    let refused = tally.refused.load(Ordering::Relaxed);
    assert!(refused > 0, "no append was refused");
    eprintln!(
        "database restarts: {} appends acknowledged, {refused} answered 503 and sent again",
        acknowledged.values().map(Vec::len).sum::<usize>(),
    );
    drop(server);
    drop(cluster);
}
