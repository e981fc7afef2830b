//! The consumer-group service: the pure state machine of [`super::state`] over the [`Store`].
//!
//! # Durability and exclusivity
//!
//! A group's state lives only in its state stream, `$group/{name}`. Every change is decided
//! against the in-memory projection of that stream and appended with
//! `ExpectedRevision::Exact` of the revision the projection is at. The append is the commit
//! point: a receive answers only after its `Leased` event is durable, an ack only after its
//! `Acked` event is; so after a crash the state read back is exactly what was acknowledged,
//! and an acknowledged event is never delivered again.
//!
//! If anyone else (another node over the same PostgreSQL database, or this node's sweeper)
//! appended first, the append fails with `WrongExpectedRevision` and writes nothing: the
//! projection reads what was written, and the request is decided again. That is how two
//! nodes never hand out the same lease, without locks in the database. On one node, a
//! group's changes go through one async mutex, so they rarely conflict at all.
//!
//! # Group commit
//!
//! Receives, acks and nacks are not written one append each. They queue on the group's cell,
//! and one committer task at a time takes everything queued, decides each operation in order
//! against the projection (applying its records before deciding the next, so that two
//! receives never lease the same event and an ack after a receive sees its leases), appends
//! all the records in one `append_system` under the revision the projection was at, and
//! answers each operation only once that append is durable. Whatever arrives while the
//! append is on its way goes in the next one: under load, a commit carries many operations.
//! The state machine stays pure; only the projection runs ahead of the stream for the length
//! of one append, and it is read again from the stream if that append fails or conflicts.
//!
//! A conflict only reveals what another node did when this one tries to write. Changes that
//! make events due without this node writing (another node's nack, expiry or replay) are read
//! when a commit wakes a long poll, which every append to the state stream does, and otherwise
//! by the sweeper's periodic refresh.
//!
//! Loading a group reads its stream backward only to the nearest reset (creation, deletion or
//! the first part of a snapshot); a snapshot is written every
//! [`GroupLimits::snapshot_interval_events`] events, which bounds that read.
//!
//! # Delivery workers
//!
//! Pull consumers and webhook workers are the same kind of client of this service: they
//! [`GroupService::receive`] leases (with [`ConsumerKind`] saying which kind they are), work on
//! them, and [`GroupService::ack`] or [`GroupService::nack`] them. A worker learns of groups
//! with [`GroupService::list`] and [`GroupService::changes`], and stops a failing endpoint's
//! group with [`GroupService::pause`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runnel_core::{
    AllFilter, AppendRequest, Direction, ExpectedRevision, MAX_PAGE_LIMIT, Position, ProposedEvent,
    RecordedEvent, Revision, Store, StoreError, StreamName,
};
use serde_json::Value;
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot, watch};
use tokio::time::Instant;

use super::config::{Delivery, GroupConfig, SecretSource, Start};
use super::error::GroupError;
use super::events::{Created, Deleted, GroupEvent, NackAction, Updated};
use super::limits::GroupLimits;
use super::name::{GroupName, group_stream_type};
use super::receipt::Receipt;
use super::state::{GroupState, Offer, ParkedMessage, apply};
use super::telemetry;

/// State events read per request when loading or catching up.
const READ_PAGE_EVENTS: usize = 256;
/// How often the sweeper looks for expired leases and refreshes metrics.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often the sweeper reads what other nodes wrote to the groups it holds.
const REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// Operations one commit decides at most (more wait for the next).
const MAX_OPERATIONS_PER_COMMIT: usize = 256;
/// The largest snapshot part, in bytes, whatever the store allows.
const MAX_SNAPSHOT_PART_BYTES: usize = 256 * 1024;

/// Which kind of consumer is receiving: pull receives from webhook groups (and the other way
/// round) are refused, so that a webhook worker and a pull consumer never share a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerKind {
    /// A client calling receive/ack/nack.
    Pull,
    /// The server's webhook delivery worker.
    Webhook,
}

/// One leased delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    /// The receipt that acknowledges (or rejects) this attempt.
    pub receipt: Receipt,
    /// The attempt's number, from 1.
    pub delivery: u32,
    /// When the lease runs out (Unix ms).
    pub expires_at_ms: u64,
    /// The event.
    pub event: RecordedEvent,
}

/// What an ack did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckOutcome {
    /// Deliveries acknowledged.
    pub acked: usize,
    /// Receipts that matched no lease in flight.
    pub unknown: Vec<String>,
}

/// What a nack did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NackOutcome {
    /// Deliveries rejected.
    pub nacked: usize,
    /// Receipts that matched no lease in flight.
    pub unknown: Vec<String>,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplayOutcome {
    /// Parked events put back in line.
    pub replayed: usize,
    /// Positions asked for that are not parked.
    pub unknown: Vec<u64>,
}

/// A group's progress and health (API.md: `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The next position of `$all` the group reads.
    pub cursor: u64,
    /// The last position of `$all` (`None`: the store is empty).
    pub head: Option<u64>,
    /// Positions of `$all` the group has not read yet.
    pub lag: u64,
    /// Deliveries leased now.
    pub in_flight: usize,
    /// Events waiting (for a retry, after an expired lease, behind their stream).
    pub pending: usize,
    /// Events parked.
    pub parked: usize,
    /// Events acknowledged since creation.
    pub delivered: u64,
    /// Whether delivery is paused.
    pub paused: bool,
    /// Why it is paused.
    pub paused_reason: Option<String>,
    /// The last error recorded.
    pub last_error: Option<String>,
}

/// A group as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    /// Its name.
    pub name: GroupName,
    /// Its configuration (show it with [`GroupConfig::to_json`], masked).
    pub config: GroupConfig,
    /// Its progress.
    pub status: GroupStatus,
    /// When it was created (Unix ms).
    pub created_at_ms: u64,
}

/// What a create-or-update did.
#[derive(Debug, Clone, PartialEq)]
pub struct PutOutcome {
    /// `true` when the group was created, `false` when an existing one was updated.
    pub created: bool,
    /// The group now.
    pub view: GroupView,
    /// The webhook secret, when the server generated it in this request: shown once.
    pub generated_secret: Option<String>,
}

/// A parked event as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedEvent {
    /// Its position in `$all`.
    pub position: u64,
    /// Its stream, `{type}/{id}`.
    pub stream: String,
    /// Deliveries before it was parked.
    pub deliveries: u32,
    /// Why it was parked.
    pub last_error: Option<String>,
    /// When (Unix ms).
    pub parked_at_ms: u64,
    /// The event, read back (`None` if it can no longer be read).
    pub event: Option<RecordedEvent>,
}

/// The consumer groups of one server, over one store. Cheap to clone.
#[derive(Clone)]
pub struct GroupService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    limits: GroupLimits,
    /// Groups this node has touched. A name maps to one cell for as long as the group
    /// exists, so its changes on this node are serialised by the cell's mutex.
    cells: StdMutex<HashMap<GroupName, Arc<Cell>>>,
    /// Bumped whenever this node changes a group's configuration, pause or existence.
    changes: watch::Sender<u64>,
    shutdown: watch::Receiver<bool>,
}

