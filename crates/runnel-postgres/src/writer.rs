//! The writer: a few lanes per node, each with its own connection, turn queued appends into
//! group commits, one transaction each, side by side.
//!
//! No lock is shared between transactions but those of the streams they write: a transaction
//! numbers its events from its own id (see the crate documentation), so lanes on this node and
//! on every other commit at once, and PostgreSQL flushes their commits to its WAL together.
//! Each transaction first takes an advisory lock per stream it writes, in one order
//! (`lock_streams.sql`), and only then gets its id: of two transactions that write one stream,
//! the first to write it has the lower positions, so a stream's revisions grow in position
//! order, and neither can deadlock the other. A transaction whose plan went stale meets the
//! newer commit's revisions in the events' unique index and rolls back.
//!
//! When every append of a batch expects "any" revision (the common case), no check needs a
//! stream's head, and a group commit is one statement, run as its own transaction, that takes
//! the streams' locks, the transaction's first position, moves each stream's head by its
//! number of events and inserts the events at the revisions that gives; PostgreSQL commits it
//! before answering. The notification follows in the same round trip.
//!
//! Otherwise a group commit is two round trips:
//!
//! 1. Read, outside any transaction, the heads of the streams involved and where the
//!    client-chosen ids already live, then check every append against that committed state
//!    ([`Batch`]).
//! 2. `BEGIN`, the first position, the stream heads, the events, the type counts, `COMMIT` and
//!    the notification, pipelined.
//!
//! The plan of step 1 is stale if another commit wrote to one of its streams (or ids) after
//! the read. Stream heads only grow, so such a plan writes a revision or an id that a committed
//! event already has; likewise a batch of "any" appends that carries an id already stored (a
//! retry, or a duplicate). A unique constraint refuses it, the transaction rolls back, and the
//! batch is planned again the strict way: `BEGIN`, the streams' locks and the reads, then the
//! writes and `COMMIT`, with nothing able to change the streams under the plan.
//!
//! Only after COMMIT returns, and once every reader can see the events (the horizon passed
//! them: [`crate::head`]), are the appends answered, so that an acknowledged append is in every
//! `$all` read that starts after it. A connection lost during COMMIT leaves the outcome
//! unknown: those appends get [`StoreError::Unavailable`], and a retry with the same event ids
//! is answered from what is in the database (the original outcome if it committed). If the
//! database rejects the batch for a reason other than an outage (a value it will not store),
//! the appends are retried one per transaction so that one bad append cannot fail the others.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_core::{
    AppendOutcome, AppendRequest, ExpectedRevision, Position, Revision, StoreError, StreamName,
};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use crate::batch::{Batch, IdSite, UNPLACED};
use crate::connect::connect;
use crate::error::{describe, is_transient, store_error, timed_out};
use crate::head::{Pending, publish};
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

/// The queue every lane of this node takes its batches from.
pub(crate) type Commands = Arc<Mutex<mpsc::Receiver<WriterCommand>>>;

/// The channel NOTIFY uses; the payload is `<schema> <last visible position>`.
pub(crate) const HEAD_CHANNEL: &str = "runnel_head";

const LOCK_STREAMS: &str = include_str!("sql/lock_streams.sql");
const FIRST_POSITION: &str = include_str!("sql/first_position.sql");
const STREAM_HEADS: &str = include_str!("sql/stream_heads.sql");
const EVENTS_BY_ID: &str = include_str!("sql/events_by_id.sql");
const UPSERT_STREAMS: &str = include_str!("sql/upsert_streams.sql");
const INSERT_EVENTS: &str = include_str!("sql/insert_events.sql");
const COUNT_NEW_STREAMS: &str = include_str!("sql/count_new_streams.sql");
const APPEND_ANY: &str = include_str!("sql/append_any.sql");
const NOTIFY_HEAD: &str = include_str!("sql/notify_head.sql");

/// How many times a batch is planned again with its streams locked before its appends fail.
/// With the locks held, only a client-chosen id that a concurrent commit to other streams
/// writes first can make the plan stale again, so this is reached only by a storm of retries
/// of the same events through different streams.
const MAX_LOCKED_ROUNDS: usize = 8;

/// The most streams one group commit writes: each costs an advisory lock, and PostgreSQL's lock
/// table is shared by every session (`max_locks_per_transaction` × connections).
pub(crate) const MAX_BATCH_STREAMS: usize = 256;

