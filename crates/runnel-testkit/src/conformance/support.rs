//! Small helpers that keep the behaviours readable: building names and events, appending with a
//! clear panic message, reading whole streams and the whole log in bounded pages.

use std::time::Duration;

use runnel_core::{
    AllFilter, AppendOutcome, AppendRequest, Direction, EventType, ExpectedRevision, JsonText,
    MAX_PAGE_LIMIT, Position, ProposedEvent, RecordedEvent, Revision, Store, StoreError,
    StreamName,
};
use uuid::Uuid;

/// How long a follower may wait for a head that should move.
pub(crate) const WAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The most pages any helper reads before it decides a reader is not making progress.
const MAX_PAGES: usize = 20_000;

pub(crate) fn stream(name: &str) -> StreamName {
    StreamName::parse(name).unwrap_or_else(|error| panic!("test stream name {name:?}: {error}"))
}

pub(crate) fn event_type(name: &str) -> EventType {
    EventType::parse(name).unwrap_or_else(|error| panic!("test event type {name:?}: {error}"))
}

pub(crate) fn json(text: &str) -> JsonText {
    JsonText::parse(text.to_owned()).unwrap_or_else(|error| panic!("test JSON {text:?}: {error}"))
}

/// A JSON event with a server-assigned id.
pub(crate) fn event(event_type_name: &str, data: &str) -> ProposedEvent {
    ProposedEvent::json(event_type(event_type_name), json(data))
}