impl fmt::Debug for GroupService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupService")
            .field("limits", &self.inner.limits)
            .field("groups", &self.cells().len())
            .finish_non_exhaustive()
    }
}

struct Cell {
    name: GroupName,
    stream: StreamName,
    runtime: Arc<Mutex<Runtime>>,
    /// Receives, acks and nacks waiting to be decided and committed together.
    queue: StdMutex<Queue>,
    /// The configuration as this node last read or wrote it (`None`: not loaded, or the group
    /// does not exist): what requests check access against without waiting for a commit.
    config: StdMutex<Option<Arc<GroupConfig>>>,
}

impl Cell {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock leaves a queue that is still consistent.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The operations waiting for the group's committer, and whether one is running.
#[derive(Default)]
struct Queue {
    pending: VecDeque<Pending>,
    /// A committer task is running: it takes whatever is queued before it stops.
    committing: bool,
}

/// One operation waiting for the committer, and where its answer goes.
struct Pending {
    op: Op,
    reply: oneshot::Sender<Result<Answer, GroupError>>,
}

/// What a receive, ack or nack asks of the group.
enum Op {
    Receive {
        kind: ConsumerKind,
        max: usize,
        /// A commit woke the long poll: read what other nodes wrote first.
        catch_up: bool,
    },
    Ack {
        receipts: Vec<String>,
    },
    Nack {
        receipts: Vec<String>,
        action: NackAction,
        delay_ms: u64,
        error: Option<String>,
    },
}

enum Answer {
    Received(Attempt),
    Acked(AckOutcome),
    Nacked(NackOutcome),
}

/// One group's projection of its state stream.
#[derive(Default)]
struct Runtime {
    loaded: bool,
    state: Option<GroupState>,
    /// The last revision of the state stream applied (`None`: the stream is empty).
    revision: Option<Revision>,
    /// Events applied since the last reset: a snapshot is due when this grows large.
    since_reset: u64,
    /// How far this node has scanned `$all` for the group: past the state's cursor when the
    /// events after it did not match (which is not worth a write). Reset whenever the
    /// configuration might have changed what matches.
    scanned_to: Position,
    /// Appends lost to other writers since the last one that went through.
    conflicts_in_a_row: u32,
    /// The configuration changed since it was last published to the cell.
    config_dirty: bool,
}

/// Whether an append went through or lost to another writer.
enum Written {
    Yes,
    Conflict,
}

/// What one receive attempt found.
struct Attempt {
    messages: Vec<ReceivedMessage>,
    /// The scan stopped at its budget with more of `$all` left to read.
    more: bool,
    /// When something becomes due without a new event (Unix ms).
    wake_ms: Option<u64>,
}

/// What one receive decided, not yet appended.
struct ReceiveDecided {
    events: Vec<GroupEvent>,
    scanned_to: Position,
    attempt: Attempt,
}

/// How one attempt at a commit ended.
enum Round {
    /// Appended (or nothing to append): the answers of the operations taken, in order.
    Done(Vec<Result<Answer, GroupError>>),
    /// Someone else wrote first; the projection has been read again.
    Conflict,
}

/// Makes sure a committer that panics leaves neither its flag set (which would leave every
/// later operation waiting) nor operations that nobody will answer.
struct CommitterGuard<'a> {
    cell: &'a Cell,
}

impl Drop for CommitterGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = self.cell.queue();
            queue.committing = false;
            // Dropping the replies answers their callers with an error.
            queue.pending.clear();
        }
    }
}

