//! The writer: one task per node turns queued appends into group commits, one transaction each.
//!
//! When every append of a batch expects "any" revision (the common case), no check needs a
//! stream's head, and a group commit is one pipelined round trip: `BEGIN`, take the log head's
//! row lock by moving the head past the batch (held to COMMIT), then one statement that moves
//! each stream's head by its number of events and inserts the events at the revisions and
//! positions that gives, `NOTIFY` the new head, and `COMMIT`. The database numbers the events
//! from the heads as committed, which cannot move while the lock is held.
//!
//! Otherwise a group commit is two round trips, and only the second holds the lock:
//!
//! 1. Read, outside any transaction, the heads of the streams involved and where the
//!    client-chosen ids already live, then check every append against that committed state
//!    ([`Batch`]), numbering the accepted events from [`UNPLACED`].
//! 2. `BEGIN`, take the head's lock, insert the events at the positions that gives, upsert the
//!    stream heads and type counts, `NOTIFY`, and `COMMIT`, all pipelined.
//!
//! Either way the lock is held while PostgreSQL executes the writes and flushes the commit,
//! never across a round trip to a node.
//!
//! The plan of step 1 is stale if another commit wrote to one of its streams (or ids) after
//! the read. Stream heads only grow, so such a plan writes a revision or an id that a committed
//! event already has; likewise a batch of "any" appends that carries an id already stored (a
//! retry, or a duplicate). A unique constraint refuses it, the transaction rolls back, and the
//! batch is planned again the strict way, with the reads in the locked transaction (`BEGIN`,
//! the lock with `FOR UPDATE`, the reads; then the writes and `COMMIT`), where nothing can
//! change under the plan and a retry is answered with its original outcome.
//!
//! Only after COMMIT returns are the appends answered. A connection lost during COMMIT leaves
//! the outcome unknown: those appends get [`StoreError::Unavailable`], and a retry with the same
//! event ids is answered from what is in the database (the original outcome if it committed).
//! If the database rejects the batch for a reason other than an outage (a value it will not
//! store), the appends are retried one per transaction so that one bad append cannot fail the
//! others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use runnel_core::{
    AppendOutcome, AppendRequest, ExpectedRevision, Position, Revision, StoreError, StreamName,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use crate::batch::{Batch, IdSite, UNPLACED};
use crate::connect::connect;
use crate::error::{describe, is_transient, store_error, timed_out};
use crate::head::publish;
use crate::metrics::WriterStats;
use crate::rows::{column, stream_name, to_u64};

pub(crate) type AppendReply = oneshot::Sender<Result<AppendOutcome, StoreError>>;

#[derive(Debug)]
pub(crate) struct AppendJob {
    pub(crate) request: AppendRequest,
    pub(crate) reply: AppendReply,
}

#[derive(Debug)]
pub(crate) enum WriterCommand {
    Append(AppendJob),
    /// Finish what is queued before this, then stop.
    Close(oneshot::Sender<()>),
}

/// The channel NOTIFY uses; the payload is `<schema> <last position>`.
pub(crate) const HEAD_CHANNEL: &str = "runnel_head";

const LOCK_HEAD: &str = include_str!("sql/lock_head.sql");
const STREAM_HEADS: &str = include_str!("sql/stream_heads.sql");
const EVENTS_BY_ID: &str = include_str!("sql/events_by_id.sql");
const INSERT_EVENTS: &str = include_str!("sql/insert_events.sql");
const UPSERT_STREAMS: &str = include_str!("sql/upsert_streams.sql");
const COUNT_NEW_STREAMS: &str = include_str!("sql/count_new_streams.sql");
const ADVANCE_HEAD: &str = include_str!("sql/advance_head.sql");
const NOTIFY_HEAD: &str = include_str!("sql/notify_head.sql");
const TAKE_HEAD: &str = include_str!("sql/take_head.sql");
const INSERT_EVENTS_AT_HEAD: &str = include_str!("sql/insert_events_at_head.sql");
const UPSERT_STREAMS_AT_HEAD: &str = include_str!("sql/upsert_streams_at_head.sql");
const NOTIFY_AT_HEAD: &str = include_str!("sql/notify_at_head.sql");
const APPEND_ANY_AT_HEAD: &str = include_str!("sql/append_any_at_head.sql");

/// The writer's statements, prepared once per connection.
#[derive(Debug)]
struct Statements {
    lock_head: Statement,
    stream_heads: Statement,
    events_by_id: Statement,
    insert_events: Statement,
    upsert_streams: Statement,
    count_new_streams: Statement,
    advance_head: Statement,
    notify_head: Statement,
    take_head: Statement,
    insert_events_at_head: Statement,
    upsert_streams_at_head: Statement,
    notify_at_head: Statement,
    append_any_at_head: Statement,
}

#[derive(Debug)]
struct WriterConnection {
    client: Client,
    statements: Statements,
}

/// What the writer needs to know, fixed at open.
#[derive(Debug, Clone)]
pub(crate) struct WriterSettings {
    pub(crate) endpoint: crate::connect::Endpoint,
    pub(crate) schema: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) answer_timeout: Duration,
    pub(crate) reconnect_backoff: Duration,
    pub(crate) max_batch_events: usize,
    pub(crate) max_batch_bytes: usize,
}

