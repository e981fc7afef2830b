//! Live subscriptions: `GET /subscribe` over server-sent events, as an async stream that
//! survives dropped connections.
//!
//! The resume point is the position of the last event handed to the consumer, or a later id
//! the server sent without data (to move a filtered reader past events it skipped). A
//! reconnection asks for everything after it, both as `from` and as the standard
//! `Last-Event-ID` header, and anything at or below the last delivered position that still
//! arrives is dropped. So the consumer sees each event once, in position order, however often
//! the connection drops.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt, stream};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};

use crate::client::Client;
use crate::error::ClientError;
use crate::model::{Event, EventFilter, SubscribeFrom};
use crate::sse::{SseItem, SseParser};

/// How a subscription reconnects. A connection counts as failed when it cannot be opened, or
/// when it ends before it delivered an event or stayed up for [`STABLE_CONNECTION`]; after
/// `max_attempts` failures in a row the subscription ends with the last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub max_attempts: u32,
    /// The wait before the first reconnection; it doubles with every failure after that.
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Whether a subscription whose very first connection fails retries it too. `false` suits
    /// interactive tools, where a wrong URL should be reported at once.
    pub retry_first_connection: bool,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            retry_first_connection: true,
        }
    }
}

impl ReconnectPolicy {
    /// Never reconnect: the first dropped connection ends the subscription with an error.
    pub fn never() -> Self {
        Self {
            max_attempts: 0,
            ..Self::default()
        }
    }

    /// The wait before reconnection attempt `attempt` (1-based), with up to a quarter of it
    /// added at random so that many clients of a restarted server do not all return at once.
    fn delay(&self, attempt: u32, server_retry: Option<Duration>) -> Duration {
        let base = server_retry.unwrap_or(self.initial_delay);
        let doubled = base.saturating_mul(1 << attempt.saturating_sub(1).min(16));
        let delay = doubled.min(self.max_delay);
        let jitter_range = delay.as_millis() as u64 / 4;
        let jitter = match jitter_range {
            0 => 0,
            range => {
                u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |since| since.subsec_nanos()),
                ) % range
            }
        };
        delay + Duration::from_millis(jitter)
    }
}

/// A connection that stayed up this long was healthy, even if it delivered no event (a quiet
/// filter): its end starts a fresh series of attempts. Shorter ones that delivered nothing
/// count as failures, so a server that accepts and at once hangs up is not retried forever.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(5);

/// A live subscription: a [`Stream`] of events that ends only with an error the subscription
/// cannot recover from (or when dropped). Create one with [`Client::subscribe`].
pub struct Subscription {
    events: BoxStream<'static, Result<Event, ClientError>>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(client: Client, from: SubscribeFrom, filter: EventFilter) -> Self {
        let state = Connection {
            parser: SseParser::new(client.config.max_message_bytes),
            client,
            from,
            filter,
            response: None,
            connected_at: Instant::now(),
            healthy: false,
            ever_connected: false,
            closing_reason: None,
            pending: VecDeque::new(),
            delivered: None,
            failures: 0,
            server_retry: None,
            finished: false,
        };
        let events = stream::unfold(state, |mut state| async move {
            let item = state.next_event().await?;
            Some((item, state))
        })
        .boxed();
        Self { events }
    }
}

impl Stream for Subscription {
    type Item = Result<Event, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}

/// Whether a failed connection attempt is worth repeating.
enum ConnectError {
    Retry(ClientError),
    Fatal(ClientError),
}

struct Connection {
    client: Client,
    from: SubscribeFrom,
    filter: EventFilter,
    parser: SseParser,
    response: Option<Response>,
    /// When the current connection was opened.
    connected_at: Instant,
    /// The current connection delivered an event.
    healthy: bool,
    /// A connection was opened at least once.
    ever_connected: bool,
    /// The server's `: closing: ...` comment on the current connection, for the error message.
    closing_reason: Option<String>,
    /// Events parsed from the last chunk, not yet handed out; at most one chunk's worth.
    pending: VecDeque<Event>,
    /// The position of the last event handed out.
    delivered: Option<u64>,
    /// Connections in a row that failed or delivered nothing.
    failures: u32,
    /// The server's `retry:` advice.
    server_retry: Option<Duration>,
    finished: bool,
}

