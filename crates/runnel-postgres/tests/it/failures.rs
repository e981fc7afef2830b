//! The database connection fails: appends and reads fail fast as unavailable (never hang,
//! never a false success), readiness says so, and the store recovers by itself. Every
//! acknowledged event is then in the log exactly once, also when a commit's outcome was unknown
//! and the client retried it with the same ids.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use runnel_core::{AllFilter, Position, Store, StoreError};
use runnel_postgres::{PostgresConfig, PostgresStore};
use uuid::Uuid;

use crate::helpers::{all_events, append_with_ids, assert_exactly, ids_of, stream};
use crate::support::{Proxy, ProxyMode, TestSchema, admin};

const APPENDERS: usize = 8;
/// Appenders go on until the connections have been terminated enough (a fast engine finishes
/// a fixed count before the first termination), but never past this.
const MAX_APPENDS_PER_APPENDER: usize = 5_000;
const MAX_ATTEMPTS: usize = 200;

/// Appends until `stop` (at most `MAX_APPENDS_PER_APPENDER` times), retrying each append with
/// the same ids until it is acknowledged. Only `Unavailable` may fail an attempt.
async fn append_with_retries(
    store: Arc<PostgresStore>,
    appender: usize,
    failures: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Vec<(Vec<Uuid>, runnel_core::AppendOutcome)> {
    let mut acknowledged = Vec::new();
    for n in 0..MAX_APPENDS_PER_APPENDER {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let request = append_with_ids(&stream(&format!("order/a-{appender}")), 1 + n % 2);
        let ids = ids_of(&request);
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            match store.append(request.clone()).await {
                Ok(outcome) => break outcome,
                Err(StoreError::Unavailable { cause }) if attempts < MAX_ATTEMPTS => {
                    if cause.contains("unknown") {
                        println!("unknown outcome, retrying with the same ids: {cause}");
                    }
                    failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => {
                    panic!("appender {appender}, append {n}, attempt {attempts}: {error}")
                }
            }
        };
        acknowledged.push((ids, outcome));
    }
    acknowledged
}

fn expected_positions(
    acknowledged: &[(Vec<Uuid>, runnel_core::AppendOutcome)],
) -> HashMap<Uuid, Position> {
    let mut expected = HashMap::new();
    for (ids, outcome) in acknowledged {
        for (offset, id) in ids.iter().enumerate() {
            expected.insert(*id, Position(outcome.first_position.0 + offset as u64));
        }
    }
    expected
}

async fn wait_ready(store: &PostgresStore, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match store.ready().await {
            Ok(()) => return,
            Err(error) if Instant::now() < deadline => {
                tracing_free_sleep(&error).await;
            }
            Err(error) => panic!("the store did not become ready within {within:?}: {error}"),
        }
    }
}

