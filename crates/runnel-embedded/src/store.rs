//! [`EmbeddedStore`]: the engine behind the [`Store`] trait.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use runnel_core::{
    AllFilter, AllSlice, AppendLimits, AppendOutcome, AppendRequest, Direction, HeadWatch,
    MAX_PAGE_LIMIT, Page, Position, Revision, Store, StoreError, StoreMetrics, StreamId,
    StreamInfo, StreamName, StreamSlice, StreamType, StreamTypeInfo,
};
use tokio::sync::{mpsc, oneshot};

use crate::config::EngineConfig;
use crate::index::{Index, StreamHead, stream_key};
use crate::io::{OsIo, StorageIo};
use crate::log::format::SEGMENT_HEADER_LEN;
use crate::log::reader::{LogScanner, ScannedFrame, read_event_at};
use crate::log::recovery::{self, Reindexer};
use crate::log::segment::{Segment, Segments};
use crate::log::writer::{AppendJob, Writer, WriterCommand};
use crate::shared::{FSYNC_BUCKETS_MICROS, Shared, StatsSnapshot};

/// The log lives in this subdirectory of the data directory, the index beside it.
pub(crate) const LOG_DIR: &str = "log";
pub(crate) const INDEX_FILE: &str = "index.redb";

/// The embedded engine: a segmented log with group commit, indexed in redb.
#[derive(Debug)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    commands: Mutex<Option<mpsc::Sender<WriterCommand>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What `open` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub events: u64,
    pub reindexed_events: u64,
    /// Where a torn tail (an unacknowledged write interrupted by a crash) was cut.
    pub torn_tail_cut_at: Option<(std::path::PathBuf, u64)>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir`, recovering from whatever a crash left.
    pub fn open(dir: &Path, config: EngineConfig) -> Result<Self, StoreError> {
        Self::open_with_io(dir, config, Arc::new(OsIo))
    }

    /// Like [`EmbeddedStore::open`], with the log's file I/O going through `io`.
    pub fn open_with_io(
        dir: &Path,
        config: EngineConfig,
        io: Arc<dyn StorageIo>,
    ) -> Result<Self, StoreError> {
        Self::open_reporting(dir, config, io).map(|(store, _)| store)
    }

    pub fn open_reporting(
        dir: &Path,
        config: EngineConfig,
        io: Arc<dyn StorageIo>,
    ) -> Result<(Self, OpenReport), StoreError> {
        config.validate()?;
        let log_dir = dir.join(LOG_DIR);
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        io.create_dir_all(&log_dir)
            .map_err(|e| StoreError::io(format!("creating {}", log_dir.display()), e))?;
        let index = Index::open(&dir.join(INDEX_FILE), config.index_cache_bytes)?;
        let mut segments = recovery::open_segments(&*io, &log_dir, true)?;
        if segments.is_empty() {
            let indexed = index.next_position()?;
            if indexed.0 > 0 {
                return Err(StoreError::Corrupt {
                    file: log_dir,
                    offset: 0,
                    reason: format!(
                        "the log has no segments but the index covers {indexed} events"
                    ),
                });
            }
            segments.push(Arc::new(Segment::create(
                &*io,
                &log_dir,
                Position(0),
                config.segment_bytes,
            )?));
        }
        let mut reindexer = Reindexer::new(&index)?;
        let start = recovery::start_point(&segments, &index, config.verify_on_open)?;
        let end = recovery::walk(
            &segments,
            index.next_position()?,
            start,
            &config,
            true,
            &mut reindexer,
        )?;
        let reindexed_events = reindexer.finish()?;
        let report = OpenReport {
            events: end.next_position.0,
            reindexed_events,
            torn_tail_cut_at: end.torn.clone(),
        };
        let registry = Segments::default();
        for segment in &segments {
            registry.insert(Arc::clone(segment));
        }
        let active = segments
            .last()
            .cloned()
            .ok_or_else(|| StoreError::InvalidConfig {
                reason: "no segment to write to".to_owned(),
            })?;
        debug_assert!(end.write_offset >= SEGMENT_HEADER_LEN);
        let head = end.next_position.0.checked_sub(1).map(Position);
        let queue = config.max_queued_appends;
        let (head_sender, head_receiver) = tokio::sync::watch::channel(head);
        let shared = Arc::new(Shared::new(
            log_dir,
            io,
            index,
            registry,
            config,
            head_receiver,
            end.next_position,
        ));
        let writer = Writer::new(
            Arc::clone(&shared),
            head_sender,
            active,
            end.write_offset,
            end.next_position,
        )?;
        let (commands, receiver) = mpsc::channel(queue);
        let handle = std::thread::Builder::new()
            .name("runnel-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|e| StoreError::io("starting the writer thread", e))?;
        tracing::info!(
            events = report.events,
            reindexed = report.reindexed_events,
            "embedded store open"
        );
        Ok((
            Self {
                shared,
                commands: Mutex::new(Some(commands)),
                writer: Mutex::new(Some(handle)),
            },
            report,
        ))
    }

    /// The writer's counters (batches, events, bytes, fsync latencies).
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    fn sender(&self) -> Option<mpsc::Sender<WriterCommand>> {
        self.commands
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn take_writer(&self) -> Option<JoinHandle<()>> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn join_writer(handle: Option<JoinHandle<()>>) {
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("the writer thread panicked");
        }
    }

    /// Queues a checked append for the writer and waits for its answer.
    async fn enqueue(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.shared.check_poison()?;
        let sender = self.sender().ok_or(StoreError::ShuttingDown)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(WriterCommand::Append(AppendJob { request, reply }))
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        match answer.await {
            Ok(outcome) => outcome,
            // The writer went away without answering: it stopped (closed or crashed) before
            // this append was written, or while it was.
            Err(_) => Err(self
                .shared
                .check_poison()
                .err()
                .unwrap_or(StoreError::ShuttingDown)),
        }
    }

    /// Runs a blocking read of the index on tokio's blocking pool, once the index holds every
    /// append acknowledged before the call.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.shared.caught_up().await?;
        self.read_log(read).await
    }

    /// Runs a blocking read on tokio's blocking pool, without waiting for the index.
    async fn read_log<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || read(&shared))
            .await
            .map_err(|error| StoreError::Index {
                action: "running a read".to_owned(),
                cause: error.to_string(),
            })?
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Dropping the sender lets the writer finish what is queued and stop; joining it
        // releases the index's file lock before the directory can be opened again.
        drop(
            self.commands
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        Self::join_writer(self.take_writer());
    }
}

fn clamp_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE_LIMIT)
}

fn stream_info(stream: StreamName, head: StreamHead) -> StreamInfo {
    StreamInfo {
        stream,
        revision: head.last_revision,
        created_at: head.created_at,
        updated_at: head.updated_at,
    }
}

fn read_stream_blocking(
    shared: &Shared,
    stream: &StreamName,
    from: Option<Revision>,
    direction: Direction,
    limit: usize,
) -> Result<StreamSlice, StoreError> {
    let limit = clamp_limit(limit);
    let reader = shared.index.reader()?;
    let key = stream_key(stream);
    let head = reader
        .stream_head(&key)?
        .ok_or_else(|| StoreError::StreamNotFound {
            stream: stream.clone(),
        })?;
    let forward = direction == Direction::Forward;
    let from = match (forward, from) {
        (true, from) => from.unwrap_or(Revision(0)),
        (false, None) => head.last_revision,
        (false, Some(from)) => from.min(head.last_revision),
    };
    let mut entries = reader.stream_events(&key, from, forward, limit + 1)?;
    let next = if entries.len() > limit {
        entries.pop().map(|(revision, _)| revision)
    } else {
        None
    };
    let mut events = Vec::with_capacity(entries.len());
    for (revision, at) in entries {
        let segment =
            shared
                .segments
                .get(at.location.segment)
                .ok_or_else(|| StoreError::Index {
                    action: "reading a stream".to_owned(),
                    cause: format!(
                        "the index names segment {} which does not exist",
                        at.location.segment
                    ),
                })?;
        let event = read_event_at(&segment, at.location.offset)?;
        if event.position != at.position || event.revision != revision || event.stream != *stream {
            return Err(segment.corrupt(
                at.location.offset,
                format!(
                    "the index says {stream}@{revision} (position {}) is here, the log holds {}@{} (position {})",
                    at.position, event.stream, event.revision, event.position
                ),
            ));
        }
        events.push(event);
    }
    Ok(StreamSlice { events, next })
}

fn read_all_blocking(
    shared: &Shared,
    from: Position,
    filter: &AllFilter,
    limit: usize,
) -> Result<AllSlice, StoreError> {
    let limit = clamp_limit(limit);
    let head = shared.head();
    let empty = |head| AllSlice {
        events: Vec::new(),
        next: None,
        head,
    };
    let Some(last) = head else {
        return Ok(empty(head));
    };
    if from > last {
        return Ok(empty(head));
    }
    let location = shared.batch_containing(from)?;
    let segment = shared
        .segments
        .get(location.segment)
        .ok_or_else(|| StoreError::Index {
            action: "reading $all".to_owned(),
            cause: format!(
                "the index names segment {} which does not exist",
                location.segment
            ),
        })?;
    let mut scanner = LogScanner::new(
        &shared.segments,
        segment,
        location.offset,
        shared.config.scan_chunk_bytes,
    );
    let mut events = Vec::new();
    let mut scanned = 0usize;
    let continue_after = |position: Position| (position < last).then(|| position.next());
    while let Some(frame) = scanner.next_frame()? {
        let ScannedFrame::Event(event) = frame else {
            continue;
        };
        if event.position < from {
            continue;
        }
        if event.position > last {
            break;
        }
        let position = event.position;
        scanned += 1;
        if filter.matches(&event.stream, &event.event_type) {
            events.push(event);
            if events.len() == limit {
                return Ok(AllSlice {
                    events,
                    next: continue_after(position),
                    head,
                });
            }
        }
        if scanned >= shared.config.max_scan_events {
            return Ok(AllSlice {
                events,
                next: continue_after(position),
                head,
            });
        }
        if position == last {
            // Stop without decoding another frame: what follows the durable head may be a
            // batch the writer is writing at this moment, whose frames are not whole yet.
            break;
        }
    }
    Ok(AllSlice {
        events,
        next: None,
        head,
    })
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        request.check(&self.shared.config.limits)?;
        self.enqueue(request).await
    }

    async fn append_system(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        request.check_system(&self.shared.config.limits)?;
        self.enqueue(request).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Revision>,
        direction: Direction,
        limit: usize,
    ) -> Result<StreamSlice, StoreError> {
        let stream = stream.clone();
        self.read(move |shared| read_stream_blocking(shared, &stream, from, direction, limit))
            .await
    }

    async fn stream_info(&self, stream: &StreamName) -> Result<StreamInfo, StoreError> {
        let stream = stream.clone();
        self.read(move |shared| {
            let head = shared.index.reader()?.stream_head(&stream_key(&stream))?;
            match head {
                Some(head) => Ok(stream_info(stream, head)),
                None => Err(StoreError::StreamNotFound { stream }),
            }
        })
        .await
    }

    async fn list_stream_types(
        &self,
        after: Option<&StreamType>,
        limit: usize,
    ) -> Result<Page<StreamTypeInfo, StreamType>, StoreError> {
        let after = after.cloned();
        let limit = clamp_limit(limit);
        self.read(move |shared| {
            let (found, more) = shared
                .index
                .reader()?
                .stream_types(after.as_ref().map(StreamType::as_str), limit)?;
            let mut items = Vec::with_capacity(found.len());
            for (name, streams) in found {
                items.push(StreamTypeInfo {
                    stream_type: StreamType::parse(&name).map_err(|e| StoreError::Index {
                        action: "listing stream types".to_owned(),
                        cause: e.to_string(),
                    })?,
                    streams,
                });
            }
            let next = if more {
                items.last().map(|item| item.stream_type.clone())
            } else {
                None
            };
            Ok(Page { items, next })
        })
        .await
    }

    async fn list_streams(
        &self,
        stream_type: &StreamType,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Page<StreamInfo, StreamId>, StoreError> {
        let stream_type = stream_type.clone();
        let after = after.cloned();
        let limit = clamp_limit(limit);
        self.read(move |shared| {
            let (found, more) = shared.index.reader()?.streams_of_type(
                stream_type.as_str(),
                after.as_ref().map(StreamId::as_str),
                limit,
            )?;
            let mut items = Vec::with_capacity(found.len());
            for (id, head) in found {
                let id = StreamId::parse(&id).map_err(|e| StoreError::Index {
                    action: "listing streams".to_owned(),
                    cause: e.to_string(),
                })?;
                items.push(stream_info(StreamName::new(stream_type.clone(), id), head));
            }
            let next = if more {
                items.last().map(|item| item.stream.stream_id().clone())
            } else {
                None
            };
            Ok(Page { items, next })
        })
        .await
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &AllFilter,
        limit: usize,
    ) -> Result<AllSlice, StoreError> {
        let filter = filter.clone();
        // `$all` reads the log up to the durable head and finds its first batch without the
        // index where the index does not have it yet: no wait for the indexer.
        self.read_log(move |shared| read_all_blocking(shared, from, &filter, limit))
            .await
    }

    fn watch_head(&self) -> HeadWatch {
        HeadWatch::new(self.shared.head.clone())
    }

    fn limits(&self) -> AppendLimits {
        self.shared.config.limits
    }

    fn metrics(&self) -> StoreMetrics {
        let stats = self.stats();
        StoreMetrics {
            commits: stats.batches,
            events_written: stats.events_written,
            bytes_written: stats.bytes_written,
            sync_bucket_bounds_micros: FSYNC_BUCKETS_MICROS.to_vec(),
            sync_bucket_counts: stats.fsync_buckets.to_vec(),
            sync_micros_total: stats.fsync_micros_total,
        }
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.shared.check_poison()?;
        if self.sender().is_none() {
            return Err(StoreError::ShuttingDown);
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        let Some(sender) = self.sender() else {
            return Ok(());
        };
        let (done, finished) = oneshot::channel();
        if sender.send(WriterCommand::Close(done)).await.is_ok() {
            let _ = finished.await;
        }
        drop(sender);
        drop(
            self.commands
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        // The writer has answered `Close`, so joining it is quick; still, not on a runtime thread.
        let handle = self.take_writer();
        let _ = tokio::task::spawn_blocking(move || Self::join_writer(handle)).await;
        Ok(())
    }
}