/// The writer's statements, prepared once per connection.
#[derive(Debug)]
struct Statements {
    lock_streams: Statement,
    first_position: Statement,
    stream_heads: Statement,
    events_by_id: Statement,
    upsert_streams: Statement,
    insert_events: Statement,
    count_new_streams: Statement,
    append_any: Statement,
    notify_head: Statement,
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
    /// The longest a committed append waits for readers to be able to see it before it is
    /// answered anyway (see [`Writer::answer`]).
    pub(crate) visibility_wait: Duration,
}

/// One lane: a connection and the group commits it runs, one at a time. A node runs
/// `writer_connections` of them (one by default) on one queue.
#[derive(Debug)]
pub(crate) struct Writer {
    settings: WriterSettings,
    head: Arc<watch::Sender<Option<Position>>>,
    pending: Arc<Pending>,
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

/// A batch being gathered, within the bounds of one group commit.
struct Gathering<'s> {
    settings: &'s WriterSettings,
    jobs: Vec<AppendJob>,
    events: usize,
    bytes: usize,
    streams: std::collections::HashSet<StreamName>,
}

impl<'s> Gathering<'s> {
    fn new(first: AppendJob, settings: &'s WriterSettings) -> Self {
        Self {
            settings,
            events: first.request.events.len(),
            bytes: request_bytes(&first.request),
            streams: std::collections::HashSet::from([first.request.stream.clone()]),
            jobs: vec![first],
        }
    }

    fn full(&self) -> bool {
        self.events >= self.settings.max_batch_events || self.bytes >= self.settings.max_batch_bytes
    }

    /// Takes `job` into the batch, or gives it back when it would cross a bound.
    fn offer(&mut self, job: AppendJob) -> Result<(), AppendJob> {
        let events = job.request.events.len();
        let bytes = request_bytes(&job.request);
        let new_stream = !self.streams.contains(&job.request.stream);
        if self.events + events > self.settings.max_batch_events
            || self.bytes + bytes > self.settings.max_batch_bytes
            || (new_stream && self.streams.len() >= MAX_BATCH_STREAMS)
        {
            return Err(job);
        }
        self.events += events;
        self.bytes += bytes;
        if new_stream {
            self.streams.insert(job.request.stream.clone());
        }
        self.jobs.push(job);
        Ok(())
    }
}

/// What a lane took from the queue.
enum Gathered {
    Batch {
        jobs: Vec<AppendJob>,
        /// A close came after these: commit them, then stop.
        close: Option<oneshot::Sender<()>>,
    },
    /// The queue is closed and empty.
    Stop,
}

/// How a group commit planned from a read that may be stale ended.
enum Planned {
    Settled(Attempt),
    /// Another commit wrote to the batch's streams or ids after the plan's read; nothing was
    /// written: plan again with the streams locked.
    Stale,
}

/// How one attempt at a group commit ended.
enum Attempt {
    /// Committed (or nothing to write): one answer per append, and the last position every
    /// reader could see right after the commit.
    Done {
        outcomes: Vec<Result<AppendOutcome, StoreError>>,
        visible: Option<Position>,
    },
    /// Nothing was written (or, for an unknown commit outcome, maybe everything): every append
    /// gets this error.
    Failed(StoreError),
    /// The database refused the batch's data and rolled it back: retry one append at a time.
    Refused(StoreError),
}

impl Attempt {
    /// Answers without a write: rejections and retries, which rest on committed state.
    fn unwritten(outcomes: Vec<Result<AppendOutcome, StoreError>>) -> Self {
        Self::Done {
            outcomes,
            visible: None,
        }
    }
}

impl Writer {
    pub(crate) fn new(
        settings: WriterSettings,
        head: Arc<watch::Sender<Option<Position>>>,
        pending: Arc<Pending>,
        stats: Arc<WriterStats>,
    ) -> Self {
        Self {
            settings,
            head,
            pending,
            stats,
            connection: None,
            unreachable: None,
        }
    }

