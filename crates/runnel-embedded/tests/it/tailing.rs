//! Readers that follow `$all` at the durable head while the writer writes the next batch: a
//! read stops at the head and never decodes the half-written frames after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use runnel_core::{
    AllFilter, AppendRequest, EventType, ExpectedRevision, JsonText, Position, ProposedEvent, Store,
};
use runnel_embedded::{EmbeddedStore, EngineConfig};
use tokio::task::JoinSet;

use crate::common::{append, event, small_segments, stream};

const WRITERS: usize = 8;
const APPENDS_PER_WRITER: usize = 40;
const EVENTS_PER_APPEND: usize = 16;
const READERS: usize = 3;

/// Large events, so that writing a batch takes long enough for readers to meet it half done.
fn large_event(n: usize) -> ProposedEvent {
    ProposedEvent {
        id: None,
        event_type: EventType::parse("Large").expect("valid"),
        data: runnel_core::Payload::Json(JsonText::from_value(
            &serde_json::json!({ "n": n, "pad": "y".repeat(4_000) }),
        )),
        metadata: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_at_the_head_never_meet_the_batch_being_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = EngineConfig {
        segment_bytes: 16 * 1024 * 1024,
        ..EngineConfig::default()
    };
    let store = Arc::new(EmbeddedStore::open(dir.path(), config).expect("open"));
    let writing = Arc::new(AtomicBool::new(true));

    let mut readers = JoinSet::new();
    for _ in 0..READERS {
        let store = Arc::clone(&store);
        let writing = Arc::clone(&writing);
        readers.spawn(async move {
            let mut next = Position(0);
            let mut reads = 0u64;
            loop {
                // Read after the last check, so the final pass sees everything written.
                let still_writing = writing.load(Ordering::Acquire);
                let slice = store
                    .read_all(next, &AllFilter::default(), 1_000)
                    .await
                    .unwrap_or_else(|error| panic!("read {reads} from {next}: {error}"));
                reads += 1;
                for event in &slice.events {
                    assert_eq!(event.position, next, "$all is read in order, without gaps");
                    next = next.next();
                }
                if slice.next.is_none() && !still_writing {
                    return next;
                }
                if slice.events.is_empty() {
                    tokio::task::yield_now().await;
                }
            }
        });
    }

    let mut writers = JoinSet::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.spawn(async move {
            for append in 0..APPENDS_PER_WRITER {
                store
                    .append(AppendRequest {
                        stream: stream(&format!("large/w-{writer}")),
                        expected: ExpectedRevision::Any,
                        events: (0..EVENTS_PER_APPEND)
                            .map(|k| large_event(append * EVENTS_PER_APPEND + k))
                            .collect(),
                    })
                    .await
                    .unwrap_or_else(|error| panic!("writer {writer}, append {append}: {error}"));
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("a writer panicked");
    }
    writing.store(false, Ordering::Release);

    let total = (WRITERS * APPENDS_PER_WRITER * EVENTS_PER_APPEND) as u64;
    while let Some(read) = readers.join_next().await {
        let read_to = read.unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
        assert_eq!(read_to, Position(total), "a reader saw every event");
    }
    store.close().await.expect("close");
}

/// The same, made certain: bytes that are not a whole frame lie right after the last durable
/// batch (as while the writer is in the middle of writing the next one), and reads of `$all`
/// up to the head still succeed, because they stop at the head's event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_the_head_are_never_decoded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path(), small_segments()).expect("open");
    for n in 0..3u64 {
        let events = (0..5).map(|k| event(n * 5 + k)).collect();
        append(&store, "order/o-1", ExpectedRevision::Any, events)
            .await
            .expect("append");
    }
    let segment = std::fs::read_dir(dir.path().join("log"))
        .expect("log dir")
        .map(|entry| entry.expect("entry").path())
        .find(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .expect("a segment");
    let bytes = std::fs::read(&segment).expect("read segment");
    // Events end in a non-zero byte and the rest of the segment is zero-filled.
    let end = bytes.iter().rposition(|&b| b != 0).expect("written bytes") + 1;
    let half_written = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open segment");
    std::os::unix::fs::FileExt::write_all_at(&half_written, &[0xAB; 64], end as u64)
        .expect("write after the head");

    for from in [Position(0), Position(7), Position(14)] {
        let slice = store
            .read_all(from, &AllFilter::default(), 1_000)
            .await
            .unwrap_or_else(|error| panic!("reading $all from {from}: {error}"));
        assert_eq!(slice.events.len() as u64, 15 - from.0);
        assert_eq!(slice.next, None);
    }
    store.close().await.expect("close");
}