/// `count` small JSON events of one type, numbered in their data.
pub(crate) fn events(count: usize, event_type_name: &str) -> Vec<ProposedEvent> {
    (0..count)
        .map(|n| event(event_type_name, &format!(r#"{{"n":{n}}}"#)))
        .collect()
}

/// The same events, with client-chosen ids.
pub(crate) fn with_ids(events: Vec<ProposedEvent>, ids: &[Uuid]) -> Vec<ProposedEvent> {
    assert_eq!(events.len(), ids.len(), "one id per event");
    events
        .into_iter()
        .zip(ids)
        .map(|(event, id)| ProposedEvent {
            id: Some(*id),
            ..event
        })
        .collect()
}

pub(crate) fn fresh_ids(count: usize) -> Vec<Uuid> {
    (0..count).map(|_| Uuid::now_v7()).collect()
}

pub(crate) fn request(
    stream: &StreamName,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> AppendRequest {
    AppendRequest {
        stream: stream.clone(),
        expected,
        events,
    }
}

/// Appends and panics, naming the stream, if the store refuses.
pub(crate) async fn append(
    store: &dyn Store,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> AppendOutcome {
    let count = events.len();
    match store.append(request(stream, expected, events)).await {
        Ok(outcome) => outcome,
        Err(error) => {
            panic!("append of {count} events to {stream} with expected {expected} failed: {error}")
        }
    }
}

pub(crate) async fn try_append(
    store: &dyn Store,
    stream: &StreamName,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> Result<AppendOutcome, StoreError> {
    store.append(request(stream, expected, events)).await
}

/// Asserts that an append was refused with `WrongExpectedRevision` carrying `current`.
pub(crate) fn assert_wrong_expected_revision(
    result: Result<AppendOutcome, StoreError>,
    stream: &StreamName,
    expected: ExpectedRevision,
    current: Option<Revision>,
) {
    match result {
        Err(StoreError::WrongExpectedRevision {
            stream: got_stream,
            expected: got_expected,
            current: got_current,
        }) => {
            assert_eq!(&got_stream, stream, "the error names the stream");
            assert_eq!(got_expected, expected, "the error names the expectation");
            assert_eq!(
                got_current, current,
                "the error carries the stream's current revision"
            );
        }
        other => panic!(
            "append to {stream} with expected {expected} should fail with WrongExpectedRevision \
             {{ current: {current:?} }}, got {other:?}"
        ),
    }
}

pub(crate) fn assert_duplicate_event_id(result: Result<AppendOutcome, StoreError>, ids: &[Uuid]) {
    match result {
        Err(StoreError::DuplicateEventId { id }) => assert!(
            ids.contains(&id),
            "DuplicateEventId names {id}, which is not one of the offending ids {ids:?}"
        ),
        other => panic!("expected DuplicateEventId naming one of {ids:?}, got {other:?}"),
    }
}

/// The whole stream, forward, in bounded pages.
pub(crate) async fn read_stream_fully(
    store: &dyn Store,
    stream: &StreamName,
) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    let mut from = Some(Revision(0));
    for _ in 0..MAX_PAGES {
        let Some(start) = from else {
            return events;
        };
        let slice = store
            .read_stream(stream, Some(start), Direction::Forward, MAX_PAGE_LIMIT)
            .await
            .unwrap_or_else(|error| panic!("reading {stream} from {start}: {error}"));
        if let (Some(next), Some(last)) = (slice.next, slice.events.last()) {
            assert!(
                next > last.revision,
                "reading {stream} forward: next {next} does not move past revision {}",
                last.revision
            );
        }
        assert!(
            slice.next.is_none() || !slice.events.is_empty(),
            "reading {stream} from {start}: an empty page must not have a next"
        );
        events.extend(slice.events);
        from = slice.next;
    }
    panic!("reading {stream} did not end within {MAX_PAGES} pages");
}

/// A stream's events, or an empty list when the store says it does not exist.
pub(crate) async fn stream_events_or_none(
    store: &dyn Store,
    stream: &StreamName,
) -> Vec<RecordedEvent> {
    match store.stream_info(stream).await {
        Err(StoreError::StreamNotFound { .. }) => Vec::new(),
        Err(error) => panic!("stream_info of {stream}: {error}"),
        Ok(_) => read_stream_fully(store, stream).await,
    }
}

/// Every event of `$all` matching `filter` from `from`, in pages of `limit`, checking on each
/// page that the reader makes progress and never goes back.
pub(crate) async fn read_all_fully(
    store: &dyn Store,
    from: Position,
    filter: &AllFilter,
    limit: usize,
) -> Vec<RecordedEvent> {
    let mut events: Vec<RecordedEvent> = Vec::new();
    let mut from = Some(from);
    for _ in 0..MAX_PAGES {
        let Some(start) = from else {
            return events;
        };
        let slice = store
            .read_all(start, filter, limit)
            .await
            .unwrap_or_else(|error| panic!("read_all from {start}: {error}"));
        assert!(
            slice.events.len() <= limit.clamp(1, MAX_PAGE_LIMIT),
            "read_all from {start} with limit {limit} returned {} events",
            slice.events.len()
        );
        for event in &slice.events {
            assert!(
                event.position >= start,
                "read_all from {start} returned position {}",
                event.position
            );
            if let Some(previous) = events.last() {
                assert!(
                    event.position > previous.position,
                    "read_all went back: position {} after {}",
                    event.position,
                    previous.position
                );
            }
            assert!(
                filter.matches(&event.stream, &event.event_type),
                "read_all with {filter:?} returned non-matching event at {}",
                event.position
            );
        }
        if let Some(next) = slice.next {
            assert!(
                next > start,
                "read_all from {start}: next {next} makes no progress"
            );
            if let Some(last) = slice.events.last() {
                assert!(
                    next > last.position,
                    "read_all from {start}: next {next} does not pass the last returned position {}",
                    last.position
                );
            }
        }
        events.extend(slice.events);
        from = slice.next;
    }
    panic!("read_all did not reach the head within {MAX_PAGES} pages");
}

/// Every event of `$all`, unfiltered.
pub(crate) async fn all_events(store: &dyn Store) -> Vec<RecordedEvent> {
    read_all_fully(store, Position(0), &AllFilter::default(), MAX_PAGE_LIMIT).await
}

/// The head as `read_all` reports it.
pub(crate) async fn head(store: &dyn Store) -> Option<Position> {
    store
        .read_all(Position(0), &AllFilter::default(), 1)
        .await
        .unwrap_or_else(|error| panic!("read_all for the head: {error}"))
        .head
}

/// Asserts that the store holds no events at all.
pub(crate) async fn assert_store_empty(store: &dyn Store, why: &str) {
    let events = all_events(store).await;
    assert!(
        events.is_empty(),
        "{why}: the store should hold no events, but holds {}",
        events.len()
    );
}

/// Asserts that `stream` has no events, through both `read_stream` and `stream_info`.
pub(crate) async fn assert_stream_not_found(store: &dyn Store, stream: &StreamName) {
    match store
        .read_stream(stream, None, Direction::Forward, 10)
        .await
    {
        Err(StoreError::StreamNotFound { stream: named }) => {
            assert_eq!(&named, stream, "StreamNotFound names the stream")
        }
        other => panic!("read_stream of {stream} should be StreamNotFound, got {other:?}"),
    }
    match store.stream_info(stream).await {
        Err(StoreError::StreamNotFound { stream: named }) => {
            assert_eq!(&named, stream, "StreamNotFound names the stream")
        }
        other => panic!("stream_info of {stream} should be StreamNotFound, got {other:?}"),
    }
}

/// Asserts the stream's last revision, through `stream_info` and a full read.
pub(crate) async fn assert_last_revision(store: &dyn Store, stream: &StreamName, last: u64) {
    let info = store
        .stream_info(stream)
        .await
        .unwrap_or_else(|error| panic!("stream_info of {stream}: {error}"));
    assert_eq!(
        info.revision,
        Revision(last),
        "stream_info of {stream} reports the last revision"
    );
    let events = read_stream_fully(store, stream).await;
    assert_revisions_gapless(&events, stream);
    assert_eq!(
        events.len() as u64,
        last + 1,
        "{stream} holds revisions 0..={last}"
    );
}

/// Asserts that `events` (one stream, forward) are numbered 0, 1, 2 … without gaps.
pub(crate) fn assert_revisions_gapless(events: &[RecordedEvent], stream: &StreamName) {
    for (expected, event) in events.iter().enumerate() {
        assert_eq!(
            event.revision,
            Revision(expected as u64),
            "{stream}: revisions must be gapless from 0"
        );
        assert_eq!(
            &event.stream, stream,
            "read_stream returned another stream's event"
        );
    }
}

/// Asserts that an outcome describes `count` events with consecutive revisions and positions.
pub(crate) fn assert_outcome_shape(
    outcome: &AppendOutcome,
    stream: &StreamName,
    first_revision: u64,
    count: u64,
) {
    assert_eq!(&outcome.stream, stream, "the outcome names the stream");
    assert_eq!(
        outcome.first_revision,
        Revision(first_revision),
        "first revision of the append"
    );
    assert_eq!(
        outcome.last_revision,
        Revision(first_revision + count - 1),
        "an append of {count} events has consecutive revisions"
    );
    assert!(
        outcome.last_position >= outcome.first_position,
        "positions of one append increase (outcome {outcome:?})"
    );
    assert_eq!(
        outcome.last_position.0 - outcome.first_position.0,
        count - 1,
        "an append of {count} events has consecutive positions (outcome {outcome:?})"
    );
}
