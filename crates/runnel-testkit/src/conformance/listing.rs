//! Listing stream types (with their stream counts) and the streams of one type, in name order
//! with `after`/`next` paging.

use runnel_core::{
    ExpectedRevision, Page, Revision, Store, StreamId, StreamInfo, StreamType, StreamTypeInfo,
};

use super::support::{append, events, stream, try_append};
use crate::Fixture;

fn stream_type(name: &str) -> StreamType {
    StreamType::parse(name).unwrap_or_else(|error| panic!("test stream type {name:?}: {error}"))
}

fn stream_id(id: &str) -> StreamId {
    StreamId::parse(id).unwrap_or_else(|error| panic!("test stream id {id:?}: {error}"))
}

async fn types_page(
    store: &dyn Store,
    after: Option<&str>,
    limit: usize,
) -> Page<StreamTypeInfo, StreamType> {
    let after = after.map(stream_type);
    store
        .list_stream_types(after.as_ref(), limit)
        .await
        .unwrap_or_else(|error| panic!("list_stream_types after {after:?}: {error}"))
}

fn type_counts(page: &Page<StreamTypeInfo, StreamType>) -> Vec<(String, u64)> {
    page.items
        .iter()
        .map(|info| (info.stream_type.to_string(), info.streams))
        .collect()
}

async fn streams_page(
    store: &dyn Store,
    of_type: &str,
    after: Option<&str>,
    limit: usize,
) -> Page<StreamInfo, StreamId> {
    let after = after.map(stream_id);
    store
        .list_streams(&stream_type(of_type), after.as_ref(), limit)
        .await
        .unwrap_or_else(|error| panic!("list_streams {of_type} after {after:?}: {error}"))
}

fn ids(page: &Page<StreamInfo, StreamId>) -> Vec<String> {
    page.items
        .iter()
        .map(|info| info.stream.stream_id().to_string())
        .collect()
}

