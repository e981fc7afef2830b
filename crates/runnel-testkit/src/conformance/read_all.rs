//! Reading `$all`: position order from anywhere, paging, filters, and a filtered reader's
//! `next` that skips what it has scanned without ever repeating or losing an event.

use std::collections::HashSet;

use runnel_core::{
    AllFilter, AllSlice, ExpectedRevision, Position, RecordedEvent, Store, StreamName,
};

use super::support::{all_events, append, event, event_type, events, read_all_fully, stream};
use crate::Fixture;

async fn read_all(store: &dyn Store, from: Position, filter: &AllFilter, limit: usize) -> AllSlice {
    store
        .read_all(from, filter, limit)
        .await
        .unwrap_or_else(|error| panic!("read_all from {from} limit {limit}: {error}"))
}

fn ids(events: &[RecordedEvent]) -> Vec<uuid::Uuid> {
    events.iter().map(|e| e.id).collect()
}

/// Twelve events in six appends over three streams.
async fn twelve_events(store: &dyn Store) -> Vec<RecordedEvent> {
    for (name, count) in [
        ("order/o-1", 2),
        ("user/u-1", 1),
        ("order/o-2", 3),
        ("order/o-1", 1),
        ("user/u-1", 4),
        ("order/o-2", 1),
    ] {
        append(
            store,
            &stream(name),
            ExpectedRevision::Any,
            events(count, "A"),
        )
        .await;
    }
    let all = all_events(store).await;
    assert_eq!(all.len(), 12, "$all holds every appended event");
    all
}

/// The streams and event types of the filter tests, appended in an interleaved order.
const MIXED: [(&str, &str); 14] = [
    ("order/o-1", "OrderPlaced"),
    ("user/u-1", "UserRegistered"),
    ("order/o-2", "OrderPlaced"),
    ("invoice/i-1", "InvoiceSent"),
    ("order/o-1", "OrderShipped"),
    ("user/u-2", "UserRegistered"),
    ("user/u-1", "UserRenamed"),
    ("order/o-2", "OrderShipped"),
    ("invoice/i-1", "InvoicePaid"),
    ("order/o-3", "OrderPlaced"),
    ("user/u-1", "OrderPlaced"),
    ("order/o-1", "OrderDelivered"),
    ("invoice/i-2", "InvoiceSent"),
    ("order/o-3", "OrderShipped"),
];

