//! `TestServer`: the real `runnel serve` on a free port, killed when dropped.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use serde_json::{Value, json};

/// How long the server may take to print its address and turn ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The bootstrap admin key every test server gets (as `RUNNEL_ADMIN_KEY`), and that
/// [`TestServer::http`] sends with every request.
pub(crate) const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789abcdef";

/// Settings a test server must not pick up from the environment the tests run in.
/// Test servers write 16 MiB segments instead of the default 64 MiB: a segment and its spare
/// are zero-filled on disk, and a hundred servers per run at the default size write gigabytes
/// for nothing. 16 MiB still holds the largest append the default limits allow.
const TEST_SEGMENT_BYTES: &str = "16777216";

/// Flags after which a test chooses its own engine sizing (or no embedded engine at all).
const SIZING_FLAGS: [&str; 4] = [
    "--segment-bytes",
    "--max-append-bytes",
    "--max-events-per-append",
    "--postgres",
];

/// Every `RUNNEL_*` variable of the environment the tests run in: a test server must not pick
/// up a developer's settings (a data directory, a database URL, a key), so none reaches it.
fn isolated_variables() -> impl Iterator<Item = String> {
    std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("RUNNEL_"))
}

pub(crate) struct TestServer {
    child: Child,
    pub(crate) base: String,
    pub(crate) data_dir: PathBuf,
    /// Sends `ADMIN_KEY` with every request (unless the server was started without it).
    pub(crate) http: reqwest::Client,
    /// The key the helpers (`get`, `post`, `subscribe`, …) send; `None`: no key.
    pub(crate) key: Option<String>,
    /// A client with no default key, for requests that choose their own.
    anonymous: reqwest::Client,
    /// The lines the server printed on start.
    pub(crate) banner: Vec<String>,
    /// What the server printed after the banner, line by line.
    stdout: std::sync::Mutex<mpsc::Receiver<String>>,
    /// From spawning the process to the first 200 of `/health/ready`.
    pub(crate) startup: Duration,
    log_file: PathBuf,
    /// Owns the temporary directory when the server made its own.
    _temp: Option<tempfile::TempDir>,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub(crate) async fn start_with(args: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut server = Self::start_in(&data_dir, args).await;
        server._temp = Some(temp);
        server
    }

    /// Starts with `http` as the test's client (one that trusts a test CA, say), in a fresh
    /// data directory.
    pub(crate) async fn start_with_client(args: &[&str], http: reqwest::Client) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut server = Self::launch(&data_dir, args, Some(http), Some(ADMIN_KEY)).await;
        server._temp = Some(temp);
        server
    }

    /// Starts on `data_dir`, which outlives the server (for restarts).
    pub(crate) async fn start_in(data_dir: &Path, args: &[&str]) -> Self {
        Self::launch(data_dir, args, None, Some(ADMIN_KEY)).await
    }

    /// Starts on `data_dir` with no admin key configured (so a first start generates one), and
    /// with helpers that send no key until the test sets [`Self::key`].
    pub(crate) async fn start_without_admin_key(data_dir: &Path, args: &[&str]) -> Self {
        Self::launch(data_dir, args, None, None).await
    }

    async fn launch(
        data_dir: &Path,
        args: &[&str],
        http: Option<reqwest::Client>,
        admin_key: Option<&str>,
    ) -> Self {
        let log_file = data_dir.with_extension(format!("log-{}", unique()));
        let log = std::fs::File::create(&log_file).expect("log file");
        let spawned = Instant::now();
        let mut command = Command::new(env!("CARGO_BIN_EXE_runnel"));
        for variable in isolated_variables() {
            command.env_remove(variable);
        }
        let mut child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-level",
                "info,runnel_server=debug",
            ])
            .args(args)
            .args(
                (!args.iter().any(|arg| SIZING_FLAGS.contains(arg)))
                    .then_some(["--segment-bytes", TEST_SEGMENT_BYTES])
                    .into_iter()
                    .flatten(),
            )
            .envs(admin_key.map(|key| ("RUNNEL_ADMIN_KEY", key)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("the runnel binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let banner = read_banner(&lines_rx, &mut child, &log_file);
        // `http://…` or `https://…`
        let base = banner[0]
            .split("listening on ")
            .nth(1)
            .expect("the first line names the address")
            .trim()
            .to_owned();
        let mut server = Self {
            child,
            base,
            data_dir: data_dir.to_owned(),
            http: http.unwrap_or_else(|| {
                let mut headers = reqwest::header::HeaderMap::new();
                if let Some(key) = admin_key {
                    headers.insert(
                        reqwest::header::AUTHORIZATION,
                        format!("Bearer {key}").parse().expect("header value"),
                    );
                }
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .default_headers(headers)
                    .build()
                    .expect("client")
            }),
            key: admin_key.map(str::to_owned),
            anonymous: anonymous_client(),
            banner,
            stdout: std::sync::Mutex::new(lines_rx),
            startup: Duration::ZERO,
            log_file,
            _temp: None,
        };
        server.wait_ready().await;
        server.startup = spawned.elapsed();
        server
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(response) = self.http.get(self.url("/health/ready")).send().await
                && response.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready in time; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// A request to `path` with the server's key (when it has one).
    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// A request to `path` with `key`, or with no key at all: not even the client's default.
    pub(crate) fn request_as(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.anonymous.request(method, self.url(path));
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// The next line the server printed after its banner, if one comes in time.
    pub(crate) fn next_stdout_line(&self, within: Duration) -> Option<String> {
        let lines = self.stdout.lock().expect("stdout lock");
        lines.recv_timeout(within).ok()
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("GET sent")
    }

    pub(crate) async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST sent")
    }

    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self.post(path, body.to_string()).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Appends and expects success; returns the 200 body.
    pub(crate) async fn append(&self, stream: &str, body: Value) -> Value {
        let (status, answer) = self
            .post_json(&format!("/streams/{stream}/events"), &body)
            .await;
        assert_eq!(status, 200, "append to {stream}: {answer}");
        answer
    }

    /// Appends `count` JSON events of type `event_type` with `{"n": i}` data.
    pub(crate) async fn append_n(&self, stream: &str, event_type: &str, count: usize) -> Value {
        let events: Vec<Value> = (0..count)
            .map(|n| json!({"type": event_type, "data": {"n": n}}))
            .collect();
        self.append(stream, json!({"events": events})).await
    }

    pub(crate) async fn subscribe(&self, query: &str, last_event_id: Option<u64>) -> SseReader {
        let mut request = self.request(reqwest::Method::GET, &format!("/subscribe{query}"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.expect("subscribe sent");
        assert_eq!(response.status(), 200, "subscribe{query}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseReader::new(response)
    }

    /// Sends SIGTERM and waits for the exit.
    pub(crate) fn terminate(&mut self, within: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        self.wait_exit(within)
    }

    pub(crate) fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's resident memory, in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_file);
    }
}

fn read_banner(lines: &mpsc::Receiver<String>, child: &mut Child, log_file: &Path) -> Vec<String> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut banner = Vec::new();
    while banner.len() < 3 {
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => banner.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "the server exited with {status} before it listened; log:\n{}",
                        std::fs::read_to_string(log_file).unwrap_or_default()
                    );
                }
                assert!(Instant::now() < deadline, "no banner in time: {banner:?}");
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "the server closed stdout; log:\n{}",
                std::fs::read_to_string(log_file).unwrap_or_default()
            ),
        }
    }
    banner
}