    /// A lane's body: takes what is queued, up to the batch bounds, commits it as one
    /// transaction, answers, and repeats until the queue closes.
    ///
    /// Clients that wait for each answer before appending again would otherwise split into
    /// groups that take turns with ever smaller commits. So after a commit that answered
    /// several appends, the lane's next batch waits briefly ([`Linger`]) for as many appends as
    /// were answered plus those already queued, then commits them together. The other lanes
    /// wait for the queue meanwhile, and take what comes after. A lone client never waits: one
    /// answered append is already matched by the one it sends next.
    pub(crate) async fn run(mut self, commands: Commands) {
        let mut carried: Option<AppendJob> = None;
        let mut linger: Option<Linger> = None;
        loop {
            let gathered = {
                let mut receiver = commands.lock().await;
                self.gather(&mut receiver, &mut carried, linger).await
            };
            let (jobs, close) = match gathered {
                Gathered::Batch { jobs, close } => (jobs, close),
                Gathered::Stop => return,
            };
            let appends = jobs.len();
            let started = Instant::now();
            let queued = {
                self.commit(jobs).await;
                commands.try_lock().map_or(0, |receiver| receiver.len())
            };
            linger = Linger::after(appends, started.elapsed(), queued);
            if let Some(done) = close {
                if let Some(job) = carried.take() {
                    self.commit(vec![job]).await;
                }
                let mut receiver = commands.lock().await;
                return refuse_the_rest(&mut receiver, done);
            }
        }
    }

    /// The next batch: what was carried over, then everything queued up to the bounds, then,
    /// after a commit that answered several appends, those clients' next appends ([`Linger`]).
    async fn gather(
        &self,
        commands: &mut mpsc::Receiver<WriterCommand>,
        carried: &mut Option<AppendJob>,
        linger: Option<Linger>,
    ) -> Gathered {
        let first = match carried.take() {
            Some(job) => job,
            None => match commands.recv().await {
                Some(WriterCommand::Append(job)) => job,
                Some(WriterCommand::Close(done)) => {
                    return Gathered::Batch {
                        jobs: Vec::new(),
                        close: Some(done),
                    };
                }
                None => return Gathered::Stop,
            },
        };
        let mut batch = Gathering::new(first, &self.settings);
        while !batch.full() {
            let command = match commands.try_recv() {
                Ok(command) => Some(command),
                Err(_) => {
                    let Some(until) = linger
                        .filter(|l| batch.jobs.len() < l.appends)
                        .map(|l| l.until)
                    else {
                        break;
                    };
                    match tokio::time::timeout_at(until.into(), commands.recv()).await {
                        Ok(command) => command,
                        Err(_) => break,
                    }
                }
            };
            match command {
                Some(WriterCommand::Append(job)) => {
                    if let Err(job) = batch.offer(job) {
                        *carried = Some(job);
                        break;
                    }
                }
                Some(WriterCommand::Close(done)) => {
                    return Gathered::Batch {
                        jobs: batch.jobs,
                        close: Some(done),
                    };
                }
                None => break,
            }
        }
        Gathered::Batch {
            jobs: batch.jobs,
            close: None,
        }
    }

    /// Commits `jobs` as one group and answers each of them.
    async fn commit(&mut self, jobs: Vec<AppendJob>) {
        if jobs.is_empty() {
            return;
        }
        let (requests, replies): (Vec<AppendRequest>, Vec<AppendReply>) =
            jobs.into_iter().map(|job| (job.request, job.reply)).unzip();
        match self.attempt(&requests).await {
            Attempt::Done { outcomes, visible } => self.answer(replies, outcomes, visible),
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
                    match self.attempt(std::slice::from_ref(request)).await {
                        Attempt::Done { outcomes, visible } => {
                            self.answer(vec![reply], outcomes, visible);
                        }
                        Attempt::Failed(error) | Attempt::Refused(error) => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            }
        }
    }

    /// Answers a commit's appends once every reader can see what they wrote.
    ///
    /// Readers stop below the oldest transaction still running, anywhere in the database
    /// cluster, so a committed event may stay out of their sight for as long as an older
    /// transaction runs: usually another lane's commit, ending within a millisecond or two.
    /// The answers wait for that, so that an acknowledged append is in every `$all` read that
    /// starts after it, on every node. A transaction outside Runnel that keeps the horizon back
    /// for longer than `visibility_wait` does not hold the appends hostage: they are durable,
    /// so they are answered then, with a warning, and readers see them when it ends.
    fn answer(
        &self,
        replies: Vec<AppendReply>,
        outcomes: Vec<Result<AppendOutcome, StoreError>>,
        visible: Option<Position>,
    ) {
        if let Some(visible) = visible {
            publish(&self.head, visible);
        }
        let last = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok())
            .map(|outcome| outcome.last_position)
            .max();
        // Nothing written, or written where readers already see it: answer now.
        let Some(last) = last.filter(|&last| self.head.borrow().is_none_or(|h| h < last)) else {
            return send_all(replies, outcomes);
        };
        self.pending.expect(last);
        let mut head = self.head.subscribe();
        let wait = self.settings.visibility_wait;
        tokio::spawn(async move {
            let seen = |head: &Option<Position>| head.is_some_and(|h| h >= last);
            let visible = tokio::time::timeout(wait, head.wait_for(seen)).await;
            if !matches!(visible, Ok(Ok(_))) {
                tracing::warn!(
                    position = last.0,
                    wait_ms = wait.as_millis() as u64,
                    "committed appends are not visible to readers yet: an older transaction \
                     in the database is still running; answering them anyway"
                );
            }
            send_all(replies, outcomes);
        });
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

