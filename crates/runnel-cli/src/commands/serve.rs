//! `runnel serve`: the HTTP server on the embedded engine, or on PostgreSQL.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use runnel_core::Store;
use runnel_embedded::EmbeddedStore;
use runnel_postgres::{PostgresStore, redact_url};
use runnel_server::{Server, ServerConfig};
use serde::Serialize;

use super::CommandResult;
use crate::config::{LogFormat, ServeConfig};

/// Every option can also be set by its `RUNNEL_*` variable or in the `--config` file (same name,
/// in snake_case); a flag wins over its variable, which wins over the file.
#[derive(Debug, clap::Args, Serialize)]
pub(crate) struct ServeArgs {
    /// A TOML file with any of the settings below, e.g. `listen = "0.0.0.0:2113"`.
    #[arg(long, env = "RUNNEL_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,

    /// Where the data lives [default: ./runnel-data]
    #[arg(long, env = "RUNNEL_DATA_DIR", value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,

    /// Keep the data in PostgreSQL instead of the data directory, e.g.
    /// `postgres://runnel@db:5432/runnel`; several servers may share one database. Run
    /// `runnel migrate` first.
    #[arg(long = "postgres", env = "RUNNEL_POSTGRES_URL", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_url: Option<String>,

    /// The CA certificates (PEM) PostgreSQL's certificate must chain to, for
    /// `sslmode=verify-ca` or `verify-full` in the URL (also checked, chain only, with
    /// `prefer` and `require`); without it the system's roots are trusted.
    #[arg(long, env = "RUNNEL_POSTGRES_CA_CERT", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_ca_cert: Option<PathBuf>,

    #[arg(help = with_default("PostgreSQL connections for reads, per node; the writer's lanes and the listener take their own besides", ServeConfig::default().postgres_pool_size))]
    #[arg(long, env = "RUNNEL_POSTGRES_POOL_SIZE", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_pool_size: Option<usize>,

    #[arg(help = with_default("PostgreSQL connections that write, per node: each runs one group commit at a time, side by side", ServeConfig::default().postgres_writer_connections))]
    #[arg(long, env = "RUNNEL_POSTGRES_WRITER_CONNECTIONS", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_writer_connections: Option<usize>,

    #[arg(help = with_default("Time to open a PostgreSQL connection, TLS and authentication included", ServeConfig::default().postgres_connect_timeout_ms))]
    #[arg(long, env = "RUNNEL_POSTGRES_CONNECT_TIMEOUT_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_connect_timeout_ms: Option<u64>,

    #[arg(help = with_default("PostgreSQL cancels a statement or a lock wait after this long; a request waits about this long when the database stops answering, then gets 503", ServeConfig::default().postgres_statement_timeout_ms))]
    #[arg(long, env = "RUNNEL_POSTGRES_STATEMENT_TIMEOUT_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_statement_timeout_ms: Option<u64>,

    #[arg(help = with_default("Time a read waits for a free pooled PostgreSQL connection; then 503", ServeConfig::default().postgres_pool_wait_timeout_ms))]
    #[arg(long, env = "RUNNEL_POSTGRES_POOL_WAIT_TIMEOUT_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_pool_wait_timeout_ms: Option<u64>,

    #[arg(help = with_default("The longest a committed append waits for every reader to be able to see it (an older transaction in the PostgreSQL cluster hides it until it ends) before it is answered anyway", ServeConfig::default().postgres_visibility_wait_ms))]
    #[arg(long, env = "RUNNEL_POSTGRES_VISIBILITY_WAIT_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres_visibility_wait_ms: Option<u64>,

    /// The address to listen on; port 0 picks a free one [default: 127.0.0.1:2113]
    #[arg(long, env = "RUNNEL_LISTEN", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,

    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key. Reloaded
    /// when the file changes.
    #[arg(
        long,
        env = "RUNNEL_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM). Reloaded when the file changes.
    #[arg(
        long,
        env = "RUNNEL_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_key: Option<PathBuf>,

    /// Require client certificates signed by this CA (PEM): mutual TLS. Needs --tls-cert.
    #[arg(
        long,
        env = "RUNNEL_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_client_ca: Option<PathBuf>,

    /// How often the TLS files are checked for changes [default: 5000]
    #[arg(long, env = "RUNNEL_TLS_RELOAD_INTERVAL_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_reload_interval_ms: Option<u64>,

    /// Run without authentication (every request may do everything) and allow plain HTTP on
    /// a non-loopback address. For development and trusted networks only; the server says so
    /// at start and in /health/ready.
    #[arg(long, env = "RUNNEL_INSECURE")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    insecure: bool,

    /// Connections open at once; one more gets 503 and is closed [default: 4096]
    #[arg(long, env = "RUNNEL_MAX_CONNECTIONS", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,

    /// The largest request line and headers; larger get 431 [default: 16384]
    #[arg(long, env = "RUNNEL_MAX_HEADER_BYTES", value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_header_bytes: Option<usize>,

