//! Errors of opening and migrating, and how database errors become [`StoreError`]s.
//!
//! The one distinction that matters to callers at run time: is the database out of reach or
//! refusing for now (a dropped connection, a restart, a timeout, a failover to a read-only
//! standby)? Then the error is [`StoreError::Unavailable`], a 503 the client retries. Anything
//! else the database reports is a fault of this engine or of its schema, reported as a store
//! error (a 500) with the database's message.

use runnel_core::StoreError;
use tokio_postgres::error::SqlState;

/// Why the engine could not open, or migrate, a database.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("invalid PostgreSQL engine configuration: {reason}")]
    InvalidConfig { reason: String },

    #[error("invalid TLS settings for PostgreSQL: {reason}")]
    Tls { reason: String },

    #[error("invalid PostgreSQL URL {url}: {cause}")]
    InvalidUrl { url: String, cause: String },

    #[error("cannot reach PostgreSQL at {url}: {cause}")]
    Unreachable { url: String, cause: String },

    #[error(
        "the database at {url} has no Runnel schema (in schema {schema}): run `runnel migrate` first"
    )]
    NotMigrated { url: String, schema: String },

    #[error(
        "the Runnel schema at {url} is at version {found}, this version of Runnel needs {required}: run `runnel migrate`"
    )]
    SchemaBehind {
        url: String,
        found: u32,
        required: u32,
    },

    #[error(
        "the Runnel schema at {url} is at version {found}, newer than this version of Runnel knows ({known}): upgrade Runnel"
    )]
    SchemaAhead { url: String, found: u32, known: u32 },

    #[error(
        "the database at {url} has no schema to work in: the search_path names no existing schema"
    )]
    NoSchema { url: String },

    #[error(
        "the database at {url} hands out transaction ids below the positions its Runnel log holds \
         (was it restored from a logical dump?), so new events would go before old ones: run \
         `runnel migrate` with every node stopped, which moves new positions past them"
    )]
    PositionsAhead { url: String },

    #[error("the database at {url} uses encoding {encoding}; Runnel needs UTF8")]
    UnsupportedEncoding { url: String, encoding: String },

    #[error("PostgreSQL failed while {action}: {cause}")]
    Database { action: String, cause: String },
}

impl PostgresError {
    /// A database error during `action`, kept as text with its SQLSTATE.
    pub(crate) fn database(action: impl Into<String>, error: &tokio_postgres::Error) -> Self {
        Self::Database {
            action: action.into(),
            cause: describe(error),
        }
    }
}

impl From<PostgresError> for StoreError {
    fn from(error: PostgresError) -> Self {
        match error {
            PostgresError::InvalidConfig { reason } => StoreError::InvalidConfig { reason },
            PostgresError::Unreachable { .. } => StoreError::Unavailable {
                cause: error.to_string(),
            },
            other => StoreError::InvalidConfig {
                reason: other.to_string(),
            },
        }
    }
}

/// The error with its database message, detail and SQLSTATE, on one line.
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        return text;
    }
    match std::error::Error::source(error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

/// Whether `error` says the database is out of reach or refusing for now, rather than that
/// this engine asked for something wrong.
pub(crate) fn is_transient(error: &tokio_postgres::Error) -> bool {
    match error.code() {
        Some(code) => is_transient_state(code),
        // Not from the server: the connection (I/O, closed, connect, TLS, timeout) unless it is
        // one of the client-side conversion errors, which are this engine's bugs.
        None => {
            let text = error.to_string();
            ![
                "error serializing parameter",
                "error deserializing column",
                "invalid column",
                "query returned an unexpected number",
                "expected ",
            ]
            .iter()
            .any(|bug| text.starts_with(bug))
        }
    }
}

fn is_transient_state(code: &SqlState) -> bool {
    let code = code.code();
    // 08: connection exception. 53: insufficient resources (too many connections, disk full).
    // 57: operator intervention (shutdown, crash recovery, statement timeout, cancel).
    // 40: transaction rollback (serialization failure, deadlock). 55P03: lock timeout.
    // 25006: read-only transaction (the host became a standby after a failover). 25P03: idle
    // in transaction timeout. 3D000, 28xxx: the database or the role is not there (yet).
    ["08", "53", "57", "40", "28"]
        .iter()
        .any(|class| code.starts_with(class))
        || matches!(code, "55P03" | "25006" | "25P03" | "3D000")
}

/// A database error during `action`, as the [`runnel_core::Store`] trait reports it.
pub(crate) fn store_error(action: &str, error: &tokio_postgres::Error) -> StoreError {
    if is_transient(error) {
        StoreError::Unavailable {
            cause: format!("PostgreSQL failed while {action}: {}", describe(error)),
        }
    } else {
        StoreError::Index {
            action: format!("{action} in PostgreSQL"),
            cause: describe(error),
        }
    }
}

/// A client-side timeout: the database did not answer in time.
pub(crate) fn timed_out(action: &str, after: std::time::Duration) -> StoreError {
    StoreError::Unavailable {
        cause: format!("PostgreSQL did not answer within {after:?} while {action}"),
    }
}

/// Errors of the connection pool.
pub(crate) fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match error {
        PoolError::Backend(error) => store_error("connecting", &error),
        PoolError::Closed => StoreError::ShuttingDown,
        PoolError::Timeout(kind) => StoreError::Unavailable {
            cause: format!("no PostgreSQL connection available in time ({kind:?})"),
        },
        other => StoreError::Unavailable {
            cause: format!("no PostgreSQL connection: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_transient_and_schema_faults_are_not() {
        for code in [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::QUERY_CANCELED,
            SqlState::CONNECTION_FAILURE,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::READ_ONLY_SQL_TRANSACTION,
            SqlState::T_R_SERIALIZATION_FAILURE,
        ] {
            assert!(is_transient_state(&code), "{code:?}");
        }
        for code in [
            SqlState::UNDEFINED_TABLE,
            SqlState::UNIQUE_VIOLATION,
            SqlState::SYNTAX_ERROR,
            SqlState::CHARACTER_NOT_IN_REPERTOIRE,
        ] {
            assert!(!is_transient_state(&code), "{code:?}");
        }
    }
}
