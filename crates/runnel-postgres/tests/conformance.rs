//! The PostgreSQL engine against the conformance suite and against the reference model, each
//! test in a fresh schema of the local test database.

use std::sync::Arc;

use proptest::prelude::*;
use runnel_postgres::PostgresStore;
use runnel_testkit::Fixture;
use runnel_testkit::property::{CheckOptions, check_against_model, ops_strategy};

mod support;

use support::TestSchema;

/// A fresh store in a freshly migrated schema, which the fixture drops after the store closed.
async fn postgres() -> Fixture {
    let schema = TestSchema::migrated().await;
    let store = PostgresStore::open(schema.config())
        .await
        .unwrap_or_else(|error| panic!("the store opens on a migrated schema: {error}"));
    Fixture::new(Arc::new(store), schema)
}

mod postgres {
    runnel_testkit::conformance_suite!(super::postgres);
}

proptest! {
    // Each case migrates a fresh schema and commits every append, so keep the count modest.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn postgres_engine_agrees_with_the_model(ops in ops_strategy()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a test runtime starts");
        let result = runtime.block_on(async {
            let fixture = postgres().await;
            let result = check_against_model(
                fixture.store.as_ref(),
                &ops,
                CheckOptions { positions_gapless: false },
            )
            .await;
            fixture
                .store
                .close()
                .await
                .unwrap_or_else(|error| panic!("closing the store: {error}"));
            result
        });
        if let Err(divergence) = result {
            prop_assert!(false, "{}", divergence);
        }
    }
}
