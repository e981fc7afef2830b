//! [`PostgresStore`]: the engine behind the [`Store`] trait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use runnel_core::{
    AllFilter, AllSlice, AppendLimits, AppendOutcome, AppendRequest, Direction, HeadWatch,
    MAX_PAGE_LIMIT, Page, Position, Revision, Store, StoreError, StoreMetrics, StreamId,
    StreamInfo, StreamName, StreamSlice, StreamType, StreamTypeInfo,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;

use crate::config::{PostgresConfig, redact_url};
use crate::connect::{Endpoint, Role, connect, endpoint, tls};
use crate::error::{PostgresError, pool_error, store_error, timed_out};
use crate::head::{HeadFollower, Pending, read_head};
use crate::metrics::WriterStats;
use crate::migrate::{check_positions, check_session, check_version};
use crate::rows::{EventColumns, column, corrupt_row, recorded_at, to_i64, to_u64};
use crate::writer::{AppendJob, Writer, WriterCommand, WriterSettings};

const READ_STREAM_FORWARD: &str = include_str!("sql/read_stream_forward.sql");
const READ_STREAM_BACKWARD: &str = include_str!("sql/read_stream_backward.sql");
const STREAM_INFO: &str = include_str!("sql/stream_info.sql");
const LIST_STREAM_TYPES: &str = include_str!("sql/list_stream_types.sql");
const LIST_STREAMS: &str = include_str!("sql/list_streams.sql");
const READ_ALL: &str = include_str!("sql/read_all.sql");
const READ_ALL_FILTERED: &str = include_str!("sql/read_all_filtered.sql");
const READ_HEAD: &str = include_str!("sql/read_head.sql");
const SCAN_END: &str = include_str!("sql/scan_end.sql");
const COUNT_EVENTS: &str = include_str!("sql/count_events.sql");

