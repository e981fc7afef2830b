//! Commits on one node wake followers on another through LISTEN/NOTIFY, and a follower whose
//! listener reconnects catches up from the table rather than waiting for the next notification.

use std::time::{Duration, Instant};

use runnel_core::Store;
use runnel_postgres::{PostgresConfig, PostgresStore};

use crate::helpers::{append_with_ids, stream};
use crate::support::{TestSchema, admin};

/// Settings under which only a notification, or the read after a reconnect, can move the head
/// quickly: the periodic read is a minute away.
fn without_polling(schema: &TestSchema) -> PostgresConfig {
    PostgresConfig {
        head_poll_interval_ms: 60_000,
        reconnect_backoff_ms: 1_000,
        ..schema.config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_one_node_wakes_followers_on_another_within_milliseconds() {
    let schema = TestSchema::migrated().await;
    let writer = PostgresStore::open(schema.config())
        .await
        .unwrap_or_else(|error| panic!("opening the writing node: {error}"));
    let follower = PostgresStore::open(without_polling(&schema))
        .await
        .unwrap_or_else(|error| panic!("opening the following node: {error}"));
    let mut seen = None;
    for round in 0..3 {
        let mut watch = follower.watch_head();
        let started = Instant::now();
        let outcome = writer
            .append(append_with_ids(&stream("order/o-1"), 2))
            .await
            .unwrap_or_else(|error| panic!("append: {error}"));
        let woke = tokio::time::timeout(Duration::from_secs(2), async {
            while watch.current() < Some(outcome.last_position) {
                if watch.wait_past(watch.current()).await.is_none() {
                    panic!("the follower's watch ended");
                }
            }
        })
        .await;
        assert!(
            woke.is_ok(),
            "round {round}: the other node did not see position {} within 2 s",
            outcome.last_position
        );
        assert!(seen < Some(outcome.last_position));
        seen = Some(outcome.last_position);
        println!(
            "round {round}: the other node woke after {:?}",
            started.elapsed()
        );
    }
    follower
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    writer
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_listener_reconnects_catches_up_on_commits_it_was_not_told_about() {
    let schema = TestSchema::migrated().await;
    let writer = PostgresStore::open(schema.config())
        .await
        .unwrap_or_else(|error| panic!("opening the writing node: {error}"));
    let follower = PostgresStore::open(without_polling(&schema))
        .await
        .unwrap_or_else(|error| panic!("opening the following node: {error}"));
    // The listener's connection is the one whose last statement read the head.
    let terminated: i64 = admin()
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 \
               AND query LIKE '%SELECT coalesce((SELECT max(e.position)%' \
               AND query NOT LIKE '%pg_notify%'",
            &[&schema.name],
        )
        .await
        .unwrap_or_else(|error| panic!("terminating the listener: {error}"))
        .get(0);
    assert!(terminated >= 1, "found the listener's connection");
    // Wait until the follower knows its listener is gone, so the commit below cannot be
    // notified to it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while follower.ready().await.is_ok() {
        assert!(Instant::now() < deadline, "the follower never noticed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let outcome = writer
        .append(append_with_ids(&stream("order/o-1"), 1))
        .await
        .unwrap_or_else(|error| panic!("append: {error}"));
    let mut watch = follower.watch_head();
    let caught_up = tokio::time::timeout(Duration::from_secs(5), async {
        while watch.current() < Some(outcome.last_position) {
            if watch.wait_past(watch.current()).await.is_none() {
                panic!("the follower's watch ended");
            }
        }
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "after reconnecting, the follower read the head it missed"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(error) = follower.ready().await {
        assert!(
            Instant::now() < deadline,
            "the follower stayed unready: {error}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    follower
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    writer
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}
