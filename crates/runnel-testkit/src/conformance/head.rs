//! The head watch that wakes followers, readiness, closing, and reads with out-of-range limits.

use std::sync::Arc;

use runnel_core::{
    AllFilter, Direction, ExpectedRevision, MAX_PAGE_LIMIT, Position, Revision, StoreError,
    StreamType,
};
use tokio::task::JoinSet;

use super::support::{WAKE_TIMEOUT, append, events, stream, try_append};
use crate::Fixture;

pub async fn head_watch_follower_wakes_when_an_append_commits(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let mut seen = store.watch_head().current();
    assert_eq!(seen, None, "a fresh store has no head");
    for round in 0..3 {
        let mut watch = store.watch_head();
        let follower =
            tokio::spawn(
                async move { tokio::time::timeout(WAKE_TIMEOUT, watch.wait_past(seen)).await },
            );
        // Give the follower time to start waiting; it must wake either way.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let outcome = append(store, &order, ExpectedRevision::Any, events(2, "A")).await;
        let woke = follower
            .await
            .unwrap_or_else(|error| panic!("the follower task failed: {error}"));
        match woke {
            Ok(Some(head)) => {
                assert_eq!(
                    head, outcome.last_position,
                    "round {round}: the follower wakes to the new head"
                );
                seen = Some(head);
            }
            Ok(None) => panic!("round {round}: the watch ended although the store is open"),
            Err(_) => panic!("round {round}: the follower did not wake within {WAKE_TIMEOUT:?}"),
        }
    }
}

