//! Concurrent appenders: optimistic concurrency has exactly one winner per revision, streams
//! stay gapless, every acknowledged event is readable once, and a reader tailing `$all` while
//! appends commit never misses or repeats an event (the reason positions must increase in
//! commit order, not merely be unique).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use runnel_core::{
    AllFilter, AppendOutcome, Direction, ExpectedRevision, Position, Revision, Store, StoreError,
    StreamName,
};
use tokio::sync::Barrier;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::support::{
    all_events, assert_revisions_gapless, event, events, fresh_ids, read_stream_fully, request,
    stream, with_ids,
};
use crate::Fixture;

/// Waits for every task, re-raising the first panic so the test reports it.
async fn join_all<T: 'static>(mut tasks: JoinSet<T>) -> Vec<T> {
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(value) => results.push(value),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => panic!("a test task was cancelled: {error}"),
        }
    }
    results
}

async fn current_revision(store: &dyn Store, stream: &StreamName) -> Option<Revision> {
    match store.stream_info(stream).await {
        Ok(info) => Some(info.revision),
        Err(StoreError::StreamNotFound { .. }) => None,
        Err(error) => panic!("stream_info of {stream}: {error}"),
    }
}

fn expect_after(current: Option<Revision>) -> ExpectedRevision {
    current.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact)
}