    /// The connection [`Writer::ensure_connection`] made sure of.
    fn connected(&self) -> Result<&WriterConnection, StoreError> {
        self.connection
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable {
                cause: "no connection to PostgreSQL".to_owned(),
            })
    }

    async fn open_connection(&self) -> Result<WriterConnection, StoreError> {
        let client = connect(&self.settings.endpoint, self.settings.connect_timeout).await?;
        let preparing = async {
            futures::try_join!(
                client.prepare(LOCK_STREAMS),
                client.prepare(FIRST_POSITION),
                client.prepare(STREAM_HEADS),
                client.prepare(EVENTS_BY_ID),
                client.prepare(UPSERT_STREAMS),
                client.prepare(INSERT_EVENTS),
                client.prepare(COUNT_NEW_STREAMS),
                client.prepare(APPEND_ANY),
                client.prepare(NOTIFY_HEAD),
            )
        };
        let (
            lock_streams,
            first_position,
            stream_heads,
            events_by_id,
            upsert_streams,
            insert_events,
            count_new_streams,
            append_any,
            notify_head,
        ) = tokio::time::timeout(self.settings.answer_timeout, preparing)
            .await
            .map_err(|_| {
                timed_out(
                    "preparing the writer's statements",
                    self.settings.answer_timeout,
                )
            })?
            .map_err(|error| store_error("preparing the writer's statements", &error))?;
        Ok(WriterConnection {
            client,
            statements: Statements {
                lock_streams,
                first_position,
                stream_heads,
                events_by_id,
                upsert_streams,
                insert_events,
                count_new_streams,
                append_any,
                notify_head,
            },
        })
    }

    /// One try at committing `requests` together: planned from a read that may go stale, and
    /// again with the streams locked when it did.
    async fn attempt(&mut self, requests: &[AppendRequest]) -> Attempt {
        let planned = if requests
            .iter()
            .all(|request| request.expected == ExpectedRevision::Any)
        {
            self.attempt_any(requests).await
        } else {
            self.attempt_planned(requests, ReadMode::Committed).await
        };
        if let Planned::Settled(attempt) = planned {
            return attempt;
        }
        for _ in 0..MAX_LOCKED_ROUNDS {
            tracing::debug!(
                appends = requests.len(),
                "a batch met a commit after its read; planning it again with its streams locked"
            );
            if let Planned::Settled(attempt) =
                self.attempt_planned(requests, ReadMode::Locked).await
            {
                return attempt;
            }
        }
        Attempt::Failed(StoreError::Unavailable {
            cause: format!(
                "a group commit met concurrent writes of its client-chosen event ids \
                 {MAX_LOCKED_ROUNDS} times in a row; nothing was written, retry the append"
            ),
        })
    }

    /// A batch whose appends all take their streams as they are (expected revision "any"):
    /// no check needs a stream's head, so nothing is read first. One pipelined round trip
    /// numbers each stream's events from its committed head, with the streams locked.
    /// A client-chosen id that is already stored (a retry, or a duplicate) makes the unique
    /// constraint refuse the batch: [`Planned::Stale`] then answers it with the streams locked.
    async fn attempt_any(&mut self, requests: &[AppendRequest]) -> Planned {
        let answer_timeout = self.settings.answer_timeout;
        if let Err(error) = self.ensure_connection().await {
            return Planned::Settled(Attempt::Failed(error));
        }
        let connection = match self.connected() {
            Ok(connection) => connection,
            Err(error) => return Planned::Settled(Attempt::Failed(error)),
        };
        // Every stream is planned as if new: its revisions in the batch are then offsets from
        // the head the database has, which the write adds.
        let mut batch = Batch::new(UNPLACED, HashMap::new(), HashMap::new());
        let outcomes: Vec<_> = requests
            .iter()
            .map(|request| batch.admit(request))
            .collect();
        if batch.last_position().is_none() {
            return Planned::Settled(Attempt::unwritten(outcomes));
        }
        let started = Instant::now();
        let written = tokio::time::timeout(
            answer_timeout,
            write_any(connection, &self.settings.schema, &batch),
        )
        .await;
        let committed = match written {
            Ok(Ok(committed)) => committed,
            Ok(Err(WriteFailure::Stale)) => return Planned::Stale,
            Ok(Err(failure)) => return Planned::Settled(self.write_failed(failure)),
            Err(_) => return Planned::Settled(self.write_timed_out()),
        };
        self.stats
            .record_commit(batch.rows.len() as u64, batch.bytes, started.elapsed());
        let outcomes = outcomes
            .into_iter()
            .map(|outcome| {
                let outcome = outcome?;
                let Some(base) = committed.first_revisions.get(&outcome.stream) else {
                    return Err(StoreError::Index {
                        action: "committing an append".to_owned(),
                        cause: format!(
                            "the commit returned no revision for stream {}",
                            outcome.stream
                        ),
                    });
                };
                let outcome = Batch::place(outcome, committed.first_position);
                Ok(AppendOutcome {
                    first_revision: Revision(base.0 + outcome.first_revision.0),
                    last_revision: Revision(base.0 + outcome.last_revision.0),
                    ..outcome
                })
            })
            .collect();
        Planned::Settled(Attempt::Done {
            outcomes,
            visible: committed.visible,
        })
    }

    /// Reads what the checks need, plans the batch, and writes it.
    ///
    /// [`ReadMode::Committed`] reads committed state without any lock, then writes in one
    /// pipelined round trip. The plan holds if nothing was committed to its streams or ids
    /// since the read; otherwise the unique constraints refuse it ([`Planned::Stale`]). A check
    /// that fails on the read state fails correctly: that state was committed while the append
    /// waited. [`ReadMode::Locked`] opens the transaction and takes the streams' locks before
    /// the read, so that no commit can move their heads under the plan.
    async fn attempt_planned(&mut self, requests: &[AppendRequest], mode: ReadMode) -> Planned {
        let answer_timeout = self.settings.answer_timeout;
        let (action, locked) = match mode {
            ReadMode::Committed => ("reading stream heads", false),
            ReadMode::Locked => ("locking the batch's streams", true),
        };
        if let Err(error) = self.ensure_connection().await {
            return Planned::Settled(Attempt::Failed(error));
        }
        let connection = match self.connected() {
            Ok(connection) => connection,
            Err(error) => return Planned::Settled(Attempt::Failed(error)),
        };
        let read =
            tokio::time::timeout(answer_timeout, read_state(connection, requests, mode)).await;
        let decoded = match read {
            Ok(Ok(rows)) => rows.decode(),
            Ok(Err(error)) => {
                let failed = store_error(action, &error);
                if locked {
                    self.abandon_transaction(!is_transient(&error)).await;
                }
                return Planned::Settled(Attempt::Failed(failed));
            }
            Err(_) => {
                self.connection = None;
                return Planned::Settled(Attempt::Failed(timed_out(action, answer_timeout)));
            }
        };
        match decoded {
            Ok((heads, ids)) => self.write_plan(requests, heads, ids, locked).await,
            Err(error) => {
                if locked {
                    self.abandon_transaction(true).await;
                }
                Planned::Settled(Attempt::Failed(error))
            }
        }
    }

    /// Checks `requests` against `heads` and `ids` and writes what passes; `begun` when a
    /// transaction (with the reads) is already open on the connection.
    async fn write_plan(
        &mut self,
        requests: &[AppendRequest],
        heads: HashMap<StreamName, Revision>,
        ids: HashMap<Uuid, IdSite>,
        begun: bool,
    ) -> Planned {
        let mut batch = Batch::new(UNPLACED, heads, ids);
        let outcomes: Vec<_> = requests
            .iter()
            .map(|request| batch.admit(request))
            .collect();
        if batch.last_position().is_none() {
            if begun {
                self.abandon_transaction(true).await;
            }
            return Planned::Settled(Attempt::unwritten(outcomes));
        }
        let connection = match self.connected() {
            Ok(connection) => connection,
            Err(error) => return Planned::Settled(Attempt::Failed(error)),
        };
        let started = Instant::now();
        let written = tokio::time::timeout(
            self.settings.answer_timeout,
            write_planned(connection, &self.settings.schema, &batch, begun),
        )
        .await;
        let committed = match written {
            Ok(Ok(committed)) => committed,
            Ok(Err(WriteFailure::Stale)) => return Planned::Stale,
            Ok(Err(failure)) => return Planned::Settled(self.write_failed(failure)),
            Err(_) => return Planned::Settled(self.write_timed_out()),
        };
        self.stats
            .record_commit(batch.rows.len() as u64, batch.bytes, started.elapsed());
        let outcomes = outcomes
            .into_iter()
            .map(|outcome| outcome.map(|outcome| Batch::place(outcome, committed.first_position)))
            .collect();
        Planned::Settled(Attempt::Done {
            outcomes,
            visible: committed.visible,
        })
    }

    /// What a failed write means for the batch's appends.
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
            WriteFailure::Undecodable => Attempt::Failed(StoreError::Index {
                action: "committing a group commit".to_owned(),
                cause: "PostgreSQL committed it but returned no first position".to_owned(),
            }),
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

    /// A write that got no answer in time: its commit may or may not have happened.
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

