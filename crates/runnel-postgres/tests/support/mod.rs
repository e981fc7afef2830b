//! A fresh PostgreSQL schema per test, in the database that `RUNNEL_TEST_POSTGRES_URL` names
//! (default: the local test server), dropped again when the test is done.
//!
//! A schema rather than a database per test: creating one takes milliseconds, not a copy of a
//! template database, and it exercises the engine in a non-default schema, as a deployment that
//! shares a database would run it.

#![allow(dead_code, unreachable_pub)]

use runnel_postgres::{PostgresConfig, migrate};
use tokio_postgres::NoTls;

pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn admin_url() -> String {
    std::env::var("RUNNEL_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned())
}

/// Connects to the test database, or panics saying how to get one.
pub async fn admin() -> tokio_postgres::Client {
    let url = admin_url();
    let connecting = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_postgres::connect(&url, NoTls),
    )
    .await;
    let (client, connection) = match connecting {
        Ok(Ok(pair)) => pair,
        Ok(Err(error)) => panic!(
            "PostgreSQL is not reachable at {url} ({error}: {}): these tests need a running \
             server (`.ci/run` starts one; set RUNNEL_TEST_POSTGRES_URL to use another)",
            std::error::Error::source(&error).map_or(String::new(), ToString::to_string)
        ),
        Err(_) => panic!("PostgreSQL at {url} did not answer within 10 s"),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A schema of its own for one test; dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct TestSchema {
    pub name: String,
    /// The test database's URL with this schema as search_path, and the schema's name as
    /// application_name so that a test can find its store's connections.
    pub url: String,
}

impl TestSchema {
    pub async fn create() -> Self {
        let name = format!("runnel_test_{}", uuid::Uuid::now_v7().simple());
        let client = admin().await;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap_or_else(|error| panic!("creating schema {name}: {error}"));
        let base = admin_url();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url =
            format!("{base}{separator}options=-c%20search_path%3D{name}&application_name={name}");
        Self { name, url }
    }

    /// A schema with Runnel's tables in it.
    pub async fn migrated() -> Self {
        let schema = Self::create().await;
        migrate(&schema.url)
            .await
            .unwrap_or_else(|error| panic!("migrating {}: {error}", schema.name));
        schema
    }

    /// Settings for a test store: a small pool (tests run side by side on one server) and
    /// short timeouts, so that failure tests finish quickly.
    pub fn config(&self) -> PostgresConfig {
        PostgresConfig {
            pool_size: 4,
            connect_timeout_ms: 2_000,
            pool_wait_timeout_ms: 2_000,
            statement_timeout_ms: 3_000,
            head_poll_interval_ms: 500,
            ..PostgresConfig::new(self.url.clone())
        }
    }

    /// Terminates every server connection opened for this schema's stores.
    pub async fn terminate_connections(&self) -> u64 {
        let client = admin().await;
        let row = client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&self.name],
            )
            .await
            .unwrap_or_else(|error| {
                panic!("terminating the connections of {}: {error}", self.name)
            });
        row.get::<_, i64>(0) as u64
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Best effort, on a thread of its own: Drop may run inside a runtime, which cannot
        // block on another.
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(Ok((client, connection))) = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    tokio_postgres::connect(&admin_url(), NoTls),
                )
                .await
                else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let _ = client
                    .batch_execute(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = '{name}' AND pid <> pg_backend_pid(); \
                         DROP SCHEMA IF EXISTS {name} CASCADE"
                    ))
                    .await;
            });
        });
        let _ = dropped.join();
    }
}

/// What the [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Passes bytes both ways.
    Forward,
    /// Closes every connection, open or new: the database is down.
    Refuse,
    /// Keeps every connection open but passes nothing: a network that silently drops packets.
    Blackhole,
}

/// A TCP proxy in front of the test server, to cut the store off from the database and give it
/// back, without touching the server that other tests use.
#[derive(Debug)]
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    mode: std::sync::Arc<tokio::sync::watch::Sender<ProxyMode>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("binding the proxy: {error}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|error| panic!("the proxy's address: {error}"));
        let (mode, _) = tokio::sync::watch::channel(ProxyMode::Forward);
        let mode = std::sync::Arc::new(mode);
        let modes = std::sync::Arc::clone(&mode);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut watch = modes.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let now = *watch.borrow_and_update();
                    match now {
                        ProxyMode::Refuse => drop(inbound),
                        ProxyMode::Blackhole => {
                            let _ = watch.wait_for(|mode| *mode != ProxyMode::Blackhole).await;
                            drop(inbound);
                        }
                        ProxyMode::Forward => forward(inbound, upstream, watch).await,
                    }
                });
            }
        });
        Self { addr, mode, accept }
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// `url` with the test server's address replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let upstream = upstream_of(&admin_url());
        url.replacen(&upstream, &self.addr.to_string(), 1)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(ProxyMode::Refuse);
        self.accept.abort();
    }
}

/// `host:port` of a `postgres://user@host:port/db…` URL.
pub fn upstream_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?'])
        .next()
        .unwrap_or(after_scheme);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

async fn forward(
    mut inbound: tokio::net::TcpStream,
    upstream: String,
    mut watch: tokio::sync::watch::Receiver<ProxyMode>,
) {
    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
        return;
    };
    let cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => None,
        changed = watch.wait_for(|mode| *mode != ProxyMode::Forward) => changed.ok().map(|mode| *mode),
    };
    if cut == Some(ProxyMode::Blackhole) {
        // Hold both ends open and silent until the network "comes back", then drop them as a
        // router that lost its state would.
        let _ = watch.wait_for(|mode| *mode != ProxyMode::Blackhole).await;
    }
}
