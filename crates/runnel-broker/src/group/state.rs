//! A consumer group's state as a pure state machine: [`apply`] folds the events of the group's
//! state stream into a [`GroupState`], and the deciding methods ([`GroupState::plan_receive`],
//! [`GroupState::expire`], [`GroupState::nack`], …) say which events a request would append,
//! without doing any I/O or reading a clock (the time is an argument).
//!
//! # The model
//!
//! A group walks `$all` with a **cursor**. Every matching event below the cursor is in exactly
//! one of these places, until it is done with (acknowledged or skipped):
//!
//! - **in flight**: leased to a consumer with a receipt until `expires_at_ms`;
//! - **pending**: waiting to be delivered — due at `due_at_ms` (a retry, an expired lease), or
//!   held back behind an earlier event of its stream (`ordering: per_stream`);
//! - **parked**: set aside after `max_deliveries` failures or on request, until replayed.
//!
//! In flight and pending events together are the group's *messages*. With `per_stream`, an
//! event is deliverable only when it is the lowest-positioned message of its stream and no
//! message of the stream is in flight: a stream with an event in flight or waiting for a retry
//! blocks its later events, which keeps one stream's events in revision order (positions and
//! revisions grow together within a stream).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use runnel_core::Position;

use super::config::{GroupConfig, GroupOrdering};
use super::events::{
    Acked, Expired, GroupEvent, HeldRecord, LeaseRecord, Leased, MessageRecord, NackAction, Nacked,
    ParkRecord, Parked, ParkedRecord, Paused, Replayed, Resumed, Snapshot, SnapshotHeader,
};
use super::limits::GroupLimits;
use super::receipt::Receipt;

/// Leases recorded per `Leased` event, and positions per other event: keeps each state event
/// far below any store's per-event size limit, whatever one request asks for.
const RECORDS_PER_EVENT: usize = 250;

/// The error recorded for a lease that ran out.
const EXPIRED_ERROR: &str = "no acknowledgement within ack_timeout_ms";

/// Applies one event of the state stream to a group that may not exist (yet, or any more).
pub fn apply(state: &mut Option<GroupState>, event: &GroupEvent) {
    match event {
        GroupEvent::Created(created) => {
            *state = Some(GroupState::new(
                created.config.clone(),
                Position(created.cursor),
                created.at_ms,
            ));
        }
        GroupEvent::Deleted(_) => *state = None,
        GroupEvent::Snapshot(snapshot) if snapshot.part == 0 => {
            *state = snapshot.header.as_ref().map(|header| {
                let mut fresh = GroupState::new(
                    header.config.clone(),
                    Position(header.cursor),
                    header.created_at_ms,
                );
                fresh.delivered = header.delivered;
                fresh.paused = header.paused.clone();
                fresh.last_error = header.last_error.clone();
                fresh
            });
            if let Some(state) = state {
                state.restore(snapshot);
            }
        }
        other => {
            if let Some(state) = state {
                state.apply(other);
            }
        }
    }
}

/// An event the group has taken from `$all` and not finished with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its stream, `{type}/{id}`.
    pub stream: String,
    /// Deliveries so far (0 for an event never delivered).
    pub deliveries: u32,
    /// Leased or waiting.
    pub status: MessageStatus,
    /// The last error a consumer (or the lease timer) reported.
    pub last_error: Option<String>,
}

/// Where a message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageStatus {
    /// Waiting; deliverable from `due_at_ms` (Unix ms) on.
    Pending {
        /// When it is due.
        due_at_ms: u64,
    },
    /// Leased to a consumer.
    InFlight {
        /// The receipt of this attempt.
        receipt: Receipt,
        /// When the lease runs out (Unix ms).
        expires_at_ms: u64,
    },
}

/// An event set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedMessage {
    /// Its stream, `{type}/{id}`.
    pub stream: String,
    /// Deliveries before it was parked.
    pub deliveries: u32,
    /// Why.
    pub last_error: Option<String>,
    /// When (Unix ms).
    pub parked_at_ms: u64,
}

