//! The writer: one thread owns the active segment and turns queued appends into group commits.
//!
//! It takes everything queued (up to `max_batch_bytes`), checks each append against the stream
//! heads it knows (what this batch and the batches still being indexed wrote, the heads it
//! remembers, the index), numbers the events, writes the batch with one write and one
//! fdatasync, acknowledges the batch's appends, and hands the batch to the indexer. A failed
//! check rejects that append alone. A failed write or sync poisons the engine: nothing more is
//! written, and what is in flight fails.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Instant;

use runnel_core::idempotency::{IdSite, resolve_ids};
use runnel_core::{AppendOutcome, AppendRequest, Position, RecordedAt, Revision, StoreError};
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;

use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::index::{EventLocation, IndexReader, IndexUpdate, IndexedEvent, StreamHead, stream_key};
use crate::io::SegmentFile;
use crate::log::format::{self, BATCH_HEADER_FRAME_LEN, BatchHeader, EventRecordRef};
use crate::log::indexer::{self, IndexerCommand};
use crate::log::reader::{Location, read_event_at};
use crate::log::segment::Segment;
use crate::shared::Shared;

/// Synced batches waiting for the indexer; beyond this the writer waits (back-pressure). It
/// also bounds how long a read may wait for the index to catch up with acknowledged appends.
const INDEX_QUEUE_BATCHES: usize = 8;

/// Stream heads the writer remembers, so that checking an append against its stream's end
/// rarely needs an index lookup: ~100 bytes each, about 10 MB at most.
const HEAD_CACHE_STREAMS: usize = 100_000;

pub(crate) type AppendReply = oneshot::Sender<Result<AppendOutcome, StoreError>>;

#[derive(Debug)]
pub(crate) struct AppendJob {
    pub(crate) request: AppendRequest,
    pub(crate) reply: AppendReply,
}

#[derive(Debug)]
pub(crate) enum WriterCommand {
    Append(AppendJob),
    /// Finish what is queued before this, make the index durable, and stop.
    Close(oneshot::Sender<()>),
}

/// The bytes an append may take on disk, for batch planning.
fn job_bytes(request: &AppendRequest) -> usize {
    request
        .events
        .iter()
        .map(|event| {
            format::event_frame_len_bound(
                &request.stream,
                &event.event_type,
                &event.data,
                event.metadata.as_ref(),
            )
        })
        .sum()
}

#[derive(Debug)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
    active: Arc<Segment>,
    write_offset: u64,
    next_position: Position,
    spare: Option<std::thread::JoinHandle<Result<Arc<dyn SegmentFile>, StoreError>>>,
    to_indexer: SyncSender<IndexerCommand>,
    indexer: Option<std::thread::JoinHandle<()>>,
    /// What synced batches that the indexer has not yet indexed changed.
    inflight: Inflight,
    head_cache: HeadCache,
    /// The last durable position, for followers; dropped when the writer stops.
    head: Option<watch::Sender<Option<Position>>>,
}

/// The heads of recently written or checked streams. Only the writer changes stream heads, so
/// what it remembers is never stale; a stream it forgot is looked up in the index again.
#[derive(Debug, Default)]
struct HeadCache {
    heads: HashMap<String, StreamHead>,
}

impl HeadCache {
    fn get(&self, key: &str) -> Option<StreamHead> {
        self.heads.get(key).copied()
    }

    fn insert(&mut self, key: &str, head: StreamHead) {
        // Forgetting everything at once keeps the bound without per-entry bookkeeping; the
        // streams in use come back with one index lookup each.
        if self.heads.len() >= HEAD_CACHE_STREAMS && !self.heads.contains_key(key) {
            self.heads.clear();
        }
        match self.heads.get_mut(key) {
            Some(known) => *known = head,
            None => {
                self.heads.insert(key.to_owned(), head);
            }
        }
    }

    fn record(&mut self, heads: &HashMap<String, (StreamHead, bool)>) {
        for (key, (head, _)) in heads {
            self.insert(key, *head);
        }
    }
}

/// Batches the indexer holds are in the log but not yet in the index: the writer keeps their
/// stream heads and client ids, so the appends that follow are checked against them.
#[derive(Debug, Default)]
struct Inflight {
    /// Stream key → its newest head, and the `next_position` of the batch that set it.
    heads: HashMap<String, (StreamHead, Position)>,
    ids: HashMap<Uuid, IdSite>,
    /// The indexer's progress when this was last pruned.
    pruned_at: Position,
}

