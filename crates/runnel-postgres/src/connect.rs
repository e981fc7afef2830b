//! Connections: the session settings each kind of connection gets, and connecting with a bound
//! on the whole handshake.
//!
//! Every timeout is set on both sides. The server cancels a statement after
//! `statement_timeout_ms` and gives up waiting for a lock after as long; the client gives up on
//! any answer a little later ([`PostgresConfig::answer_timeout`]), which covers what the server
//! cannot: a network that silently stopped delivering. TCP keepalives and `tcp_user_timeout`
//! make the kernel notice a dead peer too.
//!
//! TLS is set up once per store ([`PostgresTls`], see `tls.rs`) and shared by every
//! connection: the pool's, the writer's, the listener's and the migrator's.

use std::str::FromStr;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client};

use crate::config::{PostgresConfig, redact_url};
use crate::error::{PostgresError, store_error, timed_out};
use crate::tls::{PostgresTls, split_url};

/// What a connection is for; each gets its own session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Reader,
    /// A group-commit connection (one per writer lane). Its transactions hold their streams'
    /// locks and keep every `$all` reader below their positions until they end, so the server
    /// must end them if this node stops in the middle of one (`idle_in_transaction_…`), or
    /// other nodes' appends to those streams, and every reader, would wait behind it.
    Writer,
    Listener,
    Migrator,
}

/// Where and how one kind of connection connects.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) tls: PostgresTls,
}

/// The TLS every connection of `config` uses: the URL's `sslmode` and `sslrootcert`, and the
/// CA file of the settings. Reads the CA file (or the system's roots), so build it once.
pub(crate) fn tls(config: &PostgresConfig) -> Result<PostgresTls, PostgresError> {
    let split = split_url(&config.url).map_err(|cause| PostgresError::InvalidUrl {
        url: redact_url(&config.url),
        cause,
    })?;
    PostgresTls::new(
        split.mode,
        config.ca_cert.as_deref(),
        split.root_cert.as_deref(),
    )
}

/// The connection settings for `role`, from the URL plus the engine's session settings.
pub(crate) fn endpoint(
    config: &PostgresConfig,
    tls: &PostgresTls,
    role: Role,
) -> Result<Endpoint, PostgresError> {
    let invalid = |cause: String| PostgresError::InvalidUrl {
        url: redact_url(&config.url),
        cause,
    };
    let split = split_url(&config.url).map_err(invalid)?;
    let mut pg =
        tokio_postgres::Config::from_str(&split.rest).map_err(|e| invalid(e.to_string()))?;
    pg.ssl_mode(tls.mode().negotiation());
    let statement_ms = config.statement_timeout_ms;
    let mut settings = match role {
        Role::Reader | Role::Listener => format!("-c statement_timeout={statement_ms}"),
        Role::Writer => format!(
            "-c statement_timeout={statement_ms} -c lock_timeout={statement_ms} \
             -c idle_in_transaction_session_timeout={}",
            statement_ms.max(1_000) * 2
        ),
        // Migrations may rewrite tables: no statement timeout, but do not wait forever for a
        // lock that a running node holds.
        Role::Migrator => "-c lock_timeout=60000".to_owned(),
    };
    if let Some(existing) = pg.get_options() {
        settings = format!("{existing} {settings}");
    }
    pg.options(settings);
    if pg.get_application_name().is_none() {
        pg.application_name("runnel");
    }
    pg.connect_timeout(config.connect_timeout());
    pg.keepalives(true);
    pg.keepalives_idle(Duration::from_secs(10));
    pg.keepalives_interval(Duration::from_secs(2));
    pg.keepalives_retries(3);
    pg.tcp_user_timeout(config.answer_timeout());
    Ok(Endpoint {
        pg,
        tls: tls.clone(),
    })
}

/// Connects, bounding the whole handshake by the connect timeout, and drives the connection
/// on its own task. The task ends when the client is dropped or the connection breaks.
pub(crate) async fn connect(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<Client, runnel_core::StoreError> {
    let connecting = tokio::time::timeout(timeout, endpoint.pg.connect(endpoint.tls.clone())).await;
    let (client, connection) = match connecting {
        Ok(Ok(pair)) => pair,
        Ok(Err(error)) => return Err(store_error("connecting", &error)),
        Err(_) => return Err(timed_out("connecting", timeout)),
    };
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %crate::error::describe(&error), "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Connects like [`connect`], and forwards the notifications the connection receives.
pub(crate) async fn connect_listening(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<(Client, mpsc::Receiver<tokio_postgres::Notification>), runnel_core::StoreError> {
    let connecting = tokio::time::timeout(timeout, endpoint.pg.connect(endpoint.tls.clone())).await;
    let (client, mut connection) = match connecting {
        Ok(Ok(pair)) => pair,
        Ok(Err(error)) => return Err(store_error("connecting", &error)),
        Err(_) => return Err(timed_out("connecting", timeout)),
    };
    // Notifications are hints that carry a position; when the consumer is behind, dropping
    // some is harmless (the next one, or the periodic read, carries a later head), so the
    // channel is small and the connection never waits for it.
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    if sender.is_closed() {
                        break;
                    }
                    let _ = sender.try_send(notification);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(error = %crate::error::describe(&error), "the listener connection ended");
                    break;
                }
            }
        }
    });
    Ok((client, receiver))
}