/// A group's whole state.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupState {
    config: GroupConfig,
    cursor: Position,
    messages: BTreeMap<Position, Message>,
    parked: BTreeMap<Position, ParkedMessage>,
    /// Each stream's messages, for `per_stream` ordering. Derived from `messages`.
    streams: HashMap<String, BTreeSet<Position>>,
    /// Messages in flight per stream. Derived from `messages`.
    in_flight_streams: HashMap<String, usize>,
    /// Messages in flight. Derived from `messages`.
    in_flight: usize,
    delivered: u64,
    paused: Option<String>,
    last_error: Option<String>,
    created_at_ms: u64,
}

/// One delivery decided by a receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The event's position in `$all`.
    pub position: Position,
    /// The receipt of this attempt.
    pub receipt: Receipt,
    /// The attempt's number, from 1.
    pub delivery: u32,
    /// When the lease runs out (Unix ms).
    pub expires_at_ms: u64,
}

/// What a receive decided: the events to append, and the leases they grant.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiveDecision {
    /// To append, in this order, in one atomic append. Empty when nothing changes.
    pub events: Vec<GroupEvent>,
    /// The deliveries, in position order.
    pub leases: Vec<Lease>,
    /// How far the receive scanned `$all`: at or past the cursor recorded in `events`, since
    /// non-matching events after the last match are scanned but not worth a write.
    pub scanned_to: Position,
}

/// Receipts matched against the leases in flight.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiptMatch {
    /// Positions of the leases the receipts belong to, each once.
    pub positions: Vec<Position>,
    /// Receipts that belong to no lease in flight (never issued, already acknowledged, or from
    /// an attempt that was delivered again since), in the order given.
    pub unknown: Vec<String>,
}

/// What a replay decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplayDecision {
    /// To append.
    pub events: Vec<GroupEvent>,
    /// The positions put back in line.
    pub replayed: Vec<Position>,
    /// Positions asked for that are not parked.
    pub unknown: Vec<Position>,
}

/// How one event offered to a receive was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Leased in this receive.
    Leased,
    /// Held back behind an earlier event of its stream.
    Held,
    /// Not taken: the receive is full. The cursor stays before this event.
    Stop,
}

impl GroupState {
    /// A new group reading `$all` from `cursor`.
    pub fn new(config: GroupConfig, cursor: Position, created_at_ms: u64) -> Self {
        Self {
            config,
            cursor,
            messages: BTreeMap::new(),
            parked: BTreeMap::new(),
            streams: HashMap::new(),
            in_flight_streams: HashMap::new(),
            in_flight: 0,
            delivered: 0,
            paused: None,
            last_error: None,
            created_at_ms,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The next position of `$all` to read.
    pub fn cursor(&self) -> Position {
        self.cursor
    }

    /// Messages leased now (expired leases not yet noticed included).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Messages waiting.
    pub fn pending(&self) -> usize {
        self.messages.len() - self.in_flight
    }

    /// Parked events.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Events acknowledged since the group was created.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The last error recorded: a consumer's nack, a park, a pause.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the group was created (Unix ms).
    pub fn created_at_ms(&self) -> u64 {
        self.created_at_ms
    }

    /// The message at `position`, if the group holds one.
    pub fn message(&self, position: Position) -> Option<&Message> {
        self.messages.get(&position)
    }

    /// The parked event at `position`, if any.
    pub fn parked_message(&self, position: Position) -> Option<&ParkedMessage> {
        self.parked.get(&position)
    }

    /// Why delivery is paused: by request (a person, or a webhook endpoint that answered 410),
    /// or because the parked list is full. `None` while the group delivers.
    pub fn pause_reason(&self, limits: &GroupLimits) -> Option<String> {
        if let Some(reason) = &self.paused {
            return Some(reason.clone());
        }
        (self.parked.len() >= limits.max_parked).then(|| {
            format!(
                "{} events are parked (the limit); replay or skip some to resume",
                self.parked.len()
            )
        })
    }

    /// Whether delivery was paused by request (and a resume would change something).
    pub fn is_paused_by_request(&self) -> bool {
        self.paused.is_some()
    }

    /// Parked events after `after` in position order, at most `limit`, and the position to
    /// continue after (`None`: no more).
    pub fn parked_page(
        &self,
        after: Option<Position>,
        limit: usize,
    ) -> (Vec<(Position, &ParkedMessage)>, Option<Position>) {
        let range = match after {
            Some(after) => self
                .parked
                .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => self.parked.range(..),
        };
        let mut page: Vec<_> = range.take(limit + 1).map(|(p, m)| (*p, m)).collect();
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|(p, _)| *p)
        } else {
            None
        };
        (page, next)
    }

