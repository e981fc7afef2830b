//! What is acknowledged survives closing and reopening, across segment boundaries.

use std::sync::Arc;

use runnel_core::{AllFilter, Direction, ExpectedRevision, Position, Revision, Store};
use runnel_embedded::{EmbeddedStore, EngineConfig, VerifyOnOpen};

use crate::common::{append, event, small_segments, stream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_reopen_across_many_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_segments();
    {
        let store = EmbeddedStore::open(dir.path(), config.clone()).expect("open");
        for n in 0..300u64 {
            let name = format!("order/o-{}", n % 7);
            let events = (0..10).map(|k| event(n * 10 + k)).collect();
            append(&store, &name, ExpectedRevision::Any, events)
                .await
                .expect("append");
        }
        store.close().await.expect("close");
    }
    let segments = std::fs::read_dir(dir.path().join("log"))
        .expect("log dir")
        .count();
    assert!(segments > 3, "expected several segments, found {segments}");
    for mode in [VerifyOnOpen::Full, VerifyOnOpen::Tail] {
        let store = EmbeddedStore::open(
            dir.path(),
            EngineConfig {
                verify_on_open: mode,
                ..config.clone()
            },
        )
        .expect("reopen");
        let mut from = Position(0);
        let mut seen = 0u64;
        loop {
            let slice = store
                .read_all(from, &AllFilter::default(), 1000)
                .await
                .expect("read all");
            for event in &slice.events {
                assert_eq!(event.position, Position(seen));
                seen += 1;
            }
            match slice.next {
                Some(next) => from = next,
                None => break,
            }
        }
        assert_eq!(seen, 3_000);
        let slice = store
            .read_stream(&stream("order/o-3"), None, Direction::Forward, 1000)
            .await
            .expect("read stream");
        assert_eq!(slice.events.len(), 430);
        for (n, event) in slice.events.iter().enumerate() {
            assert_eq!(event.revision, Revision(n as u64));
        }
        store.close().await.expect("close");
    }
    let report = runnel_embedded::verify(dir.path()).expect("verify");
    assert_eq!(report.events, 3_000);
    assert_eq!(report.unindexed_events, 0);
    assert_eq!(report.indexed_events_checked, 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path(), EngineConfig::default()).expect("open"));
    let mut tasks = Vec::new();
    for writer in 0..64u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for n in 0..20u64 {
                let name = format!("order/w-{writer}");
                let expected = match n {
                    0 => ExpectedRevision::NoStream,
                    n => ExpectedRevision::Exact(Revision(n - 1)),
                };
                append(&*store, &name, expected, vec![event(n)])
                    .await
                    .expect("append");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let stats = store.stats();
    assert_eq!(stats.events_written, 64 * 20);
    assert!(
        stats.batches < stats.events_written,
        "64 concurrent writers should share fsyncs: {} batches for {} events",
        stats.batches,
        stats.events_written
    );
}