#[derive(Debug)]
pub(crate) struct Writer {
    settings: WriterSettings,
    head: Arc<watch::Sender<Option<Position>>>,
    stats: Arc<WriterStats>,
    connection: Option<WriterConnection>,
    /// After a failed connection attempt: until when appends fail at once, and why.
    unreachable: Option<(Instant, String)>,
}

/// The longest a batch waits for the appends of clients answered by the previous commit.
const MAX_LINGER: Duration = Duration::from_millis(2);

/// After a commit: how many appends the next batch waits for, and until when.
#[derive(Debug, Clone, Copy)]
struct Linger {
    /// Those the commit answered, whose clients may send their next ones now, and those
    /// already queued.
    appends: usize,
    until: Instant,
}

impl Linger {
    /// `None` when the commit answered at most one append: nothing to gather. The wait is at
    /// most half the commit's own time (and [`MAX_LINGER`]), so it adds less to an append's
    /// latency than the commit it saves.
    fn after(answered: usize, commit_took: Duration, queued: usize) -> Option<Self> {
        (answered > 1).then(|| Self {
            appends: answered + queued,
            until: Instant::now() + (commit_took / 2).min(MAX_LINGER),
        })
    }
}

/// How a group commit planned before the lock ended.
enum Planned {
    Settled(Attempt),
    /// Another commit wrote to the batch's streams or ids after the plan's read; nothing was
    /// written: plan again under the lock.
    Stale,
}

/// How one attempt at a group commit ended.
enum Attempt {
    /// Committed (or nothing to write): one answer per append.
    Done(Vec<Result<AppendOutcome, StoreError>>),
    /// Nothing was written (or, for an unknown commit outcome, maybe everything): every append
    /// gets this error.
    Failed(StoreError),
    /// The database refused the batch's data and rolled it back: retry one append at a time.
    Refused(StoreError),
}

impl Writer {
    pub(crate) fn new(
        settings: WriterSettings,
        head: Arc<watch::Sender<Option<Position>>>,
        stats: Arc<WriterStats>,
    ) -> Self {
        Self {
            settings,
            head,
            stats,
            connection: None,
            unreachable: None,
        }
    }