impl GroupService {
    /// A service over `store`; `shutdown` turning true ends long polls at once.
    pub fn new(
        store: Arc<dyn Store>,
        limits: GroupLimits,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                limits,
                cells: StdMutex::new(HashMap::new()),
                changes: watch::Sender::new(0),
                shutdown,
            }),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &GroupLimits {
        &self.inner.limits
    }

    /// A watch that moves whenever this node creates, updates, deletes, pauses or resumes a
    /// group (a delivery worker's cue to look at [`GroupService::list`] again).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn cells(&self) -> std::sync::MutexGuard<'_, HashMap<GroupName, Arc<Cell>>> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.inner
            .cells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cell(&self, name: &GroupName) -> Arc<Cell> {
        let mut cells = self.cells();
        Arc::clone(cells.entry(name.clone()).or_insert_with(|| {
            Arc::new(Cell {
                name: name.clone(),
                stream: name.state_stream(),
                runtime: Arc::new(Mutex::new(Runtime::default())),
                queue: StdMutex::new(Queue::default()),
                config: StdMutex::new(None),
            })
        }))
    }

    /// Forgets a cell whose group does not exist, so that probing names costs no memory.
    fn forget_if_absent(&self, cell: &Cell, runtime: &Runtime) {
        if runtime.loaded && runtime.state.is_none() {
            let mut cells = self.cells();
            if cells
                .get(&cell.name)
                .is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), cell))
            {
                cells.remove(&cell.name);
            }
        }
    }

    /// The group's cell, locked and loaded; `NotFound` when it does not exist.
    async fn existing(
        &self,
        name: &GroupName,
    ) -> Result<(Arc<Cell>, OwnedMutexGuard<Runtime>), GroupError> {
        let cell = self.cell(name);
        let mut runtime = Arc::clone(&cell.runtime).lock_owned().await;
        self.ensure_loaded(&cell, &mut runtime).await?;
        if runtime.state.is_none() {
            // Another node may have created it since this one last looked.
            self.catch_up(&cell, &mut runtime).await?;
        }
        if runtime.state.is_none() {
            self.forget_if_absent(&cell, &runtime);
            return Err(GroupError::NotFound { name: name.clone() });
        }
        Ok((cell, runtime))
    }

    // ----- the API -----------------------------------------------------------------------

    /// Creates the group, or updates it when it exists. `body` is the configuration as the API
    /// takes it.
    pub async fn put(&self, name: &GroupName, body: &Value) -> Result<PutOutcome, GroupError> {
        let cell = self.cell(name);
        let mut runtime = Arc::clone(&cell.runtime).lock_owned().await;
        self.ensure_loaded(&cell, &mut runtime).await?;
        for _ in 0..self.inner.limits.max_write_attempts {
            let previous = runtime.state.as_ref().map(GroupState::config);
            let (config, source) = GroupConfig::parse(body, previous)?;
            let created = runtime.state.is_none();
            let event = match previous {
                None => {
                    self.check_room()?;
                    GroupEvent::Created(Created {
                        cursor: self.start_position(config.start),
                        config,
                        at_ms: now_ms(),
                    })
                }
                Some(previous) if *previous == config => {
                    return Ok(self.put_outcome(&cell, &runtime, false, source).await);
                }
                Some(_) => GroupEvent::Updated(Updated {
                    config,
                    at_ms: now_ms(),
                }),
            };
            if let Written::Yes = self.write(&cell, &mut runtime, vec![event]).await? {
                self.inner.changes.send_modify(|n| *n += 1);
                return Ok(self.put_outcome(&cell, &runtime, created, source).await);
            }
        }
        self.forget_if_absent(&cell, &runtime);
        Err(GroupError::Contended { name: name.clone() })
    }

    async fn put_outcome(
        &self,
        cell: &Cell,
        runtime: &Runtime,
        created: bool,
        source: SecretSource,
    ) -> PutOutcome {
        let view = self.view(cell, runtime).await;
        let generated_secret = match (&view.config.delivery, source) {
            (Delivery::Webhook(webhook), SecretSource::Generated) => {
                Some(webhook.secret.to_whsec())
            }
            _ => None,
        };
        PutOutcome {
            created,
            view,
            generated_secret,
        }
    }

    fn check_room(&self) -> Result<(), GroupError> {
        let max = self.inner.limits.max_groups;
        let cells: Vec<Arc<Cell>> = self.cells().values().cloned().collect();
        let live = cells
            .iter()
            .filter(|cell| {
                // A group being changed right now is counted as live: a slight overcount,
                // never an undercount.
                cell.runtime
                    .try_lock()
                    .map_or(true, |runtime| runtime.state.is_some())
            })
            .count();
        if live > max {
            return Err(GroupError::TooManyGroups { max });
        }
        Ok(())
    }

    fn start_position(&self, start: Start) -> u64 {
        match start {
            Start::Beginning => 0,
            Start::Position(position) => position,
            Start::End => self
                .inner
                .store
                .watch_head()
                .current()
                .map_or(0, |head| head.0 + 1),
        }
    }

    /// The group's configuration and status, read fresh from its state stream.
    pub async fn get(&self, name: &GroupName) -> Result<GroupView, GroupError> {
        let (cell, mut runtime) = self.existing(name).await?;
        self.catch_up(&cell, &mut runtime).await?;
        match runtime.state {
            Some(_) => Ok(self.view(&cell, &runtime).await),
            None => Err(GroupError::NotFound { name: name.clone() }),
        }
    }

    /// The group's configuration, for checking who may use it: as this node last read or
    /// wrote it, without waiting for the group's commits (another node's change shows once
    /// this node reads the group's stream again, at the latest at the next refresh).
    /// `NotFound` when it does not exist.
    pub async fn config(&self, name: &GroupName) -> Result<Arc<GroupConfig>, GroupError> {
        let cell = self.cells().get(name).cloned();
        if let Some(cell) = cell
            && let Some(config) = cell
                .config
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        {
            return Ok(config);
        }
        Ok(Arc::new(self.get(name).await?.config))
    }

    /// Groups in name order after `after`, at most `limit`, and the name to continue after.
    pub async fn list(
        &self,
        after: Option<&GroupName>,
        limit: usize,
    ) -> Result<(Vec<GroupView>, Option<GroupName>), GroupError> {
        let after_id = after.map(|name| name.state_stream().stream_id().clone());
        let page = match self
            .inner
            .store
            .list_streams(
                &group_stream_type(),
                after_id.as_ref(),
                limit.clamp(1, MAX_PAGE_LIMIT),
            )
            .await
        {
            Ok(page) => page,
            Err(StoreError::StreamNotFound { .. }) => return Ok((Vec::new(), None)),
            Err(error) => return Err(error.into()),
        };
        let mut views = Vec::with_capacity(page.items.len());
        for info in &page.items {
            let Some(name) = GroupName::from_stream_id(info.stream.stream_id()) else {
                continue;
            };
            let cell = self.cell(&name);
            let mut runtime = Arc::clone(&cell.runtime).lock_owned().await;
            self.ensure_loaded(&cell, &mut runtime).await?;
            if runtime.state.is_some() {
                views.push(self.view(&cell, &runtime).await);
            } else {
                self.forget_if_absent(&cell, &runtime);
            }
        }
        let next = page.next.as_ref().and_then(GroupName::from_stream_id);
        Ok((views, next))
    }

    /// Deletes the group: its leases, pending and parked events go with it.
    pub async fn delete(&self, name: &GroupName) -> Result<(), GroupError> {
        let (cell, mut runtime) = self.existing(name).await?;
        for _ in 0..self.inner.limits.max_write_attempts {
            if runtime.state.is_none() {
                break;
            }
            let event = GroupEvent::Deleted(Deleted { at_ms: now_ms() });
            if let Written::Yes = self.write(&cell, &mut runtime, vec![event]).await? {
                self.inner.changes.send_modify(|n| *n += 1);
                telemetry::forget(&cell.name);
                self.forget_if_absent(&cell, &runtime);
                return Ok(());
            }
        }
        if runtime.state.is_none() {
            self.forget_if_absent(&cell, &runtime);
            return Err(GroupError::NotFound { name: name.clone() });
        }
        Err(GroupError::Contended { name: name.clone() })
    }

    /// Leases up to `max` messages, waiting up to `wait` for some when none is ready. Returns
    /// as soon as something is deliverable: a new matching event, a retry falling due, a lease
    /// running out. Returns empty when the wait ends, the group is paused, or the server is
    /// shutting down.
    pub async fn receive(
        &self,
        name: &GroupName,
        kind: ConsumerKind,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, GroupError> {
        let max = max.clamp(1, self.inner.limits.max_receive);
        let wait = wait.min(Duration::from_millis(self.inner.limits.max_wait_ms));
        let deadline = Instant::now() + wait;
        let mut head = self.inner.store.watch_head();
        let mut shutdown = self.inner.shutdown.clone();
        // Set when a commit woke the poll: it may be another node's change to this group.
        let mut head_moved = false;
        loop {
            if *shutdown.borrow() {
                return Ok(Vec::new());
            }
            let seen = head.current();
            let op = Op::Receive {
                kind,
                max,
                catch_up: std::mem::take(&mut head_moved),
            };
            let Answer::Received(attempt) = self.submit(name, op).await? else {
                unreachable!("a receive is answered with what it received");
            };
            if !attempt.messages.is_empty() || Instant::now() >= deadline {
                return Ok(attempt.messages);
            }
            if attempt.more {
                tokio::task::yield_now().await;
                continue;
            }
            let wake = attempt
                .wake_ms
                .map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())))
                .map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                moved = head.wait_past(seen) => {
                    if moved.is_none() {
                        // The store closed: nothing more will come.
                        return Ok(Vec::new());
                    }
                    head_moved = true;
                }
                () = tokio::time::sleep_until(wake) => {}
                _ = shutdown.wait_for(|down| *down) => return Ok(Vec::new()),
            }
        }
    }

    /// Acknowledges the deliveries of `receipts`: they are done with and never delivered again
    /// once this returns.
    pub async fn ack(
        &self,
        name: &GroupName,
        receipts: &[String],
    ) -> Result<AckOutcome, GroupError> {
        let op = Op::Ack {
            receipts: receipts.to_vec(),
        };
        let Answer::Acked(outcome) = self.submit(name, op).await? else {
            unreachable!("an ack is answered with what it acknowledged");
        };
        Ok(outcome)
    }

    /// Rejects the deliveries of `receipts`: retried after `delay_ms` (or parked once they
    /// have had `max_deliveries`), parked, or skipped. `error` is kept as their last error.
    pub async fn nack(
        &self,
        name: &GroupName,
        receipts: &[String],
        action: NackAction,
        delay_ms: u64,
        error: Option<&str>,
    ) -> Result<NackOutcome, GroupError> {
        let op = Op::Nack {
            receipts: receipts.to_vec(),
            action,
            delay_ms,
            error: error.map(str::to_owned),
        };
        let Answer::Nacked(outcome) = self.submit(name, op).await? else {
            unreachable!("a nack is answered with what it rejected");
        };
        Ok(outcome)
    }

    /// Parked events after position `after`, at most `limit`, each with its event read back,
    /// and the position to continue after.
    pub async fn parked(
        &self,
        name: &GroupName,
        after: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<ParkedEvent>, Option<u64>), GroupError> {
        let (entries, next) = {
            let (cell, mut runtime) = self.existing(name).await?;
            self.catch_up(&cell, &mut runtime).await?;
            let state = existing_state(&cell.name, &runtime)?;
            let (page, next) =
                state.parked_page(after.map(Position), limit.clamp(1, MAX_PAGE_LIMIT));
            let entries: Vec<(Position, ParkedMessage)> =
                page.into_iter().map(|(p, m)| (p, m.clone())).collect();
            (entries, next)
        };
        let mut out = Vec::with_capacity(entries.len());
        for (position, parked) in entries {
            out.push(ParkedEvent {
                position: position.0,
                stream: parked.stream,
                deliveries: parked.deliveries,
                last_error: parked.last_error,
                parked_at_ms: parked.parked_at_ms,
                event: self.read_at(position).await?,
            });
        }
        Ok((out, next.map(|p| p.0)))
    }

    /// Puts parked events back in line (`positions`, or all), with their delivery count reset.
    pub async fn replay(
        &self,
        name: &GroupName,
        positions: Option<&[u64]>,
    ) -> Result<ReplayOutcome, GroupError> {
        let positions: Option<Vec<Position>> =
            positions.map(|list| list.iter().copied().map(Position).collect());
        let (cell, mut runtime) = self.existing(name).await?;
        self.catch_up(&cell, &mut runtime).await?;
        for _ in 0..self.inner.limits.max_write_attempts {
            let state = existing_state(&cell.name, &runtime)?;
            let decision = state.replay(positions.as_deref());
            let outcome = ReplayOutcome {
                replayed: decision.replayed.len(),
                unknown: decision.unknown.iter().map(|p| p.0).collect(),
            };
            if decision.events.is_empty() {
                return Ok(outcome);
            }
            if let Written::Yes = self.write(&cell, &mut runtime, decision.events).await? {
                return Ok(outcome);
            }
        }
        Err(GroupError::Contended { name: name.clone() })
    }

    /// Stops delivery until [`GroupService::resume`]; `reason` shows in the status. `false`
    /// when it was already paused.
    pub async fn pause(&self, name: &GroupName, reason: &str) -> Result<bool, GroupError> {
        self.change_pause(name, |state, limits| state.pause(reason, limits))
            .await
    }

    /// Resumes delivery. `false` when it was not paused by request.
    pub async fn resume(&self, name: &GroupName) -> Result<bool, GroupError> {
        self.change_pause(name, |state, _| state.resume()).await
    }

    async fn change_pause(
        &self,
        name: &GroupName,
        decide: impl Fn(&GroupState, &GroupLimits) -> Option<GroupEvent>,
    ) -> Result<bool, GroupError> {
        let (cell, mut runtime) = self.existing(name).await?;
        for _ in 0..self.inner.limits.max_write_attempts {
            let state = existing_state(&cell.name, &runtime)?;
            let Some(event) = decide(state, &self.inner.limits) else {
                return Ok(false);
            };
            if let Written::Yes = self.write(&cell, &mut runtime, vec![event]).await? {
                self.inner.changes.send_modify(|n| *n += 1);
                return Ok(true);
            }
        }
        Err(GroupError::Contended { name: name.clone() })
    }

    /// Loads every group, then until `shutdown` turns true: records leases that ran out (so
    /// that events parked after their last delivery show at once, with nobody receiving),
    /// reads other nodes' changes, and keeps the per-group metrics current.
    pub async fn run(self) {
        if let Err(error) = self.load_all().await {
            tracing::error!(%error, "cannot load the consumer groups; they load on first use");
        }
        let mut shutdown = self.inner.shutdown.clone();
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_refresh = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|down| *down) => return,
            }
            let refresh = last_refresh.elapsed() >= REFRESH_INTERVAL;
            if refresh {
                last_refresh = Instant::now();
            }
            self.sweep(refresh).await;
        }
    }

    async fn load_all(&self) -> Result<(), GroupError> {
        let mut after: Option<GroupName> = None;
        loop {
            let (_, next) = self.list(after.as_ref(), MAX_PAGE_LIMIT).await?;
            match next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    async fn sweep(&self, refresh: bool) {
        let cells: Vec<Arc<Cell>> = self.cells().values().cloned().collect();
        let head = self.inner.store.watch_head().current();
        for cell in cells {
            // A group busy with a request is left for the next tick.
            let Ok(mut runtime) = Arc::clone(&cell.runtime).try_lock_owned() else {
                continue;
            };
            if !runtime.loaded {
                continue;
            }
            if refresh && let Err(error) = self.catch_up(&cell, &mut runtime).await {
                tracing::warn!(group = %cell.name, %error, "cannot read the group's state");
                continue;
            }
            if let Err(error) = self.expire(&cell, &mut runtime).await {
                tracing::warn!(group = %cell.name, %error, "cannot record expired leases");
            }
            if runtime.state.is_some() {
                let lag = self.lag(head, cursor_of(&runtime)).await;
                if let Some(state) = &runtime.state {
                    telemetry::gauges(&cell.name, state, lag);
                }
            }
        }
    }

    // ----- receiving -----------------------------------------------------------------------

    /// Decides what one receive leases, against the projection as it is (with the changes of
    /// the operations before it in the same commit applied). Changes nothing.
    async fn decide_receive(
        &self,
        cell: &Cell,
        runtime: &Runtime,
        kind: ConsumerKind,
        max: usize,
    ) -> Result<ReceiveDecided, GroupError> {
        check_kind(&cell.name, runtime.state.as_ref(), kind)?;
        let state = existing_state(&cell.name, runtime)?;
        let now = now_ms();
        let mut plan = state.plan_receive(now, max, &self.inner.limits);
        let mut events: BTreeMap<Position, RecordedEvent> = BTreeMap::new();
        for position in plan.redeliveries().to_vec() {
            match self.read_at(position).await? {
                Some(event) => {
                    events.insert(position, event);
                }
                None => plan.forget(position),
            }
        }
        plan.skip_to(runtime.scanned_to);
        let more = self.scan(state, &mut plan, &mut events).await?;
        let decision = plan.finish(Receipt::generate);
        // Only a receive that found nothing waits, so only then is the next wake worth the
        // walk over every message.
        let wake_ms = if decision.events.is_empty() {
            state.next_wake_ms(now)
        } else {
            None
        };
        let messages: Vec<ReceivedMessage> = decision
            .leases
            .into_iter()
            .filter_map(|lease| {
                events.remove(&lease.position).map(|event| ReceivedMessage {
                    receipt: lease.receipt,
                    delivery: lease.delivery,
                    expires_at_ms: lease.expires_at_ms,
                    event,
                })
            })
            .collect();
        Ok(ReceiveDecided {
            events: decision.events,
            scanned_to: decision.scanned_to,
            attempt: Attempt {
                messages,
                more,
                wake_ms,
            },
        })
    }

    // ----- group commit ----------------------------------------------------------------------

    /// Queues `op` for the group's committer and waits for its answer, which comes only once
    /// the records it needed are durable.
    async fn submit(&self, name: &GroupName, op: Op) -> Result<Answer, GroupError> {
        let cell = self.cell(name);
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = cell.queue();
            queue.pending.push_back(Pending { op, reply });
            !std::mem::replace(&mut queue.committing, true)
        };
        if start {
            // A task of its own, so that a caller going away (a client disconnecting in a
            // long poll) never cancels a commit half done, with other callers' answers in it.
            tokio::spawn(self.clone().commit_queued(cell));
        }
        // The committer answers every operation it takes; it is gone without answering only
        // if it panicked.
        answer.await.unwrap_or(Err(GroupError::ShuttingDown))
    }

    /// The group's committer: takes whatever is queued, decides it in order against the
    /// projection, appends all the records in one append, answers each operation once that
    /// append is durable, and goes on until the queue is empty. Operations that arrive while
    /// an append is on its way wait for the next one: under load, one append carries many
    /// operations instead of each waiting for its own.
    async fn commit_queued(self, cell: Arc<Cell>) {
        let _guard = CommitterGuard { cell: &cell };
        loop {
            // Taken for each commit, so that a put, a status read or the sweeper waiting for
            // the group get their turn between two commits.
            let mut runtime = Arc::clone(&cell.runtime).lock_owned().await;
            let batch: Vec<Pending> = {
                let mut queue = cell.queue();
                if queue.pending.is_empty() {
                    queue.committing = false;
                    return;
                }
                let take = queue.pending.len().min(MAX_OPERATIONS_PER_COMMIT);
                queue.pending.drain(..take).collect()
            };
            let deferred = self.commit(&cell, &mut runtime, batch).await;
            if !deferred.is_empty() {
                let mut queue = cell.queue();
                for pending in deferred.into_iter().rev() {
                    queue.pending.push_front(pending);
                }
            }
        }
    }

    /// Commits `batch` (retrying on conflicts) and answers what it committed; returns the
    /// operations that did not fit in the append, in order, for the next commit.
    async fn commit(
        &self,
        cell: &Cell,
        runtime: &mut Runtime,
        mut batch: Vec<Pending>,
    ) -> Vec<Pending> {
        for _ in 0..self.inner.limits.max_write_attempts {
            let round = {
                let ops: Vec<&Op> = batch.iter().map(|pending| &pending.op).collect();
                self.try_commit(cell, runtime, &ops).await
            };
            match round {
                Ok(Round::Done(answers)) => {
                    let rest = batch.split_off(answers.len().min(batch.len()));
                    for (pending, answer) in batch.into_iter().zip(answers) {
                        // The caller may have gone; its changes stand all the same.
                        let _ = pending.reply.send(answer);
                    }
                    if runtime.loaded {
                        self.snapshot_if_due(cell, runtime).await;
                    }
                    return rest;
                }
                Ok(Round::Conflict) => {}
                Err(error) => {
                    for pending in batch {
                        let _ = pending.reply.send(Err(share_error(&error)));
                    }
                    return Vec::new();
                }
            }
        }
        for pending in batch {
            let _ = pending.reply.send(Err(GroupError::Contended {
                name: cell.name.clone(),
            }));
        }
        Vec::new()
    }

    /// One attempt at committing `ops`: decides each in order, applying its records to the
    /// projection before deciding the next, then appends all the records under the revision
    /// the projection was at. On success the answers of the operations taken (a prefix of
    /// `ops`: those whose records fit in one append) are returned; on a conflict the
    /// projection, which is then ahead of a stream someone else wrote, is read again.
    async fn try_commit(
        &self,
        cell: &Cell,
        runtime: &mut Runtime,
        ops: &[&Op],
    ) -> Result<Round, GroupError> {
        self.ensure_loaded(cell, runtime).await?;
        let catch_up = runtime.state.is_none()
            || ops.iter().any(|op| match op {
                Op::Receive { catch_up, .. } => *catch_up,
                // The receipts may come from another node's receive.
                Op::Ack { receipts } | Op::Nack { receipts, .. } => runtime
                    .state
                    .as_ref()
                    .is_some_and(|state| !state.match_receipts(receipts).unknown.is_empty()),
            });
        if catch_up {
            self.catch_up(cell, runtime).await?;
        }
        if runtime.state.is_none() {
            self.forget_if_absent(cell, runtime);
            return Err(GroupError::NotFound {
                name: cell.name.clone(),
            });
        }
        let revision = runtime.revision;
        let store_limits = self.inner.store.limits();
        let mut records: Vec<ProposedEvent> = Vec::new();
        let mut bytes = 0_usize;
        let mut answers: Vec<Result<Answer, GroupError>> = Vec::with_capacity(ops.len());
        let mut parked: Vec<usize> = Vec::with_capacity(ops.len());
        let mut expired = (0, 0);
        if ops.iter().any(|op| matches!(op, Op::Receive { .. }))
            && let Some(state) = runtime.state.as_ref()
        {
            // Leases that ran out are due again: record that before receiving.
            let events = state.expire(now_ms());
            if !events.is_empty() {
                expired = (
                    events
                        .iter()
                        .map(|e| match e {
                            GroupEvent::Expired(expired) => expired.positions.len(),
                            _ => 0,
                        })
                        .sum(),
                    count_parked(&events),
                );
                for event in &events {
                    let proposed = event.to_proposed();
                    bytes += proposed.size_bytes();
                    records.push(proposed);
                    apply_to(runtime, event);
                }
            }
        }
        for op in ops {
            let (events, scanned_to, answer) = match op {
                Op::Receive { kind, max, .. } => {
                    match self.decide_receive(cell, runtime, *kind, *max).await {
                        Ok(decided) => (
                            decided.events,
                            Some(decided.scanned_to),
                            Ok(Answer::Received(decided.attempt)),
                        ),
                        Err(error) => (Vec::new(), None, Err(error)),
                    }
                }
                Op::Ack { receipts } => {
                    let state = existing_state(&cell.name, runtime)?;
                    let matched = state.match_receipts(receipts);
                    let events = state.ack(&matched.positions);
                    let outcome = AckOutcome {
                        acked: matched.positions.len(),
                        unknown: matched.unknown,
                    };
                    (events, None, Ok(Answer::Acked(outcome)))
                }
                Op::Nack {
                    receipts,
                    action,
                    delay_ms,
                    error,
                } => {
                    let state = existing_state(&cell.name, runtime)?;
                    let matched = state.match_receipts(receipts);
                    let events = state.nack(
                        &matched.positions,
                        *action,
                        *delay_ms,
                        error.as_deref(),
                        now_ms(),
                        &self.inner.limits,
                    );
                    let outcome = NackOutcome {
                        nacked: matched.positions.len(),
                        unknown: matched.unknown,
                    };
                    (events, None, Ok(Answer::Nacked(outcome)))
                }
            };
            let proposed: Vec<ProposedEvent> = events.iter().map(GroupEvent::to_proposed).collect();
            let op_bytes: usize = proposed.iter().map(ProposedEvent::size_bytes).sum();
            if !records.is_empty()
                && !proposed.is_empty()
                && (records.len() + proposed.len() > store_limits.max_events_per_append
                    || bytes + op_bytes > store_limits.max_append_bytes)
            {
                // This one and those after it go in the next append.
                break;
            }
            for event in &events {
                apply_to(runtime, event);
            }
            if let Some(scanned_to) = scanned_to {
                runtime.scanned_to = runtime.scanned_to.max(scanned_to);
            }
            parked.push(count_parked(&events));
            records.extend(proposed);
            bytes += op_bytes;
            answers.push(answer);
        }
        if records.is_empty() {
            return Ok(Round::Done(answers));
        }
        // Until the append is known to have gone through, the projection is ahead of the
        // stream: whatever happens to it, it is read again rather than trusted.
        runtime.loaded = false;
        let request = AppendRequest {
            stream: cell.stream.clone(),
            expected: match revision {
                None => ExpectedRevision::NoStream,
                Some(revision) => ExpectedRevision::Exact(revision),
            },
            events: records,
        };
        match self.inner.store.append_system(request).await {
            Ok(outcome) => {
                debug_assert_eq!(
                    outcome.first_revision,
                    revision.map_or(Revision(0), Revision::next)
                );
                runtime.loaded = true;
                runtime.revision = Some(outcome.last_revision);
                runtime.conflicts_in_a_row = 0;
                // The group's own records never match it: when the scan had reached them,
                // step over them, so that a group that is keeping up shows no lag.
                if runtime.scanned_to == outcome.first_position {
                    runtime.scanned_to = outcome.last_position.next();
                }
                telemetry::expired(&cell.name, expired.0);
                telemetry::parked(&cell.name, expired.1);
                for ((op, answer), parked) in ops.iter().zip(&answers).zip(parked) {
                    match (op, answer) {
                        (Op::Receive { .. }, Ok(Answer::Received(attempt)))
                            if !attempt.messages.is_empty() =>
                        {
                            telemetry::received(&cell.name, &attempt.messages);
                        }
                        (Op::Ack { .. }, Ok(Answer::Acked(outcome))) if outcome.acked > 0 => {
                            telemetry::acked(&cell.name, outcome.acked);
                        }
                        (Op::Nack { action, .. }, Ok(Answer::Nacked(outcome)))
                            if outcome.nacked > 0 =>
                        {
                            telemetry::nacked(&cell.name, *action, outcome.nacked);
                            telemetry::parked(&cell.name, parked);
                        }
                        _ => {}
                    }
                }
                Ok(Round::Done(answers))
            }
            Err(StoreError::WrongExpectedRevision { .. }) => {
                telemetry::conflict(&cell.name);
                let conflicts = runtime.conflicts_in_a_row.saturating_add(1);
                // Writers that keep colliding back off, each by a random time, so that one of
                // them gets through.
                let ceiling_ms = 1_u64 << conflicts.min(6);
                let pause = rand::random_range(0..=ceiling_ms);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                self.ensure_loaded(cell, runtime).await?;
                runtime.conflicts_in_a_row = conflicts;
                Ok(Round::Conflict)
            }
            // The append may or may not have been written (a database connection lost at
            // commit): the projection is read again before anything else is decided.
            Err(error) => Err(error.into()),
        }
    }

    /// Offers `$all` from the plan's cursor to the plan, until it is full, the head is reached
    /// or the scan budget is spent (then `true`: there is more to read).
    async fn scan(
        &self,
        state: &GroupState,
        plan: &mut super::state::ReceivePlan<'_>,
        events: &mut BTreeMap<Position, RecordedEvent>,
    ) -> Result<bool, GroupError> {
        let config = state.config();
        let store_filter = config.filter.store_filter();
        let start = plan.cursor();
        let budget = self.inner.limits.max_scan_events as u64;
        while plan.wants_more() {
            let from = plan.cursor();
            if from.0.saturating_sub(start.0) >= budget {
                return Ok(true);
            }
            let slice = self
                .inner
                .store
                .read_all(from, &store_filter, page_limit(plan.wanted()))
                .await?;
            for event in slice.events {
                let wanted = config.admits_stream_type(event.stream.stream_type())
                    && config.filter.matches(&event);
                if !wanted {
                    plan.skip_to(event.position.next());
                    continue;
                }
                match plan.offer(event.position, &event.stream.to_string()) {
                    Offer::Leased => {
                        events.insert(event.position, event);
                    }
                    Offer::Held => {}
                    Offer::Stop => return Ok(false),
                }
            }
            match slice.next {
                Some(next) => plan.skip_to(next),
                None => {
                    if let Some(head) = slice.head {
                        plan.skip_to(head.next());
                    }
                    return Ok(false);
                }
            }
        }
        Ok(false)
    }

    /// Records the leases that ran out; `Conflict` when another writer came first.
    async fn expire(&self, cell: &Cell, runtime: &mut Runtime) -> Result<Written, GroupError> {
        let Some(state) = runtime.state.as_ref() else {
            return Ok(Written::Yes);
        };
        let events = state.expire(now_ms());
        if events.is_empty() {
            return Ok(Written::Yes);
        }
        let parked = count_parked(&events);
        let expired: usize = events
            .iter()
            .map(|e| match e {
                GroupEvent::Expired(expired) => expired.positions.len(),
                _ => 0,
            })
            .sum();
        let written = self.write(cell, runtime, events).await?;
        if let Written::Yes = written {
            telemetry::expired(&cell.name, expired);
            telemetry::parked(&cell.name, parked);
        }
        Ok(written)
    }

    /// The event at `position`, or `None` when there is none there.
    async fn read_at(&self, position: Position) -> Result<Option<RecordedEvent>, GroupError> {
        let slice = self
            .inner
            .store
            .read_all(position, &AllFilter::default(), 1)
            .await?;
        Ok(slice
            .events
            .into_iter()
            .next()
            .filter(|event| event.position == position))
    }

    // ----- the state stream ----------------------------------------------------------------

    /// Appends `events` under the projection's revision and applies them once durable.
    async fn write(
        &self,
        cell: &Cell,
        runtime: &mut Runtime,
        events: Vec<GroupEvent>,
    ) -> Result<Written, GroupError> {
        debug_assert!(!events.is_empty());
        let expected = match runtime.revision {
            None => ExpectedRevision::NoStream,
            Some(revision) => ExpectedRevision::Exact(revision),
        };
        let request = AppendRequest {
            stream: cell.stream.clone(),
            expected,
            events: events.iter().map(GroupEvent::to_proposed).collect(),
        };
        match self.inner.store.append_system(request).await {
            Ok(outcome) => {
                // Written right after the revision the projection is at, or the store broke
                // its promise of `Exact`.
                debug_assert_eq!(
                    outcome.first_revision,
                    runtime.revision.map_or(Revision(0), Revision::next)
                );
                for event in &events {
                    apply_to(runtime, event);
                }
                publish_config(cell, runtime);
                runtime.revision = Some(outcome.last_revision);
                runtime.conflicts_in_a_row = 0;
                // The group's own records never match it: when the scan had reached them,
                // step over them, so that a group that is keeping up shows no lag.
                if runtime.scanned_to == outcome.first_position {
                    runtime.scanned_to = outcome.last_position.next();
                }
                self.snapshot_if_due(cell, runtime).await;
                Ok(Written::Yes)
            }
            Err(StoreError::WrongExpectedRevision { .. }) => {
                telemetry::conflict(&cell.name);
                runtime.conflicts_in_a_row = runtime.conflicts_in_a_row.saturating_add(1);
                // Writers that keep colliding back off, each by a random time, so that one of
                // them gets through.
                let ceiling_ms = 1_u64 << runtime.conflicts_in_a_row.min(6);
                let pause = rand::random_range(0..=ceiling_ms);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                self.catch_up(cell, runtime).await?;
                Ok(Written::Conflict)
            }
            Err(error) => {
                // The append may or may not have been written (a database connection lost
                // at commit): read the stream again before deciding anything else.
                runtime.loaded = false;
                Err(error.into())
            }
        }
    }

    async fn snapshot_if_due(&self, cell: &Cell, runtime: &mut Runtime) {
        if runtime.since_reset < self.inner.limits.snapshot_interval_events {
            return;
        }
        let Some(state) = runtime.state.as_ref() else {
            return;
        };
        let limits = self.inner.store.limits();
        let part_bytes = (limits.max_event_bytes / 2).clamp(1024, MAX_SNAPSHOT_PART_BYTES);
        let parts = state.snapshot(part_bytes);
        let proposed: Vec<_> = parts.iter().map(GroupEvent::to_proposed).collect();
        let total: usize = proposed.iter().map(|e| e.size_bytes()).sum();
        let fits = proposed.len() <= limits.max_events_per_append
            && total <= limits.max_append_bytes
            && proposed
                .iter()
                .all(|e| e.size_bytes() <= limits.max_event_bytes);
        if !fits {
            tracing::warn!(group = %cell.name, bytes = total, parts = proposed.len(), "the group's state is too large for one append; not snapshotting (loading it replays more events)");
            // Try again only after another interval.
            runtime.since_reset = 0;
            return;
        }
        let Some(revision) = runtime.revision else {
            return;
        };
        let request = AppendRequest {
            stream: cell.stream.clone(),
            expected: ExpectedRevision::Exact(revision),
            events: proposed,
        };
        match self.inner.store.append_system(request).await {
            Ok(outcome) => {
                for part in &parts {
                    apply_to(runtime, part);
                }
                publish_config(cell, runtime);
                runtime.revision = Some(outcome.last_revision);
            }
            // Someone else wrote first: the next change tries again.
            Err(StoreError::WrongExpectedRevision { .. }) => {}
            Err(error) => {
                tracing::warn!(group = %cell.name, %error, "cannot write the group's snapshot");
                runtime.loaded = false;
            }
        }
    }

    async fn ensure_loaded(&self, cell: &Cell, runtime: &mut Runtime) -> Result<(), GroupError> {
        if runtime.loaded {
            return Ok(());
        }
        let mut found: Vec<(Revision, Option<GroupEvent>)> = Vec::new();
        let mut from = None;
        'pages: loop {
            let slice = match self
                .inner
                .store
                .read_stream(&cell.stream, from, Direction::Backward, READ_PAGE_EVENTS)
                .await
            {
                Ok(slice) => slice,
                Err(StoreError::StreamNotFound { .. }) => break,
                Err(error) => return Err(error.into()),
            };
            for recorded in &slice.events {
                let event = parse(&cell.name, recorded)?;
                let reset = event.as_ref().is_some_and(GroupEvent::is_reset);
                found.push((recorded.revision, event));
                if reset {
                    break 'pages;
                }
            }
            match slice.next {
                Some(next) => from = Some(next),
                None => break,
            }
        }
        *runtime = Runtime::default();
        runtime.revision = found.first().map(|(revision, _)| *revision);
        for (_, event) in found.iter().rev() {
            if let Some(event) = event {
                apply_to(runtime, event);
            }
        }
        runtime.loaded = true;
        // A load may find the group gone, or made again: always show what it found.
        runtime.config_dirty = true;
        publish_config(cell, runtime);
        Ok(())
    }

    /// Applies whatever was appended to the state stream after the projection's revision.
    async fn catch_up(&self, cell: &Cell, runtime: &mut Runtime) -> Result<(), GroupError> {
        if !runtime.loaded {
            return self.ensure_loaded(cell, runtime).await;
        }
        loop {
            let from = runtime.revision.map_or(Revision(0), Revision::next);
            let slice = match self
                .inner
                .store
                .read_stream(
                    &cell.stream,
                    Some(from),
                    Direction::Forward,
                    READ_PAGE_EVENTS,
                )
                .await
            {
                Ok(slice) => slice,
                Err(StoreError::StreamNotFound { .. }) => return Ok(()),
                Err(error) => return Err(error.into()),
            };
            for recorded in &slice.events {
                if let Some(event) = parse(&cell.name, recorded)? {
                    apply_to(runtime, &event);
                }
                runtime.revision = Some(recorded.revision);
            }
            publish_config(cell, runtime);
            if slice.next.is_none() || slice.events.is_empty() {
                return Ok(());
            }
        }
    }

    /// How many events lie between the group's cursor and the head, counted by the store (its
    /// positions may have gaps), up to [`MAX_COUNTED_LAG_EVENTS`]. A failed count falls back
    /// to the span of positions, an upper bound.
    async fn lag(&self, head: Option<Position>, cursor: Position) -> u64 {
        let Some(head) = head else {
            return 0;
        };
        match self
            .inner
            .store
            .count_events(cursor, head, MAX_COUNTED_LAG_EVENTS)
            .await
        {
            Ok(lag) => lag,
            Err(error) => {
                tracing::debug!(%error, "cannot count a group's lag; reporting the span of positions");
                (head.0 + 1).saturating_sub(cursor.0)
            }
        }
    }

    async fn view(&self, cell: &Cell, runtime: &Runtime) -> GroupView {
        let head = self.inner.store.watch_head().current();
        let lag = self.lag(head, cursor_of(runtime)).await;
        let limits = &self.inner.limits;
        // Only called with a group that exists.
        let state = runtime
            .state
            .as_ref()
            .expect("views are made of existing groups");
        let cursor = cursor_of(runtime);
        let paused_reason = state.pause_reason(limits);
        GroupView {
            name: cell.name.clone(),
            config: state.config().clone(),
            status: GroupStatus {
                cursor: cursor.0,
                head: head.map(|h| h.0),
                lag,
                in_flight: state.in_flight(),
                pending: state.pending(),
                parked: state.parked(),
                delivered: state.delivered(),
                paused: paused_reason.is_some(),
                paused_reason,
                last_error: state.last_error().map(str::to_owned),
            },
            created_at_ms: state.created_at_ms(),
        }
    }
}

