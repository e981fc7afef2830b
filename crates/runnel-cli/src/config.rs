//! `runnel serve`'s settings: defaults, then an optional `runnel.toml`, then `RUNNEL_*`
//! environment variables and flags (clap reads both; a flag wins over its variable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use figment::Figment;
use figment::providers::{Format as _, Serialized, Toml};
use runnel_core::AppendLimits;
use runnel_server::{AuthConfig, Secret, ServerConfig, TlsFiles};
use serde::{Deserialize, Serialize};

/// The most PostgreSQL connections one node's read pool may hold (PostgreSQL's own default
/// `max_connections` is 100, shared by every node and every other client).
const MAX_POSTGRES_POOL_SIZE: usize = 1_000;
/// The longest PostgreSQL timeout: a request waits about this long when the database stops
/// answering, so an hour is already far more than any client waits.
const MAX_POSTGRES_TIMEOUT_MS: u64 = 3_600_000;

/// Every setting of `runnel serve`, as the TOML file spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServeConfig {
    pub(crate) data_dir: PathBuf,
    /// When set, the PostgreSQL engine on this database instead of the embedded one in
    /// `data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) postgres_url: Option<String>,
    /// The CA certificates (PEM) PostgreSQL's certificate must chain to; without it the
    /// verifying `sslmode`s trust the system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) postgres_ca_cert: Option<PathBuf>,
    /// PostgreSQL connections for reads (the writer's lanes and the listener have their own
    /// besides).
    pub(crate) postgres_pool_size: usize,
    /// The writer's lanes: PostgreSQL connections that each run one group commit at a time.
    pub(crate) postgres_writer_connections: usize,
    /// Opening a PostgreSQL connection, TLS and authentication included.
    pub(crate) postgres_connect_timeout_ms: u64,
    /// The database cancels a statement (and a lock wait) after this long.
    pub(crate) postgres_statement_timeout_ms: u64,
    /// Waiting for a free pooled connection when all are busy.
    pub(crate) postgres_pool_wait_timeout_ms: u64,
    /// The longest a committed append waits for every reader to be able to see it before it
    /// is answered anyway.
    pub(crate) postgres_visibility_wait_ms: u64,
    pub(crate) listen: SocketAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    pub(crate) tls_reload_interval_ms: u64,
    /// A flag: left out of the defaults so that only a set value overrides a file's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) insecure: bool,
    pub(crate) max_connections: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) header_read_timeout_ms: u64,
    /// A flag, like `insecure`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) metrics_public: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) admin_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_pepper_file: Option<PathBuf>,
    pub(crate) log_format: LogFormat,
    pub(crate) log_level: String,
    pub(crate) max_body_bytes: usize,
    pub(crate) request_timeout_ms: u64,
    pub(crate) max_concurrent_requests: usize,
    pub(crate) max_subscriptions: usize,
    /// A flag, like `insecure`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) webhook_allow_private: bool,
    pub(crate) webhook_retry_min_ms: u64,
    pub(crate) webhook_retry_max_ms: u64,
    pub(crate) webhook_circuit_failures: u32,
    pub(crate) webhook_circuit_cool_down_ms: u64,
    pub(crate) max_subscriptions_per_key: usize,
    pub(crate) heartbeat_ms: u64,
    pub(crate) subscription_max_lag_events: u64,
    pub(crate) shutdown_grace_ms: u64,
    pub(crate) max_events_per_append: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_append_bytes: usize,
    pub(crate) max_queued_appends: usize,
    pub(crate) segment_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let server = ServerConfig::default();
        let limits = AppendLimits::default();
        let engine = runnel_embedded::EngineConfig::default();
        let postgres = runnel_postgres::PostgresConfig::default();
        Self {
            data_dir: PathBuf::from("./runnel-data"),
            postgres_url: None,
            postgres_ca_cert: None,
            postgres_pool_size: postgres.pool_size,
            postgres_writer_connections: postgres.writer_connections,
            postgres_connect_timeout_ms: postgres.connect_timeout_ms,
            postgres_statement_timeout_ms: postgres.statement_timeout_ms,
            postgres_pool_wait_timeout_ms: postgres.pool_wait_timeout_ms,
            postgres_visibility_wait_ms: postgres.visibility_wait_ms,
            listen: server.listen,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_reload_interval_ms: server.tls_reload_interval_ms,
            insecure: server.insecure,
            max_connections: server.max_connections,
            max_header_bytes: server.max_header_bytes,
            header_read_timeout_ms: server.header_read_timeout_ms,
            metrics_public: server.auth.metrics_public,
            admin_key_file: None,
            key_pepper_file: None,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            max_body_bytes: server.max_body_bytes,
            request_timeout_ms: server.request_timeout_ms,
            max_concurrent_requests: server.max_concurrent_requests,
            max_subscriptions: server.max_subscriptions,
            webhook_allow_private: server.webhook_allow_private,
            webhook_retry_min_ms: server.webhook_retry_min_ms,
            webhook_retry_max_ms: server.webhook_retry_max_ms,
            webhook_circuit_failures: server.webhook_circuit_failures,
            webhook_circuit_cool_down_ms: server.webhook_circuit_cool_down_ms,
            max_subscriptions_per_key: server.max_subscriptions_per_key,
            heartbeat_ms: server.heartbeat_ms,
            subscription_max_lag_events: server.subscription_max_lag_events,
            shutdown_grace_ms: server.shutdown_grace_ms,
            max_events_per_append: limits.max_events_per_append,
            max_event_bytes: limits.max_event_bytes,
            max_append_bytes: limits.max_append_bytes,
            max_queued_appends: engine.max_queued_appends,
            segment_bytes: engine.segment_bytes,
        }
    }
}

