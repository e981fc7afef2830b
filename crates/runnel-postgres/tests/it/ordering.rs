//! Positions in commit order across nodes: several stores (as several nodes) on one database,
//! concurrent writers on each, and a reader on each following `$all` by position through its
//! own head watch. Every reader must see every acknowledged event exactly once, in position
//! order: an event that committed below a position a reader had already passed would be
//! missing from its list.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use runnel_core::{AllFilter, Position, RecordedEvent, Store};
use runnel_postgres::{PostgresConfig, PostgresStore};
use tokio::sync::watch;
use uuid::Uuid;

use crate::helpers::{all_events, append_with_ids, assert_exactly, ids_of, stream};
use crate::support::{TestSchema, admin};

const NODES: usize = 3;
const WRITERS_PER_NODE: usize = 4;
const APPENDS_PER_WRITER: usize = 40;

/// Follows `$all` the way a subscriber does: read pages from the last position on until the
/// head, then wait on the head watch. Stops once it has read up to `target`.
async fn follow(
    store: Arc<PostgresStore>,
    mut target: watch::Receiver<Option<Position>>,
) -> Vec<RecordedEvent> {
    let mut seen: Vec<RecordedEvent> = Vec::new();
    let mut from = Position(0);
    let mut watch = store.watch_head();
    loop {
        let read_up_to;
        loop {
            let slice = store
                .read_all(from, &AllFilter::default(), 100)
                .await
                .unwrap_or_else(|error| panic!("a reader's read_all from {from}: {error}"));
            for event in slice.events {
                assert!(
                    event.position >= from,
                    "read_all from {from} returned {}",
                    event.position
                );
                if let Some(last) = seen.last() {
                    assert!(
                        event.position > last.position,
                        "a reader saw {} after {}",
                        event.position,
                        last.position
                    );
                }
                from = event.position.next();
                seen.push(event);
            }
            match slice.next {
                Some(next) => from = next,
                None => {
                    read_up_to = slice.head;
                    if let Some(head) = slice.head {
                        from = from.max(head.next());
                    }
                    break;
                }
            }
        }
        let goal = *target.borrow();
        if goal.is_some_and(|goal| read_up_to >= Some(goal)) {
            return seen;
        }
        tokio::select! {
            woke = watch.wait_past(read_up_to) => {
                if woke.is_none() {
                    panic!("the head watch ended while the store is open");
                }
            }
            changed = target.changed() => {
                if changed.is_err() {
                    panic!("the test dropped the target");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_on_every_node_see_every_acknowledged_event_once_in_commit_order() {
    let schema = TestSchema::migrated().await;
    let mut stores = Vec::new();
    for _ in 0..NODES {
        let store = PostgresStore::open(schema.config())
            .await
            .unwrap_or_else(|error| panic!("opening a node: {error}"));
        stores.push(Arc::new(store));
    }
    let (target, target_watch) = watch::channel(None);
    let readers: Vec<_> = stores
        .iter()
        .map(|store| tokio::spawn(follow(Arc::clone(store), target_watch.clone())))
        .collect();

    let mut writers = Vec::new();
    for (node, store) in stores.iter().enumerate() {
        for writer in 0..WRITERS_PER_NODE {
            let store = Arc::clone(store);
            writers.push(tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..APPENDS_PER_WRITER {
                    // Streams shared between writers and nodes, appends of 1 to 3 events.
                    let target = stream(&format!("order/o-{}", (node + writer + n) % 7));
                    let request = append_with_ids(&target, 1 + n % 3);
                    let ids = ids_of(&request);
                    let outcome = store
                        .append(request)
                        .await
                        .unwrap_or_else(|error| panic!("node {node} writer {writer}: {error}"));
                    acknowledged.push((ids, outcome));
                }
                acknowledged
            }));
        }
    }
    let mut expected: HashMap<Uuid, Position> = HashMap::new();
    let mut last = Position(0);
    for writer in writers {
        let acknowledged = writer
            .await
            .unwrap_or_else(|error| panic!("a writer task failed: {error}"));
        for (ids, outcome) in acknowledged {
            assert_eq!(
                outcome.last_position.0 - outcome.first_position.0 + 1,
                ids.len() as u64,
                "an append's events get consecutive positions"
            );
            for (offset, id) in ids.into_iter().enumerate() {
                expected.insert(id, Position(outcome.first_position.0 + offset as u64));
            }
            last = last.max(outcome.last_position);
        }
    }
    target.send_replace(Some(last));

    for (node, reader) in readers.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .unwrap_or_else(|_| panic!("node {node}'s reader did not reach position {last}"))
            .unwrap_or_else(|error| panic!("node {node}'s reader failed: {error}"));
        assert_exactly(&seen, &expected, &format!("node {node}'s reader"));
    }
    let everything = all_events(stores[0].as_ref()).await;
    assert_eq!(
        everything.len(),
        expected.len(),
        "$all holds every acknowledged event"
    );
    assert!(
        everything
            .windows(2)
            .all(|pair| pair[0].position < pair[1].position),
        "$all is in strictly increasing position order"
    );
    // Transactions on three nodes share these streams all the time, and commit side by side;
    // each takes its streams' locks before it gets the id its positions come from, so each
    // stream's revisions follow its positions without a gap.
    let mut next_revision: HashMap<String, u64> = HashMap::new();
    for event in &everything {
        let next = next_revision.entry(event.stream.to_string()).or_insert(0);
        assert_eq!(
            event.revision.0, *next,
            "{} at position {}: revisions are gapless in position order",
            event.stream, event.position.0
        );
        *next += 1;
    }
    for (node, store) in stores.iter().enumerate() {
        let metrics = store.metrics();
        assert!(metrics.commits > 0, "node {node} committed");
        assert!(
            metrics.commits < (WRITERS_PER_NODE * APPENDS_PER_WRITER) as u64,
            "node {node} grouped appends into fewer commits ({} commits)",
            metrics.commits
        );
        store
            .close()
            .await
            .unwrap_or_else(|error| panic!("closing node {node}: {error}"));
    }
}

/// Optimistic concurrency across nodes: writers on every node append to a few shared streams
/// with the revision they last saw and, when told it moved, read it again and retry. Batches
/// with checks are planned from heads read before their streams' locks, so they often meet
/// another node's commit in between; no acknowledged append may be lost or get a revision
/// another append got, and every stream's revisions must be gapless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_expecting_a_revision_on_several_nodes_never_lose_an_update() {
    const STREAMS: usize = 3;
    const APPENDS: usize = 15;
    let schema = TestSchema::migrated().await;
    let mut stores = Vec::new();
    for _ in 0..NODES {
        let store = PostgresStore::open(schema.config())
            .await
            .unwrap_or_else(|error| panic!("opening a node: {error}"));
        stores.push(Arc::new(store));
    }
    let mut writers = Vec::new();
    for (node, store) in stores.iter().enumerate() {
        for writer in 0..WRITERS_PER_NODE {
            let store = Arc::clone(store);
            writers.push(tokio::spawn(async move {
                let target = stream(&format!("account/a-{}", (node + writer) % STREAMS));
                let mut acknowledged = Vec::new();
                let mut conflicts = 0usize;
                while acknowledged.len() < APPENDS {
                    let current = match store.stream_info(&target).await {
                        Ok(info) => Some(info.revision),
                        Err(runnel_core::StoreError::StreamNotFound { .. }) => None,
                        Err(error) => panic!("node {node} writer {writer}: {error}"),
                    };
                    let mut request = append_with_ids(&target, 1);
                    request.expected = match current {
                        Some(revision) => runnel_core::ExpectedRevision::Exact(revision),
                        None => runnel_core::ExpectedRevision::NoStream,
                    };
                    let ids = ids_of(&request);
                    match store.append(request).await {
                        Ok(outcome) => acknowledged.push((ids[0], outcome.first_revision)),
                        Err(runnel_core::StoreError::WrongExpectedRevision { .. }) => {
                            conflicts += 1;
                            assert!(conflicts < 10_000, "node {node} writer {writer} starved");
                        }
                        Err(error) => panic!("node {node} writer {writer}: {error}"),
                    }
                }
                (target, acknowledged)
            }));
        }
    }
    let mut expected: HashMap<Uuid, (String, u64)> = HashMap::new();
    for writer in writers {
        let (target, acknowledged) = writer
            .await
            .unwrap_or_else(|error| panic!("a writer task failed: {error}"));
        for (id, revision) in acknowledged {
            expected.insert(id, (target.to_string(), revision.0));
        }
    }
    let everything = all_events(stores[0].as_ref()).await;
    assert_eq!(
        everything.len(),
        expected.len(),
        "exactly the acknowledged appends are stored"
    );
    let mut next_revision: HashMap<String, u64> = HashMap::new();
    for event in &everything {
        assert_eq!(
            expected.get(&event.id),
            Some(&(event.stream.to_string(), event.revision.0)),
            "event {} is stored where its append was told it went",
            event.id
        );
        let next = next_revision.entry(event.stream.to_string()).or_insert(0);
        assert_eq!(
            event.revision.0, *next,
            "{}: gapless revisions",
            event.stream
        );
        *next += 1;
    }
    for (node, store) in stores.iter().enumerate() {
        store
            .close()
            .await
            .unwrap_or_else(|error| panic!("closing node {node}: {error}"));
    }
}

/// The case a plain sequence gets wrong: a transaction takes its positions, a later one takes
/// higher positions and commits first, and the first commits last (a slow node). Readers must
/// not move past the first one's positions while it runs, and then see both, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_late_below_a_visible_position_is_never_skipped() {
    let schema = TestSchema::migrated().await;
    let store = PostgresStore::open(PostgresConfig {
        visibility_wait_ms: 200,
        ..schema.config()
    })
    .await
    .unwrap_or_else(|error| panic!("open: {error}"));
    // The slow node's transaction: it holds its transaction id, hence its positions.
    let mut slow = admin().await;
    let slow = slow
        .transaction()
        .await
        .unwrap_or_else(|error| panic!("BEGIN: {error}"));
    slow.batch_execute(&format!("SET LOCAL search_path = {}", schema.name))
        .await
        .unwrap_or_else(|error| panic!("search_path: {error}"));
    let slow_position: i64 = slow
        .query_one(
            "SELECT (pg_current_xact_id()::text::bigint + xid_offset) << 16 \
             FROM runnel_log_head WHERE id = 1",
            &[],
        )
        .await
        .unwrap_or_else(|error| panic!("taking positions: {error}"))
        .get(0);
    let slow_position = Position(u64::try_from(slow_position).expect("a position"));

    // A later append commits above it. It is durable, and answered once the wait for readers
    // to see it is over (the slow transaction hides it from them).
    let later = store
        .append(append_with_ids(&stream("order/o-1"), 1))
        .await
        .unwrap_or_else(|error| panic!("append: {error}"));
    assert!(later.first_position > slow_position, "{later:?}");
    let hidden = store
        .read_all(Position(0), &AllFilter::default(), 100)
        .await
        .unwrap_or_else(|error| panic!("read_all: {error}"));
    assert!(
        hidden.events.is_empty() && hidden.head.is_none(),
        "a reader passed a running transaction's positions: {hidden:?}"
    );
    assert!(
        store.watch_head().current().is_none(),
        "the head moved past a running transaction's positions"
    );

    // The slow transaction writes its event and commits: now readers see both, in order.
    slow.batch_execute(&format!(
        "INSERT INTO runnel_streams VALUES ('slow', 's-1', 0, now(), now()); \
         INSERT INTO runnel_events (position, stream_type, stream_id, revision, id, event_type, \
                                    data_json, recorded_at) \
         VALUES ({}, 'slow', 's-1', 0, gen_random_uuid(), 'Slow', '{{}}', now())",
        slow_position.0
    ))
    .await
    .unwrap_or_else(|error| panic!("the slow write: {error}"));
    slow.commit()
        .await
        .unwrap_or_else(|error| panic!("the slow commit: {error}"));
    let everything = all_events(&store).await;
    let positions: Vec<Position> = everything.iter().map(|event| event.position).collect();
    assert_eq!(positions, vec![slow_position, later.first_position]);
    let mut watch = store.watch_head();
    let caught_up = tokio::time::timeout(Duration::from_secs(5), async {
        while watch.current() < Some(later.last_position) {
            if watch.wait_past(watch.current()).await.is_none() {
                panic!("the watch ended");
            }
        }
    })
    .await;
    assert!(caught_up.is_ok(), "the head reached the later append");
    store
        .close()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
}