    /// The writer task's body: takes everything queued, up to the batch bounds, commits it as
    /// one transaction, answers, and repeats until closed.
    ///
    /// Every commit costs one WAL flush, and commits to the database are serialised (the head's
    /// lock is held through the flush), so what a commit carries is what throughput is made
    /// of. Clients that wait for each answer before appending again would otherwise split into
    /// two groups that take turns: those answered by a commit come back while the next commit
    /// (of the others) runs. So after a commit that answered several appends, the next batch
    /// waits briefly ([`Linger`]) for as many appends as were answered plus those already
    /// queued, then commits them together. A lone client never waits: one answered append is
    /// already matched by the one it sends next.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<WriterCommand>) {
        let mut carried: Option<AppendJob> = None;
        let mut linger: Option<Linger> = None;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match commands.recv().await {
                    Some(WriterCommand::Append(job)) => job,
                    Some(WriterCommand::Close(done)) => return Self::close(commands, done),
                    None => return,
                },
            };
            let mut events = first.request.events.len();
            let mut bytes = request_bytes(&first.request);
            let mut jobs = vec![first];
            let mut close = None;
            while events < self.settings.max_batch_events && bytes < self.settings.max_batch_bytes {
                let command = match commands.try_recv() {
                    Ok(command) => command,
                    Err(_) => {
                        let Some(waiting) = linger.as_ref().filter(|l| jobs.len() < l.appends)
                        else {
                            break;
                        };
                        match tokio::time::timeout_at(waiting.until.into(), commands.recv()).await {
                            Ok(Some(command)) => command,
                            Ok(None) | Err(_) => break,
                        }
                    }
                };
                match command {
                    WriterCommand::Append(job) => {
                        let more_events = job.request.events.len();
                        let more_bytes = request_bytes(&job.request);
                        if events + more_events > self.settings.max_batch_events
                            || bytes + more_bytes > self.settings.max_batch_bytes
                        {
                            carried = Some(job);
                            break;
                        }
                        events += more_events;
                        bytes += more_bytes;
                        jobs.push(job);
                    }
                    WriterCommand::Close(done) => {
                        close = Some(done);
                        break;
                    }
                }
            }
            let appends = jobs.len();
            let started = Instant::now();
            self.commit(jobs).await;
            linger = Linger::after(appends, started.elapsed(), commands.len());
            if let Some(done) = close {
                if let Some(job) = carried.take() {
                    self.commit(vec![job]).await;
                }
                return Self::close(commands, done);
            }
        }
    }

    /// Refuses what was queued after the close, and reports that the writer is done.
    fn close(mut commands: mpsc::Receiver<WriterCommand>, done: oneshot::Sender<()>) {
        commands.close();
        while let Ok(command) = commands.try_recv() {
            match command {
                WriterCommand::Append(job) => {
                    let _ = job.reply.send(Err(StoreError::ShuttingDown));
                }
                WriterCommand::Close(other) => {
                    let _ = other.send(());
                }
            }
        }
        let _ = done.send(());
    }

    /// Commits `jobs` as one group and answers each of them.
    async fn commit(&mut self, jobs: Vec<AppendJob>) {
        let (requests, replies): (Vec<AppendRequest>, Vec<AppendReply>) =
            jobs.into_iter().map(|job| (job.request, job.reply)).unzip();
        match self.attempt(&requests).await {
            Attempt::Done(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Attempt::Failed(error) => {
                for reply in replies {
                    let _ = reply.send(Err(copy_error(&error)));
                }
            }
            Attempt::Refused(error) if requests.len() == 1 => {
                for reply in replies {
                    let _ = reply.send(Err(copy_error(&error)));
                }
            }
            Attempt::Refused(error) => {
                tracing::warn!(%error, appends = requests.len(), "PostgreSQL refused a group commit; retrying its appends one by one");
                for (request, reply) in requests.iter().zip(replies) {
                    let outcome = match self.attempt(std::slice::from_ref(request)).await {
                        Attempt::Done(mut outcomes) => outcomes.pop().unwrap_or_else(|| {
                            Err(StoreError::Index {
                                action: "committing an append".to_owned(),
                                cause: "the commit returned no outcome".to_owned(),
                            })
                        }),
                        Attempt::Failed(error) | Attempt::Refused(error) => Err(error),
                    };
                    let _ = reply.send(outcome);
                }
            }
        }
    }

    /// The writer's connection, connecting (with prepared statements) if it has none. After a
    /// failed attempt, fails at once for `reconnect_backoff` so that a down database costs the
    /// queued appends one connect timeout, not one each.
    async fn ensure_connection(&mut self) -> Result<(), StoreError> {
        if self
            .connection
            .as_ref()
            .is_some_and(|connection| connection.client.is_closed())
        {
            self.connection = None;
        }
        if self.connection.is_none() {
            if let Some((until, cause)) = &self.unreachable
                && Instant::now() < *until
            {
                return Err(StoreError::Unavailable {
                    cause: cause.clone(),
                });
            }
            match self.open_connection().await {
                Ok(connection) => {
                    if self.unreachable.take().is_some() {
                        tracing::info!("the writer reconnected to PostgreSQL");
                    }
                    self.connection = Some(connection);
                }
                Err(error) => {
                    if self.unreachable.is_none() {
                        tracing::warn!(%error, "the writer cannot reach PostgreSQL; appends fail until it can");
                    }
                    self.unreachable = Some((
                        Instant::now() + self.settings.reconnect_backoff,
                        error.to_string(),
                    ));
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    async fn open_connection(&self) -> Result<WriterConnection, StoreError> {
        let client = connect(&self.settings.endpoint, self.settings.connect_timeout).await?;
        let preparing = async {
            let under_lock = futures::try_join!(
                client.prepare(LOCK_HEAD),
                client.prepare(STREAM_HEADS),
                client.prepare(EVENTS_BY_ID),
                client.prepare(INSERT_EVENTS),
                client.prepare(UPSERT_STREAMS),
                client.prepare(COUNT_NEW_STREAMS),
                client.prepare(ADVANCE_HEAD),
                client.prepare(NOTIFY_HEAD),
            )?;
            let at_head = futures::try_join!(
                client.prepare(TAKE_HEAD),
                client.prepare(INSERT_EVENTS_AT_HEAD),
                client.prepare(UPSERT_STREAMS_AT_HEAD),
                client.prepare(NOTIFY_AT_HEAD),
                client.prepare(APPEND_ANY_AT_HEAD),
            )?;
            Ok::<_, tokio_postgres::Error>((under_lock, at_head))
        };
        let prepared = tokio::time::timeout(self.settings.answer_timeout, preparing)
            .await
            .map_err(|_| {
                timed_out(
                    "preparing the writer's statements",
                    self.settings.answer_timeout,
                )
            })?
            .map_err(|error| store_error("preparing the writer's statements", &error))?;
        let (
            (
                lock_head,
                stream_heads,
                events_by_id,
                insert_events,
                upsert_streams,
                count_new_streams,
                advance_head,
                notify_head,
            ),
            (
                take_head,
                insert_events_at_head,
                upsert_streams_at_head,
                notify_at_head,
                append_any_at_head,
            ),
        ) = prepared;
        Ok(WriterConnection {
            client,
            statements: Statements {
                lock_head,
                stream_heads,
                events_by_id,
                insert_events,
                upsert_streams,
                count_new_streams,
                advance_head,
                notify_head,
                take_head,
                insert_events_at_head,
                upsert_streams_at_head,
                notify_at_head,
                append_any_at_head,
            },
        })
    }

    /// One try at committing `requests` together: planned before the lock, and again under
    /// it when another commit got in between.
    async fn attempt(&mut self, requests: &[AppendRequest]) -> Attempt {
        let planned = if requests
            .iter()
            .all(|request| request.expected == ExpectedRevision::Any)
        {
            self.attempt_any(requests).await
        } else {
            self.attempt_before_lock(requests).await
        };
        match planned {
            Planned::Settled(attempt) => attempt,
            Planned::Stale => {
                tracing::debug!(
                    appends = requests.len(),
                    "a batch met a commit after its read; planning it again under the lock"
                );
                self.attempt_under_lock(requests).await
            }
        }
    }

    /// A batch whose appends all take their streams as they are (expected revision "any"):
    /// no check needs a stream's head, so nothing is read first. One pipelined round trip
    /// takes the head's lock and numbers each stream's events from its committed head there.
    /// A client-chosen id that is already stored (a retry, or a duplicate) makes the unique
    /// constraint refuse the batch: [`Planned::Stale`] then answers it under the lock.
    async fn attempt_any(&mut self, requests: &[AppendRequest]) -> Planned {
        if let Err(error) = self.ensure_connection().await {
            return Planned::Settled(Attempt::Failed(error));
        }
        let Some(connection) = self.connection.as_ref() else {
            return Planned::Settled(Attempt::Failed(StoreError::Unavailable {
                cause: "no connection to PostgreSQL".to_owned(),
            }));
        };
        // Every stream is planned as if new: its revisions in the batch are then offsets from
        // the head the database has, which the write adds.
        let mut batch = Batch::new(UNPLACED, HashMap::new(), HashMap::new());
        let outcomes: Vec<_> = requests
            .iter()
            .map(|request| batch.admit(request))
            .collect();
        if batch.last_position().is_none() {
            return Planned::Settled(Attempt::Done(outcomes));
        }
        let started = Instant::now();
        let written = tokio::time::timeout(
            self.settings.answer_timeout,
            write_any_at_head(connection, &self.settings.schema, &batch),
        )
        .await;
        let (first, first_revisions) = match written {
            Ok(Ok(placed)) => placed,
            Ok(Err(WriteFailure::Stale)) => return Planned::Stale,
            Ok(Err(failure)) => return Planned::Settled(self.write_failed(failure)),
            Err(_) => return Planned::Settled(self.write_timed_out()),
        };
        let mut placed = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            placed.push(match outcome {
                Ok(outcome) => match first_revisions.get(&outcome.stream) {
                    Some(base) => {
                        let outcome = Batch::place(outcome, first);
                        Ok(AppendOutcome {
                            first_revision: Revision(base.0 + outcome.first_revision.0),
                            last_revision: Revision(base.0 + outcome.last_revision.0),
                            ..outcome
                        })
                    }
                    None => Err(StoreError::Index {
                        action: "committing an append".to_owned(),
                        cause: format!(
                            "the commit returned no revision for stream {}",
                            outcome.stream
                        ),
                    }),
                },
                Err(error) => Err(error),
            });
        }
        self.stats
            .record_commit(batch.rows.len() as u64, batch.bytes, started.elapsed());
        publish(&self.head, Position(first.0 + batch.rows.len() as u64 - 1));
        Planned::Settled(Attempt::Done(placed))
    }

    /// Plans the batch from committed state read without any lock, then writes it and takes
    /// the head's lock in one pipelined round trip, so the lock is held only while PostgreSQL
    /// executes the writes and flushes the commit, never across a round trip to this node.
    ///
    /// The plan holds if nothing was committed to its streams or ids since the read. Stream
    /// heads only grow, so a stale plan writes a revision (or an id) that a committed event
    /// already has, the unique constraints refuse it, and the transaction rolls back: then
    /// [`Planned::Stale`] sends the batch through the locked path. A check that fails on the
    /// read state fails correctly: that state was committed while the append waited.
    async fn attempt_before_lock(&mut self, requests: &[AppendRequest]) -> Planned {
        let answer_timeout = self.settings.answer_timeout;
        if let Err(error) = self.ensure_connection().await {
            return Planned::Settled(Attempt::Failed(error));
        }
        let Some(connection) = self.connection.as_ref() else {
            return Planned::Settled(Attempt::Failed(StoreError::Unavailable {
                cause: "no connection to PostgreSQL".to_owned(),
            }));
        };
        let read = tokio::time::timeout(answer_timeout, read_committed(connection, requests)).await;
        let (heads, found) = match read {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) => {
                return Planned::Settled(Attempt::Failed(store_error(
                    "reading stream heads",
                    &error,
                )));
            }
            Err(_) => {
                self.connection = None;
                return Planned::Settled(Attempt::Failed(timed_out(
                    "reading stream heads",
                    answer_timeout,
                )));
            }
        };
        let (heads, ids) =
            match decode_heads(&heads).and_then(|heads| Ok((heads, decode_ids(&found)?))) {
                Ok(state) => state,
                Err(error) => return Planned::Settled(Attempt::Failed(error)),
            };
        let mut batch = Batch::new(UNPLACED, heads, ids);
        let outcomes: Vec<_> = requests
            .iter()
            .map(|request| batch.admit(request))
            .collect();
        if batch.last_position().is_none() {
            // Nothing to write: the answers (rejections, retries) rest on committed state.
            return Planned::Settled(Attempt::Done(outcomes));
        }
        let started = Instant::now();
        let written = tokio::time::timeout(
            answer_timeout,
            write_at_head(connection, &self.settings.schema, &batch),
        )
        .await;
        let first = match written {
            Ok(Ok(first)) => first,
            Ok(Err(WriteFailure::Stale)) => return Planned::Stale,
            Ok(Err(failure)) => return Planned::Settled(self.write_failed(failure)),
            Err(_) => return Planned::Settled(self.write_timed_out()),
        };
        self.stats
            .record_commit(batch.rows.len() as u64, batch.bytes, started.elapsed());
        let outcomes: Vec<_> = outcomes
            .into_iter()
            .map(|outcome| outcome.map(|outcome| Batch::place(outcome, first)))
            .collect();
        if let Some(last) = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok())
            .map(|outcome| outcome.last_position)
            .max()
        {
            publish(&self.head, last);
        }
        Planned::Settled(Attempt::Done(outcomes))
    }

    /// One try at committing `requests` together with the head locked first: the reads the
    /// checks need run under the lock, so nothing can change under the plan.
    async fn attempt_under_lock(&mut self, requests: &[AppendRequest]) -> Attempt {
        let answer_timeout = self.settings.answer_timeout;
        if let Err(error) = self.ensure_connection().await {
            return Attempt::Failed(error);
        }
        let Some(connection) = self.connection.as_ref() else {
            return Attempt::Failed(StoreError::Unavailable {
                cause: "no connection to PostgreSQL".to_owned(),
            });
        };
        let read = tokio::time::timeout(answer_timeout, lock_and_read(connection, requests)).await;
        let rows = match read {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) => {
                let failed = store_error("locking the log head", &error);
                self.abandon_transaction(!is_transient(&error)).await;
                return Attempt::Failed(failed);
            }
            Err(_) => {
                self.connection = None;
                return Attempt::Failed(timed_out("locking the log head", answer_timeout));
            }
        };
        let state = match rows.decode() {
            Ok(state) => state,
            Err(error) => {
                self.abandon_transaction(true).await;
                return Attempt::Failed(error);
            }
        };
        let mut batch = Batch::new(state.next_position, state.heads, state.ids);
        let outcomes: Vec<_> = requests
            .iter()
            .map(|request| batch.admit(request))
            .collect();
        let Some(last_position) = batch.last_position() else {
            // Nothing to write: the answers (rejections, retries) rest on committed state.
            self.abandon_transaction(true).await;
            return Attempt::Done(outcomes);
        };
        let started = Instant::now();
        let written = tokio::time::timeout(
            answer_timeout,
            write_and_commit(connection, &self.settings.schema, &batch, state.recorded_at),
        )
        .await;
        match written {
            Ok(Ok(())) => {
                self.stats
                    .record_commit(batch.rows.len() as u64, batch.bytes, started.elapsed());
                publish(&self.head, last_position);
                Attempt::Done(outcomes)
            }
            Ok(Err(failure)) => self.write_failed(failure),
            Err(_) => self.write_timed_out(),
        }
    }

    /// What a failed second round trip means for the batch's appends.
    fn write_failed(&mut self, failure: WriteFailure) -> Attempt {
        match failure {
            // The transaction ended in a rollback, the connection is fine.
            WriteFailure::Refused(error) => Attempt::Refused(StoreError::Index {
                action: "writing a group commit to PostgreSQL".to_owned(),
                cause: describe(&error),
            }),
            WriteFailure::Stale => Attempt::Refused(StoreError::Index {
                action: "writing a group commit to PostgreSQL".to_owned(),
                cause: "the batch conflicted with a committed event".to_owned(),
            }),
            WriteFailure::RolledBack(error) => {
                Attempt::Failed(store_error("writing a group commit", &error))
            }
            WriteFailure::Unknown(error) => {
                self.connection = None;
                Attempt::Failed(StoreError::Unavailable {
                    cause: format!(
                        "PostgreSQL failed during a commit, whose outcome is unknown \
                         (retry with the same event ids): {}",
                        describe(&error)
                    ),
                })
            }
        }
    }

    /// A second round trip that got no answer in time: its commit may or may not have happened.
    fn write_timed_out(&mut self) -> Attempt {
        self.connection = None;
        Attempt::Failed(StoreError::Unavailable {
            cause: format!(
                "PostgreSQL did not answer a commit within {:?}; its outcome is unknown \
                 (retry with the same event ids)",
                self.settings.answer_timeout
            ),
        })
    }

    /// Ends a transaction that will not commit. When the connection may be unhealthy, or the
    /// rollback fails, the connection is dropped instead (the server then rolls back).
    async fn abandon_transaction(&mut self, connection_healthy: bool) {
        let rolled_back = match (&self.connection, connection_healthy) {
            (Some(connection), true) => matches!(
                tokio::time::timeout(
                    self.settings.answer_timeout,
                    connection.client.batch_execute("ROLLBACK"),
                )
                .await,
                Ok(Ok(()))
            ),
            _ => false,
        };
        if !rolled_back {
            self.connection = None;
        }
    }
}

