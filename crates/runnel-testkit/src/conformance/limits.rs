//! Requests that are refused before they cost the store anything: empty appends, writes to
//! system streams, and each configured limit (taken from `store.limits()`, whatever it is).

use runnel_core::{
    AppendLimits, AppendOutcome, ExpectedRevision, LimitKind, ProposedEvent, StoreError,
};

use super::support::{
    assert_last_revision, assert_outcome_shape, assert_store_empty, assert_stream_not_found, event,
    events, json, stream, try_append,
};
use crate::Fixture;

/// The per-event limit as it is enforced: never above the log's hard ceiling.
fn effective_max_event_bytes(limits: &AppendLimits) -> usize {
    limits
        .max_event_bytes
        .min(AppendLimits::CEILING_EVENT_BYTES)
}

/// A JSON event of type `E` that counts exactly `size` bytes against the limits: one byte of
/// type and a JSON string of `size - 1` bytes.
fn event_of_size(size: usize) -> ProposedEvent {
    assert!(size >= 3, "the smallest sized event is 3 bytes");
    let text = format!("\"{}\"", "x".repeat(size - 3));
    let event = ProposedEvent::json(super::support::event_type("E"), json(&text));
    debug_assert_eq!(event.size_bytes(), size);
    event
}

fn assert_limit_exceeded(
    result: Result<AppendOutcome, StoreError>,
    limit: LimitKind,
    max: usize,
    actual: usize,
    index: Option<usize>,
) {
    match result {
        Err(StoreError::LimitExceeded {
            limit: got_limit,
            max: got_max,
            actual: got_actual,
            index: got_index,
        }) => {
            assert_eq!(
                got_limit,
                limit,
                "the error names the limit {}",
                limit.name()
            );
            assert_eq!(
                got_max, max as u64,
                "the error reports the configured maximum"
            );
            assert_eq!(
                got_actual, actual as u64,
                "the error reports the actual size"
            );
            assert_eq!(got_index, index, "the error names the offending event");
        }
        other => panic!("expected LimitExceeded {{ limit: {limit} }}, got {other:?}"),
    }
}

pub async fn empty_append_is_rejected(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    for expected in [ExpectedRevision::Any, ExpectedRevision::NoStream] {
        let result = try_append(store, &order, expected, Vec::new()).await;
        assert!(
            matches!(result, Err(StoreError::EmptyAppend)),
            "an append of no events should be EmptyAppend, got {result:?}"
        );
    }
    assert_stream_not_found(store, &order).await;
    assert_store_empty(store, "an empty append").await;
}

pub async fn append_to_a_system_stream_is_rejected(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let audit = stream("$audit/keys");
    let result = try_append(
        store,
        &audit,
        ExpectedRevision::Any,
        events(1, "KeyCreated"),
    )
    .await;
    match result {
        Err(StoreError::SystemStream { stream: named }) => {
            assert_eq!(named, audit, "the error names the stream")
        }
        other => panic!("an append to $audit should be SystemStream, got {other:?}"),
    }
    assert_stream_not_found(store, &audit).await;
    assert_store_empty(store, "a refused system-stream append").await;
}

/// The server's own records go through `append_system`, with every guarantee of an append; it
/// refuses ordinary streams, so it cannot be used to bypass a client's checks.
pub async fn system_appends_write_only_system_streams(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let audit = stream("$audit/keys");
    let outcome = store
        .append_system(runnel_core::AppendRequest {
            stream: audit.clone(),
            expected: ExpectedRevision::NoStream,
            events: events(2, "KeyCreated"),
        })
        .await
        .expect("a system append to $audit is accepted");
    assert_outcome_shape(&outcome, &audit, 0, 2);
    assert_last_revision(store, &audit, 1).await;
    let order = stream("order/o-1");
    let result = store
        .append_system(runnel_core::AppendRequest {
            stream: order.clone(),
            expected: ExpectedRevision::Any,
            events: events(1, "OrderPlaced"),
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::NotASystemStream { .. })),
        "append_system to an ordinary stream should be NotASystemStream, got {result:?}"
    );
    assert_stream_not_found(store, &order).await;
}