/// The PostgreSQL engine: one node's view of a log that any number of nodes share.
pub struct PostgresStore {
    config: PostgresConfig,
    schema: String,
    pool: Pool,
    commands: Mutex<Option<mpsc::Sender<WriterCommand>>>,
    /// The writer's lanes.
    writers: Mutex<Vec<JoinHandle<()>>>,
    follower: Mutex<Option<JoinHandle<()>>>,
    head: watch::Receiver<Option<Position>>,
    stats: Arc<WriterStats>,
    listening: Arc<AtomicBool>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &redact_url(&self.config.url))
            .field("schema", &self.schema)
            .field("head", &*self.head.borrow())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database `config.url` names, checks that its schema is migrated to
    /// this version, and starts the writer and the head follower. Must be called within a
    /// tokio runtime, which then runs them.
    pub async fn open(config: PostgresConfig) -> Result<Self, PostgresError> {
        config.validate()?;
        let tls = tls(&config)?;
        let reader = endpoint(&config, &tls, Role::Reader)?;
        let unreachable = |error: StoreError| PostgresError::Unreachable {
            url: redact_url(&config.url),
            cause: error.to_string(),
        };
        let client = connect(&reader, config.connect_timeout())
            .await
            .map_err(unreachable)?;
        let schema = check_session(&client, &config.url).await?;
        check_version(&client, &config.url, &schema).await?;
        check_positions(&client, &config.url).await?;
        let statement = client
            .prepare(READ_HEAD)
            .await
            .map_err(|error| PostgresError::database("reading the log head", &error))?;
        let head = read_head(&client, &statement)
            .await
            .map_err(|error| PostgresError::database("reading the log head", &error))?;
        drop(client);

        let pool = Self::pool(&config, reader)?;
        let (head_sender, head_receiver) = watch::channel(head);
        let head_sender = Arc::new(head_sender);
        let stats = Arc::new(WriterStats::default());
        let listening = Arc::new(AtomicBool::new(false));
        let reconnect_backoff = Duration::from_millis(config.reconnect_backoff_ms);
        let pending = Arc::new(Pending::default());
        let settings = WriterSettings {
            endpoint: endpoint(&config, &tls, Role::Writer)?,
            schema: schema.clone(),
            connect_timeout: config.connect_timeout(),
            answer_timeout: config.answer_timeout(),
            reconnect_backoff,
            max_batch_events: config.max_batch_events,
            max_batch_bytes: config.max_batch_bytes,
            visibility_wait: Duration::from_millis(config.visibility_wait_ms),
        };
        let lanes: Vec<Writer> = (0..config.writer_connections)
            .map(|_| {
                Writer::new(
                    settings.clone(),
                    Arc::clone(&head_sender),
                    Arc::clone(&pending),
                    Arc::clone(&stats),
                )
            })
            .collect();
        let follower = HeadFollower {
            endpoint: endpoint(&config, &tls, Role::Listener)?,
            schema: schema.clone(),
            head: head_sender,
            pending,
            poll_interval: Duration::from_millis(config.head_poll_interval_ms),
            connect_timeout: config.connect_timeout(),
            answer_timeout: config.answer_timeout(),
            reconnect_backoff: reconnect_backoff.max(Duration::from_millis(100)),
            listening: Arc::clone(&listening),
        };
        // Listening before open returns: from then on, commits on every node wake this one.
        let listening_now =
            follower
                .listen()
                .await
                .map_err(|cause| PostgresError::Unreachable {
                    url: redact_url(&config.url),
                    cause,
                })?;
        let (commands, receiver) = mpsc::channel(config.max_queued_appends);
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let writers = lanes
            .into_iter()
            .map(|lane| tokio::spawn(lane.run(Arc::clone(&receiver))))
            .collect();
        let follower = tokio::spawn(follower.run(Some(listening_now)));
        tracing::info!(url = %redact_url(&config.url), %schema, ?head, "PostgreSQL store open");
        Ok(Self {
            config,
            schema,
            pool,
            commands: Mutex::new(Some(commands)),
            writers: Mutex::new(writers),
            follower: Mutex::new(Some(follower)),
            head: head_receiver,
            stats,
            listening,
        })
    }

    fn pool(config: &PostgresConfig, reader: Endpoint) -> Result<Pool, PostgresError> {
        let manager = Manager::from_config(
            reader.pg,
            reader.tls,
            ManagerConfig {
                // A connection the server closed is noticed by its task and dropped on
                // recycling; one that fails mid-query is reported as unavailable and dropped.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_millis(config.pool_wait_timeout_ms)))
            .create_timeout(Some(config.connect_timeout()))
            .recycle_timeout(Some(config.connect_timeout()))
            .build()
            .map_err(|error| PostgresError::InvalidConfig {
                reason: format!("building the connection pool: {error}"),
            })
    }

    /// The schema Runnel's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn sender(&self) -> Option<mpsc::Sender<WriterCommand>> {
        self.commands
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Queues a checked append for the writer and waits for its answer.
    async fn enqueue(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let sender = self.sender().ok_or(StoreError::ShuttingDown)?;
        let (reply, answer) = oneshot::channel();
        sender
            .try_send(WriterCommand::Append(AppendJob { request, reply }))
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => StoreError::Overloaded {
                    queued: self.config.max_queued_appends,
                },
                mpsc::error::TrySendError::Closed(_) => StoreError::ShuttingDown,
            })?;
        // The writer answers every append it takes; it drops one unanswered only when it stops.
        answer.await.unwrap_or(Err(StoreError::ShuttingDown))
    }

    /// Runs one read statement on a pooled connection, bounded in time. A connection that does
    /// not answer in time is discarded, not returned to the pool.
    async fn query(
        &self,
        action: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let timeout = self.config.answer_timeout();
        let run = async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(error)) => Err(store_error(action, &error)),
            Err(_) => {
                drop(deadpool_postgres::Object::take(client));
                Err(timed_out(action, timeout))
            }
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping the sender lets the writer finish what is queued and stop.
        drop(
            self.commands
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        if let Some(follower) = self
            .follower
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            follower.abort();
        }
    }
}

fn clamp_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE_LIMIT)
}

/// One more than the page, to learn whether another page follows.
fn fetch_limit(limit: usize) -> i64 {
    limit as i64 + 1
}