async fn tracing_free_sleep(_why: &StoreError) {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_fail_appends_without_false_successes_and_the_store_recovers() {
    let schema = TestSchema::migrated().await;
    let store = Arc::new(
        PostgresStore::open(schema.config())
            .await
            .unwrap_or_else(|error| panic!("open: {error}")),
    );
    // A second node, whose connections die too, follows the head throughout.
    let other = PostgresStore::open(schema.config())
        .await
        .unwrap_or_else(|error| panic!("opening the second node: {error}"));
    let failures = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let appenders: Vec<_> = (0..APPENDERS)
        .map(|appender| {
            tokio::spawn(append_with_retries(
                Arc::clone(&store),
                appender,
                Arc::clone(&failures),
                Arc::clone(&stop),
            ))
        })
        .collect();
    // Reads during the outages either succeed or report the database unavailable.
    let reader = {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut unavailable = 0u64;
            while !done.load(Ordering::Relaxed) {
                match store.read_all(Position(0), &AllFilter::default(), 10).await {
                    Ok(_) => {}
                    Err(StoreError::Unavailable { .. }) => unavailable += 1,
                    Err(error) => panic!("a read failed otherwise than unavailable: {error}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            unavailable
        })
    };
    // Terminate the store's connections again and again, until appends have felt it.
    let mut kills = 0;
    while kills < 5 || (failures.load(Ordering::Relaxed) == 0 && kills < 40) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        schema.terminate_connections().await;
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for appender in appenders {
        acknowledged.extend(
            appender
                .await
                .unwrap_or_else(|error| panic!("an appender failed: {error}")),
        );
    }
    done.store(true, Ordering::Relaxed);
    let unavailable_reads = reader
        .await
        .unwrap_or_else(|error| panic!("the reader failed: {error}"));
    let failed_attempts = failures.load(Ordering::Relaxed);
    println!(
        "{kills} rounds of terminated connections: {failed_attempts} failed append attempts, \
         {unavailable_reads} unavailable reads"
    );
    assert!(
        failed_attempts > 0,
        "terminating the connections during appends made some fail"
    );

    wait_ready(&store, Duration::from_secs(10)).await;
    let expected = expected_positions(&acknowledged);
    let acknowledged_events: usize = acknowledged.iter().map(|(ids, _)| ids.len()).sum();
    assert_eq!(expected.len(), acknowledged_events, "event ids are unique");
    assert_exactly(
        &all_events(store.as_ref()).await,
        &expected,
        "after the outages",
    );
    for appender in 0..APPENDERS {
        let info = store
            .stream_info(&stream(&format!("order/a-{appender}")))
            .await
            .unwrap_or_else(|error| panic!("stream_info: {error}"));
        let written: u64 = acknowledged
            .iter()
            .filter(|(_, outcome)| outcome.stream == stream(&format!("order/a-{appender}")))
            .map(|(ids, _)| ids.len() as u64)
            .sum();
        assert_eq!(
            info.revision.0 + 1,
            written,
            "order/a-{appender} holds each acknowledged event once"
        );
    }
    // The other node's listener reconnected and its head reached the end.
    let last = acknowledged
        .iter()
        .map(|(_, outcome)| outcome.last_position)
        .max();
    let mut watch = other.watch_head();
    let caught_up = tokio::time::timeout(Duration::from_secs(5), async {
        while watch.current() < last {
            if watch.wait_past(watch.current()).await.is_none() {
                panic!("the other node's watch ended");
            }
        }
    })
    .await;
    assert!(caught_up.is_ok(), "the other node's head reached {last:?}");
    wait_ready(&other, Duration::from_secs(10)).await;
    other
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    store
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

/// Asserts that `call` fails as unavailable within `within`.
async fn assert_unavailable_within<T: std::fmt::Debug>(
    what: &str,
    within: Duration,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let result = tokio::time::timeout(within + Duration::from_secs(5), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {:?}", within + Duration::from_secs(5)));
    let took = started.elapsed();
    match result {
        Err(StoreError::Unavailable { cause }) => {
            assert!(took <= within, "{what} took {took:?} to fail ({cause})");
        }
        other => panic!("{what} should fail as unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_requests_fast_and_the_store_recovers_by_itself() {
    let schema = TestSchema::migrated().await;
    let proxy = Proxy::start(crate::support::upstream_of(&schema.url)).await;
    let config = PostgresConfig {
        url: proxy.url(&schema.url),
        connect_timeout_ms: 1_000,
        pool_wait_timeout_ms: 1_000,
        statement_timeout_ms: 1_000,
        ..schema.config()
    };
    let store = PostgresStore::open(config)
        .await
        .unwrap_or_else(|error| panic!("open through the proxy: {error}"));
    let order = stream("order/o-1");
    let mut acknowledged = Vec::new();
    let request = append_with_ids(&order, 2);
    let outcome = store
        .append(request.clone())
        .await
        .unwrap_or_else(|error| panic!("append before the outage: {error}"));
    acknowledged.push((ids_of(&request), outcome));

    // The network silently drops everything: the client-side timeouts answer.
    proxy.set(ProxyMode::Blackhole);
    let bound = Duration::from_secs(4);
    assert_unavailable_within("an append", bound, store.append(append_with_ids(&order, 1))).await;
    assert_unavailable_within(
        "a read",
        bound,
        store.read_all(Position(0), &AllFilter::default(), 10),
    )
    .await;
    assert_unavailable_within("the readiness check", bound, store.ready()).await;

    // The database refuses connections: failures come at once.
    proxy.set(ProxyMode::Refuse);
    let quick = Duration::from_millis(1_500);
    assert_unavailable_within("an append", quick, store.append(append_with_ids(&order, 1))).await;
    assert_unavailable_within("a stream read", quick, store.stream_info(&order)).await;
    assert_unavailable_within("the readiness check", quick, store.ready()).await;

    // Back: the store reconnects by itself.
    proxy.set(ProxyMode::Forward);
    wait_ready(&store, Duration::from_secs(10)).await;
    let request = append_with_ids(&order, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let outcome = loop {
        match store.append(request.clone()).await {
            Ok(outcome) => break outcome,
            Err(StoreError::Unavailable { cause }) if Instant::now() < deadline => {
                println!("still unavailable: {cause}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("append after recovery: {error}"),
        }
    };
    acknowledged.push((ids_of(&request), outcome));
    // The appends that failed during the outage wrote nothing: only the acknowledged ones are
    // in the log (the failed appends' ids are not, and none of them was retried).
    assert_exactly(
        &all_events(&store).await,
        &expected_positions(&acknowledged),
        "after the outage",
    );
    store
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_the_database_refuses_fails_alone_and_its_batch_mates_commit() {
    let schema = TestSchema::migrated().await;
    let store = Arc::new(
        PostgresStore::open(schema.config())
            .await
            .unwrap_or_else(|error| panic!("open: {error}")),
    );
    // PostgreSQL's text cannot hold a NUL character: this append passes every check of the
    // store, and the database refuses it.
    let mut refused = append_with_ids(&stream("blob/b-0"), 1);
    refused.events[0].data = runnel_core::Payload::Binary {
        content_type: "application/x\0y".to_owned(),
        bytes: vec![1, 2, 3],
    };
    let refused_ids = ids_of(&refused);
    // Hold every write to the streams' table so that the appends queue up behind the writer's
    // first transactions and the next group commits carry most of them, the refused one among
    // them.
    let mut blocker = admin().await;
    let holding = blocker
        .transaction()
        .await
        .unwrap_or_else(|error| panic!("BEGIN: {error}"));
    holding
        .execute(
            &format!(
                "LOCK TABLE {}.runnel_streams IN EXCLUSIVE MODE",
                schema.name
            ),
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("locking the streams: {error}"));
    let mut tasks = Vec::new();
    for n in 0..32 {
        let store = Arc::clone(&store);
        let request = if n == 16 {
            refused.clone()
        } else {
            append_with_ids(&stream(&format!("order/o-{}", n % 4)), 2)
        };
        tasks.push(tokio::spawn(async move {
            let ids = ids_of(&request);
            (ids, store.append(request).await)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    holding
        .rollback()
        .await
        .unwrap_or_else(|error| panic!("releasing the streams: {error}"));
    let mut acknowledged = Vec::new();
    for task in tasks {
        let (ids, result) = task
            .await
            .unwrap_or_else(|error| panic!("an append task failed: {error}"));
        match result {
            Ok(outcome) => {
                assert_ne!(ids, refused_ids, "the refused append was acknowledged");
                acknowledged.push((ids, outcome));
            }
            Err(error) => {
                assert_eq!(ids, refused_ids, "a good append failed: {error}");
                assert!(
                    !error.is_client_error() && !matches!(error, StoreError::Unavailable { .. }),
                    "a refusal is the store's error, not an outage: {error:?}"
                );
            }
        }
    }
    assert_eq!(acknowledged.len(), 31, "every other append committed");
    assert_exactly(
        &all_events(store.as_ref()).await,
        &expected_positions(&acknowledged),
        "after the refusal",
    );
    store
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}