    /// The earliest time after `now_ms` at which something becomes deliverable without a new
    /// event: a retry falls due or a lease runs out.
    pub fn next_wake_ms(&self, now_ms: u64) -> Option<u64> {
        self.messages
            .values()
            .map(|message| match &message.status {
                MessageStatus::Pending { due_at_ms } => *due_at_ms,
                MessageStatus::InFlight { expires_at_ms, .. } => *expires_at_ms,
            })
            .filter(|at| *at > now_ms)
            .min()
    }

    /// Whether some lease has run out by `now_ms` (and [`GroupState::expire`] would write).
    pub fn has_expired(&self, now_ms: u64) -> bool {
        self.messages.values().any(|message| {
            matches!(message.status, MessageStatus::InFlight { expires_at_ms, .. } if expires_at_ms <= now_ms)
        })
    }

    // ----- applying events -------------------------------------------------------------

    /// Applies an event that does not reset the state (see [`apply`] for those).
    fn apply(&mut self, event: &GroupEvent) {
        match event {
            GroupEvent::Created(_) | GroupEvent::Deleted(_) => {
                debug_assert!(false, "resets are applied by `apply`");
            }
            GroupEvent::Updated(updated) => self.config = updated.config.clone(),
            GroupEvent::Leased(leased) => self.apply_leased(leased),
            GroupEvent::Acked(acked) => {
                for position in &acked.positions {
                    if self.remove_message(Position(*position)).is_some() {
                        self.delivered += 1;
                    }
                }
            }
            GroupEvent::Nacked(nacked) => self.apply_nacked(nacked),
            GroupEvent::Expired(expired) => {
                for position in &expired.positions {
                    self.set_pending(
                        Position(*position),
                        expired.at_ms,
                        Some(EXPIRED_ERROR.to_owned()),
                    );
                }
            }
            GroupEvent::Parked(parked) => self.apply_parked(parked),
            GroupEvent::Replayed(replayed) => {
                for position in &replayed.positions {
                    let position = Position(*position);
                    if let Some(parked) = self.parked.remove(&position) {
                        self.insert_message(
                            position,
                            Message {
                                stream: parked.stream,
                                deliveries: 0,
                                status: MessageStatus::Pending { due_at_ms: 0 },
                                last_error: parked.last_error,
                            },
                        );
                    }
                }
            }
            GroupEvent::Paused(paused) => {
                self.paused = Some(paused.reason.clone());
                self.last_error = Some(paused.reason.clone());
            }
            GroupEvent::Resumed(_) => self.paused = None,
            GroupEvent::Snapshot(snapshot) => self.restore(snapshot),
        }
    }

    fn apply_leased(&mut self, leased: &Leased) {
        for lease in &leased.leases {
            let position = Position(lease.position);
            let Some(receipt) = Receipt::from_stored(&lease.receipt) else {
                continue;
            };
            let status = MessageStatus::InFlight {
                receipt,
                expires_at_ms: lease.expires_at_ms,
            };
            if self.messages.contains_key(&position) {
                self.set_status(position, status);
                if let Some(message) = self.messages.get_mut(&position) {
                    message.deliveries = lease.delivery;
                }
            } else {
                self.insert_message(
                    position,
                    Message {
                        stream: lease.stream.clone().unwrap_or_default(),
                        deliveries: lease.delivery,
                        status,
                        last_error: None,
                    },
                );
            }
        }
        for held in &leased.held {
            let position = Position(held.position);
            if !self.messages.contains_key(&position) {
                self.insert_message(
                    position,
                    Message {
                        stream: held.stream.clone(),
                        deliveries: 0,
                        status: MessageStatus::Pending { due_at_ms: 0 },
                        last_error: None,
                    },
                );
            }
        }
        self.cursor = self.cursor.max(Position(leased.cursor));
    }

