//! The client, its builder, and one method per endpoint of API.md.

use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt, stream};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use runnel_core::{ExpectedRevision, StreamName};
use serde::de::DeserializeOwned;

use crate::error::ClientError;
use crate::model::{
    AllEventsPage, AppendBody, AppendResult, Direction, Event, EventFilter, NewEvent,
    StreamEventsPage, StreamInfo, StreamTypeInfo, StreamTypesPage, StreamsPage, SubscribeFrom,
};
use crate::subscribe::{ReconnectPolicy, Subscription};

/// The largest page the server returns (API.md, "Conventions").
pub const MAX_PAGE_SIZE: u32 = 1_000;

/// A connection to one Runnel server. Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: Url,
    pub(crate) config: ClientConfig,
}

#[derive(Debug, Clone)]
pub(crate) struct ClientConfig {
    pub(crate) request_timeout: Duration,
    pub(crate) page_size: u32,
    pub(crate) max_response_bytes: usize,
    pub(crate) bearer_token: Option<String>,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_message_bytes: usize,
}

/// Configures a [`Client`]. Every setting has a default; see each method.
#[derive(Debug)]
pub struct ClientBuilder {
    base_url: String,
    connect_timeout: Duration,
    config: ClientConfig,
    root_certificates_pem: Vec<Vec<u8>>,
    /// A client certificate chain and its key, PEM, for servers that require one (mTLS).
    identity_pem: Option<Vec<u8>>,
}

impl ClientBuilder {
    /// The time limit of one request, from sending it to having read the whole answer
    /// (default 30 s). Subscriptions are not bound by it; see [`Self::idle_timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// The time limit for opening a connection (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.config.bearer_token = Some(token.into());
        self
    }

    /// Trusts this CA certificate (PEM, one or more) for `https` URLs, in addition to the
    /// platform's roots: for servers whose certificate a private CA signed.
    pub fn with_ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates_pem.push(pem.into());
        self
    }

    /// Presents this client certificate (PEM chain, leaf first) and its private key (PEM) to
    /// servers that require one (mutual TLS, `runnel serve --tls-client-ca`).
    pub fn with_client_certificate_pem(
        mut self,
        certificate_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Self {
        let mut identity = certificate_pem.as_ref().to_vec();
        if !identity.ends_with(b"\n") {
            identity.push(b'\n');
        }
        identity.extend_from_slice(key_pem.as_ref());
        self.identity_pem = Some(identity);
        self
    }

    /// How many events or entries the paging streams ask for per request (default 500, at most
    /// [`MAX_PAGE_SIZE`]).
    pub fn page_size(mut self, page_size: u32) -> Self {
        self.config.page_size = page_size.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// The largest answer body the client reads (default 256 MiB): a bound on memory.
    pub fn max_response_bytes(mut self, max_bytes: usize) -> Self {
        self.config.max_response_bytes = max_bytes;
        self
    }

    /// How a subscription reconnects after its connection drops.
    pub fn reconnect_policy(mut self, policy: ReconnectPolicy) -> Self {
        self.config.reconnect = policy;
        self
    }

    /// A subscription that receives nothing, not even a heartbeat, for this long takes its
    /// connection for dead and reconnects (default 45 s: three missed 15 s heartbeats).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    pub fn build(self) -> Result<Client, ClientError> {
        let mut base_url = Url::parse(&self.base_url).map_err(|error| {
            ClientError::InvalidArgument(format!("base URL {:?}: {error}", self.base_url))
        })?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(ClientError::InvalidArgument(format!(
                "base URL {:?} must be an http:// or https:// URL",
                self.base_url
            )));
        }
        // Paths are appended segment by segment; a trailing '/' would add an empty one.
        if base_url.path().ends_with('/') {
            let trimmed = base_url.path().trim_end_matches('/').to_owned();
            base_url.set_path(&trimmed);
        }
        let mut http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("runnel-client/", env!("CARGO_PKG_VERSION")));
        for pem in &self.root_certificates_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|error| {
                ClientError::InvalidArgument(format!("CA certificate: {}", with_sources(&error)))
            })?;
            http = http.tls_certs_merge(certificates);
        }
        if let Some(pem) = &self.identity_pem {
            let identity = reqwest::Identity::from_pem(pem).map_err(|error| {
                ClientError::InvalidArgument(format!(
                    "client certificate and key: {}",
                    with_sources(&error)
                ))
            })?;
            http = http.identity(identity);
        }
        let http = http
            .build()
            .map_err(|error| ClientError::transport("cannot set up the HTTP client", error))?;
        Ok(Client {
            http,
            base_url,
            config: self.config,
        })
    }
}

