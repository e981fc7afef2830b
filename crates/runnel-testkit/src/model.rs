//! The reference model: the semantics of `runnel_core::Store` written as plainly as possible,
//! one mutex over a vector of events and a few maps, so that it can be read and believed.
//!
//! It is the oracle of the property tests and it passes the conformance suite itself, which is
//! how the suite is proven before any engine runs it. Nothing here is meant to be fast.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use runnel_core::{
    AllFilter, AllSlice, AppendLimits, AppendOutcome, AppendRequest, Direction, HeadWatch,
    MAX_PAGE_LIMIT, Page, Position, RecordedAt, RecordedEvent, Revision, Store, StoreError,
    StreamId, StreamInfo, StreamName, StreamSlice, StreamType, StreamTypeInfo,
};
use tokio::sync::watch;
use uuid::Uuid;

/// Every read clamps its limit into `1..=MAX_PAGE_LIMIT`: a limit of 0 would otherwise page
/// forever without progress, and a huge one would defeat the bound on a page's memory.
pub fn clamp_limit(limit: usize) -> usize {
    limit.clamp(1, MAX_PAGE_LIMIT)
}

/// The in-memory reference implementation of [`Store`].
#[derive(Debug)]
pub struct ModelStore {
    limits: AppendLimits,
    /// Positions left unused between two appends: 0 for a gapless log like the embedded
    /// engine's, more to imitate an engine whose positions may have gaps (PostgreSQL).
    position_gap: u64,
    state: Mutex<ModelState>,
    head: watch::Receiver<Option<Position>>,
}

#[derive(Debug)]
struct ModelState {
    /// All events in commit order; positions increase along it.
    events: Vec<RecordedEvent>,
    /// Each stream's events, as indices into `events`, by revision.
    streams: BTreeMap<StreamName, Vec<usize>>,
    /// Event id → index into `events`.
    ids: HashMap<Uuid, usize>,
    next_position: u64,
    last_recorded_at: RecordedAt,
    /// `None` once closed: dropping the sender tells every follower that no more will come.
    head: Option<watch::Sender<Option<Position>>>,
}

impl ModelStore {
    /// A gapless model: positions 0, 1, 2 … in commit order.
    pub fn new(limits: AppendLimits) -> Self {
        Self::build(limits, 0)
    }

    /// A model that leaves `gap` unused positions between appends (never within one), as an
    /// engine with sequence gaps may. The conformance suite must hold for it too.
    pub fn with_position_gaps(limits: AppendLimits, gap: u64) -> Self {
        Self::build(limits, gap)
    }