pub async fn concurrent_appenders_with_exact_revisions_have_one_winner_per_revision(
    fixture: Fixture,
) {
    const ROUNDS: u64 = 20;
    const CONTENDERS: usize = 4;
    let order = stream("order/contended");
    let mut winners = Vec::new();
    for round in 0..ROUNDS {
        let expected = expect_after(round.checked_sub(1).map(Revision));
        let barrier = Arc::new(Barrier::new(CONTENDERS));
        let mut tasks = JoinSet::new();
        for contender in 0..CONTENDERS {
            let store = Arc::clone(&fixture.store);
            let barrier = Arc::clone(&barrier);
            let order = order.clone();
            tasks.spawn(async move {
                let data = format!(r#"{{"round":{round},"contender":{contender}}}"#);
                barrier.wait().await;
                let result = store
                    .append(request(&order, expected, vec![event("Claimed", &data)]))
                    .await;
                (contender, result)
            });
        }
        let mut won = Vec::new();
        for (contender, result) in join_all(tasks).await {
            match result {
                Ok(outcome) => {
                    assert_eq!(
                        (outcome.first_revision, outcome.last_revision),
                        (Revision(round), Revision(round)),
                        "round {round}: the winner writes revision {round}"
                    );
                    won.push(contender);
                }
                Err(StoreError::WrongExpectedRevision { current, .. }) => assert_eq!(
                    current,
                    Some(Revision(round)),
                    "round {round}: a loser is told the winner's revision"
                ),
                Err(error) => panic!("round {round}: contender {contender} failed: {error}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one winner, got {won:?}"
        );
        winners.push(won[0]);
    }

    let events = read_stream_fully(fixture.store.as_ref(), &order).await;
    assert_eq!(events.len() as u64, ROUNDS);
    assert_revisions_gapless(&events, &order);
    for (round, (event, winner)) in events.iter().zip(&winners).enumerate() {
        let expected = format!(r#"{{"round":{round},"contender":{winner}}}"#);
        assert_eq!(
            event.data,
            runnel_core::Payload::Json(super::support::json(&expected)),
            "revision {round} holds the winner's event"
        );
    }
}

pub async fn concurrent_appenders_to_one_stream_leave_it_gapless(fixture: Fixture) {
    const WRITERS: usize = 4;
    const ATTEMPTS: usize = 15;
    let order = stream("order/busy");
    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&fixture.store);
        let order = order.clone();
        tasks.spawn(async move {
            let mut acknowledged: Vec<(AppendOutcome, Vec<Uuid>)> = Vec::new();
            for attempt in 0..ATTEMPTS {
                let current = current_revision(store.as_ref(), &order).await;
                let count = 1 + (writer + attempt) % 2;
                let ids = fresh_ids(count);
                let result = store
                    .append(request(
                        &order,
                        expect_after(current),
                        with_ids(events(count, "Busy"), &ids),
                    ))
                    .await;
                match result {
                    Ok(outcome) => acknowledged.push((outcome, ids)),
                    Err(StoreError::WrongExpectedRevision { current: now, .. }) => assert!(
                        now.is_some() && now != current,
                        "a refused exact append must report a revision other than the one it \
                         expected ({current:?}), got {now:?}"
                    ),
                    Err(error) => panic!("writer {writer}: {error}"),
                }
            }
            acknowledged
        });
    }
    let acknowledged: Vec<_> = join_all(tasks).await.into_iter().flatten().collect();
    assert!(!acknowledged.is_empty(), "some appends succeed");

    let events = read_stream_fully(fixture.store.as_ref(), &order).await;
    assert_revisions_gapless(&events, &order);
    let written: usize = acknowledged.iter().map(|(_, ids)| ids.len()).sum();
    assert_eq!(
        events.len(),
        written,
        "the stream holds exactly the acknowledged events"
    );
    for (outcome, ids) in &acknowledged {
        let at: Vec<_> = (outcome.first_revision.0..=outcome.last_revision.0)
            .map(|revision| events[revision as usize].id)
            .collect();
        assert_eq!(
            &at, ids,
            "the acknowledged revisions hold that append's events"
        );
    }
}

pub async fn concurrent_appenders_to_different_streams_are_all_readable_with_unique_positions(
    fixture: Fixture,
) {
    const WRITERS: usize = 16;
    const APPENDS: usize = 20;
    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&fixture.store);
        tasks.spawn(async move {
            let own = stream(&format!("load/s-{writer}"));
            let mut acknowledged = Vec::new();
            let mut current = None;
            for append in 0..APPENDS {
                let count = 1 + (writer + append) % 3;
                let ids = fresh_ids(count);
                let outcome = store
                    .append(request(
                        &own,
                        expect_after(current),
                        with_ids(events(count, "Load"), &ids),
                    ))
                    .await
                    .unwrap_or_else(|error| panic!("writer {writer} append {append}: {error}"));
                current = Some(outcome.last_revision);
                acknowledged.push((outcome, ids));
            }
            acknowledged
        });
    }
    let acknowledged: Vec<_> = join_all(tasks).await.into_iter().flatten().collect();

    let all = all_events(fixture.store.as_ref()).await;
    let by_id: HashMap<Uuid, _> = all.iter().map(|e| (e.id, e)).collect();
    let written: usize = acknowledged.iter().map(|(_, ids)| ids.len()).sum();
    assert_eq!(
        all.len(),
        written,
        "$all holds exactly the acknowledged events"
    );
    assert_eq!(by_id.len(), written, "no event id appears twice in $all");
    let positions: HashSet<Position> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions.len(), written, "positions are unique");
    for (outcome, ids) in &acknowledged {
        for (offset, id) in ids.iter().enumerate() {
            let event = by_id
                .get(id)
                .unwrap_or_else(|| panic!("acknowledged event {id} is missing from $all"));
            assert_eq!(event.stream, outcome.stream);
            assert_eq!(event.revision.0, outcome.first_revision.0 + offset as u64);
            assert_eq!(event.position.0, outcome.first_position.0 + offset as u64);
        }
    }
    let mut streams: BTreeMap<&StreamName, Vec<_>> = BTreeMap::new();
    for event in &all {
        streams
            .entry(&event.stream)
            .or_default()
            .push(event.clone());
    }
    assert_eq!(streams.len(), WRITERS);
    for (name, events) in streams {
        assert_revisions_gapless(&events, name);
    }
}