    fn apply_nacked(&mut self, nacked: &Nacked) {
        for position in &nacked.positions {
            let position = Position(*position);
            match nacked.action {
                NackAction::Retry => {
                    self.set_pending(position, nacked.retry_at_ms, nacked.error.clone());
                }
                // Parking is recorded as `Parked`; a `Nacked` saying park is treated as skip
                // would be wrong, so it parks too.
                NackAction::Park => {
                    self.park(position, nacked.error.clone(), nacked.retry_at_ms);
                }
                NackAction::Skip => {
                    self.remove_message(position);
                }
            }
        }
        if nacked.error.is_some() {
            self.last_error.clone_from(&nacked.error);
        }
    }

    fn apply_parked(&mut self, parked: &Parked) {
        for entry in &parked.entries {
            self.park(Position(entry.position), entry.error.clone(), parked.at_ms);
            if entry.error.is_some() {
                self.last_error.clone_from(&entry.error);
            }
        }
    }

    fn park(&mut self, position: Position, error: Option<String>, at_ms: u64) {
        if let Some(message) = self.remove_message(position) {
            self.parked.insert(
                position,
                ParkedMessage {
                    stream: message.stream,
                    deliveries: message.deliveries,
                    last_error: error.or(message.last_error),
                    parked_at_ms: at_ms,
                },
            );
        }
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        for record in &snapshot.messages {
            let status = match (&record.receipt, record.expires_at_ms) {
                (Some(receipt), Some(expires_at_ms)) => match Receipt::from_stored(receipt) {
                    Some(receipt) => MessageStatus::InFlight {
                        receipt,
                        expires_at_ms,
                    },
                    None => MessageStatus::Pending { due_at_ms: 0 },
                },
                _ => MessageStatus::Pending {
                    due_at_ms: record.due_at_ms.unwrap_or(0),
                },
            };
            self.insert_message(
                Position(record.position),
                Message {
                    stream: record.stream.clone(),
                    deliveries: record.deliveries,
                    status,
                    last_error: record.last_error.clone(),
                },
            );
        }
        for record in &snapshot.parked {
            self.parked.insert(
                Position(record.position),
                ParkedMessage {
                    stream: record.stream.clone(),
                    deliveries: record.deliveries,
                    last_error: record.last_error.clone(),
                    parked_at_ms: record.parked_at_ms,
                },
            );
        }
    }

    // ----- the message set and its indexes ---------------------------------------------

    fn insert_message(&mut self, position: Position, message: Message) {
        if self.messages.contains_key(&position) {
            // Replacing a message: drop the old one from the indexes first.
            self.remove_message(position);
        }
        self.streams
            .entry(message.stream.clone())
            .or_default()
            .insert(position);
        if matches!(message.status, MessageStatus::InFlight { .. }) {
            self.in_flight += 1;
            *self
                .in_flight_streams
                .entry(message.stream.clone())
                .or_default() += 1;
        }
        self.messages.insert(position, message);
    }

    fn remove_message(&mut self, position: Position) -> Option<Message> {
        let message = self.messages.remove(&position)?;
        if let Some(positions) = self.streams.get_mut(&message.stream) {
            positions.remove(&position);
            if positions.is_empty() {
                self.streams.remove(&message.stream);
            }
        }
        if matches!(message.status, MessageStatus::InFlight { .. }) {
            self.in_flight -= 1;
            self.uncount_in_flight(&message.stream);
        }
        Some(message)
    }

    fn uncount_in_flight(&mut self, stream: &str) {
        if let Some(count) = self.in_flight_streams.get_mut(stream) {
            *count -= 1;
            if *count == 0 {
                self.in_flight_streams.remove(stream);
            }
        }
    }

    fn set_status(&mut self, position: Position, status: MessageStatus) {
        let Some(message) = self.messages.get_mut(&position) else {
            return;
        };
        let was_in_flight = matches!(message.status, MessageStatus::InFlight { .. });
        let now_in_flight = matches!(status, MessageStatus::InFlight { .. });
        message.status = status;
        let stream = message.stream.clone();
        match (was_in_flight, now_in_flight) {
            (false, true) => {
                self.in_flight += 1;
                *self.in_flight_streams.entry(stream).or_default() += 1;
            }
            (true, false) => {
                self.in_flight -= 1;
                self.uncount_in_flight(&stream);
            }
            _ => {}
        }
    }

    fn set_pending(&mut self, position: Position, due_at_ms: u64, error: Option<String>) {
        self.set_status(position, MessageStatus::Pending { due_at_ms });
        if let Some(message) = self.messages.get_mut(&position)
            && error.is_some()
        {
            message.last_error = error;
        }
    }