impl Inflight {
    /// Forgets what the index now holds.
    fn prune(&mut self, indexed_next: Position) {
        if indexed_next == self.pruned_at {
            return;
        }
        self.heads.retain(|_, (_, set_by)| *set_by > indexed_next);
        self.ids.retain(|_, site| site.position >= indexed_next);
        self.pruned_at = indexed_next;
    }

    fn record(
        &mut self,
        heads: &HashMap<String, (StreamHead, bool)>,
        ids: &HashMap<Uuid, IdSite>,
        next_position: Position,
    ) {
        for (key, (head, _)) in heads {
            self.heads.insert(key.clone(), (*head, next_position));
        }
        for (id, site) in ids {
            self.ids.insert(*id, site.clone());
        }
    }
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        head: watch::Sender<Option<Position>>,
        active: Arc<Segment>,
        write_offset: u64,
        next_position: Position,
    ) -> Result<Self, StoreError> {
        let (to_indexer, work) = std::sync::mpsc::sync_channel(INDEX_QUEUE_BATCHES);
        let indexer_shared = Arc::clone(&shared);
        let indexer = std::thread::Builder::new()
            .name("runnel-indexer".to_owned())
            .spawn(move || indexer::run(indexer_shared, work))
            .map_err(|e| StoreError::io("starting the indexer thread", e))?;
        let mut writer = Self {
            shared,
            active,
            write_offset,
            next_position,
            spare: None,
            to_indexer,
            indexer: Some(indexer),
            inflight: Inflight {
                pruned_at: next_position,
                ..Inflight::default()
            },
            head_cache: HeadCache::default(),
            head: Some(head),
        };
        writer.prepare_spare();
        Ok(writer)
    }

    /// The writer thread's body.
    pub(crate) fn run(mut self, mut commands: mpsc::Receiver<WriterCommand>) {
        let max_batch_bytes = self.shared.config.max_batch_bytes;
        let mut carried: Option<AppendJob> = None;
        loop {
            let first = match carried.take() {
                Some(job) => job,
                None => match commands.blocking_recv() {
                    Some(WriterCommand::Append(job)) => job,
                    Some(WriterCommand::Close(done)) => return self.close(commands, done),
                    None => return self.finish(),
                },
            };
            let mut bytes = job_bytes(&first.request);
            let mut jobs = vec![first];
            let mut close = None;
            while bytes < max_batch_bytes {
                match commands.try_recv() {
                    Ok(WriterCommand::Append(job)) => {
                        let more = job_bytes(&job.request);
                        if bytes + more > max_batch_bytes {
                            carried = Some(job);
                            break;
                        }
                        bytes += more;
                        jobs.push(job);
                    }
                    Ok(WriterCommand::Close(done)) => {
                        close = Some(done);
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit(jobs);
            if let Some(done) = close {
                if let Some(job) = carried.take() {
                    self.commit(vec![job]);
                }
                return self.close(commands, done);
            }
        }
    }

    fn close(mut self, mut commands: mpsc::Receiver<WriterCommand>, done: oneshot::Sender<()>) {
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
        self.finish();
        let _ = done.send(());
    }

    /// Lets the indexer finish what is queued (it makes the index durable), waits for it (the
    /// index must be released before the directory can be opened again), and closes the head.
    fn finish(&mut self) {
        let (done, finished) = oneshot::channel();
        if self.to_indexer.send(IndexerCommand::Close(done)).is_ok() {
            let _ = finished.blocking_recv();
        }
        if let Some(indexer) = self.indexer.take()
            && indexer.join().is_err()
        {
            tracing::error!("the indexer thread panicked");
        }
        // Followers see the head close: the store writes nothing more.
        self.head = None;
        self.remove_spare();
    }

    /// Commits a group of appends: as one batch, or as several where a segment fills up.
    fn commit(&mut self, jobs: Vec<AppendJob>) {
        if let Err(error) = self.shared.check_poison() {
            for job in jobs {
                let _ = job.reply.send(Err(clone_poison(&error)));
            }
            return;
        }
        let mut batch = Batch::new(self.next_position, BATCH_HEADER_FRAME_LEN);
        let mut reader = match self.fresh_reader() {
            Ok(reader) => reader,
            Err(error) => return self.fail_all(jobs, error),
        };
        let mut jobs = jobs.into_iter();
        while let Some(job) = jobs.next() {
            let needed = job_bytes(&job.request) as u64;
            if self.write_offset + batch.len() as u64 + needed > self.active.capacity_bytes {
                let flushed = self
                    .flush(batch)
                    .and_then(|()| self.roll())
                    .and_then(|()| self.fresh_reader());
                match flushed {
                    Ok(fresh) => reader = fresh,
                    Err(error) => {
                        let rest: Vec<AppendJob> = std::iter::once(job).chain(jobs).collect();
                        return self.fail_all(rest, error);
                    }
                }
                batch = Batch::new(self.next_position, BATCH_HEADER_FRAME_LEN);
            }
            let outcome = batch.admit(
                &self.shared,
                &self.inflight,
                &mut self.head_cache,
                &reader,
                &job.request,
            );
            batch.replies.push((job.reply, outcome));
        }
        if let Err(error) = self.flush(batch) {
            tracing::debug!(%error, "batch failed");
        }
    }

    /// An index snapshot that, with `inflight`, reflects every batch written so far. The
    /// indexer publishes its progress after its commit, so a snapshot begun after reading the
    /// progress holds everything the pruned entries described.
    fn fresh_reader(&mut self) -> Result<IndexReader, StoreError> {
        let indexed_next = Position(self.shared.indexed_next.load(Ordering::Acquire));
        self.inflight.prune(indexed_next);
        self.shared.index.reader()
    }

    fn fail_all(&self, jobs: Vec<AppendJob>, error: StoreError) {
        self.shared.poison(&error);
        for job in jobs {
            let _ = job.reply.send(Err(StoreError::Poisoned {
                cause: error.to_string(),
            }));
        }
    }

    /// Writes and syncs `batch`, moves the head, answers its appends, then hands the batch to
    /// the indexer. An append is acknowledged once it is durable in the log: `$all` readers read
    /// the log up to the head without the index, and the other reads wait for the index to
    /// catch up (see `Shared::caught_up`). On failure the engine is poisoned and every append of the
    /// batch fails (errors found by the checks stay as they are).
    fn flush(&mut self, batch: Batch) -> Result<(), StoreError> {
        let Batch {
            mut buffer,
            first_position,
            next_position,
            mut index,
            heads,
            ids,
            replies,
            ..
        } = batch;
        if next_position == first_position {
            // Nothing to write: the answers (conflicts, retries of earlier appends) rest on
            // batches that were synced before this one was assembled.
            for (reply, outcome) in replies {
                let _ = reply.send(outcome);
            }
            return Ok(());
        }
        if let Err(error) = self.write_batch(&mut buffer, first_position, next_position, &mut index)
        {
            self.shared.poison(&error);
            for (reply, outcome) in replies {
                let _ = reply.send(outcome.and(Err(StoreError::Poisoned {
                    cause: error.to_string(),
                })));
            }
            return Err(StoreError::Poisoned {
                cause: error.to_string(),
            });
        }
        // In this order: a reader that sees the head finds where the batch starts, and every
        // acknowledged event is below both the head and `synced_next`.
        if let Some((first, at)) = index.batches.last() {
            self.shared.add_unindexed(*first, *at);
        }
        self.shared
            .synced_next
            .store(next_position.0, Ordering::Release);
        if let Some(head) = &self.head {
            head.send_replace(Some(Position(next_position.0 - 1)));
        }
        for (reply, outcome) in replies {
            let _ = reply.send(outcome);
        }
        self.inflight.record(&heads, &ids, next_position);
        self.head_cache.record(&heads);
        index.streams = heads
            .into_iter()
            .map(|(key, (head, created))| (key, head, created))
            .collect();
        self.to_indexer
            .send(IndexerCommand::Index(index))
            .map_err(|_| {
                let error = StoreError::Poisoned {
                    cause: "the indexer stopped".to_owned(),
                };
                self.shared.poison(&error);
                error
            })
    }

    fn write_batch(
        &mut self,
        buffer: &mut [u8],
        first_position: Position,
        next_position: Position,
        index: &mut IndexUpdate,
    ) -> Result<(), StoreError> {
        let event_count = (next_position.0 - first_position.0) as u32;
        let body = &buffer[BATCH_HEADER_FRAME_LEN..];
        let header = BatchHeader {
            first_position,
            event_count,
            body_len: body.len() as u32,
            body_crc: crc32c::crc32c(body),
        };
        let mut header_frame = Vec::with_capacity(BATCH_HEADER_FRAME_LEN);
        format::encode_batch_header(&header, &mut header_frame);
        assert_eq!(header_frame.len(), BATCH_HEADER_FRAME_LEN);
        buffer[..BATCH_HEADER_FRAME_LEN].copy_from_slice(&header_frame);
        assert!(
            self.write_offset + buffer.len() as u64 <= self.active.capacity_bytes,
            "a batch must fit in its segment"
        );

        let at = self.write_offset;
        let segment = &self.active;
        segment.file.write_all_at(buffer, at).map_err(|e| {
            StoreError::io(
                format!("writing {} at offset {at}", segment.path.display()),
                e,
            )
        })?;
        let synced = Instant::now();
        segment
            .file
            .sync_data()
            .map_err(|e| StoreError::io(format!("syncing {}", segment.path.display()), e))?;
        let fsync = synced.elapsed();
        self.write_offset += buffer.len() as u64;
        self.next_position = next_position;
        self.shared
            .stats
            .record_batch(u64::from(event_count), buffer.len() as u64, fsync);

        // Event locations were recorded relative to the batch; now the batch has a place.
        let location = Location {
            segment: segment.first_position,
            offset: at,
        };
        index.batches.push((first_position, location));
        for event in &mut index.events {
            event.at.location = Location {
                segment: segment.first_position,
                offset: at + event.at.location.offset,
            };
        }
        index.next_position = next_position;
        Ok(())
    }

    /// Moves to a new segment that starts at the next position.
    fn roll(&mut self) -> Result<(), StoreError> {
        let spare = match self.spare.take().map(std::thread::JoinHandle::join) {
            Some(Ok(Ok(file))) => Some(file),
            Some(Ok(Err(error))) => {
                tracing::warn!(%error, "preparing a spare segment failed; creating one now");
                None
            }
            Some(Err(_)) => None,
            None => None,
        };
        let segment = match spare {
            Some(file) => Segment::install_spare(
                &*self.shared.io,
                &self.shared.log_dir,
                file,
                self.next_position,
                self.shared.config.segment_bytes,
            )?,
            None => Segment::create(
                &*self.shared.io,
                &self.shared.log_dir,
                self.next_position,
                self.shared.config.segment_bytes,
            )?,
        };
        let segment = Arc::new(segment);
        self.shared.segments.insert(Arc::clone(&segment));
        self.active = segment;
        self.write_offset = format::SEGMENT_HEADER_LEN;
        self.prepare_spare();
        Ok(())
    }

    /// Zero-fills the next segment in the background, so a roll costs a header write, not a
    /// write of the whole segment.
    fn prepare_spare(&mut self) {
        let io = Arc::clone(&self.shared.io);
        let dir = self.shared.log_dir.clone();
        let bytes = self.shared.config.segment_bytes;
        let spawned = std::thread::Builder::new()
            .name("runnel-spare-segment".to_owned())
            .spawn(move || Segment::prepare_spare(&*io, &dir, bytes));
        self.spare = spawned.ok();
    }

    fn remove_spare(&mut self) {
        if let Some(Ok(Ok(_))) = self.spare.take().map(std::thread::JoinHandle::join) {
            Segment::remove_spare(&*self.shared.io, &self.shared.log_dir);
        }
    }
}

fn clone_poison(error: &StoreError) -> StoreError {
    StoreError::Poisoned {
        cause: match error {
            StoreError::Poisoned { cause } => cause.clone(),
            other => other.to_string(),
        },
    }
}

/// One group commit being assembled: the frames, the index entries, and the answers.
#[derive(Debug)]
struct Batch {
    /// Header space, then event frames.
    buffer: Vec<u8>,
    first_position: Position,
    next_position: Position,
    recorded_at: RecordedAt,
    index: IndexUpdate,
    /// Heads of the streams this batch wrote, and whether it created them.
    heads: HashMap<String, (StreamHead, bool)>,
    /// Client-chosen ids this batch wrote.
    ids: HashMap<Uuid, IdSite>,
    replies: Vec<(AppendReply, Result<AppendOutcome, StoreError>)>,
}

impl Batch {
    fn new(first_position: Position, header_bytes: usize) -> Self {
        Self {
            buffer: vec![0u8; header_bytes],
            first_position,
            next_position: first_position,
            recorded_at: RecordedAt::now(),
            index: IndexUpdate::default(),
            heads: HashMap::new(),
            ids: HashMap::new(),
            replies: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.buffer.len()
    }

    /// Checks one append against the current state and, if it passes, adds its events.
    fn admit(
        &mut self,
        shared: &Shared,
        inflight: &Inflight,
        head_cache: &mut HeadCache,
        reader: &IndexReader,
        request: &AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        let key = stream_key(&request.stream);
        let current = match (self.heads.get(&key), inflight.heads.get(&key)) {
            (Some((head, _)), _) | (None, Some((head, _))) => Some(*head),
            (None, None) => match head_cache.get(&key) {
                Some(head) => Some(head),
                None => {
                    let indexed = reader.stream_head(&key)?;
                    if let Some(head) = indexed {
                        head_cache.insert(&key, head);
                    }
                    indexed
                }
            },
        };
        if let Some(retried) = self.check_ids(shared, inflight, reader, request)? {
            return Ok(retried);
        }
        let current_revision = current.map(|head| head.last_revision);
        if !request.expected.is_satisfied_by(current_revision) {
            return Err(StoreError::WrongExpectedRevision {
                stream: request.stream.clone(),
                expected: request.expected,
                current: current_revision,
            });
        }
        Ok(self.write(key, current, request))
    }

    /// Detects a retry of an append already written (answered with the original outcome) and
    /// ids that exist elsewhere, as every engine does: see [`runnel_core::idempotency`].
    fn check_ids(
        &self,
        shared: &Shared,
        inflight: &Inflight,
        reader: &IndexReader,
        request: &AppendRequest,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        resolve_ids(request, |id| self.locate(shared, inflight, reader, id))
    }

    fn locate(
        &self,
        shared: &Shared,
        inflight: &Inflight,
        reader: &IndexReader,
        id: Uuid,
    ) -> Result<Option<IdSite>, StoreError> {
        if let Some(site) = self.ids.get(&id).or_else(|| inflight.ids.get(&id)) {
            return Ok(Some(site.clone()));
        }
        let Some(EventLocation { location, .. }) = reader.event_by_id(id)? else {
            return Ok(None);
        };
        let segment = shared
            .segments
            .get(location.segment)
            .ok_or_else(|| StoreError::Index {
                action: "locating an event by id".to_owned(),
                cause: format!(
                    "the index names segment {} which does not exist",
                    location.segment
                ),
            })?;
        let event = read_event_at(&segment, location.offset)?;
        Ok(Some(IdSite {
            stream: event.stream,
            revision: event.revision,
            position: event.position,
        }))
    }

    fn write(
        &mut self,
        key: String,
        current: Option<StreamHead>,
        request: &AppendRequest,
    ) -> AppendOutcome {
        let first_revision = current.map_or(Revision(0), |head| head.last_revision.next());
        let first_position = self.next_position;
        let mut revision = first_revision;
        for event in &request.events {
            let id = event.id.unwrap_or_else(Uuid::now_v7);
            let position = self.next_position;
            let offset_in_batch = self.buffer.len() as u64;
            format::encode_event(
                &EventRecordRef {
                    position,
                    revision,
                    recorded_at: self.recorded_at,
                    id,
                    stream: &request.stream,
                    event_type: &event.event_type,
                    data: &event.data,
                    metadata: event.metadata.as_ref(),
                },
                &mut self.buffer,
            );
            self.index.events.push(IndexedEvent {
                stream_key: key.clone(),
                revision,
                id,
                at: EventLocation {
                    position,
                    location: Location {
                        segment: Position(0),
                        offset: offset_in_batch,
                    },
                },
            });
            if event.id.is_some() {
                self.ids.insert(
                    id,
                    IdSite {
                        stream: request.stream.clone(),
                        revision,
                        position,
                    },
                );
            }
            self.next_position = position.next();
            revision = revision.next();
        }
        let last_revision = Revision(revision.0 - 1);
        let head = StreamHead {
            last_revision,
            created_at: current.map_or(self.recorded_at, |head| head.created_at),
            updated_at: self.recorded_at,
        };
        match self.heads.entry(key) {
            Entry::Occupied(mut entry) => entry.get_mut().0 = head,
            Entry::Vacant(entry) => {
                entry.insert((head, current.is_none()));
            }
        }
        AppendOutcome {
            stream: request.stream.clone(),
            first_revision,
            last_revision,
            first_position,
            last_position: Position(self.next_position.0 - 1),
        }
    }
}