impl Connection {
    async fn next_event(&mut self) -> Option<Result<Event, ClientError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            let outcome = match self.response.take() {
                None => self.connect().await,
                Some(response) => self.read(response).await,
            };
            if let Err(error) = outcome {
                self.finished = true;
                return Some(Err(error));
            }
        }
    }

    /// Opens a connection, after the backoff delay if the previous one failed.
    async fn connect(&mut self) -> Result<(), ClientError> {
        if self.failures > 0 {
            let delay = self
                .client
                .config
                .reconnect
                .delay(self.failures, self.server_retry);
            tokio::time::sleep(delay).await;
        }
        match self.open().await {
            Ok(response) => {
                self.response = Some(response);
                self.ever_connected = true;
                self.connected_at = Instant::now();
                self.healthy = false;
                self.closing_reason = None;
                Ok(())
            }
            Err(ConnectError::Fatal(error)) => Err(error),
            Err(ConnectError::Retry(error))
                if !self.ever_connected && !self.client.config.reconnect.retry_first_connection =>
            {
                Err(error)
            }
            Err(ConnectError::Retry(error)) => self.connection_failed(error),
        }
    }

    /// An open connection ended. One that was healthy starts a fresh series of attempts.
    fn connection_ended(&mut self, error: ClientError) -> Result<(), ClientError> {
        if self.healthy || self.connected_at.elapsed() >= STABLE_CONNECTION {
            self.failures = 0;
        }
        self.healthy = false;
        self.connection_failed(error)
    }

    /// Counts a failed or fruitless connection; gives up past the policy's attempts.
    fn connection_failed(&mut self, error: ClientError) -> Result<(), ClientError> {
        self.parser.reset_connection();
        self.failures += 1;
        if self.failures > self.client.config.reconnect.max_attempts {
            return Err(error);
        }
        Ok(())
    }

    /// The position after which the next connection must start, if any is known yet.
    fn resume_after(&self) -> Option<u64> {
        let sent_id = self.parser.last_event_id().and_then(|id| id.parse().ok());
        match (self.delivered, sent_id) {
            (Some(delivered), Some(sent)) => Some(delivered.max(sent)),
            (delivered, sent) => delivered.or(sent),
        }
    }

    async fn open(&self) -> Result<Response, ConnectError> {
        let mut url = self.client.url(&["subscribe"]);
        let resume_after = self.resume_after();
        {
            let mut query = url.query_pairs_mut();
            let from = match (resume_after, self.from) {
                (Some(after), _) => after.saturating_add(1).to_string(),
                (None, SubscribeFrom::Position(position)) => position.to_string(),
                (None, SubscribeFrom::End) => "end".to_owned(),
            };
            query.append_pair("from", &from);
            for (name, value) in self.filter.query_pairs() {
                query.append_pair(name, &value);
            }
        }
        let mut request = self
            .client
            .request(Method::GET, url)
            .header(ACCEPT, "text/event-stream");
        if let Some(after) = resume_after {
            request = request.header("Last-Event-ID", after.to_string());
        }
        // Only the wait for the answer's head is bounded here: the body is endless by design
        // and is watched by the idle timeout instead.
        let sent = tokio::time::timeout(self.client.config.request_timeout, request.send()).await;
        let response = match sent {
            Err(_elapsed) => {
                return Err(ConnectError::Retry(ClientError::Transport {
                    message: "the server did not answer the subscription in time".to_owned(),
                    source: None,
                }));
            }
            Ok(Err(error)) => {
                return Err(ConnectError::Retry(ClientError::transport(
                    "cannot open the subscription",
                    error,
                )));
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return check_event_stream(response);
        }
        let retryable = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        );
        let error = error_from_response(response).await;
        if retryable {
            Err(ConnectError::Retry(error))
        } else {
            Err(ConnectError::Fatal(error))
        }
    }

    /// Reads the next chunk of an open connection and queues the events in it.
    async fn read(&mut self, mut response: Response) -> Result<(), ClientError> {
        let idle_timeout = self.client.config.idle_timeout;
        let chunk = match tokio::time::timeout(idle_timeout, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => {
                let message = match self.closing_reason.take() {
                    Some(reason) => format!("the server ended the subscription: {reason}"),
                    None => "the server ended the subscription".to_owned(),
                };
                return self.connection_ended(ClientError::Transport {
                    message,
                    source: None,
                });
            }
            Ok(Err(error)) => {
                return self.connection_ended(ClientError::transport(
                    "the subscription's connection failed",
                    error,
                ));
            }
            Err(_elapsed) => {
                return self.connection_ended(ClientError::Transport {
                    message: format!(
                        "the subscription received nothing for {} s",
                        idle_timeout.as_secs()
                    ),
                    source: None,
                });
            }
        };
        let mut items = Vec::new();
        // A malformed or oversized message would come back after a reconnection too.
        self.parser
            .feed(&chunk, &mut items)
            .map_err(|error| ClientError::Decode(error.to_string()))?;
        for item in items {
            self.accept(item)?;
        }
        self.response = Some(response);
        Ok(())
    }

    fn accept(&mut self, item: SseItem) -> Result<(), ClientError> {
        match item {
            SseItem::Comment(comment) => {
                if let Some(reason) = comment.strip_prefix("closing: ") {
                    self.closing_reason = Some(reason.to_owned());
                }
            }
            SseItem::Retry(millis) => self.server_retry = Some(Duration::from_millis(millis)),
            // Other event names are not part of the contract; ignoring them leaves room for
            // the server to add some.
            SseItem::Message(message)
                if message
                    .event
                    .as_deref()
                    .is_some_and(|name| name != "message") => {}
            SseItem::Message(message) => {
                let event: Event = serde_json::from_str(&message.data).map_err(|error| {
                    ClientError::Decode(format!("a subscription message: {error}"))
                })?;
                if self.delivered.is_some_and(|last| event.position <= last) {
                    return Ok(()); // already handed out before a reconnection
                }
                self.delivered = Some(event.position);
                self.healthy = true;
                self.pending.push_back(event);
            }
        }
        Ok(())
    }
}

