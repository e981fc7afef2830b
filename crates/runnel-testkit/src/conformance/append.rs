//! Appends: revisions, positions and every case of the expected revision.

use std::collections::HashSet;

use runnel_core::{Direction, ExpectedRevision, Position, Revision};

use super::support::{
    all_events, append, assert_duplicate_event_id, assert_last_revision, assert_outcome_shape,
    assert_revisions_gapless, assert_store_empty, assert_stream_not_found,
    assert_wrong_expected_revision, event, events, fresh_ids, head, read_stream_fully, stream,
    try_append, with_ids,
};
use crate::Fixture;

pub async fn append_to_new_stream_starts_at_revision_zero(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let outcome = append(
        store,
        &order,
        ExpectedRevision::Any,
        vec![event("OrderPlaced", r#"{"total":42.5}"#)],
    )
    .await;
    assert_outcome_shape(&outcome, &order, 0, 1);

    let read = read_stream_fully(store, &order).await;
    assert_eq!(read.len(), 1, "the stream holds the one event");
    assert_eq!(read[0].revision, Revision(0));
    assert_eq!(
        read[0].position, outcome.first_position,
        "the event is at the acknowledged position"
    );
    assert_last_revision(store, &order, 0).await;
}

pub async fn append_to_existing_stream_continues_at_the_next_revision(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let first = append(store, &order, ExpectedRevision::Any, events(2, "A")).await;
    let second = append(store, &order, ExpectedRevision::Any, events(3, "B")).await;
    assert_outcome_shape(&first, &order, 0, 2);
    assert_outcome_shape(&second, &order, 2, 3);
    assert!(
        second.first_position > first.last_position,
        "a later append gets later positions: {first:?} then {second:?}"
    );
    assert_last_revision(store, &order, 4).await;
}

pub async fn append_with_any_succeeds_on_missing_and_existing_streams(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let created = append(store, &order, ExpectedRevision::Any, events(1, "A")).await;
    assert_outcome_shape(&created, &order, 0, 1);
    let continued = append(store, &order, ExpectedRevision::Any, events(1, "A")).await;
    assert_outcome_shape(&continued, &order, 1, 1);
    assert_last_revision(store, &order, 1).await;
}

pub async fn append_with_no_stream_succeeds_on_a_missing_stream(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let outcome = append(store, &order, ExpectedRevision::NoStream, events(2, "A")).await;
    assert_outcome_shape(&outcome, &order, 0, 2);
    assert_last_revision(store, &order, 1).await;
}

pub async fn append_with_no_stream_on_an_existing_stream_is_rejected_and_writes_nothing(
    fixture: Fixture,
) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    append(store, &order, ExpectedRevision::Any, events(2, "A")).await;
    let head_before = head(store).await;

    let result = try_append(store, &order, ExpectedRevision::NoStream, events(1, "B")).await;
    assert_wrong_expected_revision(
        result,
        &order,
        ExpectedRevision::NoStream,
        Some(Revision(1)),
    );
    assert_last_revision(store, &order, 1).await;
    assert_eq!(head(store).await, head_before, "nothing was written");
}

pub async fn append_with_exists_succeeds_on_an_existing_stream(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    append(store, &order, ExpectedRevision::Any, events(1, "A")).await;
    let outcome = append(store, &order, ExpectedRevision::Exists, events(2, "B")).await;
    assert_outcome_shape(&outcome, &order, 1, 2);
    assert_last_revision(store, &order, 2).await;
}

pub async fn append_with_exists_on_a_missing_stream_is_rejected_and_writes_nothing(
    fixture: Fixture,
) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let result = try_append(store, &order, ExpectedRevision::Exists, events(2, "A")).await;
    assert_wrong_expected_revision(result, &order, ExpectedRevision::Exists, None);
    assert_stream_not_found(store, &order).await;
    assert_store_empty(store, "a rejected append").await;
}

