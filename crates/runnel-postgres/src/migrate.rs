//! The schema: versioned migrations in `migrations/*.sql`, applied by [`migrate`] and checked by
//! [`crate::PostgresStore::open`].
//!
//! `migrate` applies every missing migration in one transaction that first takes a
//! transaction-scoped advisory lock on the schema's name: two processes migrating at once
//! serialise on it, and the second finds the work done. A failure rolls everything back, so the
//! schema is always at one recorded version. Applied versions are recorded in
//! `runnel_schema_migrations`.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::config::{PostgresConfig, redact_url};
use crate::connect::{Role, connect, endpoint, tls};
use crate::error::PostgresError;

/// One schema change, applied once per database.
#[derive(Debug, Clone, Copy)]
struct Migration {
    version: u32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, in version order. Add new ones at the end; never edit an applied one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "positions from transaction ids",
        sql: include_str!("../migrations/0002_positions_from_transaction_ids.sql"),
    },
];

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 2;

const MIGRATION_LOCK: &str = include_str!("sql/migration_lock.sql");
const MIGRATIONS_TABLE: &str = include_str!("sql/migrations_table.sql");
const CURRENT_VERSION: &str = include_str!("sql/schema_version.sql");
const RECORD_MIGRATION: &str = include_str!("sql/record_migration.sql");
const SESSION_FACTS: &str = include_str!("sql/session_facts.sql");
const LIFT_POSITIONS: &str = include_str!("sql/lift_positions.sql");
const POSITIONS_AHEAD: &str = include_str!("sql/positions_ahead.sql");

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema (namespace) Runnel's tables live in.
    pub schema: String,
    /// The versions this run applied, oldest first; empty when the schema was up to date.
    pub applied: Vec<u32>,
    /// The version the schema is at now.
    pub version: u32,
}

/// Creates or upgrades Runnel's tables in the database (and schema) that `url` names. Safe to
/// run again, and from several processes at once.
pub async fn migrate(url: &str) -> Result<MigrationReport, PostgresError> {
    migrate_with(&PostgresConfig::new(url)).await
}

/// [`migrate`] with the connection settings of `config` (its URL, TLS and connect timeout).
pub async fn migrate_with(config: &PostgresConfig) -> Result<MigrationReport, PostgresError> {
    let url = config.url.as_str();
    let tls = tls(config)?;
    let migrator = endpoint(config, &tls, Role::Migrator)?;
    let mut client = connect(&migrator, config.connect_timeout())
        .await
        .map_err(|error| PostgresError::Unreachable {
            url: redact_url(url),
            cause: error.to_string(),
        })?;
    let schema = check_session(&client, url).await?;
    let failed = |action: &str| {
        let action = action.to_owned();
        move |error: tokio_postgres::Error| PostgresError::database(action, &error)
    };
    let transaction = client
        .transaction()
        .await
        .map_err(failed("starting the migration"))?;
    transaction
        .execute(MIGRATION_LOCK, &[])
        .await
        .map_err(failed("taking the migration lock"))?;
    transaction
        .batch_execute(MIGRATIONS_TABLE)
        .await
        .map_err(failed("creating runnel_schema_migrations"))?;
    let current = transaction
        .query_one(CURRENT_VERSION, &[])
        .await
        .map_err(failed("reading the schema version"))?
        .get::<_, Option<i32>>(0)
        .map_or(0, |version| version.max(0) as u32);
    if current > SCHEMA_VERSION {
        return Err(PostgresError::SchemaAhead {
            url: redact_url(url),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let action = format!(
            "applying migration {} ({})",
            migration.version, migration.name
        );
        transaction
            .batch_execute(migration.sql)
            .await
            .map_err(failed(&action))?;
        transaction
            .execute(
                RECORD_MIGRATION,
                &[&(migration.version as i32), &migration.name],
            )
            .await
            .map_err(failed(&action))?;
        applied.push(migration.version);
    }
    let lifted = transaction
        .query(LIFT_POSITIONS, &[])
        .await
        .map_err(failed("checking transaction ids against positions"))?;
    if !lifted.is_empty() {
        tracing::warn!(%schema, "transaction ids were behind the log's positions (a database restored from a logical dump?); new positions now start above the stored ones");
    }
    transaction
        .commit()
        .await
        .map_err(failed("committing the migration"))?;
    if !applied.is_empty() {
        tracing::info!(%schema, ?applied, version = SCHEMA_VERSION, "migrated the Runnel schema");
    }
    Ok(MigrationReport {
        schema,
        applied,
        version: SCHEMA_VERSION,
    })
}

/// Checks that the session can hold Runnel's data, and returns the schema it works in.
pub(crate) async fn check_session(client: &Client, url: &str) -> Result<String, PostgresError> {
    let row = client
        .query_one(SESSION_FACTS, &[])
        .await
        .map_err(|error| PostgresError::database("reading the session's settings", &error))?;
    let schema: Option<String> = row.get(0);
    let encoding: String = row.get(1);
    if encoding != "UTF8" {
        return Err(PostgresError::UnsupportedEncoding {
            url: redact_url(url),
            encoding,
        });
    }
    schema.ok_or_else(|| PostgresError::NoSchema {
        url: redact_url(url),
    })
}

/// Refuses a schema that `migrate` has not brought to [`SCHEMA_VERSION`].
pub(crate) async fn check_version(
    client: &Client,
    url: &str,
    schema: &str,
) -> Result<(), PostgresError> {
    let found = match client.query_one(CURRENT_VERSION, &[]).await {
        Ok(row) => row
            .get::<_, Option<i32>>(0)
            .map_or(0, |version| version.max(0) as u32),
        Err(error) if error.code() == Some(&SqlState::UNDEFINED_TABLE) => 0,
        Err(error) => {
            return Err(PostgresError::database(
                "reading the schema version",
                &error,
            ));
        }
    };
    match found {
        0 => Err(PostgresError::NotMigrated {
            url: redact_url(url),
            schema: schema.to_owned(),
        }),
        found if found < SCHEMA_VERSION => Err(PostgresError::SchemaBehind {
            url: redact_url(url),
            found,
            required: SCHEMA_VERSION,
        }),
        found if found > SCHEMA_VERSION => Err(PostgresError::SchemaAhead {
            url: redact_url(url),
            found,
            known: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

/// Refuses a database whose transaction ids are behind its positions: positions come from
/// transaction ids (see the crate documentation), so new events would get positions below
/// stored ones, which readers past them would never see. Only a database restored from a
/// logical dump gets there; `migrate` lifts the positions past the stored ones.
pub(crate) async fn check_positions(client: &Client, url: &str) -> Result<(), PostgresError> {
    let ahead: bool = client
        .query_one(POSITIONS_AHEAD, &[])
        .await
        .map_err(|error| {
            PostgresError::database("checking transaction ids against positions", &error)
        })?
        .get(0);
    if ahead {
        return Err(PostgresError::PositionsAhead {
            url: redact_url(url),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_up_to_the_schema_version() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "{}", migration.name);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }
}