/// reqwest's builder errors say only "builder error"; the cause is in the sources.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:2113`), with defaults.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::builder(base_url).build()
    }

    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.to_owned(),
            connect_timeout: Duration::from_secs(5),
            config: ClientConfig {
                request_timeout: Duration::from_secs(30),
                page_size: 500,
                max_response_bytes: 256 * 1024 * 1024,
                bearer_token: None,
                reconnect: ReconnectPolicy::default(),
                idle_timeout: Duration::from_secs(45),
                max_message_bytes: 32 * 1024 * 1024,
            },
            root_certificates_pem: Vec::new(),
            identity_pem: None,
        }
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Appends `events` to `stream` atomically, if `expected` holds.
    ///
    /// Fails with [`ClientError::WrongExpectedRevision`] when it does not (nothing is written),
    /// and with [`ClientError::DuplicateEventId`] when an event id exists elsewhere. Retrying
    /// with the same event ids after a transport error is safe: the server answers a repeat
    /// with the original result.
    pub async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> Result<AppendResult, ClientError> {
        let url = self.stream_url(stream, &["events"]);
        let body = AppendBody {
            expected_revision: expected,
            events,
        };
        let request = self.request(Method::POST, url).json(&body);
        self.send_json(request).await
    }

    /// One page of a stream: up to `limit` events from revision `from` (default: the first
    /// forward, the last backward).
    pub async fn read_stream_page(
        &self,
        stream: &StreamName,
        direction: Direction,
        from: Option<u64>,
        limit: u32,
    ) -> Result<StreamEventsPage, ClientError> {
        let mut url = self.stream_url(stream, &["events"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(from) = from {
                query.append_pair("from", &from.to_string());
            }
            query.append_pair("limit", &limit.to_string());
            query.append_pair("direction", direction.as_query());
        }
        self.get_json(url).await
    }

    /// Every event of `stream` from revision `from` (default 0) in revision order, fetched a
    /// page at a time as the consumer reads.
    pub fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<u64>,
    ) -> impl Stream<Item = Result<Event, ClientError>> + Send + 'static {
        self.stream_events(stream, Direction::Forward, from)
    }

    /// Every event of `stream` from revision `from` (default: the last) down to revision 0.
    pub fn read_stream_backward(
        &self,
        stream: &StreamName,
        from: Option<u64>,
    ) -> impl Stream<Item = Result<Event, ClientError>> + Send + 'static {
        self.stream_events(stream, Direction::Backward, from)
    }

    fn stream_events(
        &self,
        stream: &StreamName,
        direction: Direction,
        from: Option<u64>,
    ) -> impl Stream<Item = Result<Event, ClientError>> + Send + 'static {
        let client = self.clone();
        let stream = stream.clone();
        let page_size = self.config.page_size;
        paged(from, move |cursor| {
            let client = client.clone();
            let stream = stream.clone();
            async move {
                let page = client
                    .read_stream_page(&stream, direction, cursor, page_size)
                    .await?;
                Ok((page.events, page.next))
            }
        })
    }

    /// `GET /streams/{type}/{id}`: the stream's last revision and timestamps.
    pub async fn stream_info(&self, stream: &StreamName) -> Result<StreamInfo, ClientError> {
        self.get_json(self.stream_url(stream, &[])).await
    }

    /// One page of the stream types, after the cursor `after` (a previous page's `next`).
    pub async fn list_stream_types_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<StreamTypesPage, ClientError> {
        self.get_json(self.listing_url(&["streams"], after, limit))
            .await
    }

    /// Every stream type, with its number of streams, paging internally.
    pub fn list_stream_types(
        &self,
    ) -> impl Stream<Item = Result<StreamTypeInfo, ClientError>> + Send + 'static {
        let client = self.clone();
        let page_size = self.config.page_size;
        paged(None, move |cursor: Option<String>| {
            let client = client.clone();
            async move {
                let page = client
                    .list_stream_types_page(cursor.as_deref(), page_size)
                    .await?;
                Ok((page.types, page.next))
            }
        })
    }

    /// One page of the streams of `stream_type` in stream-id order, after the id `after`.
    pub async fn list_streams_page(
        &self,
        stream_type: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<StreamsPage, ClientError> {
        self.get_json(self.listing_url(&["streams", stream_type], after, limit))
            .await
    }

    /// Every stream of `stream_type`, in stream-id order, paging internally.
    pub fn list_streams(
        &self,
        stream_type: &str,
    ) -> impl Stream<Item = Result<StreamInfo, ClientError>> + Send + 'static {
        let client = self.clone();
        let stream_type = stream_type.to_owned();
        let page_size = self.config.page_size;
        paged(None, move |cursor: Option<String>| {
            let client = client.clone();
            let stream_type = stream_type.clone();
            async move {
                let page = client
                    .list_streams_page(&stream_type, cursor.as_deref(), page_size)
                    .await?;
                Ok((page.streams, page.next))
            }
        })
    }

    /// One page of `$all` from position `from` that matches `filter`. With a filter, `next` may
    /// lie past the last returned event.
    pub async fn read_all_page(
        &self,
        from: u64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<AllEventsPage, ClientError> {
        let mut url = self.url(&["events"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("from", &from.to_string());
            query.append_pair("limit", &limit.to_string());
            for (name, value) in filter.query_pairs() {
                query.append_pair(name, &value);
            }
        }
        self.get_json(url).await
    }

    /// Every stored event of `$all` from position `from` that matches `filter`, in position
    /// order, paging internally. Ends at the head as it was when the last page was read; use
    /// [`Self::subscribe`] to go on with live events.
    pub fn read_all(
        &self,
        from: u64,
        filter: EventFilter,
    ) -> impl Stream<Item = Result<Event, ClientError>> + Send + 'static {
        let client = self.clone();
        let page_size = self.config.page_size;
        paged(Some(from), move |cursor: Option<u64>| {
            let client = client.clone();
            let filter = filter.clone();
            async move {
                let page = client
                    .read_all_page(cursor.unwrap_or(0), &filter, page_size)
                    .await?;
                Ok((page.events, page.next))
            }
        })
    }

    /// Follows `$all` live over server-sent events: every matching stored event from `from`,
    /// then new ones as they are committed. After a dropped connection it reconnects with
    /// `Last-Event-ID` (see [`ReconnectPolicy`]), so the consumer sees every event once, in
    /// position order.
    ///
    /// One caveat: a subscription from [`SubscribeFrom::End`] that drops before it has seen any
    /// event or resume id starts again at the then-current end.
    pub fn subscribe(&self, from: SubscribeFrom, filter: EventFilter) -> Subscription {
        Subscription::new(self.clone(), from, filter)
    }

    /// `GET /health/live`: `Ok` when the server process answers.
    pub async fn health_live(&self) -> Result<(), ClientError> {
        self.health(&["health", "live"]).await
    }

    /// `GET /health/ready`: `Ok` when the server serves reads and writes; a
    /// [`ClientError::Problem`] with status 503 otherwise.
    pub async fn health_ready(&self) -> Result<(), ClientError> {
        self.health(&["health", "ready"]).await
    }

    async fn health(&self, path: &[&str]) -> Result<(), ClientError> {
        let request = self.request(Method::GET, self.url(path));
        let (status, body) = self.send(request).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(ClientError::from_response(status.as_u16(), &body))
    }

    /// `base_url` plus the given path segments, each percent-encoded (a stream id may hold any
    /// character but `/`, and a `?` or `%` in it must not change the URL's meaning).
    /// The URL of one page of a listing: `after` (a previous page's `next`) and `limit`.
    pub(crate) fn listing_url(&self, segments: &[&str], after: Option<&str>, limit: u32) -> Url {
        let mut url = self.url(segments);
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query.append_pair("after", after);
            }
            query.append_pair("limit", &limit.to_string());
        }
        url
    }

    pub(crate) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        // `build` refused URLs that cannot be a base, so the segments are always there.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn stream_url(&self, stream: &StreamName, rest: &[&str]) -> Url {
        let mut segments = vec![
            "streams",
            stream.stream_type().as_str(),
            stream.stream_id().as_str(),
        ];
        segments.extend_from_slice(rest);
        self.url(&segments)
    }

    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.config.bearer_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, ClientError> {
        self.send_json(self.request(Method::GET, url)).await
    }

    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let (status, body) = self.send(request).await?;
        if !status.is_success() {
            return Err(ClientError::from_response(status.as_u16(), &body));
        }
        serde_json::from_slice(&body).map_err(|error| ClientError::Decode(error.to_string()))
    }

    /// Sends `request` and reads the whole answer, within the request timeout and the body
    /// limit.
    pub(crate) async fn send(
        &self,
        request: RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut response = request
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(|error| ClientError::transport("request failed", error))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| ClientError::transport("reading the answer failed", error))?
        {
            if body.len() + chunk.len() > self.config.max_response_bytes {
                return Err(ClientError::Decode(format!(
                    "the answer is larger than max_response_bytes = {}",
                    self.config.max_response_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}

/// Turns a page-fetching function into a stream of items that fetches the next page only when
/// the consumer has taken every item of the current one. `fetch(cursor)` returns a page and the
/// cursor of the next one (`None`: done). The first error ends the stream.
pub(crate) fn paged<C, T, F, Fut>(
    first: Option<C>,
    fetch: F,
) -> impl Stream<Item = Result<T, ClientError>> + Send + 'static
where
    C: Clone + PartialEq + Send + 'static,
    T: Send + 'static,
    F: Fn(Option<C>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Vec<T>, Option<C>), ClientError>> + Send + 'static,
{
    enum State<C> {
        Fetch(Option<C>),
        Done,
    }
    stream::try_unfold((State::Fetch(first), fetch), |(state, fetch)| async move {
        let State::Fetch(cursor) = state else {
            return Ok(None);
        };
        let (items, next) = fetch(cursor.clone()).await?;
        // A server that answers an empty page with the cursor it was given would make this
        // loop forever; the contract says `next` moves on, so hold it to that.
        if items.is_empty() && next.is_some() && next == cursor {
            return Err(ClientError::Decode(
                "the server answered an empty page whose next cursor does not move".to_owned(),
            ));
        }
        let state = match next {
            Some(next) => State::Fetch(Some(next)),
            None => State::Done,
        };
        Ok(Some((
            stream::iter(items.into_iter().map(Ok)),
            (state, fetch),
        )))
    })
    .try_flatten()
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_percent_encoded_as_one_path_segment() {
        let client = Client::new("http://127.0.0.1:2113").expect("valid");
        let stream = StreamName::parse("order/a b?c%d#é").expect("valid name");
        assert_eq!(
            client.stream_url(&stream, &["events"]).as_str(),
            "http://127.0.0.1:2113/streams/order/a%20b%3Fc%25d%23%C3%A9/events"
        );
    }

    #[test]
    fn a_base_url_with_a_path_prefix_keeps_it() {
        for base in ["http://host/runnel", "http://host/runnel/"] {
            let client = Client::new(base).expect("valid");
            assert_eq!(
                client.url(&["health", "live"]).as_str(),
                "http://host/runnel/health/live"
            );
        }
        let root = Client::new("http://host/").expect("valid");
        assert_eq!(root.url(&["events"]).as_str(), "http://host/events");
    }

    #[test]
    fn base_urls_that_are_not_http_are_refused() {
        for bad in ["", "127.0.0.1:2113", "ftp://host", "mailto:x@y"] {
            assert!(
                matches!(Client::new(bad), Err(ClientError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