/// What the first round trip of a group commit read under the lock.
struct LockedState {
    next_position: Position,
    recorded_at: DateTime<Utc>,
    heads: HashMap<StreamName, Revision>,
    ids: HashMap<Uuid, IdSite>,
}

/// `BEGIN`, the head lock, and the reads the checks need, pipelined in one round trip.
async fn lock_and_read(
    connection: &WriterConnection,
    requests: &[AppendRequest],
) -> Result<LockedRows, tokio_postgres::Error> {
    let client = &connection.client;
    let statements = &connection.statements;
    let (stream_types, stream_ids, client_ids) = read_params(requests);
    let ids_wanted = !client_ids.is_empty();
    let heads_params: [&(dyn ToSql + Sync); 2] = [&stream_types, &stream_ids];
    let ids_params: [&(dyn ToSql + Sync); 1] = [&client_ids];
    let (begin, lock, heads, found) = futures::join!(
        client.batch_execute("BEGIN"),
        client.query_one(&statements.lock_head, &[]),
        client.query(&statements.stream_heads, &heads_params),
        async {
            if ids_wanted {
                client.query(&statements.events_by_id, &ids_params).await
            } else {
                Ok(Vec::new())
            }
        },
    );
    begin?;
    let lock = lock?;
    let (heads, found) = (heads?, found?);
    Ok(LockedRows { lock, heads, found })
}