    fn build(limits: AppendLimits, position_gap: u64) -> Self {
        let (sender, receiver) = watch::channel(None);
        Self {
            limits,
            position_gap,
            state: Mutex::new(ModelState {
                events: Vec::new(),
                streams: BTreeMap::new(),
                ids: HashMap::new(),
                next_position: 0,
                last_recorded_at: RecordedAt(i64::MIN),
                head: Some(sender),
            }),
            head: receiver,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ModelState> {
        // A panic while holding the lock can only come from a bug in this file; the state is
        // still the last consistent one because every mutation is done after all checks.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last revision of `stream`, `None` when it has no events.
    pub fn current_revision(&self, stream: &StreamName) -> Option<Revision> {
        let state = self.lock();
        state.last_revision(stream)
    }

    /// Whether an event with this id has been written.
    pub fn contains_id(&self, id: Uuid) -> bool {
        self.lock().ids.contains_key(&id)
    }

    /// The recorded event with this id.
    pub fn event_by_id(&self, id: Uuid) -> Option<RecordedEvent> {
        let state = self.lock();
        state.ids.get(&id).map(|&index| state.events[index].clone())
    }

    /// Every event, in position order.
    pub fn all_events(&self) -> Vec<RecordedEvent> {
        self.lock().events.clone()
    }

    /// The append, synchronously: the checks in the order the model makes them, then the write.
    pub fn append_now(&self, request: &AppendRequest) -> Result<AppendOutcome, StoreError> {
        request.check(&self.limits)?;
        self.append_checked(request)
    }

    /// An append to a system stream, as only the server makes.
    pub fn append_system_now(&self, request: &AppendRequest) -> Result<AppendOutcome, StoreError> {
        request.check_system(&self.limits)?;
        self.append_checked(request)
    }

    fn append_checked(&self, request: &AppendRequest) -> Result<AppendOutcome, StoreError> {
        let mut state = self.lock();
        if state.head.is_none() {
            return Err(StoreError::ShuttingDown);
        }
        if let Some(original) = state.idempotent_outcome(request) {
            return Ok(original);
        }
        let current = state.last_revision(&request.stream);
        if !request.expected.is_satisfied_by(current) {
            return Err(StoreError::WrongExpectedRevision {
                stream: request.stream.clone(),
                expected: request.expected,
                current,
            });
        }
        if let Some(id) = state.duplicate_id(request) {
            return Err(StoreError::DuplicateEventId { id });
        }
        Ok(state.write(request, self.position_gap))
    }

    fn read_stream_now(
        &self,
        stream: &StreamName,
        from: Option<Revision>,
        direction: Direction,
        limit: usize,
    ) -> Result<StreamSlice, StoreError> {
        let state = self.lock();
        let Some(indices) = state.streams.get(stream) else {
            return Err(StoreError::StreamNotFound {
                stream: stream.clone(),
            });
        };
        let last = indices.len() as u64 - 1;
        let limit = clamp_limit(limit) as u64;
        let revisions: Vec<u64> = match direction {
            Direction::Forward => {
                let start = from.map_or(0, |r| r.0);
                (start..=last).take(limit as usize).collect()
            }
            Direction::Backward => {
                // Reading backward from past the end starts at the last revision, as a range
                // scan `..=from` over the stream's index would.
                let start = from.map_or(last, |r| r.0.min(last));
                (0..=start).rev().take(limit as usize).collect()
            }
        };
        let next = match (direction, revisions.last()) {
            (Direction::Forward, Some(&r)) if r < last => Some(Revision(r + 1)),
            (Direction::Backward, Some(&r)) if r > 0 => Some(Revision(r - 1)),
            _ => None,
        };
        let events = revisions
            .iter()
            .map(|&r| state.events[indices[r as usize]].clone())
            .collect();
        Ok(StreamSlice { events, next })
    }

    fn read_all_now(&self, from: Position, filter: &AllFilter, limit: usize) -> AllSlice {
        let state = self.lock();
        let limit = clamp_limit(limit);
        let head = state.events.last().map(|e| e.position);
        let start = state.events.partition_point(|e| e.position < from);
        let mut events = Vec::new();
        let mut next = None;
        for event in &state.events[start..] {
            if events.len() == limit {
                // The page is full and something is left to scan.
                next = events
                    .last()
                    .map(|last: &RecordedEvent| last.position.next());
                break;
            }
            if filter.matches(&event.stream, &event.event_type) {
                events.push(event.clone());
            }
        }
        AllSlice { events, next, head }
    }

    fn stream_info_now(&self, stream: &StreamName) -> Result<StreamInfo, StoreError> {
        let state = self.lock();
        state
            .stream_info(stream)
            .ok_or_else(|| StoreError::StreamNotFound {
                stream: stream.clone(),
            })
    }

    fn list_stream_types_now(
        &self,
        after: Option<&StreamType>,
        limit: usize,
    ) -> Page<StreamTypeInfo, StreamType> {
        let state = self.lock();
        let mut counts: BTreeMap<&StreamType, u64> = BTreeMap::new();
        for stream in state.streams.keys() {
            *counts.entry(stream.stream_type()).or_default() += 1;
        }
        let items = counts
            .into_iter()
            .filter(|(stream_type, _)| after.is_none_or(|after| *stream_type > after))
            .map(|(stream_type, streams)| StreamTypeInfo {
                stream_type: stream_type.clone(),
                streams,
            });
        page(items, clamp_limit(limit), |info| info.stream_type.clone())
    }

    fn list_streams_now(
        &self,
        stream_type: &StreamType,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Page<StreamInfo, StreamId> {
        let state = self.lock();
        // BTreeMap order of StreamName is type, then id: the ids of one type in byte order.
        let items = state
            .streams
            .keys()
            .filter(|stream| stream.stream_type() == stream_type)
            .filter(|stream| after.is_none_or(|after| stream.stream_id() > after))
            .filter_map(|stream| state.stream_info(stream));
        page(items, clamp_limit(limit), |info| {
            info.stream.stream_id().clone()
        })
    }

    fn close_now(&self) {
        // Dropping the sender ends every follower's wait.
        self.lock().head = None;
    }
}

/// Takes up to `limit` items; `next` is the last one's cursor when more are left.
fn page<T, C>(
    mut items: impl Iterator<Item = T>,
    limit: usize,
    cursor: impl Fn(&T) -> C,
) -> Page<T, C> {
    let taken: Vec<T> = items.by_ref().take(limit).collect();
    let more = items.next().is_some();
    let next = if more { taken.last().map(cursor) } else { None };
    Page { items: taken, next }
}

impl ModelState {
    fn last_revision(&self, stream: &StreamName) -> Option<Revision> {
        self.streams
            .get(stream)
            .map(|indices| Revision(indices.len() as u64 - 1))
    }

    /// The original outcome when `request` re-sends, in order, events already written at
    /// consecutive revisions of the same stream: a retry after a lost acknowledgement.
    fn idempotent_outcome(&self, request: &AppendRequest) -> Option<AppendOutcome> {
        let mut written = Vec::with_capacity(request.events.len());
        for proposed in &request.events {
            let index = *self.ids.get(&proposed.id?)?;
            written.push(&self.events[index]);
        }
        let first = written.first()?;
        let consecutive = written.iter().enumerate().all(|(offset, event)| {
            event.stream == request.stream && event.revision.0 == first.revision.0 + offset as u64
        });
        let last = written.last()?;
        consecutive.then(|| AppendOutcome {
            stream: request.stream.clone(),
            first_revision: first.revision,
            last_revision: last.revision,
            first_position: first.position,
            last_position: last.position,
        })
    }

    /// The first id of `request` that is already written, or repeated within the request.
    fn duplicate_id(&self, request: &AppendRequest) -> Option<Uuid> {
        let mut seen = HashSet::new();
        request
            .events
            .iter()
            .filter_map(|event| event.id)
            .find(|&id| self.ids.contains_key(&id) || !seen.insert(id))
    }

    fn write(&mut self, request: &AppendRequest, position_gap: u64) -> AppendOutcome {
        let first_revision = self
            .last_revision(&request.stream)
            .map_or(Revision(0), Revision::next);
        if !self.events.is_empty() {
            self.next_position += position_gap;
        }
        let first_position = Position(self.next_position);
        // Recorded times never go backwards, so that created_at <= updated_at holds even if the
        // wall clock steps back.
        let recorded_at = RecordedAt::now().max(self.last_recorded_at);
        self.last_recorded_at = recorded_at;
        let mut revision = first_revision;
        for proposed in &request.events {
            let event = RecordedEvent {
                id: proposed.id.unwrap_or_else(Uuid::now_v7),
                stream: request.stream.clone(),
                revision,
                position: Position(self.next_position),
                event_type: proposed.event_type.clone(),
                data: proposed.data.clone(),
                metadata: proposed.metadata.clone(),
                recorded_at,
            };
            let index = self.events.len();
            self.ids.insert(event.id, index);
            self.streams
                .entry(request.stream.clone())
                .or_default()
                .push(index);
            self.events.push(event);
            self.next_position += 1;
            revision = revision.next();
        }
        let last_position = Position(self.next_position - 1);
        if let Some(head) = &self.head {
            head.send_replace(Some(last_position));
        }
        AppendOutcome {
            stream: request.stream.clone(),
            first_revision,
            last_revision: Revision(revision.0 - 1),
            first_position,
            last_position,
        }
    }

    fn stream_info(&self, stream: &StreamName) -> Option<StreamInfo> {
        let indices = self.streams.get(stream)?;
        let first = &self.events[*indices.first()?];
        let last = &self.events[*indices.last()?];
        Some(StreamInfo {
            stream: stream.clone(),
            revision: last.revision,
            created_at: first.recorded_at,
            updated_at: last.recorded_at,
        })
    }
}

#[async_trait]
impl Store for ModelStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.append_now(&request)
    }

    async fn append_system(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.append_system_now(&request)
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Revision>,
        direction: Direction,
        limit: usize,
    ) -> Result<StreamSlice, StoreError> {
        self.read_stream_now(stream, from, direction, limit)
    }

    async fn stream_info(&self, stream: &StreamName) -> Result<StreamInfo, StoreError> {
        self.stream_info_now(stream)
    }

    async fn list_stream_types(
        &self,
        after: Option<&StreamType>,
        limit: usize,
    ) -> Result<Page<StreamTypeInfo, StreamType>, StoreError> {
        Ok(self.list_stream_types_now(after, limit))
    }

    async fn list_streams(
        &self,
        stream_type: &StreamType,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Page<StreamInfo, StreamId>, StoreError> {
        Ok(self.list_streams_now(stream_type, after, limit))
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &AllFilter,
        limit: usize,
    ) -> Result<AllSlice, StoreError> {
        Ok(self.read_all_now(from, filter, limit))
    }

    async fn count_events(
        &self,
        from: Position,
        through: Position,
        cap: u64,
    ) -> Result<u64, StoreError> {
        let state = self.lock();
        let counted = state
            .events
            .iter()
            .filter(|event| event.position >= from && event.position <= through)
            .count();
        Ok((counted as u64).min(cap))
    }

    fn watch_head(&self) -> HeadWatch {
        HeadWatch::new(self.head.clone())
    }

    fn limits(&self) -> AppendLimits {
        self.limits
    }

    async fn ready(&self) -> Result<(), StoreError> {
        if self.lock().head.is_none() {
            return Err(StoreError::ShuttingDown);
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.close_now();
        Ok(())
    }
}