impl ServeConfig {
    /// Defaults, overlaid with `file` (when given), overlaid with `overrides` (flags and
    /// environment variables, serialised with unset options left out).
    pub(crate) fn load(file: Option<&Path>, overrides: &impl Serialize) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Self::default()));
        if let Some(file) = file {
            if !file.is_file() {
                anyhow::bail!("the configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let config: Self = figment
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("invalid configuration")?;
        config.check().context("invalid configuration")?;
        Ok(config)
    }

    pub(crate) fn server(&self) -> ServerConfig {
        ServerConfig {
            listen: self.listen,
            tls: self.tls_files(),
            tls_reload_interval_ms: self.tls_reload_interval_ms,
            insecure: self.insecure,
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            header_read_timeout_ms: self.header_read_timeout_ms,
            max_body_bytes: self.max_body_bytes,
            request_timeout_ms: self.request_timeout_ms,
            max_concurrent_requests: self.max_concurrent_requests,
            max_subscriptions: self.max_subscriptions,
            webhook_allow_private: self.webhook_allow_private,
            webhook_retry_min_ms: self.webhook_retry_min_ms,
            webhook_retry_max_ms: self.webhook_retry_max_ms,
            webhook_circuit_failures: self.webhook_circuit_failures,
            webhook_circuit_cool_down_ms: self.webhook_circuit_cool_down_ms,
            max_subscriptions_per_key: self.max_subscriptions_per_key,
            heartbeat_ms: self.heartbeat_ms,
            subscription_max_lag_events: self.subscription_max_lag_events,
            shutdown_grace_ms: self.shutdown_grace_ms,
            ..ServerConfig::default()
        }
    }

    /// The key settings: the admin key and the pepper from their variable or file (never from
    /// a flag's value, which other users of the machine can read in the process list).
    pub(crate) fn auth(&self) -> anyhow::Result<AuthConfig> {
        Ok(AuthConfig {
            metrics_public: self.metrics_public,
            admin_key: secret(
                "RUNNEL_ADMIN_KEY",
                "admin_key_file",
                self.admin_key_file.as_deref(),
            )?,
            key_pepper: secret(
                "RUNNEL_KEY_PEPPER",
                "key_pepper_file",
                self.key_pepper_file.as_deref(),
            )?,
        })
    }

    /// The TLS files, when a certificate and key are both set (clap enforces the pair for
    /// flags; a file or variables may still give one alone, which [`Self::check`] refuses).
    fn tls_files(&self) -> Option<TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: self.tls_client_ca.clone(),
            }),
            _ => None,
        }
    }

    /// Settings that are wrong alone or together.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        self.check_postgres()?;
        match (&self.tls_cert, &self.tls_key, &self.tls_client_ca) {
            (Some(_), None, _) => anyhow::bail!("tls_cert is set but tls_key is not: give both"),
            (None, Some(_), _) => anyhow::bail!("tls_key is set but tls_cert is not: give both"),
            (None, None, Some(_)) => {
                anyhow::bail!("tls_client_ca needs tls_cert and tls_key: mutual TLS is TLS")
            }
            _ => Ok(()),
        }
    }

    /// The PostgreSQL settings out of their bounds, each refused with its own name (whether
    /// or not `postgres_url` is set: a wrong value in a shared file is wrong for every node).
    fn check_postgres(&self) -> anyhow::Result<()> {
        let pool = self.postgres_pool_size;
        if !(1..=MAX_POSTGRES_POOL_SIZE).contains(&pool) {
            anyhow::bail!(
                "postgres_pool_size must be 1 to {MAX_POSTGRES_POOL_SIZE} connections, not {pool}"
            );
        }
        let lanes = self.postgres_writer_connections;
        if !(1..=runnel_postgres::MAX_WRITER_CONNECTIONS).contains(&lanes) {
            anyhow::bail!(
                "postgres_writer_connections must be 1 to {} connections, not {lanes}",
                runnel_postgres::MAX_WRITER_CONNECTIONS
            );
        }
        for (setting, value) in [
            (
                "postgres_connect_timeout_ms",
                self.postgres_connect_timeout_ms,
            ),
            (
                "postgres_statement_timeout_ms",
                self.postgres_statement_timeout_ms,
            ),
            (
                "postgres_pool_wait_timeout_ms",
                self.postgres_pool_wait_timeout_ms,
            ),
            (
                "postgres_visibility_wait_ms",
                self.postgres_visibility_wait_ms,
            ),
        ] {
            if !(1..=MAX_POSTGRES_TIMEOUT_MS).contains(&value) {
                anyhow::bail!(
                    "{setting} must be 1 to {MAX_POSTGRES_TIMEOUT_MS} milliseconds, not {value}"
                );
            }
        }
        if let Some(path) = &self.postgres_ca_cert {
            check_ca_cert(path)?;
        }
        Ok(())
    }

    /// The PostgreSQL engine's settings, when `postgres_url` is set; the append limits and
    /// the queue bound are the same settings as the embedded engine's.
    pub(crate) fn postgres(&self) -> Option<runnel_postgres::PostgresConfig> {
        let url = self.postgres_url.as_deref()?;
        Some(runnel_postgres::PostgresConfig {
            limits: self.limits(),
            max_queued_appends: self.max_queued_appends,
            pool_size: self.postgres_pool_size,
            writer_connections: self.postgres_writer_connections,
            connect_timeout_ms: self.postgres_connect_timeout_ms,
            statement_timeout_ms: self.postgres_statement_timeout_ms,
            pool_wait_timeout_ms: self.postgres_pool_wait_timeout_ms,
            visibility_wait_ms: self.postgres_visibility_wait_ms,
            ca_cert: self.postgres_ca_cert.clone(),
            ..runnel_postgres::PostgresConfig::new(url)
        })
    }

    fn limits(&self) -> AppendLimits {
        AppendLimits {
            max_events_per_append: self.max_events_per_append,
            max_event_bytes: self.max_event_bytes,
            max_append_bytes: self.max_append_bytes,
        }
    }

    pub(crate) fn engine(&self) -> runnel_embedded::EngineConfig {
        runnel_embedded::EngineConfig {
            limits: AppendLimits {
                max_events_per_append: self.max_events_per_append,
                max_event_bytes: self.max_event_bytes,
                max_append_bytes: self.max_append_bytes,
            },
            max_queued_appends: self.max_queued_appends,
            segment_bytes: self.segment_bytes,
            ..runnel_embedded::EngineConfig::default()
        }
    }
}