fn check_kind(
    name: &GroupName,
    state: Option<&GroupState>,
    kind: ConsumerKind,
) -> Result<(), GroupError> {
    let Some(state) = state else {
        return Err(GroupError::NotFound { name: name.clone() });
    };
    match (&state.config().delivery, kind) {
        (Delivery::Pull, ConsumerKind::Pull) | (Delivery::Webhook(_), ConsumerKind::Webhook) => {
            Ok(())
        }
        (Delivery::Webhook(_), ConsumerKind::Pull) => Err(GroupError::WrongDeliveryMode {
            name: name.clone(),
            mode: "webhook",
            hint: "the server delivers its events; change delivery to {\"mode\": \"pull\"} to receive them",
        }),
        (Delivery::Pull, ConsumerKind::Webhook) => Err(GroupError::WrongDeliveryMode {
            name: name.clone(),
            mode: "pull",
            hint: "consumers receive its events",
        }),
    }
}

fn existing_state<'a>(
    name: &GroupName,
    runtime: &'a Runtime,
) -> Result<&'a GroupState, GroupError> {
    runtime
        .state
        .as_ref()
        .ok_or_else(|| GroupError::NotFound { name: name.clone() })
}

/// Applies one event to the projection, keeping its bookkeeping.
fn apply_to(runtime: &mut Runtime, event: &GroupEvent) {
    apply(&mut runtime.state, event);
    let reconfigured = matches!(
        event,
        GroupEvent::Created(_)
            | GroupEvent::Updated(_)
            | GroupEvent::Deleted(_)
            | GroupEvent::Snapshot(_)
    );
    if event.is_reset() {
        runtime.since_reset = 0;
    } else {
        runtime.since_reset += 1;
    }
    if reconfigured {
        runtime.config_dirty = true;
        // What was scanned ahead under the old filter proves nothing under the new one.
        runtime.scanned_to = runtime
            .state
            .as_ref()
            .map_or(Position(0), GroupState::cursor);
    } else if let Some(state) = &runtime.state {
        runtime.scanned_to = runtime.scanned_to.max(state.cursor());
    }
}