    /// Whether the message at `position` of `stream` may be delivered under `per_stream`: it
    /// is its stream's first message, and none of the stream is in flight.
    fn is_stream_head(&self, position: Position, stream: &str) -> bool {
        self.streams
            .get(stream)
            .and_then(|positions| positions.first())
            == Some(&position)
            && !self.in_flight_streams.contains_key(stream)
    }

    fn per_stream(&self) -> bool {
        self.config.ordering == GroupOrdering::PerStream
    }

    // ----- decisions -------------------------------------------------------------------

    /// Starts a receive of up to `max` messages at `now_ms`: due messages first (retries,
    /// expired leases, held events whose turn came), then whatever the caller offers from
    /// `$all` ([`ReceivePlan::offer`]).
    pub fn plan_receive(&self, now_ms: u64, max: usize, limits: &GroupLimits) -> ReceivePlan<'_> {
        let paused = self.pause_reason(limits).is_some();
        let mut plan = ReceivePlan {
            state: self,
            now_ms,
            max: if paused { 0 } else { max },
            room_in_flight: limits.max_in_flight.saturating_sub(self.in_flight),
            room_pending: limits.max_pending.saturating_sub(self.pending()),
            redeliver: Vec::new(),
            fresh: Vec::new(),
            held: Vec::new(),
            busy: HashSet::new(),
            gone: Vec::new(),
            cursor: self.cursor,
            full: paused,
        };
        plan.take_due();
        plan
    }

    /// The events that record every lease run out by `now_ms`: due again, or parked when it
    /// was the last delivery allowed. At most a bounded number per call (the rest next time).
    pub fn expire(&self, now_ms: u64) -> Vec<GroupEvent> {
        let mut expired = Vec::new();
        let mut parked = Vec::new();
        for (position, message) in &self.messages {
            let MessageStatus::InFlight { expires_at_ms, .. } = message.status else {
                continue;
            };
            if expires_at_ms > now_ms {
                continue;
            }
            if message.deliveries >= self.config.max_deliveries {
                parked.push(ParkRecord {
                    position: position.0,
                    error: Some(format!(
                        "{EXPIRED_ERROR} after {} deliveries (max_deliveries = {})",
                        message.deliveries, self.config.max_deliveries
                    )),
                });
            } else {
                expired.push(position.0);
            }
            if expired.len() + parked.len() >= RECORDS_PER_EVENT * 4 {
                break;
            }
        }
        let mut events = Vec::new();
        for positions in expired.chunks(RECORDS_PER_EVENT) {
            events.push(GroupEvent::Expired(Expired {
                positions: positions.to_vec(),
                at_ms: now_ms,
            }));
        }
        for entries in parked.chunks(RECORDS_PER_EVENT) {
            events.push(GroupEvent::Parked(Parked {
                entries: entries.to_vec(),
                at_ms: now_ms,
            }));
        }
        events
    }

    /// Finds the leases in flight that `receipts` belong to.
    pub fn match_receipts(&self, receipts: &[String]) -> ReceiptMatch {
        let mut matched = ReceiptMatch::default();
        let mut seen = HashSet::new();
        for text in receipts {
            let found = Receipt::decode(text).and_then(|(position, _)| {
                match self.messages.get(&position).map(|m| &m.status) {
                    Some(MessageStatus::InFlight { receipt, .. }) if receipt.as_str() == text => {
                        Some(position)
                    }
                    _ => None,
                }
            });
            match found {
                Some(position) => {
                    if seen.insert(position) {
                        matched.positions.push(position);
                    }
                }
                None => matched.unknown.push(text.clone()),
            }
        }
        matched
    }

    /// The events acknowledging the leases at `positions` (from [`GroupState::match_receipts`]).
    pub fn ack(&self, positions: &[Position]) -> Vec<GroupEvent> {
        positions
            .chunks(RECORDS_PER_EVENT)
            .map(|chunk| {
                GroupEvent::Acked(Acked {
                    positions: chunk.iter().map(|p| p.0).collect(),
                })
            })
            .collect()
    }

    /// The events rejecting the leases at `positions`. A retry of an event that has had its
    /// `max_deliveries` parks it instead.
    pub fn nack(
        &self,
        positions: &[Position],
        action: NackAction,
        delay_ms: u64,
        error: Option<&str>,
        now_ms: u64,
        limits: &GroupLimits,
    ) -> Vec<GroupEvent> {
        let error = error.map(|text| truncate(text, limits.max_error_chars));
        let mut retry = Vec::new();
        let mut park = Vec::new();
        for position in positions {
            let Some(message) = self.messages.get(position) else {
                continue;
            };
            match action {
                NackAction::Retry if message.deliveries >= self.config.max_deliveries => {
                    let reason = error.as_deref().unwrap_or("rejected by the consumer");
                    park.push(ParkRecord {
                        position: position.0,
                        error: Some(truncate(
                            &format!(
                                "{reason} (after {} deliveries, max_deliveries = {})",
                                message.deliveries, self.config.max_deliveries
                            ),
                            limits.max_error_chars,
                        )),
                    });
                }
                NackAction::Retry | NackAction::Skip => retry.push(position.0),
                NackAction::Park => park.push(ParkRecord {
                    position: position.0,
                    error: Some(
                        error
                            .clone()
                            .unwrap_or_else(|| "parked by the consumer".to_owned()),
                    ),
                }),
            }
        }
        let mut events = Vec::new();
        let retry_at_ms = now_ms.saturating_add(delay_ms.min(limits.max_retry_delay_ms));
        for chunk in retry.chunks(RECORDS_PER_EVENT) {
            events.push(GroupEvent::Nacked(Nacked {
                positions: chunk.to_vec(),
                action: if action == NackAction::Skip {
                    NackAction::Skip
                } else {
                    NackAction::Retry
                },
                retry_at_ms: if action == NackAction::Skip {
                    0
                } else {
                    retry_at_ms
                },
                error: error.clone(),
            }));
        }
        for chunk in park.chunks(RECORDS_PER_EVENT) {
            events.push(GroupEvent::Parked(Parked {
                entries: chunk.to_vec(),
                at_ms: now_ms,
            }));
        }
        events
    }

    /// The events putting parked events back in line: `positions`, or every parked event.
    pub fn replay(&self, positions: Option<&[Position]>) -> ReplayDecision {
        let mut decision = ReplayDecision::default();
        match positions {
            Some(positions) => {
                let mut seen = HashSet::new();
                for position in positions {
                    if !seen.insert(*position) {
                        continue;
                    }
                    if self.parked.contains_key(position) {
                        decision.replayed.push(*position);
                    } else {
                        decision.unknown.push(*position);
                    }
                }
            }
            None => decision.replayed = self.parked.keys().copied().collect(),
        }
        decision.events = decision
            .replayed
            .chunks(RECORDS_PER_EVENT * 4)
            .map(|chunk| {
                GroupEvent::Replayed(Replayed {
                    positions: chunk.iter().map(|p| p.0).collect(),
                })
            })
            .collect();
        decision
    }

    /// The event pausing delivery, unless already paused by request.
    pub fn pause(&self, reason: &str, limits: &GroupLimits) -> Option<GroupEvent> {
        (self.paused.is_none()).then(|| {
            GroupEvent::Paused(Paused {
                reason: truncate(reason, limits.max_error_chars),
            })
        })
    }

    /// The event resuming delivery, if it was paused by request.
    pub fn resume(&self) -> Option<GroupEvent> {
        self.paused
            .is_some()
            .then_some(GroupEvent::Resumed(Resumed {}))
    }

    /// The whole state as snapshot parts of about `part_bytes` each, to append together.
    pub fn snapshot(&self, part_bytes: usize) -> Vec<GroupEvent> {
        let header = SnapshotHeader {
            config: self.config.clone(),
            cursor: self.cursor.0,
            delivered: self.delivered,
            paused: self.paused.clone(),
            last_error: self.last_error.clone(),
            created_at_ms: self.created_at_ms,
        };
        let mut parts = vec![Snapshot {
            part: 0,
            parts: 0,
            header: Some(header),
            messages: Vec::new(),
            parked: Vec::new(),
        }];
        let mut bytes = 0;
        let mut next_part = |parts: &mut Vec<Snapshot>, size: usize| {
            if bytes + size > part_bytes && bytes > 0 {
                parts.push(Snapshot {
                    part: parts.len() as u32,
                    parts: 0,
                    header: None,
                    messages: Vec::new(),
                    parked: Vec::new(),
                });
                bytes = 0;
            }
            bytes += size;
        };
        for (position, message) in &self.messages {
            let record = message_record(*position, message);
            next_part(&mut parts, record_size(&record));
            if let Some(part) = parts.last_mut() {
                part.messages.push(record);
            }
        }
        for (position, parked) in &self.parked {
            let record = ParkedRecord {
                position: position.0,
                stream: parked.stream.clone(),
                deliveries: parked.deliveries,
                last_error: parked.last_error.clone(),
                parked_at_ms: parked.parked_at_ms,
            };
            next_part(&mut parts, record_size(&record));
            if let Some(part) = parts.last_mut() {
                part.parked.push(record);
            }
        }
        let count = parts.len() as u32;
        parts
            .into_iter()
            .map(|mut part| {
                part.parts = count;
                GroupEvent::Snapshot(part)
            })
            .collect()
    }
}

