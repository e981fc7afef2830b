//! Damaged logs: a torn last batch is cut; damage anywhere else refuses to open, naming the file
//! and the offset.

use std::path::{Path, PathBuf};

use runnel_core::{ExpectedRevision, Store, StoreError};
use runnel_embedded::{EmbeddedStore, EngineConfig, verify};

use crate::common::{append, event};

fn only_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir.join("log"))
        .expect("log dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    assert_eq!(segments.len(), 1);
    segments.remove(0)
}

/// Appends `count` single-event batches and returns the segment's bytes after each close.
async fn write_batches(dir: &Path, count: u64) -> Vec<Vec<u8>> {
    let mut images = Vec::new();
    for n in 0..count {
        let store = EmbeddedStore::open(dir, EngineConfig::default()).expect("open");
        append(&store, "order/o-1", ExpectedRevision::Any, vec![event(n)])
            .await
            .expect("append");
        store.close().await.expect("close");
        drop(store);
        images.push(std::fs::read(only_segment(dir)).expect("read segment"));
    }
    images
}

fn written_len(image: &[u8]) -> usize {
    image
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_batch_is_cut_and_the_rest_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = write_batches(dir.path(), 3).await;
    let before = written_len(&images[1]);
    let after = written_len(&images[2]);
    // A crash half-way through writing the third batch, before its sync: the index (whose
    // commits are not durable) never heard of it, so it is rebuilt from the log.
    let mut torn = images[1].clone();
    let half = before + (after - before) / 2;
    torn[before..half].copy_from_slice(&images[2][before..half]);
    std::fs::write(only_segment(dir.path()), &torn).expect("write torn image");
    std::fs::remove_file(dir.path().join("index.redb")).expect("remove index");

    let (store, report) = EmbeddedStore::open_reporting(
        dir.path(),
        EngineConfig::default(),
        std::sync::Arc::new(runnel_embedded::OsIo),
    )
    .expect("open cuts the torn tail");
    assert_eq!(report.events, 2);
    let (file, offset) = report.torn_tail_cut_at.expect("a torn tail was cut");
    assert_eq!(file, only_segment(dir.path()));
    assert_eq!(offset, before as u64);
    let next = append(
        &store,
        "order/o-1",
        ExpectedRevision::Exact(runnel_core::Revision(1)),
        vec![event(9)],
    )
    .await
    .expect("append after the cut");
    assert_eq!(next.first_revision, runnel_core::Revision(2));
    store.close().await.expect("close");
    drop(store);
    let report = verify(dir.path()).expect("verify");
    assert_eq!(report.events, 3);
    assert_eq!(report.torn_tail_at, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_mid_log_fails_open_naming_file_and_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = write_batches(dir.path(), 3).await;
    let first_batch_end = written_len(&images[0]);
    let mut damaged = images[2].clone();
    damaged[first_batch_end - 10] ^= 0x01;
    let segment = only_segment(dir.path());
    std::fs::write(&segment, &damaged).expect("write damaged image");

    let error = EmbeddedStore::open(dir.path(), EngineConfig::default()).expect_err("must refuse");
    let StoreError::Corrupt { file, offset, .. } = &error else {
        panic!("expected Corrupt, got {error}");
    };
    assert_eq!(*file, segment);
    assert_eq!(
        *offset, 4096,
        "the first batch starts after the segment header"
    );
    let message = error.to_string();
    assert!(
        message.contains(&segment.display().to_string()) && message.contains("4096"),
        "{message}"
    );
    // The refusal changed nothing: the damage is still there to be examined.
    assert_eq!(std::fs::read(&segment).expect("read"), damaged);
    let offline = verify(dir.path()).expect_err("verify finds it too");
    assert!(
        matches!(offline, StoreError::Corrupt { offset: 4096, .. }),
        "{offline}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_to_the_last_acknowledged_batch_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = write_batches(dir.path(), 2).await;
    let end = written_len(&images[1]);
    let mut damaged = images[1].clone();
    damaged[end - 5] ^= 0x40;
    std::fs::write(only_segment(dir.path()), &damaged).expect("write damaged image");
    // The index, made durable at close, proves the last batch was acknowledged.
    let error = EmbeddedStore::open(dir.path(), EngineConfig::default()).expect_err("must refuse");
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_a_directory_in_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path(), EngineConfig::default()).expect("open");
    let error = verify(dir.path()).expect_err("in use");
    assert!(error.to_string().contains("index"), "{error}");
    drop(store);
    verify(dir.path()).expect("verify after close");
}
