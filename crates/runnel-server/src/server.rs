//! Running the router on a socket: accepting connections within `max_connections`, TLS when
//! configured, HTTP/1.1 with bounds on the request head (its size, and the time to send it), and
//! the graceful shutdown: stop accepting, let in-flight requests (appends above all) finish,
//! close live subscriptions, then close the store so that everything acknowledged is durable.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use runnel_core::Store;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt as _;

use crate::auth::{Auth, GeneratedAdminKey};
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::problem::ApiError;
use crate::routes::app;
use crate::state::AppState;
use crate::telemetry::{CONNECTIONS_OPEN, CONNECTIONS_REFUSED, TLS_HANDSHAKE_FAILURES, Telemetry};
use crate::tls::TlsReloader;

/// Connections over `max_connections` that are still answered (503 `too_many_connections`) rather
/// than closed at once. Answering costs a TLS handshake each, so it is bounded too: a flood
/// beyond it is closed without a word.
const MAX_REFUSING_CONNECTIONS: usize = 64;

/// How often a refusal is logged at most: a flood must not flood the log as well.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A server bound to its address, not yet serving.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
    store: Arc<dyn Store>,
    tls: Option<TlsReloader>,
    auth: Auth,
    generated_admin_key: Option<GeneratedAdminKey>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the TLS files (when configured) and binds the address. Plain HTTP on an address
    /// other than loopback is refused unless `config.insecure` is set.
    pub async fn bind(config: ServerConfig, store: Arc<dyn Store>) -> Result<Self, ServerError> {
        let addr = config.listen;
        config.check_transport()?;
        if config.tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "INSECURE: serving plain HTTP on a network address (--insecure): keys and events cross the network unencrypted"
            );
        }
        let tls = config.tls.as_ref().map(TlsReloader::load).transpose()?;
        let (auth, generated_admin_key) = Auth::open(Arc::clone(&store), &config).await?;
        if config.insecure {
            tracing::warn!(
                "INSECURE: authentication is off (--insecure): every request may read, write and manage everything"
            );
        }
        let bind_error = |source| ServerError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            config,
            store,
            tls,
            auth,
            generated_admin_key,
        })
    }

    /// The admin key this start generated (a first start with no admin key configured), to be
    /// shown to the operator once; only its hash is stored.
    pub fn generated_admin_key(&self) -> Option<&GeneratedAdminKey> {
        self.generated_admin_key.as_ref()
    }

    /// The address actually bound (the port is chosen by the system when configured as 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Serves until `shutdown` completes, then shuts down gracefully and closes the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Self {
            listener,
            config,
            store,
            tls,
            auth,
            ..
        } = self;
        let state = AppState::new(store, config, auth);
        let upkeep = tokio::spawn(run_upkeep(state.telemetry().clone()));
        let keyring = tokio::spawn(state.auth().clone().follow(state.shutdown_signal()));
        let groups = tokio::spawn(state.groups().clone().run());
        let webhooks = tokio::spawn({
            let groups = state.groups().clone();
            let delivery = state.config().webhook_delivery();
            let shutdown = state.shutdown_signal();
            let audit = Arc::new(crate::auth::DeliveryAuditTrail::new(Arc::clone(
                state.store(),
            )));
            async move {
                if let Err(error) =
                    runnel_broker::delivery::run(groups, delivery, audit, shutdown).await
                {
                    tracing::error!(%error, "webhook delivery is not running");
                }
            }
        });
        let reload = tls
            .clone()
            .map(|tls| tokio::spawn(tls.watch(state.config().tls_reload_interval())));
        let signal_state = state.clone();
        let signal = tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; finishing in-flight requests");
            signal_state.begin_shutdown();
        });

        let connections = Connections::new(&state, tls);
        connections.accept_until_shutdown(listener).await;
        // The listener is closed now: new connections are refused by the system.
        let grace = state.config().shutdown_grace();
        if tokio::time::timeout(grace, connections.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "requests still running after the shutdown grace period; closing the store anyway"
            );
        }
        upkeep.abort();
        keyring.abort();
        groups.abort();
        webhooks.abort();
        signal.abort();
        if let Some(reload) = reload {
            reload.abort();
        }
        // Close the store even when connections linger: what was acknowledged must be synced.
        let closed = state.store().close().await.map_err(ServerError::Close);
        tracing::info!("the store is closed");
        closed
    }
}

/// Binds `config.listen` and serves `store` until `shutdown` completes; see [`Server::run`].
pub async fn serve(
    config: ServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::bind(config, store).await?.run(shutdown).await
}

async fn run_upkeep(telemetry: Telemetry) {
    let mut interval = tokio::time::interval(Telemetry::UPKEEP_INTERVAL);
    loop {
        interval.tick().await;
        telemetry.run_upkeep();
    }
}

/// What every connection needs; cloned into each connection's task.
#[derive(Clone)]
struct Connections {
    router: Router,
    tls: Option<TlsReloader>,
    http: http1::Builder,
    refusing_http: http1::Builder,
    /// One permit per connection being served; all of them back means all are closed.
    permits: Arc<Semaphore>,
    max_connections: usize,
    refusals: Arc<Semaphore>,
    last_refusal_logged: Arc<Mutex<Option<Instant>>>,
    max_header_bytes: usize,
    /// The bound on a TLS handshake, and on the whole life of a refused connection.
    handshake_timeout: Duration,
    shutdown: watch::Receiver<bool>,
}

