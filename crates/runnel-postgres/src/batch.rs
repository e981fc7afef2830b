//! One group commit's plan: which appends pass their checks, and the rows they write.
//!
//! The writer builds a [`Batch`] from what it read (the current heads of the streams involved,
//! and where the client-chosen ids already live): committed state, which either holds until
//! COMMIT (the streams were locked before the read) or makes the write fail on a unique
//! constraint (another commit got there first; see the writer). Each append
//! is checked against that state plus what the earlier appends of the same batch wrote: a
//! failed check rejects that append alone and writes nothing of it.

use std::collections::HashMap;

use runnel_core::idempotency::resolve_ids;
use runnel_core::{
    AppendOutcome, AppendRequest, Payload, Position, Revision, StoreError, StreamName,
};
use uuid::Uuid;

pub(crate) use runnel_core::idempotency::IdSite;

/// Where a batch numbers its events while it is planned, before its transaction has an id: far
/// above any position the database can reach, so that [`Batch::place`] tells the outcomes of
/// this batch's writes, numbered from here, from those of committed events (a retry answered
/// with its original outcome), and moves only the former to the positions the transaction
/// gave the batch.
pub(crate) const UNPLACED: Position = Position(1 << 62);

/// A stream this batch writes to: its new head, and whether the batch created it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamWrite {
    pub(crate) last_revision: Revision,
    pub(crate) created: bool,
}

/// The rows of the accepted events, one vector per column, as the insert takes them.
#[derive(Debug, Default)]
pub(crate) struct EventRows<'a> {
    pub(crate) positions: Vec<i64>,
    pub(crate) stream_types: Vec<&'a str>,
    pub(crate) stream_ids: Vec<&'a str>,
    pub(crate) revisions: Vec<i64>,
    pub(crate) ids: Vec<Uuid>,
    pub(crate) event_types: Vec<&'a str>,
    pub(crate) data_json: Vec<Option<&'a str>>,
    pub(crate) data_binary: Vec<Option<&'a [u8]>>,
    pub(crate) content_types: Vec<Option<&'a str>>,
    pub(crate) metadata: Vec<Option<&'a str>>,
}

impl EventRows<'_> {
    pub(crate) fn len(&self) -> usize {
        self.positions.len()
    }
}