async fn mixed_events(store: &dyn Store) -> Vec<RecordedEvent> {
    for (n, (name, kind)) in MIXED.iter().enumerate() {
        append(
            store,
            &stream(name),
            ExpectedRevision::Any,
            vec![event(kind, &format!(r#"{{"n":{n}}}"#))],
        )
        .await;
    }
    let all = all_events(store).await;
    assert_eq!(all.len(), MIXED.len());
    all
}

fn filter(stream_types: &[&str], event_types: &[&str], streams: &[&str]) -> AllFilter {
    AllFilter {
        stream_types: stream_types
            .iter()
            .map(|name| {
                runnel_core::StreamType::parse(name)
                    .unwrap_or_else(|error| panic!("test stream type {name:?}: {error}"))
            })
            .collect(),
        event_types: event_types.iter().map(|name| event_type(name)).collect(),
        streams: streams
            .iter()
            .map(|name| stream(name))
            .collect::<Vec<StreamName>>(),
    }
}

/// Reads `filter` with several page sizes and compares each with the expected events.
async fn assert_filter_reads(
    store: &dyn Store,
    all: &[RecordedEvent],
    filter: &AllFilter,
    expected_count: usize,
) {
    let expected: Vec<_> = all
        .iter()
        .filter(|e| filter.matches(&e.stream, &e.event_type))
        .cloned()
        .collect();
    assert_eq!(
        expected.len(),
        expected_count,
        "the test data should hold {expected_count} events matching {filter:?}"
    );
    for limit in [1, 2, 5, 1_000] {
        let read = read_all_fully(store, Position(0), filter, limit).await;
        assert_eq!(
            read, expected,
            "read_all with {filter:?}, pages of {limit}, returns exactly the matching events"
        );
    }
}

pub async fn read_all_on_an_empty_store_is_empty(fixture: Fixture) {
    let store = fixture.store.as_ref();
    for filter in [AllFilter::default(), filter(&["order"], &[], &[])] {
        let slice = read_all(store, Position(0), &filter, 10).await;
        assert!(slice.events.is_empty());
        assert_eq!(slice.next, None, "nothing to read, so no next");
        assert_eq!(slice.head, None, "an empty store has no head");
    }
}

pub async fn read_all_from_zero_returns_everything_in_position_order(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let mut committed = Vec::new();
    for (name, count) in [
        ("order/o-1", 2),
        ("user/u-1", 1),
        ("order/o-2", 3),
        ("order/o-1", 1),
    ] {
        let ids = super::support::fresh_ids(count);
        append(
            store,
            &stream(name),
            ExpectedRevision::Any,
            super::support::with_ids(events(count, "A"), &ids),
        )
        .await;
        committed.extend(ids);
    }
    let slice = read_all(store, Position(0), &AllFilter::default(), 100).await;
    assert_eq!(
        ids(&slice.events),
        committed,
        "every event, in commit order"
    );
    assert!(
        slice
            .events
            .windows(2)
            .all(|w| w[0].position < w[1].position),
        "positions strictly increase"
    );
    assert_eq!(slice.next, None, "the page reached the head");
    assert_eq!(
        slice.head,
        slice.events.last().map(|e| e.position),
        "head is the last position"
    );
    let revisions: Vec<(String, u64)> = slice
        .events
        .iter()
        .map(|e| (e.stream.to_string(), e.revision.0))
        .collect();
    let expected: Vec<(String, u64)> = [
        ("order/o-1", 0),
        ("order/o-1", 1),
        ("user/u-1", 0),
        ("order/o-2", 0),
        ("order/o-2", 1),
        ("order/o-2", 2),
        ("order/o-1", 2),
    ]
    .iter()
    .map(|(name, revision)| ((*name).to_owned(), *revision))
    .collect();
    assert_eq!(
        revisions, expected,
        "each event carries its stream and revision"
    );
}

pub async fn read_all_from_the_middle(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let all = twelve_events(store).await;
    let slice = read_all(store, all[5].position, &AllFilter::default(), 100).await;
    assert_eq!(
        slice.events,
        all[5..],
        "from an event's position, that event and the rest"
    );
    assert_eq!(slice.next, None);
    // From just after an event: the next event on, whatever gaps lie between.
    let slice = read_all(store, all[4].position.next(), &AllFilter::default(), 3).await;
    assert_eq!(slice.events, all[5..8]);
    let next = slice
        .next
        .unwrap_or_else(|| panic!("more events follow the page"));
    assert!(
        next > all[7].position && next <= all[8].position,
        "next {next} lies after the page and not past the following event at {}",
        all[8].position
    );
    let rest = read_all(store, next, &AllFilter::default(), 100).await;
    assert_eq!(rest.events, all[8..]);
}

pub async fn read_all_past_the_end_is_empty_with_no_next(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let all = twelve_events(store).await;
    let last = all[11].position;
    for from in [last.next(), Position(last.0 + 1_000), Position(u64::MAX)] {
        let slice = read_all(store, from, &AllFilter::default(), 10).await;
        assert!(slice.events.is_empty(), "from {from} past the head {last}");
        assert_eq!(slice.next, None, "from {from}: nothing more, so no next");
        assert_eq!(
            slice.head,
            Some(last),
            "from {from}: head is still reported"
        );
    }
    let at_last = read_all(store, last, &AllFilter::default(), 10).await;
    assert_eq!(
        at_last.events,
        all[11..],
        "from the head itself, the head event"
    );
    assert_eq!(at_last.next, None);
}

/// Lag is measured in events: a count, not a difference of positions, which may have gaps.
pub async fn count_events_counts_the_events_between_two_positions_up_to_a_cap(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let all = twelve_events(store).await;
    let count = |from: Position, through: Position, cap: u64| async move {
        store
            .count_events(from, through, cap)
            .await
            .unwrap_or_else(|error| panic!("count_events {from}..={through}: {error}"))
    };
    let (first, last) = (all[0].position, all[11].position);
    assert_eq!(count(first, last, u64::MAX).await, 12, "every event");
    assert_eq!(count(Position(0), last, u64::MAX).await, 12, "from 0");
    assert_eq!(count(all[3].position, all[7].position, u64::MAX).await, 5);
    assert_eq!(count(last, last, u64::MAX).await, 1, "one event");
    assert_eq!(
        count(last.next(), last, u64::MAX).await,
        0,
        "an empty range"
    );
    assert_eq!(count(first, last, 5).await, 5, "counting stops at the cap");
}

pub async fn read_all_with_limit_one_pages_over_everything(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let all = twelve_events(store).await;
    let mut from = Position(0);
    for (n, expected) in all.iter().enumerate() {
        let slice = read_all(store, from, &AllFilter::default(), 1).await;
        assert_eq!(
            slice.events,
            vec![expected.clone()],
            "page {n} holds event {n}"
        );
        match slice.next {
            Some(next) => {
                assert!(n < 11, "the page of the last event has no next, got {next}");
                assert!(next > expected.position && next <= all[n + 1].position);
                from = next;
            }
            None => assert_eq!(n, 11, "next is None only on the page of the last event"),
        }
    }
}

pub async fn read_all_filters_by_stream_type(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let all = mixed_events(store).await;
    assert_filter_reads(store, &all, &filter(&["order"], &[], &[]), 7).await;
    assert_filter_reads(store, &all, &filter(&["order", "invoice"], &[], &[]), 10).await;
    assert_filter_reads(store, &all, &filter(&["ord"], &[], &[]), 0).await;
}

pub async fn read_all_filters_by_event_type(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let all = mixed_events(store).await;
    assert_filter_reads(store, &all, &filter(&[], &["OrderPlaced"], &[]), 4).await;
    assert_filter_reads(
        store,
        &all,
        &filter(&[], &["OrderPlaced", "UserRegistered"], &[]),
        6,
    )
    .await;
    assert_filter_reads(store, &all, &filter(&[], &["Order"], &[]), 0).await;
}

pub async fn read_all_filters_by_stream(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let all = mixed_events(store).await;
    assert_filter_reads(store, &all, &filter(&[], &[], &["order/o-1"]), 3).await;
    assert_filter_reads(
        store,
        &all,
        &filter(&[], &[], &["order/o-1", "user/u-1"]),
        6,
    )
    .await;
    assert_filter_reads(store, &all, &filter(&[], &[], &["order/o-9"]), 0).await;
}

pub async fn read_all_filters_match_any_value_within_a_list_and_all_lists(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let all = mixed_events(store).await;
    let cases = [
        (
            filter(&["order", "user"], &["OrderShipped", "UserRegistered"], &[]),
            5,
        ),
        (filter(&["user"], &["OrderPlaced"], &[]), 1),
        (
            filter(&[], &["OrderPlaced"], &["order/o-1", "order/o-3"]),
            2,
        ),
        (filter(&["user"], &[], &["order/o-1"]), 0),
        (
            filter(&["order"], &["OrderShipped"], &["order/o-1", "user/u-1"]),
            1,
        ),
    ];
    for (filter, count) in cases {
        assert_filter_reads(store, &all, &filter, count).await;
    }
}

pub async fn filtered_read_all_next_skips_past_scanned_non_matching_events(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let rare = stream("order/rare");
    let rare_filter = filter(&[], &["Rare"], &[]);
    append(
        store,
        &rare,
        ExpectedRevision::Any,
        vec![event("Rare", "1")],
    )
    .await;
    for n in 0..6 {
        let common = stream(&format!("order/common-{n}"));
        append(store, &common, ExpectedRevision::Any, events(50, "Common")).await;
    }

    let first = read_all(store, Position(0), &rare_filter, 10).await;
    assert_eq!(first.events.len(), 1, "the one matching event");
    let rare_position = first.events[0].position;
    if let Some(next) = first.next {
        assert!(
            next > rare_position.next(),
            "a filtered read that found 1 of 10 wanted events must have scanned past at least \
             one non-matching event, and its next ({next}) must say so (match at {rare_position})"
        );
    }
    let head = first
        .head
        .unwrap_or_else(|| panic!("a store with events has a head"));
    if let Some(next) = first.next {
        assert!(
            next <= head.next(),
            "next {next} must not pass the head {head} + 1"
        );
    }
    // A reader paging from there meets no more matches, and gets to the end.
    let rest = read_all_fully(store, first.next.unwrap_or(head.next()), &rare_filter, 10).await;
    assert!(rest.is_empty(), "no other event matches");
    let never = read_all_fully(store, Position(0), &filter(&[], &["Never"], &[]), 10).await;
    assert!(never.is_empty(), "nothing matches, nothing is returned");

    // After the head, a new match is found by a reader continuing from head + 1.
    append(
        store,
        &rare,
        ExpectedRevision::Any,
        vec![event("Rare", "2")],
    )
    .await;
    let later = read_all_fully(store, head.next(), &rare_filter, 10).await;
    assert_eq!(
        later.len(),
        1,
        "the reader continuing past the old head sees the new match"
    );
    assert_eq!(later[0].revision.0, 1);
}

pub async fn filtered_paging_never_returns_an_event_twice(fixture: Fixture) {
    let store = fixture.store.as_ref();
    for n in 0..20usize {
        let batch: Vec<_> = (0..10)
            .map(|i| {
                let kind = if (n * 10 + i) % 7 == 0 {
                    "Wanted"
                } else {
                    "Other"
                };
                event(kind, &format!("{}", n * 10 + i))
            })
            .collect();
        append(
            store,
            &stream(&format!("order/o-{}", n % 3)),
            ExpectedRevision::Any,
            batch,
        )
        .await;
    }
    let all = all_events(store).await;
    assert_eq!(all.len(), 200);
    let wanted = filter(&[], &["Wanted"], &[]);
    let expected: Vec<_> = all
        .iter()
        .filter(|e| wanted.matches(&e.stream, &e.event_type))
        .cloned()
        .collect();
    assert_eq!(expected.len(), 29);
    for limit in [1, 2, 3, 1_000] {
        let read = read_all_fully(store, Position(0), &wanted, limit).await;
        let unique: HashSet<_> = read.iter().map(|e| e.id).collect();
        assert_eq!(
            unique.len(),
            read.len(),
            "pages of {limit} returned an event twice"
        );
        assert_eq!(
            read, expected,
            "pages of {limit} return every wanted event once, in order"
        );
    }
    // Starting in the middle of a run of non-matching events.
    let from = all[50].position.next();
    let read = read_all_fully(store, from, &wanted, 1).await;
    let expected_tail: Vec<_> = expected
        .iter()
        .filter(|e| e.position >= from)
        .cloned()
        .collect();
    assert_eq!(read, expected_tail);
}