pub async fn many_head_watch_followers_all_wake(fixture: Fixture) {
    const FOLLOWERS: usize = 64;
    let store = fixture.store.as_ref();
    let mut followers = JoinSet::new();
    for _ in 0..FOLLOWERS {
        let mut watch = store.watch_head();
        followers
            .spawn(async move { tokio::time::timeout(WAKE_TIMEOUT, watch.wait_past(None)).await });
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let outcome = append(
        store,
        &stream("order/o-1"),
        ExpectedRevision::Any,
        events(1, "A"),
    )
    .await;
    let mut woken = 0;
    while let Some(joined) = followers.join_next().await {
        match joined {
            Ok(Ok(Some(head))) => {
                assert_eq!(head, outcome.last_position);
                woken += 1;
            }
            Ok(Ok(None)) => panic!("a watch ended although the store is open"),
            Ok(Err(_)) => panic!("a follower did not wake within {WAKE_TIMEOUT:?}"),
            Err(error) => panic!("a follower task failed: {error}"),
        }
    }
    assert_eq!(woken, FOLLOWERS, "every follower wakes");
}

pub async fn woken_follower_can_read_up_to_the_new_head(fixture: Fixture) {
    let writer_store = Arc::clone(&fixture.store);
    let mut watch = fixture.store.watch_head();
    let writer = tokio::spawn(async move {
        let mut last = None;
        for round in 0..10 {
            let target = stream(&format!("order/o-{}", round % 3));
            let outcome = append(
                writer_store.as_ref(),
                &target,
                ExpectedRevision::Any,
                events(2, "A"),
            )
            .await;
            last = Some(outcome.last_position);
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        last
    });
    let store = fixture.store.as_ref();
    let mut writer = writer;
    let mut seen: Option<Position> = None;
    let mut last: Option<Option<Position>> = None;
    let mut wakes = 0;
    loop {
        if last == Some(seen) {
            break;
        }
        let head = tokio::select! {
            woke = tokio::time::timeout(WAKE_TIMEOUT, watch.wait_past(seen)) => match woke {
                Ok(Some(head)) => head,
                Ok(None) => panic!("the watch ended although the store is open"),
                Err(_) => panic!("the follower did not wake within {WAKE_TIMEOUT:?} (seen {seen:?})"),
            },
            written = &mut writer, if last.is_none() => {
                last = Some(written.unwrap_or_else(|error| panic!("the writer task failed: {error}")));
                continue;
            }
        };
        wakes += 1;
        // Everything up to the published head is readable: the head is published only after
        // the events are visible to readers.
        let from = seen.map_or(Position(0), Position::next);
        let slice = store
            .read_all(from, &AllFilter::default(), MAX_PAGE_LIMIT)
            .await
            .unwrap_or_else(|error| panic!("read after waking to {head}: {error}"));
        assert!(
            slice.events.iter().any(|e| e.position == head),
            "woken to head {head}, the follower could not read the event at it \
             (read from {from}: {:?})",
            slice.events.iter().map(|e| e.position).collect::<Vec<_>>()
        );
        assert!(
            slice.head.is_some_and(|h| h >= head),
            "read_all's head is not behind the watch"
        );
        seen = Some(head);
    }
    assert!(wakes > 0, "the follower woke at least once");
}

pub async fn head_watch_reaches_the_last_appended_position(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let mut last = None;
    for round in 0..5 {
        let target = stream(&format!("order/o-{round}"));
        last = Some(
            append(store, &target, ExpectedRevision::Any, events(3, "A"))
                .await
                .last_position,
        );
    }
    let mut watch = store.watch_head();
    let deadline = tokio::time::Instant::now() + WAKE_TIMEOUT;
    while watch.current() != last {
        let current = watch.current();
        assert!(
            current < last,
            "the head {current:?} is past the last append {last:?}"
        );
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(remaining, watch.wait_past(current)).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the watch ended although the store is open"),
            Err(_) => panic!("the head stayed at {current:?}, short of {last:?}"),
        }
    }
}

pub async fn head_watch_ends_when_the_store_closes(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let outcome = append(
        store,
        &stream("order/o-1"),
        ExpectedRevision::Any,
        events(1, "A"),
    )
    .await;
    let mut watch = store.watch_head();
    let seen = Some(outcome.last_position);
    let follower =
        tokio::spawn(
            async move { tokio::time::timeout(WAKE_TIMEOUT, watch.wait_past(seen)).await },
        );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    store
        .close()
        .await
        .unwrap_or_else(|error| panic!("close: {error}"));
    match follower.await {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(head))) => panic!("the watch moved to {head} although nothing was appended"),
        Ok(Err(_)) => panic!("a follower still waited {WAKE_TIMEOUT:?} after the store closed"),
        Err(error) => panic!("the follower task failed: {error}"),
    }
}

pub async fn ready_is_ok_on_a_fresh_store(fixture: Fixture) {
    let store = fixture.store.as_ref();
    if let Err(error) = store.ready().await {
        panic!("a fresh store should be ready, got: {error}");
    }
    append(
        store,
        &stream("order/o-1"),
        ExpectedRevision::Any,
        events(1, "A"),
    )
    .await;
    if let Err(error) = store.ready().await {
        panic!("a store that has appended should be ready, got: {error}");
    }
}

pub async fn close_is_idempotent_and_later_appends_are_refused(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    append(store, &order, ExpectedRevision::Any, events(1, "A")).await;
    for attempt in 0..2 {
        if let Err(error) = store.close().await {
            panic!("close {attempt} should succeed (closing is idempotent), got: {error}");
        }
    }
    let result = try_append(store, &order, ExpectedRevision::Any, events(1, "B")).await;
    assert!(
        matches!(result, Err(StoreError::ShuttingDown)),
        "an append after close should be ShuttingDown, got {result:?}"
    );
}