fn message_record(position: Position, message: &Message) -> MessageRecord {
    let (due_at_ms, receipt, expires_at_ms) = match &message.status {
        MessageStatus::Pending { due_at_ms } => (Some(*due_at_ms), None, None),
        MessageStatus::InFlight {
            receipt,
            expires_at_ms,
        } => (
            None,
            Some(receipt.as_str().to_owned()),
            Some(*expires_at_ms),
        ),
    };
    MessageRecord {
        position: position.0,
        stream: message.stream.clone(),
        deliveries: message.deliveries,
        last_error: message.last_error.clone(),
        due_at_ms,
        receipt,
        expires_at_ms,
    }
}

fn record_size<T: serde::Serialize>(record: &T) -> usize {
    serde_json::to_vec(record).map_or(0, |bytes| bytes.len() + 1)
}

/// Cuts `text` to `max_chars` characters, marking the cut.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A receive being decided: the due messages chosen at the start, then events of `$all`
/// offered one by one in position order, from the group's cursor on.
#[derive(Debug)]
pub struct ReceivePlan<'a> {
    state: &'a GroupState,
    now_ms: u64,
    max: usize,
    room_in_flight: usize,
    room_pending: usize,
    /// Messages the group holds, to deliver again (or for the first time, if held).
    redeliver: Vec<Position>,
    /// Events new to the group, leased now.
    fresh: Vec<(Position, String)>,
    /// Events new to the group, held back behind an earlier one of their stream.
    held: Vec<(Position, String)>,
    /// Streams given a lease or a hold in this receive (`per_stream`).
    busy: HashSet<String>,
    /// Chosen messages whose events could not be read: skipped.
    gone: Vec<Position>,
    cursor: Position,
    full: bool,
}