/// A CA file that cannot be read is refused by its setting's name before anything connects
/// (what it holds is checked when the engine loads it).
pub(crate) fn check_ca_cert(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => anyhow::bail!("postgres_ca_cert {} is not a file", path.display()),
        Err(error) => anyhow::bail!(
            "postgres_ca_cert {} cannot be read: {error}",
            path.display()
        ),
    }
}

/// A secret from the environment variable `variable` or from the file `file` (its first line,
/// as container platforms mount secrets), but not from both.
fn secret(variable: &str, setting: &str, file: Option<&Path>) -> anyhow::Result<Option<Secret>> {
    let from_env = std::env::var(variable)
        .ok()
        .filter(|value| !value.is_empty());
    match (from_env, file) {
        (Some(_), Some(_)) => anyhow::bail!("both {variable} and {setting} are set: give one"),
        (Some(value), None) => Ok(Some(Secret::new(value.trim()))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {setting} {}", path.display()))?;
            let value = text.lines().next().unwrap_or_default().trim();
            if value.is_empty() {
                anyhow::bail!("{setting} {} is empty", path.display());
            }
            Ok(Some(Secret::new(value)))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[derive(Serialize)]
    struct Overrides {
        #[serde(skip_serializing_if = "Option::is_none")]
        listen: Option<SocketAddr>,
        #[serde(skip_serializing_if = "Option::is_none")]
        heartbeat_ms: Option<u64>,
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(
            file,
            "listen = \"127.0.0.1:9000\"\nheartbeat_ms = 500\nmax_subscriptions = 7"
        )
        .expect("write");
        let overrides = Overrides {
            listen: Some("127.0.0.1:9001".parse().expect("addr")),
            heartbeat_ms: None,
        };
        let config = ServeConfig::load(Some(file.path()), &overrides).expect("loads");
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.heartbeat_ms, 500);
        assert_eq!(config.max_subscriptions, 7);
        assert_eq!(config.data_dir, PathBuf::from("./runnel-data"));
    }

    #[derive(Serialize)]
    struct PostgresOverrides {
        #[serde(skip_serializing_if = "Option::is_none")]
        postgres_url: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        postgres_pool_size: Option<usize>,
        #[serde(skip_serializing_if = "Option::is_none")]
        postgres_statement_timeout_ms: Option<u64>,
    }

    #[test]
    fn postgres_settings_layer_like_the_others_and_reach_the_engine() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(
            file,
            "postgres_pool_size = 4\npostgres_connect_timeout_ms = 700\n\
             postgres_statement_timeout_ms = 900\npostgres_pool_wait_timeout_ms = 800\n\
             postgres_visibility_wait_ms = 250\npostgres_writer_connections = 3"
        )
        .expect("write");
        let overrides = PostgresOverrides {
            postgres_url: Some("postgres://db/runnel".to_owned()),
            postgres_pool_size: Some(6),
            postgres_statement_timeout_ms: None,
        };
        let config = ServeConfig::load(Some(file.path()), &overrides).expect("loads");
        let postgres = config.postgres().expect("a URL is set");
        assert_eq!(postgres.pool_size, 6, "the flag wins over the file");
        assert_eq!(postgres.connect_timeout_ms, 700);
        assert_eq!(postgres.statement_timeout_ms, 900);
        assert_eq!(postgres.pool_wait_timeout_ms, 800);
        assert_eq!(postgres.visibility_wait_ms, 250);
        assert_eq!(postgres.writer_connections, 3);
        assert!(postgres.validate().is_ok());

        let defaults = ServeConfig::default();
        let engine = runnel_postgres::PostgresConfig::default();
        assert_eq!(defaults.postgres_pool_size, engine.pool_size);
        assert_eq!(
            defaults.postgres_statement_timeout_ms,
            engine.statement_timeout_ms
        );
        assert!(defaults.postgres().is_none(), "no URL, no PostgreSQL");
    }

    #[test]
    fn postgres_settings_out_of_bounds_are_refused_by_name() {
        for (overrides, named) in [
            (
                PostgresOverrides {
                    postgres_url: None,
                    postgres_pool_size: Some(0),
                    postgres_statement_timeout_ms: None,
                },
                "postgres_pool_size",
            ),
            (
                PostgresOverrides {
                    postgres_url: None,
                    postgres_pool_size: Some(MAX_POSTGRES_POOL_SIZE + 1),
                    postgres_statement_timeout_ms: None,
                },
                "postgres_pool_size",
            ),
            (
                PostgresOverrides {
                    postgres_url: Some("postgres://db/runnel".to_owned()),
                    postgres_pool_size: None,
                    postgres_statement_timeout_ms: Some(0),
                },
                "postgres_statement_timeout_ms",
            ),
        ] {
            let error = ServeConfig::load(None, &overrides).expect_err("out of bounds");
            assert!(format!("{error:#}").contains(named), "{error:#}");
        }
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "postgres_pool_wait_timeout_ms = 0").expect("write");
        let none = PostgresOverrides {
            postgres_url: None,
            postgres_pool_size: None,
            postgres_statement_timeout_ms: None,
        };
        let error = ServeConfig::load(Some(file.path()), &none).expect_err("zero");
        assert!(
            format!("{error:#}").contains("postgres_pool_wait_timeout_ms"),
            "{error:#}"
        );
    }

    #[test]
    fn the_postgres_ca_file_reaches_the_engine_and_a_missing_one_is_refused_by_name() {
        let ca = tempfile::NamedTempFile::new().expect("temp file");
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(
            file,
            "postgres_url = \"postgres://db/runnel?sslmode=verify-full\"\npostgres_ca_cert = {:?}",
            ca.path().display().to_string()
        )
        .expect("write");
        let none = PostgresOverrides {
            postgres_url: None,
            postgres_pool_size: None,
            postgres_statement_timeout_ms: None,
        };
        let config = ServeConfig::load(Some(file.path()), &none).expect("loads");
        let postgres = config.postgres().expect("a URL is set");
        assert_eq!(postgres.ca_cert.as_deref(), Some(ca.path()));

        let mut missing = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(missing, "postgres_ca_cert = \"/nonexistent/ca.crt\"").expect("write");
        let error = ServeConfig::load(Some(missing.path()), &none).expect_err("missing");
        assert!(
            format!("{error:#}").contains("postgres_ca_cert /nonexistent/ca.crt"),
            "{error:#}"
        );
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        writeln!(file, "lisen = \"127.0.0.1:9000\"").expect("write");
        let overrides = Overrides {
            listen: None,
            heartbeat_ms: None,
        };
        let error = ServeConfig::load(Some(file.path()), &overrides).expect_err("typo");
        assert!(format!("{error:#}").contains("lisen"), "{error:#}");
    }
}