pub async fn reads_with_limit_zero_are_clamped_to_one(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    append(store, &order, ExpectedRevision::Any, events(3, "A")).await;
    append(
        store,
        &stream("user/u-1"),
        ExpectedRevision::Any,
        events(1, "A"),
    )
    .await;

    for direction in [Direction::Forward, Direction::Backward] {
        let slice = store
            .read_stream(&order, None, direction, 0)
            .await
            .unwrap_or_else(|error| panic!("read_stream {direction:?} limit 0: {error}"));
        assert_eq!(
            slice.events.len(),
            1,
            "read_stream {direction:?} limit 0 returns one event"
        );
        assert!(slice.next.is_some(), "and says where the rest is");
    }
    let all = store
        .read_all(Position(0), &AllFilter::default(), 0)
        .await
        .unwrap_or_else(|error| panic!("read_all limit 0: {error}"));
    assert_eq!(all.events.len(), 1, "read_all limit 0 returns one event");
    assert!(all.next.is_some_and(|next| next > all.events[0].position));
    let filtered = AllFilter {
        stream_types: vec![order.stream_type().clone()],
        ..AllFilter::default()
    };
    let some = store
        .read_all(Position(0), &filtered, 0)
        .await
        .unwrap_or_else(|error| panic!("filtered read_all limit 0: {error}"));
    assert!(
        some.events.len() <= 1,
        "filtered read_all limit 0 returns at most one event"
    );
    let types = store
        .list_stream_types(None, 0)
        .await
        .unwrap_or_else(|error| panic!("list_stream_types limit 0: {error}"));
    assert_eq!(
        types.items.len(),
        1,
        "list_stream_types limit 0 returns one type"
    );
    assert!(types.next.is_some());
    append(
        store,
        &stream("order/o-2"),
        ExpectedRevision::Any,
        events(1, "A"),
    )
    .await;
    let streams = store
        .list_streams(order.stream_type(), None, 0)
        .await
        .unwrap_or_else(|error| panic!("list_streams limit 0: {error}"));
    assert_eq!(
        streams.items.len(),
        1,
        "list_streams limit 0 returns one stream"
    );
    assert!(streams.next.is_some());
}

pub async fn reads_with_limit_above_the_maximum_are_clamped(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/long");
    let total = MAX_PAGE_LIMIT + 100;
    let chunk = store.limits().max_events_per_append.max(1);
    let mut written = 0;
    while written < total {
        let count = chunk.min(total - written);
        append(store, &order, ExpectedRevision::Any, events(count, "A")).await;
        written += count;
    }
    for limit in [MAX_PAGE_LIMIT + 1, 5_000, usize::MAX] {
        let forward = store
            .read_stream(&order, None, Direction::Forward, limit)
            .await
            .unwrap_or_else(|error| panic!("read_stream limit {limit}: {error}"));
        assert_eq!(
            forward.events.len(),
            MAX_PAGE_LIMIT,
            "read_stream limit {limit} is clamped"
        );
        assert_eq!(forward.next, Some(Revision(MAX_PAGE_LIMIT as u64)));
        let backward = store
            .read_stream(&order, None, Direction::Backward, limit)
            .await
            .unwrap_or_else(|error| panic!("read_stream backward limit {limit}: {error}"));
        assert_eq!(backward.events.len(), MAX_PAGE_LIMIT);
        assert_eq!(
            backward.next,
            Some(Revision((total - MAX_PAGE_LIMIT - 1) as u64))
        );
        let all = store
            .read_all(Position(0), &AllFilter::default(), limit)
            .await
            .unwrap_or_else(|error| panic!("read_all limit {limit}: {error}"));
        assert_eq!(
            all.events.len(),
            MAX_PAGE_LIMIT,
            "read_all limit {limit} is clamped"
        );
        assert!(all.next.is_some(), "read_all says where the rest is");
        let types = store
            .list_stream_types(None, limit)
            .await
            .unwrap_or_else(|error| panic!("list_stream_types limit {limit}: {error}"));
        assert_eq!(types.items.len(), 1);
        let streams = store
            .list_streams(
                &StreamType::parse("order").unwrap_or_else(|e| panic!("{e}")),
                None,
                limit,
            )
            .await
            .unwrap_or_else(|error| panic!("list_streams limit {limit}: {error}"));
        assert_eq!(streams.items.len(), 1);
    }
}