/// Shows the projection's configuration to requests that check access, when it changed.
fn publish_config(cell: &Cell, runtime: &mut Runtime) {
    if !std::mem::take(&mut runtime.config_dirty) {
        return;
    }
    let config = runtime
        .state
        .as_ref()
        .map(|state| Arc::new(state.config().clone()));
    *cell
        .config
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
}

fn parse(name: &GroupName, recorded: &RecordedEvent) -> Result<Option<GroupEvent>, GroupError> {
    let event = GroupEvent::from_recorded(recorded).map_err(|reason| GroupError::Corrupt {
        name: name.clone(),
        revision: recorded.revision.0,
        reason,
    })?;
    if event.is_none() {
        tracing::warn!(group = %name, revision = recorded.revision.0, event_type = %recorded.event_type, "skipping a group event of a type this version does not know");
    }
    Ok(event)
}

fn cursor_of(runtime: &Runtime) -> Position {
    let state_cursor = runtime
        .state
        .as_ref()
        .map_or(Position(0), GroupState::cursor);
    state_cursor.max(runtime.scanned_to)
}

/// Lag is counted up to this many events: enough to tell a group that is far behind, bounded
/// so that a status read costs a bounded count on an engine whose positions have gaps.
const MAX_COUNTED_LAG_EVENTS: u64 = 1_000_000;

