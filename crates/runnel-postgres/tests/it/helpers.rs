//! Small helpers shared by the tests.

use std::collections::HashMap;

use runnel_core::{
    AllFilter, AppendRequest, EventType, ExpectedRevision, JsonText, Position, ProposedEvent,
    RecordedEvent, Store, StreamName,
};
use uuid::Uuid;

pub fn stream(name: &str) -> StreamName {
    StreamName::parse(name).unwrap_or_else(|error| panic!("test stream {name:?}: {error}"))
}

/// An append of `count` small JSON events with fresh client-chosen ids.
pub fn append_with_ids(stream_name: &StreamName, count: usize) -> AppendRequest {
    AppendRequest {
        stream: stream_name.clone(),
        expected: ExpectedRevision::Any,
        events: (0..count)
            .map(|n| ProposedEvent {
                id: Some(Uuid::now_v7()),
                ..ProposedEvent::json(
                    EventType::parse("Tested").unwrap_or_else(|e| panic!("{e}")),
                    JsonText::parse(format!(r#"{{"n":{n}}}"#)).unwrap_or_else(|e| panic!("{e}")),
                )
            })
            .collect(),
    }
}

pub fn ids_of(request: &AppendRequest) -> Vec<Uuid> {
    request.events.iter().filter_map(|event| event.id).collect()
}

/// Every event of `$all`, in pages.
pub async fn all_events(store: &dyn Store) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    let mut from = Position(0);
    for _ in 0..100_000 {
        let slice = store
            .read_all(from, &AllFilter::default(), 1_000)
            .await
            .unwrap_or_else(|error| panic!("read_all from {from}: {error}"));
        events.extend(slice.events);
        match slice.next {
            Some(next) => from = next,
            None => return events,
        }
    }
    panic!("read_all did not reach the head");
}

/// Asserts that `expected` ids (with their positions) are in the log exactly once each, and
/// nothing else is.
pub fn assert_exactly(events: &[RecordedEvent], expected: &HashMap<Uuid, Position>, what: &str) {
    let mut seen = HashMap::new();
    for event in events {
        if let Some(previous) = seen.insert(event.id, event.position) {
            panic!(
                "{what}: event {} appears twice, at {previous} and {}",
                event.id, event.position
            );
        }
    }
    for (id, position) in expected {
        match seen.get(id) {
            Some(found) => assert_eq!(
                found, position,
                "{what}: acknowledged event {id} is not where its outcome said"
            ),
            None => panic!("{what}: acknowledged event {id} (position {position}) is missing"),
        }
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "{what}: the log holds events nobody saw acknowledged"
    );
}