fn check_event_stream(response: Response) -> Result<Response, ConnectError> {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("text/event-stream") {
        return Ok(response);
    }
    Err(ConnectError::Fatal(ClientError::Decode(format!(
        "the subscription answered with content type {content_type:?}, not text/event-stream"
    ))))
}

/// Reads a bounded error body and maps it like any other error answer.
async fn error_from_response(mut response: Response) -> ClientError {
    const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    ClientError::from_response(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn event_json(position: u64) -> String {
        format!(
            r#"{{"id":"0192f3c4-6a1e-7b2c-9d3e-{position:012x}","stream_type":"order","stream_id":"o-1","revision":{position},"position":{position},"type":"OrderPlaced","data":{{"n":{position}}},"recorded_at":"2026-11-23T10:15:30.123456Z"}}"#
        )
    }

    fn sse_message(position: u64) -> String {
        format!("id: {position}\ndata: {}\n\n", event_json(position))
    }

    /// Reads one HTTP request head and returns it (lower-cased), for assertions.
    async fn read_request_head(socket: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
            if socket.read(&mut byte).await.expect("read request") == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).to_lowercase()
    }

    /// Answers with an event stream that sends `body` and then closes the connection.
    async fn answer_and_close(socket: &mut TcpStream, body: &str) {
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
        socket.write_all(head.as_bytes()).await.expect("write head");
        socket.write_all(body.as_bytes()).await.expect("write body");
        socket.shutdown().await.expect("close");
    }

    fn fast_client(url: &str, max_attempts: u32) -> Client {
        Client::builder(url)
            .reconnect_policy(ReconnectPolicy {
                max_attempts,
                initial_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                retry_first_connection: true,
            })
            .build()
            .expect("valid client")
    }

    #[tokio::test]
    async fn a_dropped_subscription_resumes_after_the_last_event_without_duplicates() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let mut heads = Vec::new();
            // First connection: events 1 and 2, then half of event 3, then the line goes dead.
            let (mut socket, _) = listener.accept().await.expect("accept");
            heads.push(read_request_head(&mut socket).await);
            let cut = format!("{}{}id: 3\ndata: {{\"trunc", sse_message(1), sse_message(2));
            answer_and_close(&mut socket, &cut).await;
            // Second connection: a server that resends event 2 must not cause a duplicate.
            let (mut socket, _) = listener.accept().await.expect("accept");
            heads.push(read_request_head(&mut socket).await);
            let rest = format!(
                ": keep-alive\n\n{}{}{}",
                sse_message(2),
                sse_message(3),
                sse_message(4)
            );
            answer_and_close(&mut socket, &rest).await;
            heads
        });

        let client = fast_client(&url, 3);
        let events: Vec<Event> = client
            .subscribe(
                SubscribeFrom::Position(1),
                EventFilter::default().stream_type("order"),
            )
            .take(4)
            .try_collect()
            .await
            .expect("four events");
        let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
        assert_eq!(positions, vec![1, 2, 3, 4]);

        let heads = server.await.expect("server task");
        assert!(
            heads[0].starts_with("get /subscribe?from=1&stream_type=order "),
            "{}",
            heads[0]
        );
        assert!(!heads[0].contains("last-event-id"), "{}", heads[0]);
        assert!(
            heads[1].starts_with("get /subscribe?from=3&stream_type=order "),
            "{}",
            heads[1]
        );
        assert!(
            heads[1].contains("\r\nlast-event-id: 2\r\n"),
            "{}",
            heads[1]
        );
    }

    #[tokio::test]
    async fn a_subscription_gives_up_after_its_attempts_with_a_transport_error() {
        // A port that was free a moment ago: nothing listens there.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let client = fast_client(&url, 2);
        let mut subscription = client.subscribe(SubscribeFrom::End, EventFilter::default());
        let first = subscription.next().await.expect("an error item");
        assert!(
            matches!(first, Err(ClientError::Transport { .. })),
            "{first:?}"
        );
        assert!(
            subscription.next().await.is_none(),
            "the stream ends after the error"
        );
    }

    #[tokio::test]
    async fn a_first_connection_that_fails_is_reported_at_once_when_so_configured() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let client = Client::builder(&url)
            .reconnect_policy(ReconnectPolicy {
                max_attempts: 5,
                initial_delay: Duration::from_secs(10),
                max_delay: Duration::from_secs(10),
                retry_first_connection: false,
            })
            .build()
            .expect("valid client");
        let mut subscription = client.subscribe(SubscribeFrom::End, EventFilter::default());
        let first = tokio::time::timeout(Duration::from_secs(5), subscription.next())
            .await
            .expect("no backoff wait before the error");
        assert!(
            matches!(first, Some(Err(ClientError::Transport { .. }))),
            "{first:?}"
        );
    }

    #[tokio::test]
    async fn a_server_that_keeps_hanging_up_at_once_is_given_up_on_with_its_reason() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let mut connections = 0;
            // Bounded: the client gives up after 1 + max_attempts connections.
            while connections < 3 {
                let (mut socket, _) = listener.accept().await.expect("accept");
                read_request_head(&mut socket).await;
                let body = ": subscribed from position 0\n\n: closing: the store failed a read\n\n";
                answer_and_close(&mut socket, body).await;
                connections += 1;
            }
            connections
        });
        let client = fast_client(&url, 2);
        let mut subscription = client.subscribe(SubscribeFrom::BEGINNING, EventFilter::default());
        let Some(Err(error)) = subscription.next().await else {
            panic!("the subscription should end with an error");
        };
        assert!(error.is_transport(), "{error:?}");
        assert!(
            error.to_string().contains("the store failed a read"),
            "{error}"
        );
        assert_eq!(server.await.expect("server task"), 3);
    }

    #[tokio::test]
    async fn a_subscription_refused_with_a_client_error_does_not_retry() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            read_request_head(&mut socket).await;
            let body = r#"{"status":400,"title":"Bad Request","code":"invalid_query","detail":"from: not a position"}"#;
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(answer.as_bytes()).await.expect("write");
        });
        let client = fast_client(&url, 5);
        let mut subscription = client.subscribe(SubscribeFrom::End, EventFilter::default());
        let first = subscription.next().await.expect("an error item");
        assert_eq!(
            first.as_ref().err().and_then(ClientError::code),
            Some("invalid_query")
        );
        assert!(subscription.next().await.is_none());
        server.await.expect("server task");
    }

    #[test]
    fn reconnection_delays_double_up_to_the_maximum() {
        let policy = ReconnectPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
            retry_first_connection: true,
        };
        let within = |delay: Duration, base_ms: u64| {
            let ms = delay.as_millis() as u64;
            (base_ms..=base_ms + base_ms / 4).contains(&ms)
        };
        assert!(within(policy.delay(1, None), 100));
        assert!(within(policy.delay(2, None), 200));
        assert!(within(policy.delay(3, None), 400));
        assert!(within(policy.delay(5, None), 1_000));
        assert!(within(policy.delay(u32::MAX, None), 1_000));
        assert!(within(
            policy.delay(1, Some(Duration::from_millis(300))),
            300
        ));
    }
}
