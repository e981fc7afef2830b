//! Helpers shared by the engine's integration tests.

use runnel_core::{
    AppendOutcome, AppendRequest, EventType, ExpectedRevision, JsonText, ProposedEvent, Store,
    StoreError, StreamName,
};
use runnel_embedded::EngineConfig;
use uuid::Uuid;

pub(crate) fn stream(name: &str) -> StreamName {
    StreamName::parse(name).expect("valid stream name")
}

pub(crate) fn event(n: u64) -> ProposedEvent {
    ProposedEvent {
        id: Some(Uuid::now_v7()),
        event_type: EventType::parse("Happened").expect("valid"),
        data: runnel_core::Payload::Json(JsonText::from_value(
            &serde_json::json!({ "n": n, "pad": "x".repeat(150) }),
        )),
        // Metadata last, so a frame ends in a non-zero byte (tests find batch ends that way).
        metadata: Some(JsonText::from_value(&serde_json::json!({ "k": n }))),
    }
}

pub(crate) async fn append(
    store: &dyn Store,
    stream_name: &str,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> Result<AppendOutcome, StoreError> {
    store
        .append(AppendRequest {
            stream: stream(stream_name),
            expected,
            events,
        })
        .await
}

/// Small segments, so tests cross segment boundaries quickly.
pub(crate) fn small_segments() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.limits.max_append_bytes = 64 * 1024;
    config.limits.max_event_bytes = 16 * 1024;
    config.limits.max_events_per_append = 100;
    config.max_batch_bytes = 64 * 1024;
    config.segment_bytes = 256 * 1024;
    config
}
