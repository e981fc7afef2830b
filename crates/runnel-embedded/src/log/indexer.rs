//! The indexer: the second stage of the write pipeline.
//!
//! The writer thread writes and syncs batch N+1 while this thread puts batch N into the index,
//! so a commit costs the longer of the two stages instead of their sum, and the second core does
//! the index work. Everything queued when the indexer wakes goes into one redb transaction, so
//! the fixed cost of a transaction (opening tables, copying and checksumming the pages it
//! touches) is shared by all the batches that queued up behind it.
//!
//! Appends are acknowledged here, after their batch is both synced (the writer did that before
//! handing it over) and indexed, and only then is the new head published: a reader that sees
//! the head, or an acknowledgement, finds the events in the index.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use runnel_core::{AppendOutcome, Position, StoreError};
use tokio::sync::{oneshot, watch};

use crate::index::{IndexUpdate, StreamHead};
use crate::log::writer::AppendReply;
use crate::shared::Shared;

/// The most events one index transaction takes from the queue.
const MAX_EVENTS_PER_INDEX_COMMIT: usize = 64 * 1024;

/// An append's answer, held until the batches it rests on are indexed.
pub(crate) type Answer = (AppendReply, Result<AppendOutcome, StoreError>);

/// A synced batch, or answers that wait on earlier batches, on their way to being acknowledged.
#[derive(Debug)]
pub(crate) struct IndexWork {
    pub(crate) update: IndexUpdate,
    pub(crate) replies: Vec<Answer>,
}

#[derive(Debug)]
pub(crate) enum IndexerCommand {
    Index(IndexWork),
    /// Index what is queued, make the index durable, close the head, and stop.
    Close(oneshot::Sender<()>),
}

/// The indexer thread's body.
pub(crate) fn run(
    shared: Arc<Shared>,
    head: watch::Sender<Option<Position>>,
    work: Receiver<IndexerCommand>,
) {
    let mut last_durable = Instant::now();
    let interval = Duration::from_millis(shared.config.index_durable_interval_ms);
    loop {
        let first = match work.recv() {
            Ok(IndexerCommand::Index(first)) => first,
            Ok(IndexerCommand::Close(done)) => {
                finish(&shared);
                drop(head);
                let _ = done.send(());
                return;
            }
            Err(_) => return finish(&shared),
        };
        let mut events = first.update.events.len();
        let mut works = vec![first];
        let mut close = None;
        while events < MAX_EVENTS_PER_INDEX_COMMIT {
            match work.try_recv() {
                Ok(IndexerCommand::Index(more)) => {
                    events += more.update.events.len();
                    works.push(more);
                }
                Ok(IndexerCommand::Close(done)) => {
                    close = Some(done);
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let durable = last_durable.elapsed() >= interval;
        let (update, replies) = merge(works);
        let indexed = if update.batches.is_empty() {
            Ok(())
        } else {
            shared.index.apply(&update, durable)
        };
        match indexed {
            Ok(()) => {
                if durable {
                    last_durable = Instant::now();
                }
                if !update.batches.is_empty() {
                    shared
                        .indexed_next
                        .store(update.next_position.0, Ordering::Release);
                    head.send_replace(Some(Position(update.next_position.0 - 1)));
                }
                for (reply, outcome) in replies {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                // The batches are durable in the log, but unreadable until a restart
                // re-indexes them: stop, and tell the appenders their outcome is unknown.
                shared.poison(&error);
                for (reply, outcome) in replies {
                    let _ = reply.send(outcome.and(Err(StoreError::Poisoned {
                        cause: error.to_string(),
                    })));
                }
            }
        }
        if let Some(done) = close {
            finish(&shared);
            drop(head);
            let _ = done.send(());
            return;
        }
    }
}

/// One index update for several batches, in log order.
fn merge(works: Vec<IndexWork>) -> (IndexUpdate, Vec<Answer>) {
    let mut merged = IndexUpdate::default();
    let mut streams: HashMap<String, (StreamHead, bool)> = HashMap::new();
    let mut replies = Vec::new();
    for work in works {
        let IndexWork {
            update,
            replies: answers,
        } = work;
        replies.extend(answers);
        if update.batches.is_empty() {
            continue;
        }
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
    (merged, replies)
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
