//! Reading one stream: both directions, from anywhere, in pages whose `next` is right at the
//! edges; and what the store knows about a stream.

use runnel_core::{
    Direction, ExpectedRevision, RecordedAt, Revision, Store, StreamName, StreamSlice,
};

use super::support::{
    append, assert_revisions_gapless, assert_stream_not_found, events, read_stream_fully, stream,
};
use crate::Fixture;

/// A stream `order/o-1` with revisions 0..=9, written in three appends, with another stream's
/// events interleaved so that positions and revisions differ.
async fn ten_event_stream(store: &dyn Store) -> StreamName {
    let order = stream("order/o-1");
    let other = stream("order/o-2");
    for count in [3, 4, 3] {
        append(store, &other, ExpectedRevision::Any, events(1, "Other")).await;
        append(store, &order, ExpectedRevision::Any, events(count, "A")).await;
    }
    order
}

async fn read(
    store: &dyn Store,
    stream: &StreamName,
    from: Option<u64>,
    direction: Direction,
    limit: usize,
) -> StreamSlice {
    store
        .read_stream(stream, from.map(Revision), direction, limit)
        .await
        .unwrap_or_else(|error| {
            panic!("read_stream {stream} from {from:?} {direction:?} limit {limit}: {error}")
        })
}

fn revisions(slice: &StreamSlice) -> Vec<u64> {
    slice.events.iter().map(|e| e.revision.0).collect()
}

pub async fn read_stream_forward_returns_events_in_revision_order(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = ten_event_stream(store).await;
    let slice = read(store, &order, None, Direction::Forward, 100).await;
    assert_eq!(revisions(&slice), (0..10).collect::<Vec<_>>());
    assert_eq!(slice.next, None, "the whole stream fits in the page");
    assert_revisions_gapless(&slice.events, &order);
    let positions: Vec<_> = slice.events.iter().map(|e| e.position).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "later revisions have later positions: {positions:?}"
    );
}

pub async fn read_stream_backward_returns_events_newest_first(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = ten_event_stream(store).await;
    let slice = read(store, &order, None, Direction::Backward, 100).await;
    assert_eq!(revisions(&slice), (0..10).rev().collect::<Vec<_>>());
    assert_eq!(slice.next, None, "the whole stream fits in the page");
}

pub async fn read_stream_forward_from_the_middle(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = ten_event_stream(store).await;
    let slice = read(store, &order, Some(4), Direction::Forward, 3).await;
    assert_eq!(revisions(&slice), vec![4, 5, 6]);
    assert_eq!(slice.next, Some(Revision(7)));
    let rest = read(store, &order, Some(7), Direction::Forward, 100).await;
    assert_eq!(revisions(&rest), vec![7, 8, 9]);
    assert_eq!(rest.next, None);
}

pub async fn read_stream_backward_from_the_middle(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = ten_event_stream(store).await;
    let slice = read(store, &order, Some(5), Direction::Backward, 3).await;
    assert_eq!(revisions(&slice), vec![5, 4, 3]);
    assert_eq!(slice.next, Some(Revision(2)));
    let rest = read(store, &order, Some(2), Direction::Backward, 100).await;
    assert_eq!(revisions(&rest), vec![2, 1, 0]);
    assert_eq!(rest.next, None);
}

