//! Event ids are unique in the whole store: a retry of an acknowledged append is answered with
//! the original outcome, any other reuse of an id is a `DuplicateEventId`.

use runnel_core::{ExpectedRevision, Revision};

use super::support::{
    all_events, append, assert_duplicate_event_id, assert_last_revision, assert_outcome_shape,
    assert_store_empty, assert_stream_not_found, events, fresh_ids, head, request, stream,
    try_append, with_ids,
};
use crate::Fixture;

pub async fn retried_append_with_the_same_ids_returns_the_original_outcome_and_writes_nothing(
    fixture: Fixture,
) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    // Something else first, so that the retried append does not sit at the first position.
    append(
        store,
        &stream("user/u-1"),
        ExpectedRevision::Any,
        events(2, "A"),
    )
    .await;
    let ids = fresh_ids(3);
    let original = request(
        &order,
        ExpectedRevision::Any,
        with_ids(events(3, "B"), &ids),
    );
    let outcome = store
        .append(original.clone())
        .await
        .unwrap_or_else(|error| panic!("the original append: {error}"));
    let head_before = head(store).await;
    let count_before = all_events(store).await.len();

    for attempt in 0..3 {
        let retried = store
            .append(original.clone())
            .await
            .unwrap_or_else(|error| panic!("retry {attempt} should succeed, got: {error}"));
        assert_eq!(
            retried, outcome,
            "retry {attempt} returns the original outcome"
        );
    }
    assert_eq!(head(store).await, head_before, "retries wrote nothing");
    assert_eq!(
        all_events(store).await.len(),
        count_before,
        "retries wrote nothing"
    );
    assert_last_revision(store, &order, 2).await;
}

pub async fn retried_append_is_idempotent_even_when_its_expected_revision_now_fails(
    fixture: Fixture,
) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let ids = fresh_ids(2);
    let original = request(
        &order,
        ExpectedRevision::NoStream,
        with_ids(events(2, "A"), &ids),
    );
    let outcome = store
        .append(original.clone())
        .await
        .unwrap_or_else(|error| panic!("the original append: {error}"));
    assert_outcome_shape(&outcome, &order, 0, 2);
    // The stream moves on: the retry's `no_stream` would now fail as a new append.
    append(
        store,
        &order,
        ExpectedRevision::Exact(Revision(1)),
        events(2, "B"),
    )
    .await;
    let head_before = head(store).await;

    let retried = store.append(original.clone()).await;
    match retried {
        Ok(retried) => assert_eq!(retried, outcome, "the retry returns the original outcome"),
        Err(error) => panic!(
            "a retry of an acknowledged append (same ids, same stream, same revisions) must \
             return the original outcome even though its expected revision no longer holds; \
             got: {error}"
        ),
    }
    // The same ids with any other expectation are the same retry.
    for expected in [
        ExpectedRevision::Exists,
        ExpectedRevision::Exact(Revision(0)),
        ExpectedRevision::Exact(Revision(3)),
    ] {
        let retried = store
            .append(request(&order, expected, original.events.clone()))
            .await
            .unwrap_or_else(|error| panic!("retry with expected {expected}: {error}"));
        assert_eq!(retried, outcome, "retry with expected {expected}");
    }
    assert_eq!(head(store).await, head_before, "retries wrote nothing");
    assert_last_revision(store, &order, 3).await;
}

pub async fn retried_single_event_append_is_idempotent_after_the_stream_moved_on(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    append(store, &order, ExpectedRevision::Any, events(1, "A")).await;
    let ids = fresh_ids(1);
    let original = request(
        &order,
        ExpectedRevision::Exact(Revision(0)),
        with_ids(events(1, "B"), &ids),
    );
    let outcome = store
        .append(original.clone())
        .await
        .unwrap_or_else(|error| panic!("the original append: {error}"));
    assert_outcome_shape(&outcome, &order, 1, 1);
    for _ in 0..3 {
        append(store, &order, ExpectedRevision::Any, events(1, "C")).await;
    }
    let head_before = head(store).await;
    let retried = store
        .append(original)
        .await
        .unwrap_or_else(|error| panic!("the retry should succeed, got: {error}"));
    assert_eq!(retried, outcome, "the retry returns the original outcome");
    assert_eq!(head(store).await, head_before, "the retry wrote nothing");
    assert_last_revision(store, &order, 4).await;
}

