//! The indexer: the second stage of the write pipeline.
//!
//! The writer thread writes and syncs batch N+1 while this thread puts batch N into the index,
//! so a commit costs the longer of the two stages instead of their sum, and the second core does
//! the index work. Everything queued when the indexer wakes goes into one redb transaction, so
//! the fixed cost of a transaction (opening tables, copying and checksumming the pages it
//! touches) is shared by all the batches that queued up behind it.
//!
//! The writer acknowledges a batch's appends once the batch is synced, before it gets here: the
//! log is the truth, and recovery re-indexes whatever the index lacks after a crash. `$all`
//! reads need the index only to find where a batch starts, and the writer keeps that for the
//! batches not yet indexed (`Shared::batch_containing`); the other reads wait for the index to
//! hold what was synced when they began (`Shared::caught_up`). Either way an acknowledged
//! append is always read back.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use runnel_core::{Position, StoreError};
use tokio::sync::oneshot;

use crate::index::{IndexUpdate, StreamHead};
use crate::shared::Shared;

/// An index commit waits this long for a few more batches before it starts: each redb commit
/// copies every page it dirtied, so fewer, larger commits cost less per event. Appends do not
/// wait for the index; only stream reads right after an append may wait this much longer.
const GATHER_WAIT: Duration = Duration::from_micros(500);
/// Batches that make a commit worth starting without waiting.
const GATHER_BATCHES: usize = 4;

/// The most events one index transaction takes from the queue.
const MAX_EVENTS_PER_INDEX_COMMIT: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) enum IndexerCommand {
    /// The index entries of a synced batch.
    Index(IndexUpdate),
    /// Index what is queued, make the index durable, close the head, and stop.
    Close(oneshot::Sender<()>),
}

/// The indexer thread's body.
pub(crate) fn run(shared: Arc<Shared>, work: Receiver<IndexerCommand>) {
    let mut last_durable = Instant::now();
    let interval = Duration::from_millis(shared.config.index_durable_interval_ms);
    let mut index_failed: Option<String> = None;
    loop {
        let first = match work.recv() {
            Ok(IndexerCommand::Index(first)) => first,
            Ok(IndexerCommand::Close(done)) => {
                finish(&shared);
                let _ = done.send(());
                return;
            }
            Err(_) => return finish(&shared),
        };
        let mut events = first.events.len();
        let mut works = vec![first];
        let mut close = None;
        let gather_until = Instant::now() + GATHER_WAIT;
        while events < MAX_EVENTS_PER_INDEX_COMMIT {
            let next = if works.len() >= GATHER_BATCHES {
                work.try_recv().map_err(|error| match error {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                work.recv_timeout(gather_until.saturating_duration_since(Instant::now()))
            };
            match next {
                Ok(IndexerCommand::Index(more)) => {
                    events += more.events.len();
                    works.push(more);
                }
                Ok(IndexerCommand::Close(done)) => {
                    close = Some(done);
                    break;
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let durable = last_durable.elapsed() >= interval;
        let update = merge(works);
        // After an index failure the index would skip the batch that failed: index nothing
        // more. (A failed log write stops the writer, but what it synced before is indexed.)
        let applied = match &index_failed {
            Some(cause) => Err(StoreError::Poisoned {
                cause: cause.clone(),
            }),
            None => shared.index.apply(&update, durable),
        };
        match applied {
            Ok(()) => {
                if durable {
                    last_durable = Instant::now();
                }
                shared.publish_indexed(update.next_position);
            }
            // The batches are acknowledged and durable in the log, but unreadable until a
            // restart re-indexes them: stop writing, and fail the reads that wait for them.
            Err(error) => {
                shared.poison(&error);
                index_failed = Some(error.to_string());
            }
        }
        if let Some(done) = close {
            finish(&shared);
            let _ = done.send(());
            return;
        }
    }
}

/// One index update for several batches, in log order.
fn merge(updates: Vec<IndexUpdate>) -> IndexUpdate {
    let mut merged = IndexUpdate::default();
    let mut streams: HashMap<String, (StreamHead, bool)> = HashMap::new();
    for update in updates {
        merged.batches.extend(update.batches);
        merged.events.extend(update.events);
        merged.next_position = merged.next_position.max(update.next_position);
        for (key, head, created) in update.streams {
            match streams.entry(key) {
                // A later batch has the newer head; the stream was created by the first one.
                Entry::Occupied(mut entry) => entry.get_mut().0 = head,
                Entry::Vacant(entry) => {
                    entry.insert((head, created));
                }
            }
        }
    }
    merged.streams = streams
        .into_iter()
        .map(|(key, (head, created))| (key, head, created))
        .collect();
    merged
}

/// The durable commit at close, so the next start re-indexes nothing.
fn finish(shared: &Shared) {
    if shared.check_poison().is_err() {
        return;
    }
    let update = IndexUpdate {
        next_position: Position(shared.indexed_next.load(Ordering::Acquire)),
        ..IndexUpdate::default()
    };
    if let Err(error) = shared.index.apply(&update, true) {
        tracing::warn!(%error, "the final durable index commit failed; the next start re-indexes the log tail");
    }
}