/// Read-your-writes under load: the moment an append is acknowledged, its writer reads it back
/// from its stream, sees the new revision in the stream's info and its type in the listing, and
/// finds it in `$all` at its position, while other writers keep the engine busy.
pub async fn every_acknowledged_append_is_readable_at_once_under_concurrent_appends(
    fixture: Fixture,
) {
    const WRITERS: usize = 12;
    const APPENDS: usize = 15;
    let mut tasks = JoinSet::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&fixture.store);
        tasks.spawn(async move {
            let own = stream(&format!("ryw{}/s-{writer}", writer % 3));
            for append in 0..APPENDS {
                let ids = fresh_ids(1 + append % 2);
                let outcome = store
                    .append(request(
                        &own,
                        ExpectedRevision::Any,
                        with_ids(events(ids.len(), "Written"), &ids),
                    ))
                    .await
                    .unwrap_or_else(|error| panic!("writer {writer} append {append}: {error}"));
                let slice = store
                    .read_stream(&own, Some(outcome.first_revision), Direction::Forward, 10)
                    .await
                    .unwrap_or_else(|error| panic!("reading {own} back: {error}"));
                let read: Vec<Uuid> = slice.events.iter().map(|e| e.id).collect();
                assert_eq!(
                    read, ids,
                    "{own}: the acknowledged events are read back at once"
                );
                let info = store.stream_info(&own).await.expect("stream info");
                assert!(
                    info.revision >= outcome.last_revision,
                    "{own}: stream info shows the acknowledged revision"
                );
                let types = store
                    .list_stream_types(None, 100)
                    .await
                    .expect("listing stream types");
                assert!(
                    types
                        .items
                        .iter()
                        .any(|t| t.stream_type == *own.stream_type()),
                    "{own}: its type is listed once an append to it is acknowledged"
                );
                let all = store
                    .read_all(outcome.first_position, &AllFilter::default(), 1)
                    .await
                    .expect("reading $all");
                assert_eq!(
                    all.events.first().map(|e| e.id),
                    ids.first().copied(),
                    "{own}: $all holds the acknowledged event at its position"
                );
            }
        });
    }
    join_all(tasks).await;
}

pub async fn tailing_reader_sees_every_event_once_in_position_order_during_appends(
    fixture: Fixture,
) {
    const WRITERS: usize = 4;
    const APPENDS: usize = 25;
    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&fixture.store);
        writers.spawn(async move {
            let mut ids = Vec::new();
            for append in 0..APPENDS {
                let count = 1 + append % 2;
                let batch = fresh_ids(count);
                // Writers share streams, so that commits interleave in every way.
                let target = stream(&format!("tail/t-{}", (writer + append) % 3));
                store
                    .append(request(
                        &target,
                        ExpectedRevision::Any,
                        with_ids(events(count, "Tail"), &batch),
                    ))
                    .await
                    .unwrap_or_else(|error| panic!("writer {writer} append {append}: {error}"));
                ids.extend(batch);
            }
            ids
        });
    }
    let expected_total: usize = WRITERS * (0..APPENDS).map(|append| 1 + append % 2).sum::<usize>();

    let store = fixture.store.as_ref();
    let mut seen: Vec<(Position, Uuid)> = Vec::new();
    let mut from = Position(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut acknowledged = HashSet::new();
    loop {
        let slice = store
            .read_all(from, &AllFilter::default(), 7)
            .await
            .unwrap_or_else(|error| panic!("tailing read from {from}: {error}"));
        for event in &slice.events {
            if let Some((last, _)) = seen.last() {
                assert!(
                    event.position > *last,
                    "the tailing reader saw position {} after {last}",
                    event.position
                );
            }
            seen.push((event.position, event.id));
        }
        from = match (slice.next, slice.head) {
            (Some(next), _) => next,
            // Having reached the head, the reader continues from the position after it.
            (None, Some(head)) => from.max(head.next()),
            (None, None) => from,
        };
        while let Some(joined) = writers.try_join_next() {
            match joined {
                Ok(ids) => acknowledged.extend(ids),
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(error) => panic!("a writer was cancelled: {error}"),
            }
        }
        // Once every writer is done, a read that reached the head and has seen as many events
        // as were acknowledged has seen them all (duplicates are checked below).
        if writers.is_empty() && slice.next.is_none() && seen.len() >= acknowledged.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tailing reader saw {} of {expected_total} events before the deadline",
            seen.len()
        );
        if slice.events.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(acknowledged.len(), expected_total);
    let seen_ids: HashSet<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        seen_ids.len(),
        seen.len(),
        "the tailing reader saw an event twice"
    );
    assert_eq!(
        seen_ids, acknowledged,
        "the tailing reader saw exactly the acknowledged events"
    );
    let final_order: Vec<Uuid> = all_events(store).await.iter().map(|e| e.id).collect();
    let tail_order: Vec<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(
        tail_order, final_order,
        "the tail saw events in their final $all order"
    );
}