/// The rows of the first round trip, not decoded yet.
struct LockedRows {
    lock: tokio_postgres::Row,
    heads: Vec<tokio_postgres::Row>,
    found: Vec<tokio_postgres::Row>,
}

impl LockedRows {
    /// Decodes what was read. A row that does not decode fails the batch: checking appends
    /// against a state with a stream or an id missing could write wrong revisions.
    fn decode(self) -> Result<LockedState, StoreError> {
        let next_position: i64 = column(&self.lock, 0)?;
        let mut state = LockedState {
            next_position: Position(to_u64(next_position, "position")?),
            recorded_at: column(&self.lock, 1)?,
            heads: HashMap::new(),
            ids: HashMap::new(),
        };
        state.heads = decode_heads(&self.heads)?;
        state.ids = decode_ids(&self.found)?;
        Ok(state)
    }
}

/// The rows of `stream_heads.sql`: each stream's last revision.
fn decode_heads(rows: &[tokio_postgres::Row]) -> Result<HashMap<StreamName, Revision>, StoreError> {
    let mut heads = HashMap::with_capacity(rows.len());
    for row in rows {
        let stream = stream_name(column(row, 0)?, column(row, 1)?)?;
        let last = Revision(to_u64(column(row, 2)?, "revision")?);
        heads.insert(stream, last);
    }
    Ok(heads)
}