/// How many events to ask the store for when `wanted` more could be leased: a little more
/// than that (some may not match the content pattern; the scan reads on when too few do),
/// not twice as many, which a full receive would read and decode only to drop.
fn page_limit(wanted: usize) -> usize {
    wanted
        .saturating_add(wanted / 8)
        .saturating_add(1)
        .clamp(32, MAX_PAGE_LIMIT)
}

/// The same failure again, for every operation of a commit that failed as a whole.
fn share_error(error: &GroupError) -> GroupError {
    match error {
        GroupError::NotFound { name } => GroupError::NotFound { name: name.clone() },
        GroupError::WrongDeliveryMode { name, mode, hint } => GroupError::WrongDeliveryMode {
            name: name.clone(),
            mode,
            hint,
        },
        GroupError::Contended { name } => GroupError::Contended { name: name.clone() },
        GroupError::Corrupt {
            name,
            revision,
            reason,
        } => GroupError::Corrupt {
            name: name.clone(),
            revision: *revision,
            reason: reason.clone(),
        },
        GroupError::TooManyGroups { max } => GroupError::TooManyGroups { max: *max },
        GroupError::ShuttingDown => GroupError::ShuttingDown,
        GroupError::Store(store) => GroupError::Store(share_store_error(store)),
        // Not produced by a commit; said as what it is all the same.
        GroupError::InvalidConfig(_) => GroupError::Store(StoreError::Unavailable {
            cause: error.to_string(),
        }),
    }
}