/// Refuses what was queued after a close, and reports that the writer is done.
fn refuse_the_rest(commands: &mut mpsc::Receiver<WriterCommand>, done: oneshot::Sender<()>) {
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

fn send_all(replies: Vec<AppendReply>, outcomes: Vec<Result<AppendOutcome, StoreError>>) {
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}

/// Whether the reads of a plan run outside any transaction, or open one and lock the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadMode {
    Committed,
    Locked,
}

/// What a plan is checked against: the committed heads of its streams, and where its
/// client-chosen ids already live.
type PlanState = (HashMap<StreamName, Revision>, HashMap<Uuid, IdSite>);

/// What a plan was read from, not decoded yet.
struct StateRows {
    heads: Vec<tokio_postgres::Row>,
    found: Vec<tokio_postgres::Row>,
}

impl StateRows {
    /// Decodes what was read. A row that does not decode fails the batch: checking appends
    /// against a state with a stream or an id missing could write wrong revisions.
    fn decode(self) -> Result<PlanState, StoreError> {
        Ok((decode_heads(&self.heads)?, decode_ids(&self.found)?))
    }
}

/// The heads of the streams involved and where the client-chosen ids already live, pipelined
/// in one round trip; [`ReadMode::Locked`] opens a transaction first and locks the heads.
async fn read_state(
    connection: &WriterConnection,
    requests: &[AppendRequest],
    mode: ReadMode,
) -> Result<StateRows, tokio_postgres::Error> {
    let client = &connection.client;
    let statements = &connection.statements;
    let (stream_types, stream_ids, client_ids) = read_params(requests);
    let heads_params: [&(dyn ToSql + Sync); 2] = [&stream_types, &stream_ids];
    let ids_params: [&(dyn ToSql + Sync); 1] = [&client_ids];
    let locked = mode == ReadMode::Locked;
    // Each statement is sent when its future is first polled, in this order, and the
    // connection runs them in the order sent.
    let (begun, lock, heads, found) = futures::join!(
        async {
            if locked {
                client.batch_execute("BEGIN").await
            } else {
                Ok(())
            }
        },
        async {
            if locked {
                client.query(&statements.lock_streams, &heads_params).await
            } else {
                Ok(Vec::new())
            }
        },
        client.query(&statements.stream_heads, &heads_params),
        async {
            if client_ids.is_empty() {
                Ok(Vec::new())
            } else {
                client.query(&statements.events_by_id, &ids_params).await
            }
        },
    );
    begun?;
    lock?;
    Ok(StateRows {
        heads: heads?,
        found: found?,
    })
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

/// The streams (sorted, as the locks are taken) and the client-chosen ids of `requests`.
fn read_params(requests: &[AppendRequest]) -> (Vec<&str>, Vec<&str>, Vec<Uuid>) {
    let mut streams: Vec<&StreamName> = requests.iter().map(|request| &request.stream).collect();
    streams.sort_unstable();
    streams.dedup();
    let stream_types = streams
        .iter()
        .map(|stream| stream.stream_type().as_str())
        .collect();
    let stream_ids = streams
        .iter()
        .map(|stream| stream.stream_id().as_str())
        .collect();
    let client_ids = requests
        .iter()
        .flat_map(|request| request.events.iter().filter_map(|event| event.id))
        .collect();
    (stream_types, stream_ids, client_ids)
}

/// What a committed group commit tells its appends.
struct Committed {
    first_position: Position,
    /// Each stream's first revision in the batch (only for a batch of "any" appends).
    first_revisions: HashMap<StreamName, Revision>,
    /// The last position every reader could see right after the commit.
    visible: Option<Position>,
}

/// The last visible position `notify_head.sql` returned (-1: none).
fn visible_from(rows: &[tokio_postgres::Row]) -> Option<Position> {
    let last: i64 = rows.first()?.try_get(0).ok()?;
    u64::try_from(last).ok().map(Position)
}

/// Writes a batch of appends that all expect "any" revision, planned from [`UNPLACED`] with
/// every stream's revisions counted from 0, and commits it, in one pipelined round trip: one
/// statement that is its own transaction (the streams' locks, the first position, the stream
/// heads moved and the events inserted at the revisions that gives), then the notification.
async fn write_any(
    connection: &WriterConnection,
    schema: &str,
    batch: &Batch<'_>,
) -> Result<Committed, WriteFailure> {
    let client = &connection.client;
    let statements = &connection.statements;
    let rows = &batch.rows;
    let offsets = offsets(batch);
    let (stream_types, stream_ids, last_revisions, _) = stream_columns(batch);
    let stream_events: Vec<i64> = last_revisions.iter().map(|last| last + 1).collect();
    let append_params: [&(dyn ToSql + Sync); 13] = [
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
    ];
    let notify_params: [&(dyn ToSql + Sync); 2] = [&HEAD_CHANNEL, &schema];
    let (appended, notified) = futures::join!(
        client.query(&statements.append_any, &append_params),
        client.query(&statements.notify_head, &notify_params),
    );
    let appended = match appended {
        Ok(rows) => rows,
        // The database answered with an error: the statement's transaction rolled back.
        Err(error) => {
            let answered = error.as_db_error().is_some();
            return Err(classify(error, answered));
        }
    };
    // Committed: a row that does not decode now cannot undo it, so it fails the answers
    // (the appends are stored; a retry with the same ids finds them).
    let first_position = match appended.first() {
        Some(row) => first_position_from(row, 3)?,
        None => return Err(WriteFailure::Undecodable),
    };
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
    Ok(Committed {
        first_position,
        first_revisions,
        // The notification is sent after COMMIT, in a transaction of its own: if only it
        // failed, the commit stands and followers learn of it from their next poll.
        visible: notified.ok().as_deref().and_then(visible_from),
    })
}

/// Writes a planned batch and commits it, in one pipelined round trip: `BEGIN` (unless
/// `begun`), the first position, the stream heads, the events, the type counts, `COMMIT`,
/// then the notification.
async fn write_planned(
    connection: &WriterConnection,
    schema: &str,
    batch: &Batch<'_>,
    begun: bool,
) -> Result<Committed, WriteFailure> {
    let client = &connection.client;
    let statements = &connection.statements;
    let rows = &batch.rows;
    let offsets = offsets(batch);
    let (stream_types, stream_ids, last_revisions, created_types) = stream_columns(batch);
    let any_created = !created_types.is_empty();
    let upsert_params: [&(dyn ToSql + Sync); 3] = [&stream_types, &stream_ids, &last_revisions];
    let insert_params: [&(dyn ToSql + Sync); 10] = [
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
    ];
    let count_params: [&(dyn ToSql + Sync); 1] = [&created_types];
    let notify_params: [&(dyn ToSql + Sync); 2] = [&HEAD_CHANNEL, &schema];
    let lock_params: [&(dyn ToSql + Sync); 2] = [&stream_types, &stream_ids];
    // A transaction begun for a locked plan holds its streams' locks already.
    let (began, locked, first, upserted, inserted, counted, committed, notified) = futures::join!(
        async {
            if begun {
                Ok(())
            } else {
                client.batch_execute("BEGIN").await
            }
        },
        async {
            if begun {
                Ok(Vec::new())
            } else {
                client.query(&statements.lock_streams, &lock_params).await
            }
        },
        client.query_one(&statements.first_position, &[]),
        client.execute(&statements.upsert_streams, &upsert_params),
        client.execute(&statements.insert_events, &insert_params),
        // Last before COMMIT: a type's count row is shared by every commit that creates a
        // stream of that type, so it is locked for as short a time as can be.
        async {
            if any_created {
                client
                    .execute(&statements.count_new_streams, &count_params)
                    .await
            } else {
                Ok(0)
            }
        },
        // After a failed statement the transaction is aborted and PostgreSQL answers this
        // COMMIT with a rollback: nothing is written unless every statement above succeeded.
        client.batch_execute("COMMIT"),
        client.query(&statements.notify_head, &notify_params),
    );
    let statements_ok = began.and(locked.map(drop)).and(first).and_then(|first| {
        upserted?;
        inserted?;
        counted?;
        Ok(first)
    });
    let first = match statements_ok {
        Ok(first) => first,
        Err(error) => return Err(classify(error, committed.is_ok())),
    };
    committed.map_err(WriteFailure::Unknown)?;
    Ok(Committed {
        first_position: first_position_from(&first, 0)?,
        first_revisions: HashMap::new(),
        visible: notified.ok().as_deref().and_then(visible_from),
    })
}

/// The first position in column `at` of a row the commit returned, once it happened.
fn first_position_from(row: &tokio_postgres::Row, at: usize) -> Result<Position, WriteFailure> {
    let first: i64 = row.try_get(at).map_err(WriteFailure::Unknown)?;
    Ok(Position(u64::try_from(first).unwrap_or(0)))
}

/// Each event's offset from its batch's first position.
fn offsets(batch: &Batch<'_>) -> Vec<i64> {
    let unplaced = crate::rows::to_i64(UNPLACED.0);
    batch
        .rows
        .positions
        .iter()
        .map(|position| position - unplaced)
        .collect()
}

/// A failed statement of a write: a stale plan, refused by the server, or failed for a passing
/// reason (either way the transaction rolled back, nothing written), or unknown (the
/// connection broke, maybe after COMMIT).
fn classify(error: tokio_postgres::Error, commit_answered: bool) -> WriteFailure {
    let stale = [
        // A revision or an id a concurrent commit wrote first.
        SqlState::UNIQUE_VIOLATION,
        // Two batches that share client-chosen ids, each waiting for the other's.
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::T_R_SERIALIZATION_FAILURE,
    ];
    match error.as_db_error() {
        Some(db) if commit_answered && stale.contains(db.code()) => WriteFailure::Stale,
        Some(_) if commit_answered && !is_transient(&error) => WriteFailure::Refused(error),
        // The server answered COMMIT after a failed statement, so it rolled back: e.g. a
        // stream's row lock was not granted within `lock_timeout`. Nothing was written and
        // the connection is fine.
        Some(_) if commit_answered => WriteFailure::RolledBack(error),
        _ => WriteFailure::Unknown(error),
    }
}

/// The batch's streams in (type, id) order, the order their rows are locked in: types, ids,
/// new last revisions, and one type per stream the batch creates.
fn stream_columns<'a>(
    batch: &'a Batch<'_>,
) -> (Vec<&'a str>, Vec<&'a str>, Vec<i64>, Vec<&'a str>) {
    let mut streams: Vec<_> = batch.streams.iter().collect();
    streams.sort_unstable_by_key(|(stream, _)| **stream);
    let mut stream_types = Vec::with_capacity(streams.len());
    let mut stream_ids = Vec::with_capacity(streams.len());
    let mut last_revisions = Vec::with_capacity(streams.len());
    let mut created_types = Vec::new();
    for (stream, write) in streams {
        stream_types.push(stream.stream_type().as_str());
        stream_ids.push(stream.stream_id().as_str());
        last_revisions.push(crate::rows::to_i64(write.last_revision.0));
        if write.created {
            created_types.push(stream.stream_type().as_str());
        }
    }
    (stream_types, stream_ids, last_revisions, created_types)
}

/// Why a write failed.
enum WriteFailure {
    /// Committed, but the answer lacks what the appends' outcomes need: they are stored, and a
    /// retry with the same ids finds them.
    Undecodable,
    /// The database refused a statement; the transaction rolled back, nothing was written.
    Refused(tokio_postgres::Error),
    /// The connection failed, or COMMIT did: the transaction may or may not have committed.
    Unknown(tokio_postgres::Error),
    /// A plan met a commit that came after its read; it rolled back.
    Stale,
    /// A statement failed for a passing reason (an outage, a lock timeout) and the server
    /// answered COMMIT with a rollback: nothing was written.
    RolledBack(tokio_postgres::Error),
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
