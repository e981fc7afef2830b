//! Injected I/O failures and crash images: after every one, reopening recovers every
//! acknowledged append, each append whole or not at all, with gapless revisions and positions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use runnel_core::{AllFilter, ExpectedRevision, Position, RecordedEvent, Store, StoreError};
use runnel_embedded::fault::{FaultPlan, FaultyIo};
use runnel_embedded::{EmbeddedStore, VerifyOnOpen};
use uuid::Uuid;

use crate::common::{append, event, small_segments};

/// A tiny deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Default)]
struct Ledger {
    /// Every append attempted: its event ids, in order.
    attempted: Vec<Vec<Uuid>>,
    /// Acknowledged appends: ids with their (stream, revision, position).
    acknowledged: Vec<(Vec<Uuid>, String, u64, u64)>,
}

async fn read_everything(store: &EmbeddedStore) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    let mut from = Position(0);
    loop {
        let slice = store
            .read_all(from, &AllFilter::default(), 1000)
            .await
            .expect("read $all");
        events.extend(slice.events);
        match slice.next {
            Some(next) => from = next,
            None => return events,
        }
    }
}

/// Checks the recovered store against what was acknowledged and attempted.
fn check_recovered(events: &[RecordedEvent], ledger: &Ledger, seed: u64) {
    let by_id: HashMap<Uuid, &RecordedEvent> = events.iter().map(|e| (e.id, e)).collect();
    assert_eq!(
        by_id.len(),
        events.len(),
        "seed {seed}: an id appears twice"
    );
    for (n, event) in events.iter().enumerate() {
        assert_eq!(
            event.position,
            Position(n as u64),
            "seed {seed}: positions have a gap"
        );
    }
    let mut next_revision: BTreeMap<String, u64> = BTreeMap::new();
    for event in events {
        let expected = next_revision.entry(event.stream.to_string()).or_insert(0);
        assert_eq!(
            event.revision.0, *expected,
            "seed {seed}: revision gap in {}",
            event.stream
        );
        *expected += 1;
    }
    for (ids, stream, first_revision, first_position) in &ledger.acknowledged {
        for (offset, id) in ids.iter().enumerate() {
            let event = by_id
                .get(id)
                .unwrap_or_else(|| panic!("seed {seed}: acknowledged event {id} is lost"));
            assert_eq!(event.stream.to_string(), *stream, "seed {seed}");
            assert_eq!(
                event.revision.0,
                first_revision + offset as u64,
                "seed {seed}"
            );
            assert_eq!(
                event.position.0,
                first_position + offset as u64,
                "seed {seed}"
            );
        }
    }
    let attempted: HashMap<Uuid, usize> = ledger
        .attempted
        .iter()
        .enumerate()
        .flat_map(|(n, ids)| ids.iter().map(move |id| (*id, n)))
        .collect();
    for event in events {
        let append = attempted
            .get(&event.id)
            .unwrap_or_else(|| panic!("seed {seed}: event {} was never appended", event.id));
        for id in &ledger.attempted[*append] {
            assert!(
                by_id.contains_key(id),
                "seed {seed}: append {append} survived only in part"
            );
        }
    }
}

async fn run_workload(store: Arc<EmbeddedStore>, ledger: Arc<Mutex<Ledger>>, seed: u64) {
    let mut tasks = Vec::new();
    for writer in 0..8u64 {
        let store = Arc::clone(&store);
        let ledger = Arc::clone(&ledger);
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed * 31 + writer + 1);
            for n in 0..12u64 {
                let events: Vec<_> = (0..=rng.below(3)).map(|k| event(n * 10 + k)).collect();
                let ids: Vec<Uuid> = events.iter().filter_map(|e| e.id).collect();
                let stream = format!("acct/a-{}", rng.below(5));
                ledger.lock().expect("ledger").attempted.push(ids.clone());
                match append(&*store, &stream, ExpectedRevision::Any, events).await {
                    Ok(outcome) => ledger.lock().expect("ledger").acknowledged.push((
                        ids,
                        stream,
                        outcome.first_revision.0,
                        outcome.first_position.0,
                    )),
                    Err(StoreError::Poisoned { .. }) => return,
                    Err(other) => panic!("seed {seed}: unexpected error {other}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injected_fault_and_crash_recovers_exactly_the_acknowledged_appends() {
    for seed in 1..=40u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = Arc::new(FaultyIo::new());
        let mut rng = Rng(seed);
        let config = small_segments();
        let store = Arc::new(
            EmbeddedStore::open_with_io(dir.path(), config.clone(), io.clone()).expect("open"),
        );
        let nth = 1 + rng.below(60);
        io.set_plan(match seed % 3 {
            0 => FaultPlan {
                fail_write: Some(nth),
                fail_sync: None,
            },
            1 => FaultPlan {
                fail_write: None,
                fail_sync: Some(nth),
            },
            _ => FaultPlan::default(),
        });
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        run_workload(Arc::clone(&store), Arc::clone(&ledger), seed).await;
        let image = io.crash_image(rng.below(4) as usize, rng.below(70_000) as usize);
        drop(store);
        if rng.below(2) == 0 {
            std::fs::remove_file(dir.path().join("index.redb")).expect("remove index");
        }
        let mode = if rng.below(2) == 0 {
            VerifyOnOpen::Full
        } else {
            VerifyOnOpen::Tail
        };
        let reopened = EmbeddedStore::open_with_io(
            dir.path(),
            runnel_embedded::EngineConfig {
                verify_on_open: mode,
                ..config
            },
            Arc::new(image),
        )
        .unwrap_or_else(|error| panic!("seed {seed}: reopen failed: {error}"));
        let events = read_everything(&reopened).await;
        check_recovered(&events, &ledger.lock().expect("ledger"), seed);
        // The recovered store takes writes again, continuing the numbering.
        let outcome = append(
            &reopened,
            "acct/after",
            ExpectedRevision::Any,
            vec![event(0)],
        )
        .await
        .unwrap_or_else(|error| panic!("seed {seed}: append after recovery: {error}"));
        assert_eq!(
            outcome.first_position,
            Position(events.len() as u64),
            "seed {seed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_poisons_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let io = Arc::new(FaultyIo::new());
    let store =
        EmbeddedStore::open_with_io(dir.path(), small_segments(), io.clone()).expect("open");
    append(&store, "acct/a", ExpectedRevision::Any, vec![event(1)])
        .await
        .expect("first append");
    io.set_plan(FaultPlan {
        fail_write: None,
        fail_sync: Some(1),
    });
    let failed = append(&store, "acct/a", ExpectedRevision::Any, vec![event(2)]).await;
    assert!(
        matches!(failed, Err(StoreError::Poisoned { .. })),
        "{failed:?}"
    );
    // The next sync would succeed, but the engine must not carry on after a failed one.
    let after = append(&store, "acct/a", ExpectedRevision::Any, vec![event(3)]).await;
    assert!(
        matches!(after, Err(StoreError::Poisoned { .. })),
        "{after:?}"
    );
    assert!(matches!(
        store.ready().await,
        Err(StoreError::Poisoned { .. })
    ));
    let message = after.expect_err("poisoned").to_string();
    assert!(message.contains("injected failure of sync"), "{message}");
}