pub async fn append_with_exact_current_revision_succeeds(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    append(store, &order, ExpectedRevision::NoStream, events(3, "A")).await;
    let outcome = append(
        store,
        &order,
        ExpectedRevision::Exact(Revision(2)),
        events(1, "B"),
    )
    .await;
    assert_outcome_shape(&outcome, &order, 3, 1);
    let outcome = append(
        store,
        &order,
        ExpectedRevision::Exact(Revision(3)),
        events(2, "C"),
    )
    .await;
    assert_outcome_shape(&outcome, &order, 4, 2);
    assert_last_revision(store, &order, 5).await;
}

pub async fn append_with_stale_revision_is_rejected_and_writes_nothing(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    append(store, &order, ExpectedRevision::Any, events(3, "A")).await;
    let head_before = head(store).await;

    for stale in [0, 1] {
        let expected = ExpectedRevision::Exact(Revision(stale));
        let result = try_append(store, &order, expected, events(2, "B")).await;
        assert_wrong_expected_revision(result, &order, expected, Some(Revision(2)));
    }
    assert_last_revision(store, &order, 2).await;
    assert_eq!(head(store).await, head_before, "nothing was written");
}

pub async fn append_with_revision_ahead_of_the_stream_is_rejected_and_writes_nothing(
    fixture: Fixture,
) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    append(store, &order, ExpectedRevision::Any, events(3, "A")).await;
    let head_before = head(store).await;

    for ahead in [3, 5, u64::MAX] {
        let expected = ExpectedRevision::Exact(Revision(ahead));
        let result = try_append(store, &order, expected, events(1, "B")).await;
        assert_wrong_expected_revision(result, &order, expected, Some(Revision(2)));
    }
    assert_last_revision(store, &order, 2).await;
    assert_eq!(head(store).await, head_before, "nothing was written");
}

pub async fn append_with_exact_revision_on_a_missing_stream_is_rejected_and_writes_nothing(
    fixture: Fixture,
) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    for exact in [0, 1] {
        let expected = ExpectedRevision::Exact(Revision(exact));
        let result = try_append(store, &order, expected, events(1, "A")).await;
        assert_wrong_expected_revision(result, &order, expected, None);
    }
    assert_stream_not_found(store, &order).await;
    assert_store_empty(store, "rejected appends").await;
}

pub async fn multi_event_append_has_consecutive_revisions_and_positions(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let other = stream("order/o-2");
    append(store, &other, ExpectedRevision::Any, events(1, "A")).await;
    let outcome = append(store, &order, ExpectedRevision::NoStream, events(5, "B")).await;
    assert_outcome_shape(&outcome, &order, 0, 5);

    let read = read_stream_fully(store, &order).await;
    assert_revisions_gapless(&read, &order);
    let positions: Vec<u64> = read.iter().map(|e| e.position.0).collect();
    let expected: Vec<u64> = (outcome.first_position.0..=outcome.last_position.0).collect();
    assert_eq!(
        positions, expected,
        "the events sit at the acknowledged consecutive positions"
    );

    // In $all, nothing sits between the events of one append.
    let all = all_events(store).await;
    let start = all
        .iter()
        .position(|e| e.stream == order)
        .unwrap_or_else(|| panic!("$all holds the append"));
    assert!(
        all[start..start + 5].iter().all(|e| e.stream == order),
        "the events of one append are adjacent in $all"
    );
}

pub async fn rejected_multi_event_append_writes_none_of_its_events(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let elsewhere = stream("order/o-2");
    let taken = fresh_ids(1);
    append(
        store,
        &elsewhere,
        ExpectedRevision::Any,
        with_ids(events(1, "A"), &taken),
    )
    .await;
    let head_before = head(store).await;

    // The third of four events carries an id that is already written elsewhere.
    let mut ids = fresh_ids(4);
    ids[2] = taken[0];
    let result = try_append(
        store,
        &order,
        ExpectedRevision::Any,
        with_ids(events(4, "B"), &ids),
    )
    .await;
    assert_duplicate_event_id(result, &taken);

    // A wrong expectation rejects every event of the append.
    let expected = ExpectedRevision::Exists;
    let result = try_append(store, &order, expected, events(4, "B")).await;
    assert_wrong_expected_revision(result, &order, expected, None);

    assert_stream_not_found(store, &order).await;
    assert_eq!(head(store).await, head_before, "nothing was written");
    // The ids of the refused append are still free.
    let fresh: Vec<_> = ids.iter().copied().filter(|id| *id != taken[0]).collect();
    let outcome = append(
        store,
        &order,
        ExpectedRevision::NoStream,
        with_ids(events(3, "B"), &fresh),
    )
    .await;
    assert_outcome_shape(&outcome, &order, 0, 3);
}