/// The rows of `events_by_id.sql`: where each client-chosen id already lives.
fn decode_ids(rows: &[tokio_postgres::Row]) -> Result<HashMap<Uuid, IdSite>, StoreError> {
    let mut ids = HashMap::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = column(row, 0)?;
        let site = IdSite {
            stream: stream_name(column(row, 1)?, column(row, 2)?)?,
            revision: Revision(to_u64(column(row, 3)?, "revision")?),
            position: Position(to_u64(column(row, 4)?, "position")?),
        };
        ids.insert(id, site);
    }
    Ok(ids)
}

/// The streams and the client-chosen ids of `requests`, as the reads take them.
fn read_params(requests: &[AppendRequest]) -> (Vec<&str>, Vec<&str>, Vec<Uuid>) {
    let mut stream_types = Vec::new();
    let mut stream_ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for request in requests {
        if seen.insert(&request.stream) {
            stream_types.push(request.stream.stream_type().as_str());
            stream_ids.push(request.stream.stream_id().as_str());
        }
    }
    let client_ids = requests
        .iter()
        .flat_map(|request| request.events.iter().filter_map(|event| event.id))
        .collect();
    (stream_types, stream_ids, client_ids)
}

/// The heads of the streams involved and where the client-chosen ids already live, as
/// committed, outside any transaction, pipelined in one round trip.
async fn read_committed(
    connection: &WriterConnection,
    requests: &[AppendRequest],
) -> Result<(Vec<tokio_postgres::Row>, Vec<tokio_postgres::Row>), tokio_postgres::Error> {
    let client = &connection.client;
    let statements = &connection.statements;
    let (stream_types, stream_ids, client_ids) = read_params(requests);
    let heads_params: [&(dyn ToSql + Sync); 2] = [&stream_types, &stream_ids];
    let ids_params: [&(dyn ToSql + Sync); 1] = [&client_ids];
    let (heads, found) = futures::join!(
        client.query(&statements.stream_heads, &heads_params),
        async {
            if client_ids.is_empty() {
                Ok(Vec::new())
            } else {
                client.query(&statements.events_by_id, &ids_params).await
            }
        },
    );
    Ok((heads?, found?))
}

