//! The server's limits and timings. Every queue, request and connection has a bound here.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::error::ServerError;
use crate::tls::TlsFiles;

/// How the HTTP server runs. [`Default`] gives safe values for a single machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The address to listen on; port 0 picks a free port (see [`crate::Server::local_addr`]).
    pub listen: SocketAddr,
    /// Serve HTTPS with these files (and require client certificates when a client CA is
    /// given). `None` serves plain HTTP, which is refused on a non-loopback address unless
    /// `insecure` is set.
    pub tls: Option<TlsFiles>,
    /// How often the TLS files are re-read; a change takes effect for new connections.
    pub tls_reload_interval_ms: u64,
    /// Run without authentication, and accept plain HTTP on a non-loopback address (see
    /// docs/security.md). For development and trusted networks only.
    pub insecure: bool,
    /// Connections open at the same time. One more is answered 503 `too_many_connections` and
    /// closed; a flood beyond that is closed without an answer.
    pub max_connections: usize,
    /// The largest request head (request line and headers); larger gets 431. A head over twice
    /// this is cut off by the HTTP parser, with a bare 431.
    pub max_header_bytes: usize,
    /// How long a client may take to send a request head, counted from the connection's
    /// opening or from its previous response; then the connection is closed. This bounds both
    /// slow clients (slowloris) and idle kept-alive connections. TLS handshakes get the same.
    pub header_read_timeout_ms: u64,
    /// The largest request body accepted; larger bodies are answered with 413. It must leave room
    /// for JSON framing and base64 above the store's `max_append_bytes`.
    pub max_body_bytes: usize,
    /// How long a request may take until its response starts; then 503. Live subscriptions are
    /// not cut by this: their response starts at once.
    pub request_timeout_ms: u64,
    /// Requests handled at the same time; more are shed with 503 and `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Live subscriptions (`GET /subscribe`) open at the same time; more get 429.
    pub max_subscriptions: usize,
    /// Deliver webhooks to private, loopback and link-local addresses too (development and
    /// tests); otherwise they are refused, so that a subscription cannot reach inside.
    pub webhook_allow_private: bool,
    /// The shortest wait before a failed webhook delivery is tried again (it doubles, with
    /// jitter, up to `webhook_retry_max_ms`).
    pub webhook_retry_min_ms: u64,
    /// The longest wait between two attempts of a webhook delivery.
    pub webhook_retry_max_ms: u64,
    /// Failures in a row that open a webhook endpoint's circuit breaker (pausing its
    /// subscription until a probe succeeds).
    pub webhook_circuit_failures: u32,
    /// How long an open circuit breaker waits before its first probe.
    pub webhook_circuit_cool_down_ms: u64,
    /// Live subscriptions one API key may hold open at the same time; more get 429. Keys
    /// from the keyring only: the configured admin key and `--insecure` are bound by
    /// `max_subscriptions` alone.
    pub max_subscriptions_per_key: usize,
    /// How often an idle subscription sends a `: keep-alive` comment (API.md: at most 15 s).
    pub heartbeat_ms: u64,
    /// The most events one subscription reads from the log at a time.
    pub subscription_page_events: usize,
    /// The bytes of event data one subscription aims to hold at a time; pages shrink to fit it.
    pub subscription_page_bytes: usize,
    /// A live subscription that falls this many events behind the head is closed; the client
    /// resumes with `Last-Event-ID`. Catch-up from an old position is not cut by this.
    pub subscription_max_lag_events: u64,
    /// How long a graceful shutdown waits for in-flight requests before it closes the store.
    pub shutdown_grace_ms: u64,
    /// API keys: the bootstrap admin key, the pepper, public metrics. Ignored (but the keyring
    /// still kept) when `insecure` is set.
    pub auth: AuthConfig,
}

/// How requests are authenticated (see docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// Serve `GET /metrics` without a key, for a scraper on a trusted network.
    pub metrics_public: bool,
    /// The bootstrap admin key (`RUNNEL_ADMIN_KEY`): checked against a hash kept in memory,
    /// never stored. Without it, and with no key in the keyring, a first start generates one.
    pub admin_key: Option<Secret>,
    /// The HMAC key of stored key hashes (`RUNNEL_KEY_PEPPER`). Without it the server generates
    /// one and stores it beside the hashes.
    pub key_pepper: Option<Secret>,
}

/// A secret setting: compared and cloned like a string, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 2113)),
            tls: None,
            tls_reload_interval_ms: 5_000,
            insecure: false,
            max_connections: 4_096,
            max_header_bytes: 16 * 1024,
            header_read_timeout_ms: 10_000,
            max_body_bytes: 8 * 1024 * 1024,
            request_timeout_ms: 30_000,
            max_concurrent_requests: 1_024,
            max_subscriptions: 1_024,
            webhook_allow_private: false,
            webhook_retry_min_ms: 1_000,
            webhook_retry_max_ms: 10 * 60 * 1_000,
            webhook_circuit_failures: 5,
            webhook_circuit_cool_down_ms: 30_000,
            max_subscriptions_per_key: 128,
            heartbeat_ms: 15_000,
            subscription_page_events: 256,
            subscription_page_bytes: 1024 * 1024,
            subscription_max_lag_events: 1_000_000,
            shutdown_grace_ms: 10_000,
            auth: AuthConfig::default(),
        }
    }
}

impl ServerConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms.max(1))
    }

    /// How webhooks are delivered. Out-of-range values are brought within bounds here, so
    /// that delivery always runs.
    pub fn webhook_delivery(&self) -> runnel_broker::delivery::DeliveryConfig {
        let defaults = runnel_broker::delivery::DeliveryConfig::default();
        let max_delay = runnel_broker::retry::MAX_BACKOFF_DELAY_MS;
        let min_delay_ms = self.webhook_retry_min_ms.clamp(1, max_delay);
        let cool_down_ms = self
            .webhook_circuit_cool_down_ms
            .clamp(1, runnel_broker::circuit::MAX_CIRCUIT_DURATION_MS);
        runnel_broker::delivery::DeliveryConfig {
            allow_private: self.webhook_allow_private,
            backoff: runnel_broker::retry::BackoffPolicy {
                min_delay_ms,
                max_delay_ms: self.webhook_retry_max_ms.clamp(min_delay_ms, max_delay),
                ..defaults.backoff
            },
            circuit: runnel_broker::circuit::CircuitConfig {
                consecutive_failures: self.webhook_circuit_failures,
                cool_down_ms,
                max_cool_down_ms: defaults.circuit.max_cool_down_ms.max(cool_down_ms),
                ..defaults.circuit
            },
            ..defaults
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Refuses plain HTTP on an address other than loopback unless `insecure` is set. Checked
    /// by [`crate::Server::bind`]; callers may check first, before slow work such as opening a
    /// large store.
    pub fn check_transport(&self) -> Result<(), ServerError> {
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.insecure {
            return Err(ServerError::PlaintextOnNetwork { addr: self.listen });
        }
        Ok(())
    }

    pub fn tls_reload_interval(&self) -> Duration {
        Duration::from_millis(self.tls_reload_interval_ms.max(100))
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms.max(1))
    }
}