pub async fn event_larger_than_max_event_bytes_is_rejected_naming_the_limit(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let limits = store.limits();
    let max = effective_max_event_bytes(&limits);
    let order = stream("order/o-1");
    let too_big = event_of_size(max + 1);
    // The oversized event is the second one, so the error must point at index 1.
    let result = try_append(
        store,
        &order,
        ExpectedRevision::Any,
        vec![event("A", "{}"), too_big],
    )
    .await;
    assert_limit_exceeded(result, LimitKind::BytesPerEvent, max, max + 1, Some(1));
    assert_stream_not_found(store, &order).await;
    assert_store_empty(store, "an oversized event").await;
}

pub async fn append_with_more_events_than_max_events_per_append_is_rejected_naming_the_limit(
    fixture: Fixture,
) {
    let store = fixture.store.as_ref();
    let limits = store.limits();
    let count = limits.max_events_per_append + 1;
    let order = stream("order/o-1");
    let events: Vec<_> = (0..count).map(|_| event("A", "0")).collect();
    let result = try_append(store, &order, ExpectedRevision::Any, events).await;
    assert_limit_exceeded(
        result,
        LimitKind::EventsPerAppend,
        limits.max_events_per_append,
        count,
        None,
    );
    assert_stream_not_found(store, &order).await;
    assert_store_empty(store, "an append with too many events").await;
}

pub async fn append_larger_than_max_append_bytes_is_rejected_naming_the_limit(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let limits = store.limits();
    let per_event = effective_max_event_bytes(&limits);
    // The fewest events of the largest allowed size that together exceed the append limit.
    let count = limits.max_append_bytes / per_event + 1;
    assert!(
        count <= limits.max_events_per_append,
        "with limits {limits:?} no append can exceed max_append_bytes without first exceeding \
         max_events_per_append; the suite needs limits where it can"
    );
    let order = stream("order/o-1");
    let events: Vec<_> = (0..count).map(|_| event_of_size(per_event)).collect();
    let result = try_append(store, &order, ExpectedRevision::Any, events).await;
    assert_limit_exceeded(
        result,
        LimitKind::BytesPerAppend,
        limits.max_append_bytes,
        count * per_event,
        None,
    );
    assert_stream_not_found(store, &order).await;
    assert_store_empty(store, "an oversized append").await;
}

pub async fn events_exactly_at_the_limits_are_accepted(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let limits = store.limits();
    let order = stream("order/o-1");

    let largest = event_of_size(effective_max_event_bytes(&limits));
    let outcome = try_append(store, &order, ExpectedRevision::Any, vec![largest])
        .await
        .unwrap_or_else(|error| panic!("an event of exactly max_event_bytes: {error}"));
    assert_outcome_shape(&outcome, &order, 0, 1);

    let most = events(limits.max_events_per_append, "A");
    let outcome = try_append(store, &order, ExpectedRevision::Any, most)
        .await
        .unwrap_or_else(|error| panic!("exactly max_events_per_append events: {error}"));
    assert_outcome_shape(&outcome, &order, 1, limits.max_events_per_append as u64);

    // Exactly max_append_bytes, in as few events as the per-event limit allows.
    let per_event = effective_max_event_bytes(&limits).min(limits.max_append_bytes);
    let count = limits.max_append_bytes.div_ceil(per_event);
    if count <= limits.max_events_per_append && limits.max_append_bytes / count >= 3 {
        let base = limits.max_append_bytes / count;
        let extra = limits.max_append_bytes % count;
        let sized: Vec<_> = (0..count)
            .map(|i| event_of_size(base + usize::from(i < extra)))
            .collect();
        let total: usize = sized.iter().map(ProposedEvent::size_bytes).sum();
        assert_eq!(total, limits.max_append_bytes);
        let outcome = try_append(store, &order, ExpectedRevision::Any, sized)
            .await
            .unwrap_or_else(|error| panic!("an append of exactly max_append_bytes: {error}"));
        assert_outcome_shape(
            &outcome,
            &order,
            1 + limits.max_events_per_append as u64,
            count as u64,
        );
        assert_last_revision(
            store,
            &order,
            limits.max_events_per_append as u64 + count as u64,
        )
        .await;
    }
}