pub async fn event_id_that_exists_in_another_stream_is_rejected_as_duplicate(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let ids = fresh_ids(2);
    append(
        store,
        &order,
        ExpectedRevision::Any,
        with_ids(events(2, "A"), &ids),
    )
    .await;
    let head_before = head(store).await;

    // The same events, sent to other streams: another id, another type, both.
    for elsewhere in ["order/o-2", "user/o-1", "user/u-9"] {
        let elsewhere = stream(elsewhere);
        let result = try_append(
            store,
            &elsewhere,
            ExpectedRevision::Any,
            with_ids(events(2, "A"), &ids),
        )
        .await;
        assert_duplicate_event_id(result, &ids);
        let result = try_append(
            store,
            &elsewhere,
            ExpectedRevision::NoStream,
            with_ids(events(1, "A"), &ids[1..]),
        )
        .await;
        assert_duplicate_event_id(result, &ids[1..]);
        assert_stream_not_found(store, &elsewhere).await;
    }
    assert_eq!(head(store).await, head_before, "nothing was written");
}

pub async fn append_with_partially_overlapping_ids_is_rejected_as_duplicate_and_writes_nothing(
    fixture: Fixture,
) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let written = fresh_ids(3);
    append(
        store,
        &order,
        ExpectedRevision::Any,
        with_ids(events(3, "A"), &written),
    )
    .await;
    let head_before = head(store).await;

    let new = fresh_ids(2);
    let overlaps: [(&str, Vec<uuid::Uuid>); 5] = [
        ("a written id, then a new one", vec![written[0], new[0]]),
        ("a new id, then a written one", vec![new[0], written[0]]),
        (
            "the last written id, then a new one",
            vec![written[2], new[0]],
        ),
        (
            "all written ids and one more",
            vec![written[0], written[1], written[2], new[0]],
        ),
        (
            "a new id between written ones",
            vec![written[0], new[1], written[1]],
        ),
    ];
    for (case, ids) in overlaps {
        for expected in [ExpectedRevision::Any, ExpectedRevision::Exact(Revision(2))] {
            let result = try_append(
                store,
                &order,
                expected,
                with_ids(events(ids.len(), "B"), &ids),
            )
            .await;
            match result {
                Err(runnel_core::StoreError::DuplicateEventId { id }) => assert!(
                    written.contains(&id),
                    "{case}: DuplicateEventId names {id}, which is not a written id"
                ),
                other => panic!(
                    "{case} (expected {expected}): should be DuplicateEventId, got {other:?}"
                ),
            }
        }
    }
    assert_eq!(head(store).await, head_before, "nothing was written");
    assert_last_revision(store, &order, 2).await;
    // The new ids are still free.
    let outcome = append(
        store,
        &order,
        ExpectedRevision::Exact(Revision(2)),
        with_ids(events(2, "C"), &new),
    )
    .await;
    assert_outcome_shape(&outcome, &order, 3, 2);
}

pub async fn retry_with_reordered_ids_is_rejected_as_duplicate(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let ids = fresh_ids(2);
    append(
        store,
        &order,
        ExpectedRevision::Any,
        with_ids(events(2, "A"), &ids),
    )
    .await;
    let head_before = head(store).await;
    let reordered = [ids[1], ids[0]];
    let result = try_append(
        store,
        &order,
        ExpectedRevision::Any,
        with_ids(events(2, "A"), &reordered),
    )
    .await;
    assert_duplicate_event_id(result, &ids);
    assert_eq!(head(store).await, head_before, "nothing was written");
}

pub async fn append_with_the_same_id_twice_is_rejected_as_duplicate(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let id = fresh_ids(1)[0];
    let result = try_append(
        store,
        &order,
        ExpectedRevision::Any,
        with_ids(events(2, "A"), &[id, id]),
    )
    .await;
    assert_duplicate_event_id(result, &[id]);
    assert_stream_not_found(store, &order).await;
    assert_store_empty(store, "an append that repeats an id").await;
}
