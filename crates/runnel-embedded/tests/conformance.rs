//! The embedded engine against the conformance suite and against the reference model.

use std::sync::Arc;

use proptest::prelude::*;
use runnel_embedded::{EmbeddedStore, EngineConfig};
use runnel_testkit::Fixture;
use runnel_testkit::property::{CheckOptions, check_against_model, ops_strategy};

/// A fresh engine in its own temporary directory, which the fixture keeps until the store is
/// closed.
async fn embedded() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The smallest segments the default limits allow: every test opens a fresh store, and each
    // open zero-fills a segment and a spare.
    let config = EngineConfig {
        segment_bytes: 8 * 1024 * 1024,
        ..EngineConfig::default()
    };
    let store = EmbeddedStore::open(dir.path(), config)
        .unwrap_or_else(|error| panic!("the embedded store opens in a fresh directory: {error}"));
    Fixture::new(Arc::new(store), dir)
}

mod embedded {
    runnel_testkit::conformance_suite!(super::embedded);
}

proptest! {
    // Each case opens a fresh engine and syncs on every append, so keep the count modest.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn embedded_engine_agrees_with_the_model(ops in ops_strategy()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a test runtime starts");
        let result = runtime.block_on(async {
            let fixture = embedded().await;
            let result = check_against_model(
                fixture.store.as_ref(),
                &ops,
                CheckOptions { positions_gapless: true },
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