fn owned(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

pub async fn list_stream_types_counts_streams_and_pages(fixture: Fixture) {
    let store = fixture.store.as_ref();
    for (name, count) in [
        ("gamma/g-1", 1),
        ("alpha/a-1", 2),
        ("beta/b-1", 1),
        ("alpha/a-2", 1),
        ("gamma/g-2", 3),
        ("alpha/a-3", 1),
        ("alpha/a-1", 1),
    ] {
        append(
            store,
            &stream(name),
            ExpectedRevision::Any,
            events(count, "A"),
        )
        .await;
    }
    // A refused append creates no stream and no type.
    let refused = try_append(
        store,
        &stream("delta/d-1"),
        ExpectedRevision::Exists,
        events(1, "A"),
    )
    .await;
    assert!(
        refused.is_err(),
        "an append expecting a missing stream to exist is refused"
    );

    let all = types_page(store, None, 100).await;
    assert_eq!(
        type_counts(&all),
        vec![("alpha".into(), 3), ("beta".into(), 1), ("gamma".into(), 2)],
        "types in name order, each with its number of streams (not events)"
    );
    assert_eq!(all.next, None);

    let first = types_page(store, None, 2).await;
    assert_eq!(
        type_counts(&first),
        vec![("alpha".into(), 3), ("beta".into(), 1)]
    );
    assert_eq!(
        first.next,
        Some(stream_type("beta")),
        "next is the last type of the page"
    );
    let second = types_page(store, Some("beta"), 2).await;
    assert_eq!(type_counts(&second), vec![("gamma".into(), 2)]);
    assert_eq!(second.next, None);

    let exact = types_page(store, None, 3).await;
    assert_eq!(exact.items.len(), 3);
    assert_eq!(
        exact.next, None,
        "a page that ends on the last type has no next"
    );
    let between = types_page(store, Some("b"), 100).await;
    assert_eq!(
        type_counts(&between),
        vec![("beta".into(), 1), ("gamma".into(), 2)]
    );
    let past = types_page(store, Some("gamma"), 100).await;
    assert!(past.items.is_empty());
    assert_eq!(past.next, None);
}

pub async fn list_streams_returns_ids_in_order_and_pages(fixture: Fixture) {
    let store = fixture.store.as_ref();
    for (id, count) in [("o-3", 1), ("o-1", 2), ("o-2", 1), ("o-10", 4)] {
        append(
            store,
            &stream(&format!("order/{id}")),
            ExpectedRevision::Any,
            events(count, "A"),
        )
        .await;
    }
    append(
        store,
        &stream("user/o-0"),
        ExpectedRevision::Any,
        events(1, "A"),
    )
    .await;
    append(
        store,
        &stream("orders/o-0"),
        ExpectedRevision::Any,
        events(1, "A"),
    )
    .await;

    let all = streams_page(store, "order", None, 100).await;
    assert_eq!(
        ids(&all),
        owned(&["o-1", "o-10", "o-2", "o-3"]),
        "ids in byte order"
    );
    assert_eq!(all.next, None);
    let revisions: Vec<_> = all.items.iter().map(|info| info.revision).collect();
    assert_eq!(
        revisions,
        vec![Revision(1), Revision(3), Revision(0), Revision(0)],
        "each stream's last revision"
    );
    for info in &all.items {
        assert_eq!(info.stream.stream_type(), &stream_type("order"));
        assert!(info.created_at <= info.updated_at, "{info:?}");
    }

    let first = streams_page(store, "order", None, 2).await;
    assert_eq!(ids(&first), owned(&["o-1", "o-10"]));
    assert_eq!(
        first.next,
        Some(stream_id("o-10")),
        "next is the last id of the page"
    );
    let second = streams_page(store, "order", Some("o-10"), 2).await;
    assert_eq!(ids(&second), owned(&["o-2", "o-3"]));
    assert_eq!(
        second.next, None,
        "a page that ends on the last stream has no next"
    );
    let after_missing = streams_page(store, "order", Some("o-11"), 100).await;
    assert_eq!(
        ids(&after_missing),
        owned(&["o-2", "o-3"]),
        "after an id that is not there"
    );
    let past = streams_page(store, "order", Some("o-3"), 100).await;
    assert!(past.items.is_empty());
    assert_eq!(past.next, None);
}

pub async fn list_streams_orders_utf8_ids_bytewise(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let names = [
        "z",
        "日本",
        "a b",
        "B",
        "é",
        "🚚",
        "Zürich 🚚",
        "a",
        "ab",
        "e",
        "~",
    ];
    for id in names {
        append(
            store,
            &stream(&format!("place/{id}")),
            ExpectedRevision::Any,
            events(1, "A"),
        )
        .await;
    }
    let mut expected: Vec<String> = owned(&names);
    expected.sort(); // str's order is the order of its UTF-8 bytes.

    let all = streams_page(store, "place", None, 100).await;
    assert_eq!(ids(&all), expected, "UTF-8 ids in byte order");

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..=names.len() {
        let page = streams_page(store, "place", after.as_deref(), 1).await;
        paged.extend(ids(&page));
        match page.next {
            Some(next) => {
                assert_eq!(Some(next.as_str()), paged.last().map(String::as_str));
                after = Some(next.to_string());
            }
            None => break,
        }
    }
    assert_eq!(
        paged, expected,
        "paging one by one visits every stream once, in order"
    );
}

pub async fn list_streams_of_an_unknown_type_is_empty(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let empty = streams_page(store, "order", None, 10).await;
    assert!(empty.items.is_empty(), "no streams on an empty store");
    assert_eq!(empty.next, None);
    let types = types_page(store, None, 10).await;
    assert!(types.items.is_empty(), "no types on an empty store");
    assert_eq!(types.next, None);

    append(
        store,
        &stream("order/o-1"),
        ExpectedRevision::Any,
        events(1, "A"),
    )
    .await;
    for other in ["ord", "orderx", "user", "$audit"] {
        let page = streams_page(store, other, None, 10).await;
        assert!(
            page.items.is_empty(),
            "type {other} has no streams, got {:?}",
            ids(&page)
        );
        assert_eq!(page.next, None);
    }
}
