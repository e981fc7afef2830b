//! The real thing: a child process appends concurrently and reports every acknowledgement; the
//! test kills it with SIGKILL at random moments, reopens the directory, and checks that every
//! acknowledged event is there exactly once, at its revision and position, with no gaps.
//!
//! The child is this same test, re-executed with an environment variable naming its data
//! directory: one test, two roles, no extra binary.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_core::{AllFilter, ExpectedRevision, Position, Store};
use runnel_embedded::{EmbeddedStore, EngineConfig};
use uuid::Uuid;

use crate::common::{append, event};

const CHILD_DIR_ENV: &str = "RUNNEL_CRASH_CHILD_DIR";
const TEST_NAME: &str = "crash::kill_9_during_concurrent_appends_loses_nothing_acknowledged";
const ROUNDS: u64 = 24;
const WRITERS: u64 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    stream: String,
    revision: u64,
    position: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_concurrent_appends_loses_nothing_acknowledged() {
    if let Ok(dir) = std::env::var(CHILD_DIR_ENV) {
        return child(Path::new(&dir)).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged: HashMap<Uuid, Ack> = HashMap::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..ROUNDS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let lifetime = Duration::from_millis(200 + seed % 500);
        let acks = run_child_until_killed(dir.path(), lifetime);
        for (id, ack) in acks {
            assert!(
                acknowledged.insert(id, ack).is_none(),
                "id {id} acknowledged twice"
            );
        }
        check_directory(dir.path(), &acknowledged, round).await;
    }
    assert!(
        acknowledged.len() as u64 > ROUNDS,
        "the children acknowledged only {} appends",
        acknowledged.len()
    );
}

/// Small segments, so kills also land during segment rolls.
fn config() -> EngineConfig {
    EngineConfig {
        segment_bytes: 1024 * 1024,
        ..crate::common::small_segments()
    }
}

/// Spawns the child, lets it run for `lifetime`, SIGKILLs it, and returns what it acknowledged.
fn run_child_until_killed(dir: &Path, lifetime: Duration) -> Vec<(Uuid, Ack)> {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut fields = line.split_whitespace();
            if fields.next() != Some("ACK") {
                continue;
            }
            let (Some(id), Some(stream), Some(revision), Some(position)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue; // A line cut by the kill: its append was acknowledged to no one.
            };
            let (Ok(id), Ok(revision), Ok(position)) =
                (id.parse(), revision.parse(), position.parse())
            else {
                continue;
            };
            acks.push((
                id,
                Ack {
                    stream: stream.to_owned(),
                    revision,
                    position,
                },
            ));
        }
        acks
    });
    let started = Instant::now();
    while started.elapsed() < lifetime {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child exited by itself: {status}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader thread")
}

async fn check_directory(dir: &Path, acknowledged: &HashMap<Uuid, Ack>, round: u64) {
    let store = EmbeddedStore::open(dir, config())
        .unwrap_or_else(|error| panic!("round {round}: reopen failed: {error}"));
    let mut from = Position(0);
    let mut count = 0u64;
    let mut found = HashMap::new();
    let mut revisions: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let slice = store
            .read_all(from, &AllFilter::default(), 1000)
            .await
            .expect("read $all");
        for event in slice.events {
            assert_eq!(
                event.position,
                Position(count),
                "round {round}: position gap"
            );
            count += 1;
            let next = revisions.entry(event.stream.to_string()).or_insert(0);
            assert_eq!(
                event.revision.0, *next,
                "round {round}: revision gap in {}",
                event.stream
            );
            *next += 1;
            assert!(
                found.insert(event.id, event).is_none(),
                "round {round}: duplicate id"
            );
        }
        match slice.next {
            Some(next) => from = next,
            None => break,
        }
    }
    for (id, ack) in acknowledged {
        let event = found
            .get(id)
            .unwrap_or_else(|| panic!("round {round}: acknowledged event {id} lost"));
        assert_eq!(event.stream.to_string(), ack.stream, "round {round}");
        assert_eq!(event.revision.0, ack.revision, "round {round}");
        assert_eq!(event.position.0, ack.position, "round {round}");
    }
    store.close().await.expect("close");
}

/// The child: appends from many tasks until killed, printing each acknowledgement.
async fn child(dir: &Path) {
    let store = Arc::new(EmbeddedStore::open(dir, config()).expect("child open"));
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let stream = format!("acct/a-{}", (writer * 7 + n) % 23);
                let proposed = event(n);
                let id = proposed.id.expect("client id");
                let outcome = append(&*store, &stream, ExpectedRevision::Any, vec![proposed])
                    .await
                    .expect("child append");
                // One write per line: a kill can cut a line, never mix two.
                let line = format!(
                    "ACK {id} {stream} {} {}\n",
                    outcome.first_revision, outcome.first_position
                );
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(line.as_bytes());
                let _ = stdout.flush();
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}