    /// Time for a client to send a request's headers, and for an idle connection to stay
    /// open; then it is closed [default: 10000]
    #[arg(long, env = "RUNNEL_HEADER_READ_TIMEOUT_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    header_read_timeout_ms: Option<u64>,

    /// Serve GET /metrics without an API key, for a scraper on a trusted network.
    #[arg(long, env = "RUNNEL_METRICS_PUBLIC")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    metrics_public: bool,

    /// A file whose first line is the bootstrap admin key (or set RUNNEL_ADMIN_KEY); at least
    /// 32 characters, e.g. from `openssl rand -hex 32`. Without either, a first start generates
    /// a key and prints it once.
    #[arg(long, env = "RUNNEL_ADMIN_KEY_FILE", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_key_file: Option<PathBuf>,

    /// A file whose first line is the pepper of stored key hashes (or set RUNNEL_KEY_PEPPER),
    /// at least 16 bytes. Without either, one is generated and stored with the keys.
    #[arg(long, env = "RUNNEL_KEY_PEPPER_FILE", value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    key_pepper_file: Option<PathBuf>,

    /// Log lines for people or for machines [default: text]
    #[arg(long, env = "RUNNEL_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<LogFormat>,

    /// A tracing filter, e.g. `info` or `info,runnel_server=debug` [default: info]
    #[arg(long, env = "RUNNEL_LOG_LEVEL", value_name = "FILTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_level: Option<String>,

    /// The largest request body; larger ones get 413 [default: 8388608]
    #[arg(long, env = "RUNNEL_MAX_BODY_BYTES", value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_body_bytes: Option<usize>,

    /// Time until a response must start; then 503 [default: 30000]
    #[arg(long, env = "RUNNEL_REQUEST_TIMEOUT_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    request_timeout_ms: Option<u64>,

    /// Requests handled at once; more are shed with 503 and Retry-After [default: 1024]
    #[arg(long, env = "RUNNEL_MAX_CONCURRENT_REQUESTS", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_concurrent_requests: Option<usize>,

    /// Live subscriptions open at once; more get 429 [default: 1024]
    #[arg(long, env = "RUNNEL_MAX_SUBSCRIPTIONS", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_subscriptions: Option<usize>,

    /// Deliver webhooks to private, loopback and link-local addresses too (refused
    /// otherwise). For development and tests only.
    #[arg(long, env = "RUNNEL_WEBHOOK_ALLOW_PRIVATE")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    webhook_allow_private: bool,

    /// The first wait before a failed webhook delivery is tried again; it doubles, with
    /// jitter, for each further failure [default: 1000]
    #[arg(long, env = "RUNNEL_WEBHOOK_RETRY_MIN_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_retry_min_ms: Option<u64>,

    /// The longest wait between two attempts of a webhook delivery [default: 600000]
    #[arg(long, env = "RUNNEL_WEBHOOK_RETRY_MAX_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_retry_max_ms: Option<u64>,

    /// Failures in a row that pause a webhook subscription until a probe succeeds
    /// (0: never) [default: 5]
    #[arg(long, env = "RUNNEL_WEBHOOK_CIRCUIT_FAILURES", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_circuit_failures: Option<u32>,

    /// How long a paused failing webhook endpoint rests before a probe [default: 30000]
    #[arg(long, env = "RUNNEL_WEBHOOK_CIRCUIT_COOL_DOWN_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_circuit_cool_down_ms: Option<u64>,

    /// Live subscriptions one API key may hold open; more get 429 [default: 128]
    #[arg(long, env = "RUNNEL_MAX_SUBSCRIPTIONS_PER_KEY", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_subscriptions_per_key: Option<usize>,

    /// How often an idle subscription gets a `: keep-alive` comment [default: 15000]
    #[arg(long, env = "RUNNEL_HEARTBEAT_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_ms: Option<u64>,

    /// A live subscription this many events behind the head is closed (clients resume with
    /// Last-Event-ID) [default: 1000000]
    #[arg(long, env = "RUNNEL_SUBSCRIPTION_MAX_LAG_EVENTS", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_max_lag_events: Option<u64>,

    /// How long shutdown waits for in-flight requests [default: 10000]
    #[arg(long, env = "RUNNEL_SHUTDOWN_GRACE_MS", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    shutdown_grace_ms: Option<u64>,

    #[arg(help = with_default("Events per append", ServeConfig::default().max_events_per_append))]
    #[arg(long, env = "RUNNEL_MAX_EVENTS_PER_APPEND", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_events_per_append: Option<usize>,

    #[arg(help = with_default("Bytes per event (type + data + metadata)", ServeConfig::default().max_event_bytes))]
    #[arg(long, env = "RUNNEL_MAX_EVENT_BYTES", value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_event_bytes: Option<usize>,

    #[arg(help = with_default("Bytes per append, all events together", ServeConfig::default().max_append_bytes))]
    #[arg(long, env = "RUNNEL_MAX_APPEND_BYTES", value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_append_bytes: Option<usize>,