/// A group commit being planned.
#[derive(Debug)]
pub(crate) struct Batch<'a> {
    pub(crate) first_position: Position,
    pub(crate) next_position: Position,
    /// Stream heads as committed (absent: no events).
    committed_heads: HashMap<StreamName, Revision>,
    /// Client-chosen ids: where they live, committed or written by this batch.
    ids: HashMap<Uuid, IdSite>,
    pub(crate) streams: HashMap<&'a StreamName, StreamWrite>,
    pub(crate) rows: EventRows<'a>,
    /// The bytes of the accepted events, as the limits count them.
    pub(crate) bytes: u64,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(
        next_position: Position,
        committed_heads: HashMap<StreamName, Revision>,
        committed_ids: HashMap<Uuid, IdSite>,
    ) -> Self {
        Self {
            first_position: next_position,
            next_position,
            committed_heads,
            ids: committed_ids,
            streams: HashMap::new(),
            rows: EventRows::default(),
            bytes: 0,
        }
    }

    /// The last position this batch writes, if it writes anything.
    pub(crate) fn last_position(&self) -> Option<Position> {
        (self.next_position > self.first_position).then(|| Position(self.next_position.0 - 1))
    }

    /// An outcome of this batch, planned from [`UNPLACED`], at the positions of a batch whose
    /// first event got `first`. Outcomes of committed events (retries) stay as they are.
    pub(crate) fn place(outcome: AppendOutcome, first: Position) -> AppendOutcome {
        if outcome.first_position < UNPLACED {
            return outcome;
        }
        let shift = |position: Position| Position(first.0 + (position.0 - UNPLACED.0));
        AppendOutcome {
            first_position: shift(outcome.first_position),
            last_position: shift(outcome.last_position),
            ..outcome
        }
    }

    fn current(&self, stream: &StreamName) -> Option<Revision> {
        match self.streams.get(stream) {
            Some(write) => Some(write.last_revision),
            None => self.committed_heads.get(stream).copied(),
        }
    }

    /// Checks one append and, if it passes, adds its events. A retry of an append already
    /// written is answered with the original outcome and writes nothing.
    pub(crate) fn admit(
        &mut self,
        request: &'a AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        if let Some(retried) = self.check_ids(request)? {
            return Ok(retried);
        }
        let current = self.current(&request.stream);
        if !request.expected.is_satisfied_by(current) {
            return Err(StoreError::WrongExpectedRevision {
                stream: request.stream.clone(),
                expected: request.expected,
                current,
            });
        }
        Ok(self.write(request, current))
    }

    /// Detects a retry (answered with the original outcome) and ids that exist anywhere else,
    /// as every engine does: see [`runnel_core::idempotency`].
    fn check_ids(&self, request: &AppendRequest) -> Result<Option<AppendOutcome>, StoreError> {
        resolve_ids(request, |id| Ok(self.ids.get(&id).cloned()))
    }

    fn write(&mut self, request: &'a AppendRequest, current: Option<Revision>) -> AppendOutcome {
        let first_revision = current.map_or(Revision(0), Revision::next);
        let first_position = self.next_position;
        let mut revision = first_revision;
        for event in &request.events {
            let id = event.id.unwrap_or_else(Uuid::now_v7);
            let position = self.next_position;
            let rows = &mut self.rows;
            rows.positions.push(crate::rows::to_i64(position.0));
            rows.stream_types
                .push(request.stream.stream_type().as_str());
            rows.stream_ids.push(request.stream.stream_id().as_str());
            rows.revisions.push(crate::rows::to_i64(revision.0));
            rows.ids.push(id);
            rows.event_types.push(event.event_type.as_str());
            match &event.data {
                Payload::Json(text) => {
                    rows.data_json.push(Some(text.as_str()));
                    rows.data_binary.push(None);
                    rows.content_types.push(None);
                }
                Payload::Binary {
                    content_type,
                    bytes,
                } => {
                    rows.data_json.push(None);
                    rows.data_binary.push(Some(bytes));
                    rows.content_types.push(Some(content_type));
                }
            }
            rows.metadata
                .push(event.metadata.as_ref().map(|metadata| metadata.as_str()));
            self.bytes += event.size_bytes() as u64;
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
        let created = current.is_none();
        self.streams
            .entry(&request.stream)
            .and_modify(|write| write.last_revision = last_revision)
            .or_insert(StreamWrite {
                last_revision,
                created,
            });
        AppendOutcome {
            stream: request.stream.clone(),
            first_revision,
            last_revision,
            first_position,
            last_position: Position(self.next_position.0 - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use runnel_core::{EventType, ExpectedRevision, JsonText, ProposedEvent};

    use super::*;

    fn request(stream: &str, expected: ExpectedRevision, ids: &[Option<Uuid>]) -> AppendRequest {
        AppendRequest {
            stream: StreamName::parse(stream).expect("valid"),
            expected,
            events: ids
                .iter()
                .map(|id| ProposedEvent {
                    id: *id,
                    ..ProposedEvent::json(
                        EventType::parse("A").expect("valid"),
                        JsonText::parse("{}".to_owned()).expect("valid"),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn appends_in_one_batch_see_each_other_and_get_consecutive_positions() {
        let mut batch = Batch::new(Position(10), HashMap::new(), HashMap::new());
        let first = request("order/o-1", ExpectedRevision::NoStream, &[None, None]);
        let second = request("order/o-1", ExpectedRevision::Exact(Revision(1)), &[None]);
        let stale = request("order/o-1", ExpectedRevision::NoStream, &[None]);
        let one = batch.admit(&first).expect("first append passes");
        let two = batch.admit(&second).expect("second sees the first");
        assert!(matches!(
            batch.admit(&stale),
            Err(StoreError::WrongExpectedRevision {
                current: Some(Revision(2)),
                ..
            })
        ));
        assert_eq!(
            (one.first_position, one.last_position),
            (Position(10), Position(11))
        );
        assert_eq!(
            (two.first_revision, two.first_position),
            (Revision(2), Position(12))
        );
        assert_eq!(batch.rows.len(), 3);
        assert_eq!(batch.last_position(), Some(Position(12)));
        let write = batch.streams.values().next().expect("one stream");
        assert!(write.created);
        assert_eq!(write.last_revision, Revision(2));
    }

    #[test]
    fn placing_moves_only_the_outcomes_of_this_batch() {
        let id = Uuid::now_v7();
        let committed = IdSite {
            stream: StreamName::parse("order/o-1").expect("valid"),
            revision: Revision(0),
            position: Position(7),
        };
        let mut batch = Batch::new(UNPLACED, HashMap::new(), HashMap::from([(id, committed)]));
        let retry = request("order/o-1", ExpectedRevision::Any, &[Some(id)]);
        let fresh = request("order/o-2", ExpectedRevision::Any, &[None, None]);
        let retried = batch.admit(&retry).expect("a retry is answered");
        let written = batch.admit(&fresh).expect("passes");
        let retried = Batch::place(retried, Position(100));
        let written = Batch::place(written, Position(100));
        assert_eq!(
            (retried.first_position, retried.last_position),
            (Position(7), Position(7))
        );
        assert_eq!(
            (written.first_position, written.last_position),
            (Position(100), Position(101))
        );
    }

    #[test]
    fn a_retry_within_the_batch_returns_the_first_outcome() {
        let id = Uuid::now_v7();
        let mut batch = Batch::new(Position(0), HashMap::new(), HashMap::new());
        let append = request("order/o-1", ExpectedRevision::NoStream, &[Some(id)]);
        let first = batch.admit(&append).expect("passes");
        let again = batch.admit(&append).expect("a retry is answered");
        assert_eq!(first, again);
        assert_eq!(batch.rows.len(), 1, "the retry writes nothing");
        let elsewhere = request("order/o-2", ExpectedRevision::Any, &[Some(id)]);
        assert!(matches!(
            batch.admit(&elsewhere),
            Err(StoreError::DuplicateEventId { id: found }) if found == id
        ));
    }
}