/// Writes a batch planned from [`UNPLACED`] and commits it, in one pipelined round trip:
/// `BEGIN`, the head's lock taken by moving it past the batch, the inserts and upserts at the
/// positions that gives, `NOTIFY`, `COMMIT`. Returns the batch's first position.
async fn write_at_head(
    connection: &WriterConnection,
    schema: &str,
    batch: &Batch<'_>,
) -> Result<Position, WriteFailure> {
    let client = &connection.client;
    let statements = &connection.statements;
    let rows = &batch.rows;
    let offsets: Vec<i64> = rows
        .positions
        .iter()
        .map(|position| position - crate::rows::to_i64(UNPLACED.0))
        .collect();
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let (stream_types, stream_ids, last_revisions, created_types) = stream_columns(batch);
    let any_created = !created_types.is_empty();
    let take_params: [&(dyn ToSql + Sync); 1] = [&count];
    let insert_params: [&(dyn ToSql + Sync); 11] = [
        &offsets,
        &rows.stream_types,
        &rows.stream_ids,
        &rows.revisions,
        &rows.ids,
        &rows.event_types,
        &rows.data_json,
        &rows.data_binary,
        &rows.content_types,
        &rows.metadata,
        &count,
    ];
    let upsert_params: [&(dyn ToSql + Sync); 3] = [&stream_types, &stream_ids, &last_revisions];
    let count_params: [&(dyn ToSql + Sync); 1] = [&created_types];
    let notify_params: [&(dyn ToSql + Sync); 2] = [&HEAD_CHANNEL, &schema];
    let (begun, taken, inserted, upserted, counted, notified, committed) = futures::join!(
        client.batch_execute("BEGIN"),
        client.query_one(&statements.take_head, &take_params),
        client.execute(&statements.insert_events_at_head, &insert_params),
        client.execute(&statements.upsert_streams_at_head, &upsert_params),
        async {
            if any_created {
                client
                    .execute(&statements.count_new_streams, &count_params)
                    .await
            } else {
                Ok(0)
            }
        },
        client.query(&statements.notify_at_head, &notify_params),
        // After a failed statement the transaction is aborted and PostgreSQL answers this
        // COMMIT with a rollback: nothing is written unless every statement above succeeded.
        client.batch_execute("COMMIT"),
    );
    let first = match (begun, taken) {
        (Ok(()), Ok(row)) => Ok(row),
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    let statements_ok = first.and_then(|row| {
        inserted?;
        upserted?;
        counted?;
        notified?;
        Ok(row)
    });
    match statements_ok {
        Ok(row) => {
            committed.map_err(WriteFailure::Unknown)?;
            let first: i64 = row.try_get(0).map_err(WriteFailure::Unknown)?;
            Ok(Position(u64::try_from(first).unwrap_or(0)))
        }
        // A unique constraint refused a revision or an id: a commit since the plan's read
        // got there first, and this transaction rolled back.
        Err(error) if committed.is_ok() && error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            Err(WriteFailure::Stale)
        }
        Err(error) => Err(classify(error, committed.is_ok())),
    }
}

/// Writes a batch of appends that all expect "any" revision, planned from [`UNPLACED`] with
/// every stream's revisions counted from 0, and commits it, in one pipelined round trip:
/// `BEGIN`, the head's lock, the stream heads moved and the events inserted at the revisions
/// and positions that gives, `NOTIFY`, `COMMIT`. Returns the batch's first position and each
/// stream's first revision.
async fn write_any_at_head(
    connection: &WriterConnection,
    schema: &str,
    batch: &Batch<'_>,
) -> Result<(Position, HashMap<StreamName, Revision>), WriteFailure> {
    let client = &connection.client;
    let statements = &connection.statements;
    let rows = &batch.rows;
    let offsets: Vec<i64> = rows
        .positions
        .iter()
        .map(|position| position - crate::rows::to_i64(UNPLACED.0))
        .collect();
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let (stream_types, stream_ids, last_revisions, _) = stream_columns(batch);
    let stream_events: Vec<i64> = last_revisions.iter().map(|last| last + 1).collect();
    let take_params: [&(dyn ToSql + Sync); 1] = [&count];
    let append_params: [&(dyn ToSql + Sync); 14] = [
        &stream_types,
        &stream_ids,
        &stream_events,
        &offsets,
        &rows.stream_types,
        &rows.stream_ids,
        &rows.revisions,
        &rows.ids,
        &rows.event_types,
        &rows.data_json,
        &rows.data_binary,
        &rows.content_types,
        &rows.metadata,
        &count,
    ];
    let notify_params: [&(dyn ToSql + Sync); 2] = [&HEAD_CHANNEL, &schema];
    let (begun, taken, appended, notified, committed) = futures::join!(
        client.batch_execute("BEGIN"),
        client.query_one(&statements.take_head, &take_params),
        client.query(&statements.append_any_at_head, &append_params),
        client.query(&statements.notify_at_head, &notify_params),
        // After a failed statement the transaction is aborted and PostgreSQL answers this
        // COMMIT with a rollback: nothing is written unless every statement above succeeded.
        client.batch_execute("COMMIT"),
    );
    let statements_ok = begun.and(taken).and_then(|taken| {
        let appended = appended?;
        notified?;
        Ok((taken, appended))
    });
    let (taken, appended) = match statements_ok {
        Ok(rows) => rows,
        // A client-chosen id that is already stored: a retry or a duplicate, for the locked
        // path to answer. The transaction rolled back.
        Err(error) if committed.is_ok() && error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            return Err(WriteFailure::Stale);
        }
        Err(error) => return Err(classify(error, committed.is_ok())),
    };
    committed.map_err(WriteFailure::Unknown)?;
    // Committed: a row that does not decode now cannot undo it, so it fails the answers
    // (the appends are stored; a retry with the same ids finds them).
    let first: i64 = taken.try_get(0).map_err(WriteFailure::Unknown)?;
    let mut first_revisions = HashMap::with_capacity(appended.len());
    for row in &appended {
        let stream_type: &str = row.try_get(0).map_err(WriteFailure::Unknown)?;
        let stream_id: &str = row.try_get(1).map_err(WriteFailure::Unknown)?;
        let revision: i64 = row.try_get(2).map_err(WriteFailure::Unknown)?;
        let Ok(stream) = stream_name(stream_type, stream_id) else {
            continue;
        };
        first_revisions.insert(stream, Revision(u64::try_from(revision).unwrap_or(0)));
    }
    Ok((Position(u64::try_from(first).unwrap_or(0)), first_revisions))
}

