//! The engine's settings, each with a bound and a unit in its name.

use std::path::PathBuf;
use std::time::Duration;

use runnel_core::AppendLimits;

use crate::error::PostgresError;

/// The positions one transaction numbers its events with: 2^16 from its first (see the crate
/// documentation), so a group commit, and an append, carries at most this many events.
pub const MAX_EVENTS_PER_TRANSACTION: usize = 1 << 16;

/// The most writer lanes a node runs.
pub const MAX_WRITER_CONNECTIONS: usize = 64;

/// How a [`crate::PostgresStore`] connects and how much it takes on at once.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database?options=…`, as libpq takes it. A
    /// `search_path` given through `options` puts Runnel's tables in that schema.
    pub url: String,
    /// The CA certificates (PEM) the server's certificate must chain to. Without it, the
    /// verifying `sslmode`s (`verify-ca`, `verify-full`) trust the system's roots, and
    /// `prefer` and `require` check nothing (see the module `tls`). The URL's `sslrootcert`
    /// says the same; giving both is refused unless they agree.
    pub ca_cert: Option<PathBuf>,
    /// Connections for reads. The writer's lanes and the notification listener have their own
    /// besides.
    pub pool_size: usize,
    /// The writer's lanes: connections that each run one group commit at a time, side by side
    /// with the others (and with every other node's). More lanes overlap one commit's round
    /// trip and WAL flush with the next one's, at the price of smaller commits: worth it when
    /// PostgreSQL and the node have cores to spare, not on a small machine.
    pub writer_connections: usize,
    /// The longest a committed append waits for every reader to be able to see it (an older
    /// transaction anywhere in the database cluster hides it until it ends) before it is
    /// answered anyway.
    pub visibility_wait_ms: u64,
    /// Appends waiting for the writer; beyond that an append is refused as overloaded.
    pub max_queued_appends: usize,
    /// The most events one group commit (one transaction) carries; at most
    /// [`MAX_EVENTS_PER_TRANSACTION`].
    pub max_batch_events: usize,
    /// The most event bytes one group commit carries (one append bigger than this still goes,
    /// alone).
    pub max_batch_bytes: usize,
    pub limits: AppendLimits,
    /// Opening a connection, TLS and authentication included.
    pub connect_timeout_ms: u64,
    /// Waiting for a free pooled connection when all are busy.
    pub pool_wait_timeout_ms: u64,
    /// The server cancels any statement, and gives up waiting for a lock, after this long; the
    /// client gives up on an answer a second later. A request waits at most about this long
    /// when the database stops answering.
    pub statement_timeout_ms: u64,
    /// How often the head follower reads the head even without a notification, bounding how
    /// long a lost notification can delay followers.
    pub head_poll_interval_ms: u64,
    /// After the database was found unreachable, appends fail at once for this long instead of
    /// each waiting for another connection attempt.
    pub reconnect_backoff_ms: u64,
    /// The most events a filtered `$all` read scans before it returns what it found.
    pub max_scan_events: usize,
}

