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
            "PostgreSQL is not reachable at {url} ({error}): these tests need a running server \
             (`.ci/run` starts one; set RUNNEL_TEST_POSTGRES_URL to use another)"
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