/// A client that sends no key (the default one of [`TestServer::http`] does).
fn anonymous_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One thing read from an SSE stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sse {
    Event { id: u64, data: Value },
    Comment(String),
}

/// Reads Server-Sent Events from a response body, at the test's pace.
pub(crate) struct SseReader {
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: Vec<u8>,
}

impl SseReader {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
        }
    }

    /// The next message or comment; `None` when the stream ended or nothing came in time.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = find_blank_line(&self.buffer) {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                return Some(parse_block(&block[..end]));
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.extend_from_slice(&chunk),
                Ok(Some(Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    /// The next event, skipping comments.
    pub(crate) async fn next_event(&mut self, within: Duration) -> Option<(u64, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await? {
                Sse::Event { id, data } => return Some((id, data)),
                Sse::Comment(_) => continue,
            }
        }
    }

    /// Collects `count` events (failing the test if they do not come in time).
    pub(crate) async fn events(&mut self, count: usize, within: Duration) -> Vec<(u64, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Some(event) => out.push(event),
                None => panic!("only {} of {count} events arrived", out.len()),
            }
        }
        out
    }
}

fn find_blank_line(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|w| w == b"\n\n")
}

fn parse_block(block: &[u8]) -> Sse {
    let text = std::str::from_utf8(block).expect("SSE is UTF-8");
    let mut id = None;
    let mut data = None;
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            return Sse::Comment(comment.trim().to_owned());
        }
        if let Some(value) = line.strip_prefix("id: ") {
            id = Some(value.parse().expect("numeric id"));
        } else if let Some(value) = line.strip_prefix("data: ") {
            assert!(
                data.is_none(),
                "an event's JSON must be on one data line: {text}"
            );
            data = Some(serde_json::from_str(value).expect("data is JSON"));
        } else {
            panic!("unexpected SSE line {line:?}");
        }
    }
    Sse::Event {
        id: id.expect("every event has an id"),
        data: data.expect("every event has data"),
    }
}

/// Asserts a problem+json answer with `status` and `code`; returns its body.
pub(crate) async fn expect_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let text = response.text().await.expect("body");
    assert_eq!(got, status, "status of {text}");
    assert_eq!(content_type, "application/problem+json", "{text}");
    let body: Value = serde_json::from_str(&text).expect("problem body is JSON");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    for member in ["title", "detail"] {
        assert!(body[member].is_string(), "{member} missing in {body}");
    }
    body
}