pub async fn positions_increase_strictly_in_commit_order(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let streams = [stream("order/o-1"), stream("order/o-2"), stream("user/u-1")];
    let mut committed = Vec::new();
    let mut last_position: Option<Position> = None;
    for round in 0..30usize {
        let target = &streams[round % streams.len()];
        let count = 1 + round % 3;
        let ids = fresh_ids(count);
        let outcome = append(
            store,
            target,
            ExpectedRevision::Any,
            with_ids(events(count, "Tick"), &ids),
        )
        .await;
        if let Some(last) = last_position {
            assert!(
                outcome.first_position > last,
                "append {round} got position {} after an earlier append's {last}",
                outcome.first_position
            );
        }
        last_position = Some(outcome.last_position);
        committed.extend(ids);
    }
    let read: Vec<_> = all_events(store).await.iter().map(|e| e.id).collect();
    assert_eq!(read, committed, "$all returns the events in commit order");
}

pub async fn revisions_are_gapless_across_many_appends(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let mut next_revision = 0u64;
    for round in 0..40u64 {
        let count = 1 + (round % 4) as usize;
        let expected = match round % 3 {
            0 if round == 0 => ExpectedRevision::NoStream,
            0 => ExpectedRevision::Exact(Revision(next_revision - 1)),
            1 => ExpectedRevision::Any,
            _ => ExpectedRevision::Exists,
        };
        let outcome = append(store, &order, expected, events(count, "Tick")).await;
        assert_outcome_shape(&outcome, &order, next_revision, count as u64);
        next_revision += count as u64;
    }
    assert_last_revision(store, &order, next_revision - 1).await;
    let backward = store
        .read_stream(&order, None, Direction::Backward, 1)
        .await
        .unwrap_or_else(|error| panic!("read backward: {error}"));
    assert_eq!(
        backward.events[0].revision,
        Revision(next_revision - 1),
        "the newest event has the last revision"
    );
}

pub async fn server_assigned_event_ids_are_uuid_v7_and_unique(fixture: Fixture) {
    let store = fixture.store.as_ref();
    for n in 0..5 {
        let target = stream(&format!("order/o-{n}"));
        append(store, &target, ExpectedRevision::Any, events(10, "A")).await;
    }
    let all = all_events(store).await;
    assert_eq!(all.len(), 50);
    let mut seen = HashSet::new();
    for event in &all {
        assert_eq!(
            event.id.get_version_num(),
            7,
            "server-assigned id {} is a UUIDv7",
            event.id
        );
        assert_eq!(event.id.get_variant(), uuid::Variant::RFC4122);
        assert!(seen.insert(event.id), "id {} assigned twice", event.id);
    }
}

pub async fn client_event_ids_are_kept(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    // Clients may choose any UUID, not only v7 ones.
    let ids = [
        uuid::Uuid::from_u128(0x0192_f3c4_6a1e_7b2c_9d3e_4f5a_6b7c_8d9e),
        uuid::Uuid::from_u128(0x6f1c_2b1e_0d5a_4c3b_8a2f_1e0d_9c8b_7a6f),
        uuid::Uuid::from_u128(1),
    ];
    append(
        store,
        &order,
        ExpectedRevision::Any,
        with_ids(events(3, "A"), &ids),
    )
    .await;
    let read: Vec<_> = read_stream_fully(store, &order)
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(read, ids, "the events keep the ids the client chose");
    let again = try_append(
        store,
        &stream("order/o-2"),
        ExpectedRevision::Any,
        with_ids(events(1, "A"), &ids[2..]),
    )
    .await;
    assert_duplicate_event_id(again, &ids[2..]);
}