pub async fn read_stream_with_limit_one_pages_forward_through_the_stream(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = ten_event_stream(store).await;
    let mut from = None;
    let mut seen = Vec::new();
    for page in 0..=10u64 {
        let slice = read(store, &order, from, Direction::Forward, 1).await;
        assert_eq!(revisions(&slice), vec![page], "page {page} holds one event");
        seen.push(page);
        match slice.next {
            Some(next) => {
                assert_eq!(next, Revision(page + 1), "next after revision {page}");
                from = Some(next.0);
            }
            None => {
                assert_eq!(page, 9, "next is None only on the last revision");
                break;
            }
        }
    }
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

pub async fn read_stream_with_limit_one_pages_backward_through_the_stream(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = ten_event_stream(store).await;
    let mut from = None;
    let mut seen = Vec::new();
    for page in (0..10u64).rev() {
        let slice = read(store, &order, from, Direction::Backward, 1).await;
        assert_eq!(
            revisions(&slice),
            vec![page],
            "backward page holds revision {page}"
        );
        seen.push(page);
        match slice.next {
            Some(next) => {
                assert!(page > 0, "next must be None at revision 0, got {next}");
                assert_eq!(next, Revision(page - 1), "next before revision {page}");
                from = Some(next.0);
            }
            None => assert_eq!(page, 0, "next is None only at revision 0"),
        }
    }
    assert_eq!(seen, (0..10).rev().collect::<Vec<_>>());
}

pub async fn read_stream_next_is_none_when_a_page_ends_at_the_edge(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = ten_event_stream(store).await;
    // A page that ends exactly on the last revision has nothing after it.
    let exact = read(store, &order, Some(5), Direction::Forward, 5).await;
    assert_eq!(revisions(&exact), vec![5, 6, 7, 8, 9]);
    assert_eq!(exact.next, None, "forward page ending at the last revision");
    let whole = read(store, &order, None, Direction::Forward, 10).await;
    assert_eq!(whole.events.len(), 10);
    assert_eq!(whole.next, None, "forward page of exactly the whole stream");
    // One short of the edge, there is a next.
    let short = read(store, &order, Some(5), Direction::Forward, 4).await;
    assert_eq!(short.next, Some(Revision(9)));
    // Backward, the edge is revision 0.
    let exact = read(store, &order, Some(4), Direction::Backward, 5).await;
    assert_eq!(revisions(&exact), vec![4, 3, 2, 1, 0]);
    assert_eq!(exact.next, None, "backward page ending at revision 0");
    let short = read(store, &order, Some(4), Direction::Backward, 4).await;
    assert_eq!(short.next, Some(Revision(0)));
    // From the last revision itself.
    let last = read(store, &order, Some(9), Direction::Forward, 10).await;
    assert_eq!(revisions(&last), vec![9]);
    assert_eq!(last.next, None);
    let first = read(store, &order, Some(0), Direction::Backward, 10).await;
    assert_eq!(revisions(&first), vec![0]);
    assert_eq!(first.next, None);
}

pub async fn read_stream_forward_past_the_end_is_empty(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = ten_event_stream(store).await;
    for from in [10, 11, 1_000, u64::MAX] {
        let slice = read(store, &order, Some(from), Direction::Forward, 10).await;
        assert!(
            slice.events.is_empty(),
            "forward from {from} past the last revision 9 returned {:?}",
            revisions(&slice)
        );
        assert_eq!(slice.next, None, "nothing follows past the end");
    }
}

pub async fn read_of_a_missing_stream_is_stream_not_found(fixture: Fixture) {
    let store = fixture.store.as_ref();
    // On an empty store, and on a store with similar names.
    assert_stream_not_found(store, &stream("order/o-1")).await;
    append(
        store,
        &stream("order/o-1"),
        ExpectedRevision::Any,
        events(1, "A"),
    )
    .await;
    for missing in [
        "order/o-2",
        "order/o-",
        "order/o-10",
        "orders/o-1",
        "$audit/o-1",
    ] {
        assert_stream_not_found(store, &stream(missing)).await;
        for direction in [Direction::Forward, Direction::Backward] {
            let result = store
                .read_stream(&stream(missing), Some(Revision(0)), direction, 1)
                .await;
            assert!(
                matches!(result, Err(runnel_core::StoreError::StreamNotFound { .. })),
                "{missing} {direction:?} from 0 should be StreamNotFound, got {result:?}"
            );
        }
    }
}

pub async fn read_stream_returns_only_that_streams_events(fixture: Fixture) {
    let store = fixture.store.as_ref();
    // Names that share prefixes or halves, to catch index keys that run into each other.
    let names = [
        "order/a", "order/ab", "order/a-", "orderx/a", "user/a", "order/b",
    ];
    for round in 0..3 {
        for (n, name) in names.iter().enumerate() {
            append(
                store,
                &stream(name),
                ExpectedRevision::Any,
                events(1 + (n + round) % 2, "A"),
            )
            .await;
        }
    }
    for (n, name) in names.iter().enumerate() {
        let target = stream(name);
        let read = read_stream_fully(store, &target).await;
        let expected: usize = (0..3).map(|round| 1 + (n + round) % 2).sum();
        assert_eq!(read.len(), expected, "{name} holds its own events only");
        assert_revisions_gapless(&read, &target);
    }
}

pub async fn stream_info_reports_the_last_revision_and_times(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let before = RecordedAt::now();
    append(store, &order, ExpectedRevision::Any, events(2, "A")).await;
    let first = store
        .stream_info(&order)
        .await
        .unwrap_or_else(|error| panic!("stream_info: {error}"));
    assert_eq!(first.stream, order);
    assert_eq!(first.revision, Revision(1));
    assert!(first.created_at <= first.updated_at);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    append(store, &order, ExpectedRevision::Any, events(3, "B")).await;
    let later = store
        .stream_info(&order)
        .await
        .unwrap_or_else(|error| panic!("stream_info: {error}"));
    assert_eq!(later.revision, Revision(4), "revision is the last revision");
    assert_eq!(
        later.created_at, first.created_at,
        "created_at stays the time of the first event"
    );
    assert!(
        later.created_at <= later.updated_at,
        "created_at {} <= updated_at {}",
        later.created_at,
        later.updated_at
    );
    assert!(
        later.updated_at >= first.updated_at,
        "updated_at does not go back"
    );

    let events = read_stream_fully(store, &order).await;
    assert_eq!(
        events[0].recorded_at, later.created_at,
        "created_at is when revision 0 was recorded"
    );
    assert_eq!(
        events[4].recorded_at, later.updated_at,
        "updated_at is when the last revision was recorded"
    );
    // Clocks of a database server may differ a little from ours; only sanity is checked.
    let a_day_micros = 86_400_000_000;
    assert!(
        (later.created_at.as_micros() - before.as_micros()).abs() < a_day_micros,
        "created_at {} is about now ({before})",
        later.created_at
    );
}
