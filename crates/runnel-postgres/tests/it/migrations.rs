//! Migrations: fresh, re-run, concurrent, and the refusal to open what they have not prepared.

use std::time::{Duration, Instant};

use runnel_core::Store;
use runnel_postgres::{PostgresConfig, PostgresError, PostgresStore, SCHEMA_VERSION, migrate};

use crate::support::{TestSchema, admin};

fn all_versions() -> Vec<u32> {
    (1..=SCHEMA_VERSION).collect()
}

async fn recorded_versions(schema: &TestSchema) -> Vec<i32> {
    admin()
        .await
        .query(
            &format!(
                "SELECT version FROM {}.runnel_schema_migrations ORDER BY version",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("reading the recorded migrations: {error}"))
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn migrate_on_a_fresh_schema_applies_everything_and_a_rerun_applies_nothing() {
    let schema = TestSchema::create().await;
    let first = migrate(&schema.url)
        .await
        .unwrap_or_else(|error| panic!("first migration: {error}"));
    assert_eq!(first.applied, all_versions());
    assert_eq!(first.version, SCHEMA_VERSION);
    assert_eq!(
        first.schema, schema.name,
        "the tables go in the search_path's schema"
    );
    let again = migrate(&schema.url)
        .await
        .unwrap_or_else(|error| panic!("second migration: {error}"));
    assert!(
        again.applied.is_empty(),
        "a re-run applies nothing: {again:?}"
    );
    assert_eq!(again.version, SCHEMA_VERSION);
    assert_eq!(
        recorded_versions(&schema).await.len(),
        SCHEMA_VERSION as usize
    );
    let store = PostgresStore::open(schema.config())
        .await
        .unwrap_or_else(|error| panic!("the store opens on the migrated schema: {error}"));
    store
        .close()
        .await
        .unwrap_or_else(|error| panic!("close: {error}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_exactly_once() {
    let schema = TestSchema::create().await;
    let runs: Vec<_> = (0..3)
        .map(|_| tokio::spawn(migrate_owned(schema.url.clone())))
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        let report = run
            .await
            .unwrap_or_else(|error| panic!("a migration task failed: {error}"))
            .unwrap_or_else(|error| panic!("a concurrent migration failed: {error}"));
        assert_eq!(report.version, SCHEMA_VERSION);
        applied.extend(report.applied);
    }
    applied.sort_unstable();
    assert_eq!(
        applied,
        all_versions(),
        "between them, the runs applied every version once"
    );
    assert_eq!(
        recorded_versions(&schema).await,
        all_versions()
            .into_iter()
            .map(|v| v as i32)
            .collect::<Vec<_>>()
    );
}

async fn migrate_owned(url: String) -> Result<runnel_postgres::MigrationReport, PostgresError> {
    migrate(&url).await
}

#[tokio::test]
async fn open_refuses_an_unmigrated_schema_and_says_to_run_migrate() {
    let schema = TestSchema::create().await;
    let error = PostgresStore::open(schema.config())
        .await
        .expect_err("an unmigrated schema is refused");
    assert!(
        matches!(error, PostgresError::NotMigrated { .. }),
        "got {error:?}"
    );
    assert!(
        error.to_string().contains("runnel migrate"),
        "the message says what to do: {error}"
    );
}

#[tokio::test]
async fn open_and_migrate_refuse_a_schema_newer_than_this_build() {
    let schema = TestSchema::migrated().await;
    admin()
        .await
        .execute(
            &format!(
                "INSERT INTO {}.runnel_schema_migrations (version, name) VALUES ($1, 'future')",
                schema.name
            ),
            &[&(SCHEMA_VERSION as i32 + 1)],
        )
        .await
        .unwrap_or_else(|error| panic!("recording a future migration: {error}"));
    let error = PostgresStore::open(schema.config())
        .await
        .expect_err("a newer schema is refused");
    assert!(
        matches!(error, PostgresError::SchemaAhead { .. }),
        "got {error:?}"
    );
    assert!(error.to_string().contains("upgrade Runnel"), "{error}");
    let error = migrate(&schema.url)
        .await
        .expect_err("migrate does not touch a newer schema");
    assert!(
        matches!(error, PostgresError::SchemaAhead { .. }),
        "got {error:?}"
    );
}

#[tokio::test]
async fn open_fails_fast_with_a_clear_error_when_the_database_is_unreachable() {
    let config = PostgresConfig {
        connect_timeout_ms: 1_000,
        // Nothing listens on port 1.
        ..PostgresConfig::new("postgres://postgres:secret@127.0.0.1:1/test")
    };
    let started = Instant::now();
    let error = PostgresStore::open(config)
        .await
        .expect_err("no database there");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, PostgresError::Unreachable { .. }),
        "got {error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(
        !message.contains("secret"),
        "the password is not printed: {message}"
    );
}

/// A logical restore (`pg_dump` into a new cluster) brings the log's positions but not the
/// transaction ids they came from: new events would get positions below stored ones. Open
/// refuses such a database, and migrate lifts new positions above the stored ones.
#[tokio::test]
async fn positions_ahead_of_transaction_ids_are_refused_at_open_and_lifted_by_migrate() {
    let schema = TestSchema::migrated().await;
    // A stored event far ahead of every transaction id this cluster will hand out for a while.
    let restoring = admin().await;
    restoring
        .batch_execute(&format!(
            "INSERT INTO {0}.runnel_streams VALUES ('order', 'o-1', 0, now(), now()); \
             INSERT INTO {0}.runnel_events (position, stream_type, stream_id, revision, id, \
                                            event_type, data_json, recorded_at) \
             SELECT (pg_current_xact_id()::text::bigint + 1000000) << 16, 'order', 'o-1', 0, \
                    gen_random_uuid(), 'Restored', '{{}}', now()",
            schema.name
        ))
        .await
        .unwrap_or_else(|error| panic!("restoring an event: {error}"));
    let ahead: i64 = restoring
        .query_one(
            &format!("SELECT max(position) FROM {}.runnel_events", schema.name),
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("reading the restored position: {error}"))
        .get(0);
    let error = PostgresStore::open(schema.config())
        .await
        .expect_err("a database whose positions are ahead of its transaction ids is refused");
    assert!(
        matches!(error, PostgresError::PositionsAhead { .. }),
        "got {error:?}"
    );
    assert!(
        error.to_string().contains("runnel migrate"),
        "the message says what to do: {error}"
    );

    let report = migrate(&schema.url)
        .await
        .unwrap_or_else(|error| panic!("migrate: {error}"));
    assert!(
        report.applied.is_empty(),
        "no migration was due: {report:?}"
    );
    let store = PostgresStore::open(schema.config())
        .await
        .unwrap_or_else(|error| panic!("open after migrate: {error}"));
    let outcome = store
        .append(crate::helpers::append_with_ids(
            &crate::helpers::stream("order/o-1"),
            1,
        ))
        .await
        .unwrap_or_else(|error| panic!("append: {error}"));
    assert!(
        outcome.first_position.0 > ahead as u64,
        "a new event goes after the restored one: {outcome:?}"
    );
    assert_eq!(outcome.first_revision.0, 1);
    store
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}