impl ReceivePlan<'_> {
    fn take_due(&mut self) {
        let state = self.state;
        let per_stream = state.per_stream();
        for (position, message) in &state.messages {
            if self.leases() >= self.max || self.room_in_flight == 0 {
                break;
            }
            let MessageStatus::Pending { due_at_ms } = message.status else {
                continue;
            };
            if due_at_ms > self.now_ms {
                continue;
            }
            if per_stream {
                if self.busy.contains(&message.stream)
                    || !state.is_stream_head(*position, &message.stream)
                {
                    continue;
                }
                self.busy.insert(message.stream.clone());
            }
            self.redeliver.push(*position);
            self.room_in_flight -= 1;
        }
    }

    fn leases(&self) -> usize {
        self.redeliver.len() + self.fresh.len()
    }

    /// The messages chosen for delivery that the group already holds: their events must be
    /// read again (by position) to be delivered.
    pub fn redeliveries(&self) -> &[Position] {
        &self.redeliver
    }

    /// Drops a chosen message whose event cannot be read any more; it is skipped.
    pub fn forget(&mut self, position: Position) {
        if let Some(index) = self.redeliver.iter().position(|p| *p == position) {
            self.redeliver.remove(index);
            self.gone.push(position);
            self.room_in_flight += 1;
        }
    }

    /// Where the next event offered must be (or lie past): the cursor as moved so far.
    pub fn cursor(&self) -> Position {
        self.cursor
    }

    /// Whether offering more events could take any.
    pub fn wants_more(&self) -> bool {
        !self.full && self.leases() < self.max && self.room_in_flight > 0
    }

    /// How many more events this receive could lease.
    pub fn wanted(&self) -> usize {
        if self.full {
            return 0;
        }
        self.max
            .saturating_sub(self.leases())
            .min(self.room_in_flight)
    }

    /// Offers the next matching event of `$all`, at or past [`ReceivePlan::cursor`].
    pub fn offer(&mut self, position: Position, stream: &str) -> Offer {
        debug_assert!(
            position >= self.cursor,
            "events are offered in position order"
        );
        if !self.wants_more() {
            self.full = true;
            return Offer::Stop;
        }
        let per_stream = self.state.per_stream();
        if per_stream && (self.state.streams.contains_key(stream) || self.busy.contains(stream)) {
            if self.room_pending == 0 {
                self.full = true;
                return Offer::Stop;
            }
            self.room_pending -= 1;
            self.held.push((position, stream.to_owned()));
            self.cursor = position.next();
            return Offer::Held;
        }
        self.fresh.push((position, stream.to_owned()));
        self.room_in_flight -= 1;
        if per_stream {
            self.busy.insert(stream.to_owned());
        }
        self.cursor = position.next();
        Offer::Leased
    }

    /// Records that every event below `position` was scanned and needs nothing (it did not
    /// match). Ignored once the receive is full: the cursor must not pass an event it refused.
    pub fn skip_to(&mut self, position: Position) {
        if !self.full {
            self.cursor = self.cursor.max(position);
        }
    }

    /// The decision: the state events to append and the leases they grant, with a receipt
    /// for each from `receipt(position, delivery)`.
    pub fn finish(self, mut receipt: impl FnMut(Position, u32) -> Receipt) -> ReceiveDecision {
        let state = self.state;
        let expires_at_ms = self.now_ms.saturating_add(state.config.ack_timeout_ms);
        let mut leases: Vec<(Lease, Option<String>)> = Vec::with_capacity(self.leases());
        for position in &self.redeliver {
            let delivery = state
                .messages
                .get(position)
                .map_or(1, |message| message.deliveries.saturating_add(1));
            leases.push((
                Lease {
                    position: *position,
                    receipt: receipt(*position, delivery),
                    delivery,
                    expires_at_ms,
                },
                None,
            ));
        }
        for (position, stream) in self.fresh {
            leases.push((
                Lease {
                    position,
                    receipt: receipt(position, 1),
                    delivery: 1,
                    expires_at_ms,
                },
                Some(stream),
            ));
        }
        leases.sort_by_key(|(lease, _)| lease.position);

        let mut events = Vec::new();
        if !self.gone.is_empty() {
            events.push(GroupEvent::Nacked(Nacked {
                positions: self.gone.iter().map(|p| p.0).collect(),
                action: NackAction::Skip,
                retry_at_ms: 0,
                error: Some("the event could not be read from the store".to_owned()),
            }));
        }
        let held: Vec<HeldRecord> = self
            .held
            .into_iter()
            .map(|(position, stream)| HeldRecord {
                position: position.0,
                stream,
            })
            .collect();
        let records: Vec<LeaseRecord> = leases
            .iter()
            .map(|(lease, stream)| LeaseRecord {
                position: lease.position.0,
                stream: stream.clone(),
                receipt: lease.receipt.as_str().to_owned(),
                delivery: lease.delivery,
                expires_at_ms: lease.expires_at_ms,
            })
            .collect();
        // Every part carries the same cursor: they are appended together, so the cursor
        // never moves past a lease or hold that was not recorded with it.
        for chunk in records.chunks(RECORDS_PER_EVENT) {
            events.push(GroupEvent::Leased(Leased {
                leases: chunk.to_vec(),
                held: Vec::new(),
                cursor: self.cursor.0,
            }));
        }
        for chunk in held.chunks(RECORDS_PER_EVENT) {
            events.push(GroupEvent::Leased(Leased {
                leases: Vec::new(),
                held: chunk.to_vec(),
                cursor: self.cursor.0,
            }));
        }
        ReceiveDecision {
            events,
            leases: leases.into_iter().map(|(lease, _)| lease).collect(),
            scanned_to: self.cursor,
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