/// A failed statement of a second round trip: refused by the server or failed for a passing
/// reason (either way the transaction rolled back, nothing written), or unknown (the
/// connection broke, maybe after COMMIT).
fn classify(error: tokio_postgres::Error, commit_answered: bool) -> WriteFailure {
    match error.as_db_error() {
        Some(_) if commit_answered && !is_transient(&error) => WriteFailure::Refused(error),
        // The server answered COMMIT after a failed statement, so it rolled back: e.g. the
        // head's lock was not granted within `lock_timeout`, which now happens in this round
        // trip. Nothing was written and the connection is fine.
        Some(_) if commit_answered => WriteFailure::RolledBack(error),
        _ => WriteFailure::Unknown(error),
    }
}

/// The batch's streams as the upserts take them: types, ids, new last revisions, and one
/// type per stream the batch creates.
fn stream_columns<'a>(
    batch: &'a Batch<'_>,
) -> (Vec<&'a str>, Vec<&'a str>, Vec<i64>, Vec<&'a str>) {
    let mut stream_types = Vec::with_capacity(batch.streams.len());
    let mut stream_ids = Vec::with_capacity(batch.streams.len());
    let mut last_revisions = Vec::with_capacity(batch.streams.len());
    let mut created_types = Vec::new();
    for (stream, write) in &batch.streams {
        stream_types.push(stream.stream_type().as_str());
        stream_ids.push(stream.stream_id().as_str());
        last_revisions.push(crate::rows::to_i64(write.last_revision.0));
        if write.created {
            created_types.push(stream.stream_type().as_str());
        }
    }
    (stream_types, stream_ids, last_revisions, created_types)
}

/// Why the second round trip failed.
enum WriteFailure {
    /// The database refused a statement; the transaction rolled back, nothing was written.
    Refused(tokio_postgres::Error),
    /// The connection failed, or COMMIT did: the transaction may or may not have committed.
    Unknown(tokio_postgres::Error),
    /// A batch planned before the lock met a commit that came after its read; it rolled back.
    Stale,
    /// A statement failed for a passing reason (an outage, a lock timeout) and the server
    /// answered COMMIT with a rollback: nothing was written.
    RolledBack(tokio_postgres::Error),
}

/// The writes of a planned batch and `COMMIT`, pipelined in one round trip.
async fn write_and_commit(
    connection: &WriterConnection,
    schema: &str,
    batch: &Batch<'_>,
    recorded_at: DateTime<Utc>,
) -> Result<(), WriteFailure> {
    let client = &connection.client;
    let statements = &connection.statements;
    let rows = &batch.rows;
    let (stream_types, stream_ids, last_revisions, created_types) = stream_columns(batch);
    let next_position = crate::rows::to_i64(batch.next_position.0);
    let notice = format!("{schema} {}", batch.next_position.0.saturating_sub(1));
    let any_created = !created_types.is_empty();
    let insert_params: [&(dyn ToSql + Sync); 11] = [
        &rows.positions,
        &rows.stream_types,
        &rows.stream_ids,
        &rows.revisions,
        &rows.ids,
        &rows.event_types,
        &rows.data_json,
        &rows.data_binary,
        &rows.content_types,
        &rows.metadata,
        &recorded_at,
    ];
    let upsert_params: [&(dyn ToSql + Sync); 4] =
        [&stream_types, &stream_ids, &last_revisions, &recorded_at];
    let count_params: [&(dyn ToSql + Sync); 1] = [&created_types];
    let advance_params: [&(dyn ToSql + Sync); 2] = [&next_position, &recorded_at];
    let notify_params: [&(dyn ToSql + Sync); 2] = [&HEAD_CHANNEL, &notice];
    let (inserted, upserted, counted, advanced, notified, committed) = futures::join!(
        client.execute(&statements.insert_events, &insert_params),
        client.execute(&statements.upsert_streams, &upsert_params),
        async {
            if any_created {
                client
                    .execute(&statements.count_new_streams, &count_params)
                    .await
            } else {
                Ok(0)
            }
        },
        client.execute(&statements.advance_head, &advance_params),
        client.query(&statements.notify_head, &notify_params),
        // After a failed statement the transaction is aborted and PostgreSQL answers this
        // COMMIT with a rollback: nothing is written unless every statement above succeeded.
        client.batch_execute("COMMIT"),
    );
    let statements_ok = [
        inserted.map(|_| ()),
        upserted.map(|_| ()),
        counted.map(|_| ()),
        advanced.map(|_| ()),
    ]
    .into_iter()
    .chain(std::iter::once(notified.map(|_| ())))
    .try_for_each(|result| result);
    if let Err(error) = statements_ok {
        // A refusal by the server ended in a rollback; a broken connection may have left
        // the COMMIT undecided as far as this node knows.
        return Err(classify(error, committed.is_ok()));
    }
    committed.map_err(WriteFailure::Unknown)
}

/// The bytes an append counts against the batch bound.
fn request_bytes(request: &AppendRequest) -> usize {
    request.events.iter().map(|event| event.size_bytes()).sum()
}

/// The same error again, for each append of a failed group (StoreError is not Clone).
fn copy_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable { cause } => StoreError::Unavailable {
            cause: cause.clone(),
        },
        StoreError::ShuttingDown => StoreError::ShuttingDown,
        StoreError::Index { action, cause } => StoreError::Index {
            action: action.clone(),
            cause: cause.clone(),
        },
        other => StoreError::Index {
            action: "committing an append".to_owned(),
            cause: other.to_string(),
        },
    }
}