impl Connections {
    fn new(state: &AppState, tls: Option<TlsReloader>) -> Self {
        let config = state.config();
        // `acquire_many` counts in u32; no machine has that many sockets anyway.
        let max_connections = config.max_connections.clamp(1, u32::MAX as usize);
        let max_header_bytes = config.max_header_bytes.max(1);
        let header_read_timeout = config.header_read_timeout();
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            // The parser's own bound, above which it answers a bare 431: twice the limit, so
            // that heads between the two get the problem+json answer that names the limit.
            // It also bounds the memory of a head that never ends.
            .max_header_size(max_header_bytes.saturating_mul(2))
            .max_buf_size(max_header_bytes.saturating_mul(2).max(MIN_BUF_SIZE));
        let mut refusing_http = http.clone();
        refusing_http.keep_alive(false);
        Self {
            router: app(state.clone()),
            tls,
            http,
            refusing_http,
            permits: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            refusals: Arc::new(Semaphore::new(MAX_REFUSING_CONNECTIONS)),
            last_refusal_logged: Arc::new(Mutex::new(None)),
            max_header_bytes,
            handshake_timeout: header_read_timeout,
            shutdown: state.shutdown_signal(),
        }
    }

    async fn accept_until_shutdown(&self, listener: TcpListener) {
        let mut shutdown = self.shutdown.clone();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.wait_for(|down| *down) => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => self.dispatch(stream, peer),
                Err(error) => handle_accept_error(error).await,
            }
        }
    }

    /// Completes once every served connection has closed.
    async fn drained(&self) {
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        let _ = self.permits.acquire_many(all).await;
    }

    fn dispatch(&self, stream: TcpStream, peer: SocketAddr) {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            let connections = self.clone();
            tokio::spawn(async move { connections.serve(stream, peer, false, permit).await });
            return;
        }
        metrics::counter!(CONNECTIONS_REFUSED).increment(1);
        self.log_refusal(peer);
        match Arc::clone(&self.refusals).try_acquire_owned() {
            Ok(permit) => {
                let connections = self.clone();
                tokio::spawn(async move { connections.serve(stream, peer, true, permit).await });
            }
            // Beyond the refusals that are answered, close at once: the socket is what a
            // flood costs, and it is returned right away.
            Err(_) => drop(stream),
        }
    }

    fn log_refusal(&self, peer: SocketAddr) {
        let Ok(mut last) = self.last_refusal_logged.lock() else {
            return;
        };
        if last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(
                %peer,
                max_connections = self.max_connections,
                "refusing connections: max_connections are open (logged at most every 10 s; see runnel_http_connections_refused_total)"
            );
        }
    }

    async fn serve(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        refusing: bool,
        _permit: OwnedSemaphorePermit,
    ) {
        let _open = (!refusing).then(OpenConnection::new);
        // Small writes (SSE messages) go out at once rather than waiting for more.
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return self.drive(stream, peer, refusing).await;
        };
        match tokio::time::timeout(self.handshake_timeout, tls.acceptor().accept(stream)).await {
            Ok(Ok(stream)) => self.drive(stream, peer, refusing).await,
            Ok(Err(error)) => {
                metrics::counter!(TLS_HANDSHAKE_FAILURES).increment(1);
                tracing::debug!(%peer, %error, "TLS handshake failed");
            }
            Err(_) => {
                metrics::counter!(TLS_HANDSHAKE_FAILURES).increment(1);
                tracing::debug!(%peer, "TLS handshake timed out");
            }
        }
    }

    async fn drive<S>(&self, stream: S, peer: SocketAddr, refusing: bool)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(stream);
        if refusing {
            let max = self.max_connections;
            let service = service_fn(move |_request: Request<Incoming>| async move {
                let refusal = ApiError::TooManyConnections { max }.to_problem();
                Ok::<_, Infallible>(refusal.into_response())
            });
            let connection = self.refusing_http.serve_connection(io, service);
            let _ = tokio::time::timeout(self.handshake_timeout, connection).await;
            return;
        }
        let router = self.router.clone();
        let max_header_bytes = self.max_header_bytes;
        let service = service_fn(move |mut request: Request<Incoming>| {
            let router = router.clone();
            async move {
                let actual = head_bytes(&request);
                if actual > max_header_bytes {
                    let problem = ApiError::HeadersTooLarge {
                        max: max_header_bytes,
                        actual,
                    }
                    .to_problem();
                    return Ok::<Response, Infallible>(problem.into_response());
                }
                request.extensions_mut().insert(ConnectInfo(peer));
                router.oneshot(request).await
            }
        });
        let connection = self.http.serve_connection(io, service);
        tokio::pin!(connection);
        let mut shutdown = self.shutdown.clone();
        let mut closing = false;
        loop {
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.wait_for(|down| *down), if !closing => {
                    // Finish the request in flight (if any), then close.
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// hyper's smallest allowed read buffer.
const MIN_BUF_SIZE: usize = 8 * 1024;

/// The size of the request head as sent in HTTP/1.1: request line, header lines, blank line.
fn head_bytes<B>(request: &Request<B>) -> usize {
    let uri = request.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    // "METHOD target HTTP/1.1\r\n"
    let line = request.method().as_str().len() + 1 + target + 11;
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// Errors of `accept` that concern one connection (the next may be fine) are skipped; others
/// (out of file descriptors, above all) are logged and accepting pauses, so the loop does not
/// spin while the condition lasts.
async fn handle_accept_error(error: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept connections; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Counts one served connection for as long as it lives.
struct OpenConnection(());

impl OpenConnection {
    fn new() -> Self {
        metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
        Self(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_bytes_counts_the_request_as_sent() {
        let request = Request::get("/streams?limit=5")
            .header("host", "localhost")
            .body(())
            .expect("request");
        // "GET /streams?limit=5 HTTP/1.1\r\nhost: localhost\r\n\r\n"
        assert_eq!(head_bytes(&request), 31 + 17 + 2);
    }
}