    #[arg(help = with_default("Appends waiting for the log writer; more wait for room", ServeConfig::default().max_queued_appends))]
    #[arg(long, env = "RUNNEL_MAX_QUEUED_APPENDS", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_queued_appends: Option<usize>,

    #[arg(help = with_default("The size of each log segment file", ServeConfig::default().segment_bytes))]
    #[arg(long, env = "RUNNEL_SEGMENT_BYTES", value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    segment_bytes: Option<u64>,
}

/// Help for a setting whose default belongs to the engine, so the text follows it.
fn with_default(what: &str, default: impl std::fmt::Display) -> String {
    format!("{what} [default: {default}]")
}

pub(crate) async fn run(args: ServeArgs) -> CommandResult {
    let config = ServeConfig::load(args.config.as_deref(), &args)?;
    init_logging(&config)?;
    // Before the store: opening a large one takes a while, and this refusal does not need it.
    config.server().check_transport()?;
    let store = open_store(&config).await?;
    let server_config = match config.auth() {
        Ok(auth) => ServerConfig {
            auth,
            ..config.server()
        },
        Err(error) => {
            let _ = store.close().await;
            return Err(error);
        }
    };
    let server = match Server::bind(server_config, Arc::clone(&store)).await {
        Ok(server) => server,
        Err(error) => {
            let _ = store.close().await;
            return Err(error.into());
        }
    };
    announce(server.scheme(), server.local_addr(), &config);
    if config.insecure {
        warn_insecure();
    }
    if let Some(key) = server.generated_admin_key() {
        show_generated_key(key.expose());
    }
    server.run(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The engine the configuration names: PostgreSQL when a URL is set, else the embedded one.
/// Either refuses to start on data it cannot serve (a PostgreSQL schema that is missing or at
/// another version, a damaged log), with an error that says what to do.
async fn open_store(config: &ServeConfig) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(postgres) = config.postgres() {
        // The engine's errors name the (redacted) URL and what to do.
        let store = PostgresStore::open(postgres)
            .await
            .context("cannot start on PostgreSQL")?;
        return Ok(Arc::new(store));
    }
    let dir = config.data_dir.clone();
    let engine = config.engine();
    // Opening recovers and verifies the log: blocking file work, off the async threads.
    let store = tokio::task::spawn_blocking(move || EmbeddedStore::open(&dir, engine))
        .await
        .context("the store's open task failed")?
        .with_context(|| {
            format!(
                "cannot open the data directory {}",
                config.data_dir.display()
            )
        })?;
    Ok(Arc::new(store))
}

/// Where the data lives, for the banner and the log; never a password.
fn data_location(config: &ServeConfig) -> String {
    match &config.postgres_url {
        Some(url) => format!("PostgreSQL at {}", redact_url(url)),
        None => format!("embedded, data directory {}", config.data_dir.display()),
    }
}

/// Tells a person (and the test harness, which reads the first line) where to go.
fn announce(scheme: &str, addr: SocketAddr, config: &ServeConfig) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Runnel {} listening on {scheme}://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(out, "  API docs:       {scheme}://{addr}/docs/");
    let location = data_location(config);
    let _ = writeln!(out, "  engine:         {location}");
    let _ = out.flush();
    tracing::info!(%addr, engine = %location, "serving");
}

/// Said on stdout, where a person looks, as well as in the log.
fn warn_insecure() {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "WARNING: --insecure: authentication is OFF. Anyone who can reach this server can read, write and manage everything."
    );
    let _ = out.flush();
}

/// The key a first start generated: printed once, here, and never again (only its hash is
/// stored).
fn show_generated_key(key: &str) {
    let rule = "=".repeat(78);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\n{rule}\n  No admin key was configured, so this first start created one. It is shown\n  only this once (the server keeps only a hash of it); store it somewhere safe:\n\n    RUNNEL_API_KEY={key}\n\n  Send it as `Authorization: Bearer <key>`; the runnel CLI reads RUNNEL_API_KEY.\n  Make narrower keys with `runnel keys create`; see docs/security.md.\n{rule}\n"
    );
    let _ = out.flush();
}

fn init_logging(config: &ServeConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid --log-level {:?}", config.log_level))?;
    // Colours only for a person at a terminal, never into files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the logger: {error}"))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM, the signals a person and a container platform send.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[derive(Debug, clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn help_states_the_real_default_of_every_setting() {
        let help = Wrapper::command().render_long_help().to_string();
        let defaults = serde_json::to_value(ServeConfig::default()).expect("serialises");
        for (name, value) in defaults.as_object().expect("object") {
            let flag = format!("--{}", name.replace('_', "-"));
            assert!(help.contains(&flag), "{flag} is not an option:\n{help}");
            let shown = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert!(
                help.contains(&format!("[default: {shown}]")),
                "{flag} does not document its default {shown}:\n{help}"
            );
        }
    }
}