fn stream_info_from(
    stream: StreamName,
    row: &tokio_postgres::Row,
    at: usize,
) -> Result<StreamInfo, StoreError> {
    Ok(StreamInfo {
        stream,
        revision: Revision(to_u64(column(row, at)?, "revision")?),
        created_at: recorded_at(column(row, at + 1)?),
        updated_at: recorded_at(column(row, at + 2)?),
    })
}

/// A page of `$all` from the rows of `read_all.sql` or `read_all_filtered.sql`.
fn all_slice(rows: &[tokio_postgres::Row], limit: usize) -> Result<AllSlice, StoreError> {
    let Some(first) = rows.first() else {
        return Err(corrupt_row("the log head row is missing"));
    };
    let last: i64 = column(first, 0)?;
    let head = u64::try_from(last).ok().map(Position);
    let columns = EventColumns { first: 1 };
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        if columns.present(row)? {
            events.push(columns.decode(row)?);
        }
    }
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|event| event.position.next())
    } else {
        None
    };
    Ok(AllSlice { events, next, head })
}

#[async_trait]
impl Store for PostgresStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        request.check(&self.config.limits)?;
        self.enqueue(request).await
    }

    async fn append_system(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        request.check_system(&self.config.limits)?;
        self.enqueue(request).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Revision>,
        direction: Direction,
        limit: usize,
    ) -> Result<StreamSlice, StoreError> {
        let limit = clamp_limit(limit);
        let (sql, from) = match direction {
            Direction::Forward => (READ_STREAM_FORWARD, from.map_or(0, |r| to_i64(r.0))),
            Direction::Backward => (READ_STREAM_BACKWARD, from.map_or(i64::MAX, |r| to_i64(r.0))),
        };
        let rows = self
            .query(
                "reading a stream",
                sql,
                &[
                    &stream.stream_type().as_str(),
                    &stream.stream_id().as_str(),
                    &from,
                    &fetch_limit(limit),
                ],
            )
            .await?;
        if rows.is_empty() {
            return Err(StoreError::StreamNotFound {
                stream: stream.clone(),
            });
        }
        let columns = EventColumns { first: 1 };
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            if columns.present(row)? {
                events.push(columns.decode_in_stream(row, stream)?);
            }
        }
        let next = if events.len() > limit {
            events.pop().map(|event| event.revision)
        } else {
            None
        };
        Ok(StreamSlice { events, next })
    }

    async fn stream_info(&self, stream: &StreamName) -> Result<StreamInfo, StoreError> {
        let rows = self
            .query(
                "reading a stream's head",
                STREAM_INFO,
                &[&stream.stream_type().as_str(), &stream.stream_id().as_str()],
            )
            .await?;
        match rows.first() {
            Some(row) => stream_info_from(stream.clone(), row, 0),
            None => Err(StoreError::StreamNotFound {
                stream: stream.clone(),
            }),
        }
    }

    async fn list_stream_types(
        &self,
        after: Option<&StreamType>,
        limit: usize,
    ) -> Result<Page<StreamTypeInfo, StreamType>, StoreError> {
        let limit = clamp_limit(limit);
        let rows = self
            .query(
                "listing stream types",
                LIST_STREAM_TYPES,
                &[&after.map_or("", StreamType::as_str), &fetch_limit(limit)],
            )
            .await?;
        let more = rows.len() > limit;
        let mut items = Vec::with_capacity(limit);
        for row in rows.iter().take(limit) {
            items.push(StreamTypeInfo {
                stream_type: StreamType::parse(column(row, 0)?).map_err(corrupt_row)?,
                streams: to_u64(column(row, 1)?, "stream count")?,
            });
        }
        let next = if more {
            items.last().map(|item| item.stream_type.clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn list_streams(
        &self,
        stream_type: &StreamType,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Page<StreamInfo, StreamId>, StoreError> {
        let limit = clamp_limit(limit);
        let rows = self
            .query(
                "listing streams",
                LIST_STREAMS,
                &[
                    &stream_type.as_str(),
                    &after.map_or("", StreamId::as_str),
                    &fetch_limit(limit),
                ],
            )
            .await?;
        let more = rows.len() > limit;
        let mut items = Vec::with_capacity(limit);
        for row in rows.iter().take(limit) {
            let id = StreamId::parse(column(row, 0)?).map_err(corrupt_row)?;
            let stream = StreamName::new(stream_type.clone(), id);
            items.push(stream_info_from(stream, row, 1)?);
        }
        let next = if more {
            items.last().map(|item| item.stream.stream_id().clone())
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &AllFilter,
        limit: usize,
    ) -> Result<AllSlice, StoreError> {
        let limit = clamp_limit(limit);
        let start = to_i64(from.0);
        if filter.is_empty() {
            let rows = self
                .query("reading $all", READ_ALL, &[&start, &fetch_limit(limit)])
                .await?;
            return all_slice(&rows, limit);
        }
        // A filtered page scans at most this many events, however few of them match.
        let max_scan = self.config.max_scan_events as i64;
        let stream_types: Vec<&str> = filter.stream_types.iter().map(|t| t.as_str()).collect();
        let event_types: Vec<&str> = filter.event_types.iter().map(|t| t.as_str()).collect();
        let streams: Vec<String> = filter.streams.iter().map(ToString::to_string).collect();
        let rows = self
            .query(
                "reading $all",
                READ_ALL_FILTERED,
                &[
                    &start,
                    &max_scan,
                    &fetch_limit(limit),
                    &stream_types,
                    &event_types,
                    &streams,
                ],
            )
            .await?;
        let mut slice = all_slice(&rows, limit)?;
        if slice.next.is_none()
            && let Some(head) = slice.head
        {
            // The page is not full: either the scan reached the head, or it stopped at its
            // bound before it, and the next page scans on from there.
            let rows = self
                .query(
                    "reading $all",
                    SCAN_END,
                    &[&start, &to_i64(head.0), &max_scan],
                )
                .await?;
            if let Some(row) = rows.first() {
                let end = Position(to_u64(column(row, 0)?, "position")?);
                slice.next = (end < head).then(|| end.next());
            }
        }
        Ok(slice)
    }

    /// Positions have gaps here (each transaction takes 2^16), so the events are counted, on
    /// the primary key's index, stopping at `cap`.
    async fn count_events(
        &self,
        from: Position,
        through: Position,
        cap: u64,
    ) -> Result<u64, StoreError> {
        if through < from || cap == 0 {
            return Ok(0);
        }
        let rows = self
            .query(
                "counting events",
                COUNT_EVENTS,
                &[&to_i64(from.0), &to_i64(through.0), &to_i64(cap)],
            )
            .await?;
        let counted: i64 = match rows.first() {
            Some(row) => column(row, 0)?,
            None => 0,
        };
        to_u64(counted, "event count")
    }

    fn watch_head(&self) -> HeadWatch {
        HeadWatch::new(self.head.clone())
    }

    fn limits(&self) -> AppendLimits {
        self.config.limits
    }

    fn metrics(&self) -> StoreMetrics {
        self.stats.snapshot()
    }

    async fn ready(&self) -> Result<(), StoreError> {
        if self.sender().is_none() {
            return Err(StoreError::ShuttingDown);
        }
        self.query("checking the connection", "SELECT 1", &[])
            .await?;
        if !self.listening.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable {
                cause: "the head listener is not connected to PostgreSQL yet".to_owned(),
            });
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        let Some(sender) = self
            .commands
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        let (done, finished) = oneshot::channel();
        let sent = sender.send(WriterCommand::Close(done)).await.is_ok();
        // Without a sender, the lanes that wait on an empty queue stop, which lets the one that
        // took the close refuse whatever came after it.
        drop(sender);
        if sent {
            let _ = finished.await;
        }
        let writers = std::mem::take(
            &mut *self
                .writers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for writer in writers {
            let _ = writer.await;
        }
        let follower = self
            .follower
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(follower) = follower {
            follower.abort();
            let _ = follower.await;
        }
        self.listening.store(false, Ordering::Relaxed);
        self.pool.close();
        tracing::info!(schema = %self.schema, "PostgreSQL store closed");
        Ok(())
    }
}