impl PostgresConfig {
    /// The defaults, with `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_cert: None,
            pool_size: 16,
            writer_connections: 1,
            visibility_wait_ms: 1_000,
            max_queued_appends: 4_096,
            max_batch_events: 4_096,
            max_batch_bytes: 8 * 1024 * 1024,
            limits: AppendLimits::default(),
            connect_timeout_ms: 3_000,
            pool_wait_timeout_ms: 3_000,
            statement_timeout_ms: 3_000,
            head_poll_interval_ms: 1_000,
            reconnect_backoff_ms: 250,
            max_scan_events: 50_000,
        }
    }

    /// Rejects settings that could not work.
    pub fn validate(&self) -> Result<(), PostgresError> {
        let invalid = |reason: &str| {
            Err(PostgresError::InvalidConfig {
                reason: reason.to_owned(),
            })
        };
        if self.pool_size == 0 || self.pool_size > 1_000 {
            return invalid("pool_size must be 1 to 1000");
        }
        if self.max_queued_appends == 0 || self.max_batch_events == 0 || self.max_batch_bytes == 0 {
            return invalid(
                "max_queued_appends, max_batch_events and max_batch_bytes must be positive",
            );
        }
        if self.writer_connections == 0 || self.writer_connections > MAX_WRITER_CONNECTIONS {
            return invalid(&format!(
                "writer_connections must be 1 to {MAX_WRITER_CONNECTIONS}"
            ));
        }
        if self.max_batch_events > MAX_EVENTS_PER_TRANSACTION
            || self.limits.max_events_per_append > MAX_EVENTS_PER_TRANSACTION
        {
            return invalid(&format!(
                "max_batch_events and max_events_per_append must be at most \
                 {MAX_EVENTS_PER_TRANSACTION}: a transaction has that many positions"
            ));
        }
        if self.max_scan_events == 0 {
            return invalid("max_scan_events must be positive");
        }
        if self.connect_timeout_ms == 0
            || self.pool_wait_timeout_ms == 0
            || self.statement_timeout_ms == 0
            || self.head_poll_interval_ms == 0
        {
            return invalid(
                "connect_timeout_ms, pool_wait_timeout_ms, statement_timeout_ms and \
                 head_poll_interval_ms must be positive",
            );
        }
        Ok(())
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn statement_timeout(&self) -> Duration {
        Duration::from_millis(self.statement_timeout_ms)
    }

    /// How long the client waits for any one answer: the server's own timeout plus a margin,
    /// so that a server that stopped answering (a dead network) cannot hang a caller.
    pub(crate) fn answer_timeout(&self) -> Duration {
        self.statement_timeout() + Duration::from_secs(1)
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self::new("postgres://postgres@127.0.0.1:5432/postgres")
    }
}

/// The URL may carry a password: never print it.
impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_url(&self.url))
            .field("ca_cert", &self.ca_cert)
            .field("pool_size", &self.pool_size)
            .field("writer_connections", &self.writer_connections)
            .field("visibility_wait_ms", &self.visibility_wait_ms)
            .field("max_queued_appends", &self.max_queued_appends)
            .field("max_batch_events", &self.max_batch_events)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("limits", &self.limits)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("pool_wait_timeout_ms", &self.pool_wait_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("head_poll_interval_ms", &self.head_poll_interval_ms)
            .field("reconnect_backoff_ms", &self.reconnect_backoff_ms)
            .field("max_scan_events", &self.max_scan_events)
            .finish()
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut redacted = redact_userinfo(url);
    if let Some(at) = redacted.find("password=") {
        let end = redacted[at..]
            .find(['&', ' '])
            .map_or(redacted.len(), |end| at + end);
        redacted.replace_range(at..end, "password=***");
    }
    redacted
}

fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_printed_without_passwords() {
        assert_eq!(
            redact_url("postgres://runnel:s3cret@db:5432/runnel"),
            "postgres://runnel:***@db:5432/runnel"
        );
        assert_eq!(
            redact_url("postgres://runnel@db/runnel?password=s3cret&sslmode=require"),
            "postgres://runnel@db/runnel?password=***&sslmode=require"
        );
        assert_eq!(redact_url("postgres://db/runnel"), "postgres://db/runnel");
        assert_eq!(
            redact_url("postgres://db/runnel?password=pw"),
            "postgres://db/runnel?password=***"
        );
        let config = PostgresConfig::new("postgres://u:pw@h/d");
        assert!(!format!("{config:?}").contains("pw@"));
    }

    #[test]
    fn defaults_are_valid_and_zero_sizes_are_not() {
        assert!(PostgresConfig::default().validate().is_ok());
        let zero_pool = PostgresConfig {
            pool_size: 0,
            ..PostgresConfig::default()
        };
        assert!(zero_pool.validate().is_err());
        let no_lanes = PostgresConfig {
            writer_connections: 0,
            ..PostgresConfig::default()
        };
        assert!(no_lanes.validate().is_err());
    }

    #[test]
    fn a_batch_cannot_outgrow_a_transactions_positions() {
        let too_big = PostgresConfig {
            max_batch_events: MAX_EVENTS_PER_TRANSACTION + 1,
            ..PostgresConfig::default()
        };
        assert!(too_big.validate().is_err());
        let too_big_append = PostgresConfig {
            limits: AppendLimits {
                max_events_per_append: MAX_EVENTS_PER_TRANSACTION + 1,
                ..AppendLimits::default()
            },
            ..PostgresConfig::default()
        };
        assert!(too_big_append.validate().is_err());
    }
}