fn share_store_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Overloaded { queued } => StoreError::Overloaded { queued: *queued },
        StoreError::Poisoned { cause } => StoreError::Poisoned {
            cause: cause.clone(),
        },
        StoreError::ShuttingDown => StoreError::ShuttingDown,
        StoreError::LimitExceeded {
            limit,
            max,
            actual,
            index,
        } => StoreError::LimitExceeded {
            limit: *limit,
            max: *max,
            actual: *actual,
            index: *index,
        },
        StoreError::Corrupt {
            file,
            offset,
            reason,
        } => StoreError::Corrupt {
            file: file.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        StoreError::Io { action, source } => StoreError::Io {
            action: action.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        StoreError::Index { action, cause } => StoreError::Index {
            action: action.clone(),
            cause: cause.clone(),
        },
        StoreError::InvalidConfig { reason } => StoreError::InvalidConfig {
            reason: reason.clone(),
        },
        other => StoreError::Unavailable {
            cause: other.to_string(),
        },
    }
}

fn count_parked(events: &[GroupEvent]) -> usize {
    events
        .iter()
        .map(|e| match e {
            GroupEvent::Parked(parked) => parked.entries.len(),
            _ => 0,
        })
        .sum()
}

/// Wall-clock milliseconds since the Unix epoch: lease and retry times are compared across
/// restarts and across nodes, so they cannot be monotonic instants.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
