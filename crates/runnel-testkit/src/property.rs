//! Model-based property testing: random sequences of operations run on a store under test and
//! on a fresh [`ModelStore`] side by side, with every outcome compared.
//!
//! Operations are generated in terms of small indices (which stream, which earlier id, how far
//! from the current revision) and resolved against the model's state as they run, so that a
//! sequence keeps its meaning when proptest shrinks it: appends with expectations that are
//! exactly right, off by one or stale; client ids that are fresh, reused (duplicates) or whole
//! earlier appends sent again (retries); and reads of streams and of `$all` with random
//! starting points, directions, limits and filters.
//!
//! What is compared: errors by kind and fields (where two errors are both valid for one
//! request — a stale expectation *and* a duplicate id — either is accepted); events field by
//! field except `recorded_at`; ids through a map for server-assigned ones; positions exactly
//! when [`CheckOptions::positions_gapless`], otherwise only their order, with `$all` pages held
//! to the contract of `next` rather than to the model's scan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use proptest::prelude::*;
use runnel_core::{
    AllFilter, AllSlice, AppendOutcome, AppendRequest, Direction, EventType, ExpectedRevision,
    JsonText, Payload, Position, ProposedEvent, RecordedEvent, Revision, Store, StoreError,
    StreamId, StreamName, StreamType,
};
use uuid::Uuid;

use crate::model::{ModelStore, clamp_limit};

/// The streams operations touch. The last one is a system stream, which clients cannot write.
pub const STREAMS: [&str; 7] = [
    "order/a",
    "order/b",
    "order/ü-1",
    "user/a",
    "user/b",
    "invoice/x",
    "$audit/x",
];
/// The event types operations use.
pub const EVENT_TYPES: [&str; 3] = ["Created", "Updated", "com.acme:deleted"];
/// Stream types for listing cursors and filters, including some that never hold a stream.
pub const STREAM_TYPES: [&str; 6] = ["invoice", "order", "user", "a", "orde", "zzz"];
/// Stream ids for listing cursors, including some that are never used.
pub const STREAM_IDS: [&str; 6] = ["a", "b", "ü-1", "x", "0", "ü"];

/// A choice among earlier things (ids, appends), taken modulo how many there are when the
/// operation runs; proptest shrinks it towards the first.
#[derive(Debug, Clone, Copy)]
pub struct Pick(pub usize);

impl Pick {
    fn of(self, len: usize) -> usize {
        self.0 % len
    }
}

/// The expected revision of an append, resolved against the model when it runs.
#[derive(Debug, Clone)]
pub enum ExpectedSpec {
    Any,
    NoStream,
    Exists,
    Exact(u64),
    /// The model's current revision plus this (−1 standing for "no stream"): 0 is the right
    /// expectation, others are stale or ahead. Below −1 it becomes `no_stream`.
    NearCurrent(i64),
}

/// The id of a proposed event.
#[derive(Debug, Clone)]
pub enum IdSpec {
    /// No id: the store assigns a UUIDv7.
    Server,
    /// A client id never used before.
    Fresh,
    /// A client id used earlier in the sequence (a duplicate, unless it makes a retry).
    Reuse(Pick),
}

#[derive(Debug, Clone)]
pub enum PayloadSpec {
    Json(u16),
    Binary(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct EventSpec {
    pub id: IdSpec,
    pub event_type: usize,
    pub payload: PayloadSpec,
    pub metadata: Option<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct FilterSpec {
    pub stream_types: Vec<usize>,
    pub event_types: Vec<usize>,
    pub streams: Vec<usize>,
}

/// One operation of a generated sequence. Indices select from the constants of this module
/// (and from earlier appends); they are taken modulo the length.
#[derive(Debug, Clone)]
pub enum Op {
    Append {
        stream: usize,
        expected: ExpectedSpec,
        events: Vec<EventSpec>,
    },
    /// Sends an earlier append request again, with its own or another expectation.
    Retry {
        of: Pick,
        expected: Option<ExpectedSpec>,
    },
    ReadStream {
        stream: usize,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    },
    /// `from` is a position of the gapless model; it is mapped onto the store's positions.
    ReadAll {
        from: u64,
        filter: FilterSpec,
        limit: usize,
    },
    StreamInfo {
        stream: usize,
    },
    ListStreamTypes {
        after: Option<usize>,
        limit: usize,
    },
    ListStreams {
        stream_type: usize,
        after: Option<usize>,
        limit: usize,
    },
}

/// How strictly to compare the store with the model.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// The store numbers positions 0, 1, 2 … like the model (the embedded engine): compare them
    /// and every `next` exactly. Otherwise only their order is compared.
    pub positions_gapless: bool,
}

/// What a checked sequence exercised, to show that generated sequences are not vacuous.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Appends that wrote events.
    pub appended: usize,
    /// Appends answered as idempotent retries.
    pub retried: usize,
    pub wrong_expected_revision: usize,
    pub duplicate_event_id: usize,
    /// Appends refused for another reason (empty, system stream, limits).
    pub refused_otherwise: usize,
    /// Reads of a stream that does not exist.
    pub not_found: usize,
    /// Reads that returned at least one event.
    pub reads_with_events: usize,
}

impl Coverage {
    pub fn add(&mut self, other: &Coverage) {
        self.appended += other.appended;
        self.retried += other.retried;
        self.wrong_expected_revision += other.wrong_expected_revision;
        self.duplicate_event_id += other.duplicate_event_id;
        self.refused_otherwise += other.refused_otherwise;
        self.not_found += other.not_found;
        self.reads_with_events += other.reads_with_events;
    }
}

/// Where the store under test and the model disagreed.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// The index of the operation in the sequence (`ops.len()` for the final comparison).
    pub op_index: usize,
    pub op: String,
    pub detail: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operation {} ({}) diverged from the model: {}",
            self.op_index, self.op, self.detail
        )
    }
}

impl std::error::Error for Divergence {}

// ---------------------------------------------------------------------------------------------
// Strategies

fn stream_index() -> impl Strategy<Value = usize> {
    prop_oneof![19 => 0..STREAMS.len() - 1, 1 => Just(STREAMS.len() - 1)]
}

fn expected_spec() -> impl Strategy<Value = ExpectedSpec> {
    prop_oneof![
        3 => Just(ExpectedSpec::Any),
        1 => Just(ExpectedSpec::NoStream),
        1 => Just(ExpectedSpec::Exists),
        1 => (0u64..5).prop_map(ExpectedSpec::Exact),
        4 => (-2i64..=1).prop_map(ExpectedSpec::NearCurrent),
    ]
}

fn id_spec() -> impl Strategy<Value = IdSpec> {
    prop_oneof![
        3 => Just(IdSpec::Server),
        4 => Just(IdSpec::Fresh),
        1 => any::<usize>().prop_map(|n| IdSpec::Reuse(Pick(n))),
    ]
}

fn payload_spec() -> impl Strategy<Value = PayloadSpec> {
    prop_oneof![
        4 => any::<u16>().prop_map(PayloadSpec::Json),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(PayloadSpec::Binary),
    ]
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    (
        id_spec(),
        0..EVENT_TYPES.len(),
        payload_spec(),
        prop::option::of(any::<u8>()),
    )
        .prop_map(|(id, event_type, payload, metadata)| EventSpec {
            id,
            event_type,
            payload,
            metadata,
        })
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    let none_or_some = |len: usize| {
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::collection::vec(0..len, 1..3),
        ]
    };
    prop_oneof![
        1 => Just(FilterSpec::default()),
        2 => (
            none_or_some(STREAM_TYPES.len()),
            none_or_some(EVENT_TYPES.len()),
            none_or_some(STREAMS.len()),
        )
            .prop_map(|(stream_types, event_types, streams)| FilterSpec {
                stream_types,
                event_types,
                streams,
            }),
    ]
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Forward), Just(Direction::Backward)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let events = prop_oneof![
        1 => Just(Vec::new()),
        12 => prop::collection::vec(event_spec(), 1..=4),
    ];
    prop_oneof![
        10 => (stream_index(), expected_spec(), events)
            .prop_map(|(stream, expected, events)| Op::Append { stream, expected, events }),
        3 => (any::<usize>(), prop::option::of(expected_spec()))
            .prop_map(|(of, expected)| Op::Retry { of: Pick(of), expected }),
        3 => (stream_index(), prop::option::of(0u64..10), direction(), 1usize..6).prop_map(
            |(stream, from, direction, limit)| Op::ReadStream { stream, from, direction, limit }
        ),
        3 => (0u64..50, filter_spec(), 1usize..8)
            .prop_map(|(from, filter, limit)| Op::ReadAll { from, filter, limit }),
        1 => stream_index().prop_map(|stream| Op::StreamInfo { stream }),
        1 => (prop::option::of(0..STREAM_TYPES.len()), 1usize..4)
            .prop_map(|(after, limit)| Op::ListStreamTypes { after, limit }),
        1 => (0..STREAM_TYPES.len(), prop::option::of(0..STREAM_IDS.len()), 1usize..4).prop_map(
            |(stream_type, after, limit)| Op::ListStreams { stream_type, after, limit }
        ),
    ]
}

/// Sequences of 1 to 60 operations.
pub fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op_strategy(), 1..60)
}

// ---------------------------------------------------------------------------------------------
// The checker

/// Applies every operation to `store` (fresh and empty) and to a fresh [`ModelStore`] with the
/// same limits, and reports the first disagreement, or what the sequence exercised.
pub async fn check_against_model(
    store: &dyn Store,
    ops: &[Op],
    options: CheckOptions,
) -> Result<Coverage, Divergence> {
    let mut checker = Checker::new(store, options);
    for (op_index, op) in ops.iter().enumerate() {
        checker.apply(op).await.map_err(|detail| Divergence {
            op_index,
            op: format!("{op:?}"),
            detail,
        })?;
    }
    checker
        .compare_everything()
        .await
        .map_err(|detail| Divergence {
            op_index: ops.len(),
            op: "final comparison of every stream and of $all".to_owned(),
            detail,
        })?;
    Ok(checker.coverage)
}

type Checked = Result<(), String>;

struct Checker<'a> {
    store: &'a dyn Store,
    model: ModelStore,
    options: CheckOptions,
    /// Client-chosen ids used so far, for reuse.
    client_ids: Vec<Uuid>,
    next_fresh_id: u128,
    /// Append requests sent so far, for retries.
    requests: Vec<AppendRequest>,
    /// Model id → store id; equal except for server-assigned ids.
    ids: HashMap<Uuid, Uuid>,
    store_ids: HashSet<Uuid>,
    /// Model position → store position.
    positions: BTreeMap<Position, Position>,
    coverage: Coverage,
}

fn stream_name(index: usize) -> StreamName {
    let raw = STREAMS[index % STREAMS.len()];
    StreamName::parse(raw).unwrap_or_else(|error| panic!("constant stream {raw:?}: {error}"))
}

fn stream_type(index: usize) -> StreamType {
    let raw = STREAM_TYPES[index % STREAM_TYPES.len()];
    StreamType::parse(raw).unwrap_or_else(|error| panic!("constant type {raw:?}: {error}"))
}

fn event_type(index: usize) -> EventType {
    let raw = EVENT_TYPES[index % EVENT_TYPES.len()];
    EventType::parse(raw).unwrap_or_else(|error| panic!("constant event type {raw:?}: {error}"))
}

fn stream_id(index: usize) -> StreamId {
    let raw = STREAM_IDS[index % STREAM_IDS.len()];
    StreamId::parse(raw).unwrap_or_else(|error| panic!("constant stream id {raw:?}: {error}"))
}

fn json(text: String) -> JsonText {
    JsonText::parse(text).unwrap_or_else(|error| panic!("generated JSON is valid: {error}"))
}

fn payload(spec: &PayloadSpec) -> Payload {
    match spec {
        PayloadSpec::Json(n) => Payload::Json(json(match n % 4 {
            0 => format!(r#"{{"n":{n}}}"#),
            1 => format!(r#"[{n}, "x"]"#),
            2 => format!(r#" {{ "n" : {n} ,"s":"ü"}} "#),
            _ => format!(r#""s-{n}""#),
        })),
        PayloadSpec::Binary(bytes) => Payload::Binary {
            content_type: "application/octet-stream".to_owned(),
            bytes: bytes.clone(),
        },
    }
}

fn filter(spec: &FilterSpec) -> AllFilter {
    AllFilter {
        stream_types: spec.stream_types.iter().map(|&i| stream_type(i)).collect(),
        event_types: spec.event_types.iter().map(|&i| event_type(i)).collect(),
        streams: spec.streams.iter().map(|&i| stream_name(i)).collect(),
    }
}

/// Two events are the same when everything but `recorded_at` is equal.
fn same_event(got: &RecordedEvent, want: &RecordedEvent) -> bool {
    let aligned = RecordedEvent {
        recorded_at: want.recorded_at,
        ..got.clone()
    };
    &aligned == want
}

impl<'a> Checker<'a> {
    fn new(store: &'a dyn Store, options: CheckOptions) -> Self {
        Self {
            store,
            model: ModelStore::new(store.limits()),
            options,
            client_ids: Vec::new(),
            next_fresh_id: 0,
            requests: Vec::new(),
            ids: HashMap::new(),
            store_ids: HashSet::new(),
            positions: BTreeMap::new(),
            coverage: Coverage::default(),
        }
    }

    async fn apply(&mut self, op: &Op) -> Checked {
        match op {
            Op::Append {
                stream,
                expected,
                events,
            } => {
                let request = self.resolve_append(*stream, expected, events);
                self.requests.push(request.clone());
                self.append(request).await
            }
            Op::Retry { of, expected } => {
                if self.requests.is_empty() {
                    return Ok(());
                }
                let mut request = self.requests[of.of(self.requests.len())].clone();
                if let Some(expected) = expected {
                    request.expected = self.resolve_expected(&request.stream, expected);
                }
                self.append(request).await
            }
            Op::ReadStream {
                stream,
                from,
                direction,
                limit,
            } => {
                self.read_stream(
                    &stream_name(*stream),
                    from.map(Revision),
                    *direction,
                    *limit,
                )
                .await
            }
            Op::ReadAll {
                from,
                filter: spec,
                limit,
            } => self.read_all(Position(*from), &filter(spec), *limit).await,
            Op::StreamInfo { stream } => self.stream_info(&stream_name(*stream)).await,
            Op::ListStreamTypes { after, limit } => {
                let after = after.map(stream_type);
                let want = self.model.list_stream_types(after.as_ref(), *limit).await;
                let got = self.store.list_stream_types(after.as_ref(), *limit).await;
                match (want, got) {
                    (Ok(want), Ok(got)) if want == got => Ok(()),
                    (want, got) => Err(format!("model {want:?}, store {got:?}")),
                }
            }
            Op::ListStreams {
                stream_type: of_type,
                after,
                limit,
            } => {
                let of_type = stream_type(*of_type);
                let after = after.map(stream_id);
                let want = self
                    .model
                    .list_streams(&of_type, after.as_ref(), *limit)
                    .await;
                let got = self
                    .store
                    .list_streams(&of_type, after.as_ref(), *limit)
                    .await;
                match (want, got) {
                    (Ok(want), Ok(got)) => {
                        let strip =
                            |items: &[runnel_core::StreamInfo]| -> Vec<(StreamName, Revision)> {
                                items
                                    .iter()
                                    .map(|i| (i.stream.clone(), i.revision))
                                    .collect()
                            };
                        if strip(&want.items) != strip(&got.items) || want.next != got.next {
                            return Err(format!("model {want:?}, store {got:?}"));
                        }
                        match got.items.iter().find(|i| i.created_at > i.updated_at) {
                            Some(info) => Err(format!("created_at after updated_at: {info:?}")),
                            None => Ok(()),
                        }
                    }
                    (want, got) => Err(format!("model {want:?}, store {got:?}")),
                }
            }
        }
    }

    fn resolve_expected(&self, stream: &StreamName, spec: &ExpectedSpec) -> ExpectedRevision {
        match spec {
            ExpectedSpec::Any => ExpectedRevision::Any,
            ExpectedSpec::NoStream => ExpectedRevision::NoStream,
            ExpectedSpec::Exists => ExpectedRevision::Exists,
            ExpectedSpec::Exact(revision) => ExpectedRevision::Exact(Revision(*revision)),
            ExpectedSpec::NearCurrent(delta) => {
                let current = self
                    .model
                    .current_revision(stream)
                    .map_or(-1, |r| r.0 as i64);
                match u64::try_from(current + delta) {
                    Ok(target) => ExpectedRevision::Exact(Revision(target)),
                    Err(_) => ExpectedRevision::NoStream,
                }
            }
        }
    }

    fn resolve_append(
        &mut self,
        stream: usize,
        expected: &ExpectedSpec,
        events: &[EventSpec],
    ) -> AppendRequest {
        let stream = stream_name(stream);
        let expected = self.resolve_expected(&stream, expected);
        let events = events
            .iter()
            .map(|spec| ProposedEvent {
                id: self.resolve_id(&spec.id),
                event_type: event_type(spec.event_type),
                data: payload(&spec.payload),
                metadata: spec.metadata.map(|m| json(format!(r#"{{"m":{m}}}"#))),
            })
            .collect();
        AppendRequest {
            stream,
            expected,
            events,
        }
    }

    fn resolve_id(&mut self, spec: &IdSpec) -> Option<Uuid> {
        match spec {
            IdSpec::Server => None,
            IdSpec::Reuse(index) if !self.client_ids.is_empty() => {
                Some(self.client_ids[index.of(self.client_ids.len())])
            }
            IdSpec::Fresh | IdSpec::Reuse(_) => {
                // Deterministic, so that a failing sequence replays identically.
                self.next_fresh_id += 1;
                let id =
                    Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 | self.next_fresh_id);
                self.client_ids.push(id);
                Some(id)
            }
        }
    }

    async fn append(&mut self, request: AppendRequest) -> Checked {
        let current_before = self.model.current_revision(&request.stream);
        let events_before = self.model.all_events().len();
        let want = self.model.append(request.clone()).await;
        let got = self.store.append(request.clone()).await;
        match &want {
            Ok(_) if self.model.all_events().len() == events_before => self.coverage.retried += 1,
            Ok(_) => self.coverage.appended += 1,
            Err(StoreError::WrongExpectedRevision { .. }) => {
                self.coverage.wrong_expected_revision += 1
            }
            Err(StoreError::DuplicateEventId { .. }) => self.coverage.duplicate_event_id += 1,
            Err(_) => self.coverage.refused_otherwise += 1,
        }
        match (want, got) {
            (Ok(want), Ok(got)) => self.check_appended(&request, &want, &got).await,
            (Err(want), Err(got)) => self.check_append_error(&request, current_before, &want, &got),
            (want, got) => Err(format!(
                "append to {} (expected {}): model {want:?}, store {got:?}",
                request.stream, request.expected
            )),
        }
    }

    /// Pairs the events both sides wrote (or found, for a retry), extending the id and position
    /// maps, and checks the outcome against them.
    async fn check_appended(
        &mut self,
        request: &AppendRequest,
        want: &AppendOutcome,
        got: &AppendOutcome,
    ) -> Checked {
        if (&got.stream, got.first_revision, got.last_revision)
            != (&want.stream, want.first_revision, want.last_revision)
        {
            return Err(format!("outcome: model {want:?}, store {got:?}"));
        }
        let count = (want.last_revision.0 - want.first_revision.0 + 1) as usize;
        let model_events = self
            .model
            .read_stream(
                &want.stream,
                Some(want.first_revision),
                Direction::Forward,
                count,
            )
            .await
            .map_err(|error| format!("model read-back failed: {error}"))?
            .events;
        let store_events = self
            .store
            .read_stream(
                &got.stream,
                Some(got.first_revision),
                Direction::Forward,
                count,
            )
            .await
            .map_err(|error| format!("store read-back of {got:?} failed: {error}"))?
            .events;
        if store_events.len() != count {
            return Err(format!(
                "read-back of {got:?} returned {} events",
                store_events.len()
            ));
        }
        for ((model_event, store_event), proposed) in
            model_events.iter().zip(&store_events).zip(&request.events)
        {
            self.pair(model_event, store_event, proposed.id.is_none())?;
            let expected = self.to_store(model_event)?;
            if !same_event(store_event, &expected) {
                return Err(format!(
                    "read-back: model {expected:?}, store {store_event:?}"
                ));
            }
        }
        let first = self.store_position(want.first_position)?;
        let last = self.store_position(want.last_position)?;
        if (got.first_position, got.last_position) != (first, last) {
            return Err(format!(
                "outcome positions: model {want:?} maps to {first}..={last}, store {got:?}"
            ));
        }
        Ok(())
    }

    fn pair(
        &mut self,
        model_event: &RecordedEvent,
        store_event: &RecordedEvent,
        server_id: bool,
    ) -> Checked {
        match self.ids.get(&model_event.id) {
            Some(known) if *known != store_event.id => {
                return Err(format!(
                    "event {} is {} in the store, earlier {known}",
                    model_event.id, store_event.id
                ));
            }
            Some(_) => {}
            None => {
                if server_id && store_event.id.get_version_num() != 7 {
                    return Err(format!(
                        "server-assigned id {} is not a UUIDv7",
                        store_event.id
                    ));
                }
                if !server_id && store_event.id != model_event.id {
                    return Err(format!(
                        "client id {} stored as {}",
                        model_event.id, store_event.id
                    ));
                }
                if !self.store_ids.insert(store_event.id) {
                    return Err(format!("store id {} given to two events", store_event.id));
                }
                self.ids.insert(model_event.id, store_event.id);
            }
        }
        match self.positions.get(&model_event.position) {
            Some(known) if *known != store_event.position => Err(format!(
                "model position {} is store position {}, earlier {known}",
                model_event.position, store_event.position
            )),
            Some(_) => Ok(()),
            None => {
                if self.options.positions_gapless && store_event.position != model_event.position {
                    return Err(format!(
                        "gapless positions differ: model {}, store {}",
                        model_event.position, store_event.position
                    ));
                }
                // New positions must continue the store's order.
                if let Some((_, last)) = self.positions.last_key_value()
                    && store_event.position <= *last
                {
                    return Err(format!(
                        "new store position {} is not after the last one {last}",
                        store_event.position
                    ));
                }
                self.positions
                    .insert(model_event.position, store_event.position);
                Ok(())
            }
        }
    }

    fn store_position(&self, model: Position) -> Result<Position, String> {
        self.positions
            .get(&model)
            .copied()
            .ok_or_else(|| format!("model position {model} was never paired with the store's"))
    }

    /// The model's event as the store should return it.
    fn to_store(&self, model_event: &RecordedEvent) -> Result<RecordedEvent, String> {
        let id = *self
            .ids
            .get(&model_event.id)
            .ok_or_else(|| format!("model event {} was never paired", model_event.id))?;
        Ok(RecordedEvent {
            id,
            position: self.store_position(model_event.position)?,
            ..model_event.clone()
        })
    }

    fn check_append_error(
        &self,
        request: &AppendRequest,
        current_before: Option<Revision>,
        want: &StoreError,
        got: &StoreError,
    ) -> Checked {
        let acceptable = |error: &StoreError| match error {
            StoreError::WrongExpectedRevision {
                stream,
                expected,
                current,
            } => {
                stream == &request.stream
                    && *expected == request.expected
                    && *current == current_before
                    && !request.expected.is_satisfied_by(current_before)
            }
            StoreError::DuplicateEventId { id } => {
                let mut seen = HashSet::new();
                let repeated = request
                    .events
                    .iter()
                    .filter_map(|e| e.id)
                    .any(|i| i == *id && !seen.insert(i));
                request.events.iter().any(|e| e.id == Some(*id))
                    && (self.model.contains_id(*id) || repeated)
            }
            _ => false,
        };
        let same = match (want, got) {
            (StoreError::WrongExpectedRevision { .. } | StoreError::DuplicateEventId { .. }, _) => {
                acceptable(got)
            }
            (StoreError::EmptyAppend, StoreError::EmptyAppend) => true,
            (StoreError::SystemStream { stream: a }, StoreError::SystemStream { stream: b }) => {
                a == b
            }
            (
                StoreError::LimitExceeded {
                    limit: a,
                    max: b,
                    actual: c,
                    index: d,
                },
                StoreError::LimitExceeded {
                    limit: e,
                    max: f,
                    actual: g,
                    index: h,
                },
            ) => (a, b, c, d) == (e, f, g, h),
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(format!(
                "append to {} (expected {}) refused differently: model {want:?}, store {got:?}",
                request.stream, request.expected
            ))
        }
    }

    async fn read_stream(
        &mut self,
        stream: &StreamName,
        from: Option<Revision>,
        direction: Direction,
        limit: usize,
    ) -> Checked {
        let want = self.model.read_stream(stream, from, direction, limit).await;
        let got = self.store.read_stream(stream, from, direction, limit).await;
        match &want {
            Ok(slice) if !slice.events.is_empty() => self.coverage.reads_with_events += 1,
            Err(StoreError::StreamNotFound { .. }) => self.coverage.not_found += 1,
            _ => {}
        }
        match (want, got) {
            (
                Err(StoreError::StreamNotFound { stream: a }),
                Err(StoreError::StreamNotFound { stream: b }),
            ) if a == b => Ok(()),
            (Ok(want), Ok(got)) => {
                let expected = want
                    .events
                    .iter()
                    .map(|e| self.to_store(e))
                    .collect::<Result<Vec<_>, _>>()?;
                let events_match = expected.len() == got.events.len()
                    && got
                        .events
                        .iter()
                        .zip(&expected)
                        .all(|(g, w)| same_event(g, w));
                if !events_match || want.next != got.next {
                    return Err(format!(
                        "read_stream {stream} from {from:?} {direction:?} limit {limit}: model {expected:?} next {:?}, store {:?} next {:?}",
                        want.next, got.events, got.next
                    ));
                }
                Ok(())
            }
            (want, got) => Err(format!(
                "read_stream {stream}: model {want:?}, store {got:?}"
            )),
        }
    }

    async fn stream_info(&self, stream: &StreamName) -> Checked {
        let want = self.model.stream_info(stream).await;
        let got = self.store.stream_info(stream).await;
        match (want, got) {
            (Err(StoreError::StreamNotFound { .. }), Err(StoreError::StreamNotFound { .. })) => {
                Ok(())
            }
            (Ok(want), Ok(got))
                if want.stream == got.stream
                    && want.revision == got.revision
                    && got.created_at <= got.updated_at =>
            {
                Ok(())
            }
            (want, got) => Err(format!(
                "stream_info {stream}: model {want:?}, store {got:?}"
            )),
        }
    }

    /// Maps a position of the gapless model onto the store: the store position of the model's
    /// event there, or as far past the store's head as it is past the model's.
    fn store_from(&self, from: Position) -> Position {
        if let Some(mapped) = self.positions.get(&from) {
            return *mapped;
        }
        match self.positions.last_key_value() {
            Some((model_head, store_head)) if from > *model_head => {
                Position(store_head.0.saturating_add(from.0 - model_head.0))
            }
            // The model is gapless from 0, so any other position is past its head.
            _ => from,
        }
    }

    async fn read_all(
        &mut self,
        model_from: Position,
        filter: &AllFilter,
        limit: usize,
    ) -> Checked {
        let from = self.store_from(model_from);
        let want = self
            .model
            .read_all(model_from, filter, limit)
            .await
            .map_err(|error| format!("model read_all: {error}"))?;
        let got = self
            .store
            .read_all(from, filter, limit)
            .await
            .map_err(|error| format!("store read_all from {from}: {error}"))?;
        if !want.events.is_empty() {
            self.coverage.reads_with_events += 1;
        }
        let remaining: Vec<RecordedEvent> = self
            .model
            .all_events()
            .iter()
            .filter(|e| e.position >= model_from && filter.matches(&e.stream, &e.event_type))
            .map(|e| self.to_store(e))
            .collect::<Result<_, _>>()?;
        self.check_all_slice(from, filter, limit, &want, &got, &remaining)
            .map_err(|problem| format!("read_all from {from} (model {model_from}) limit {limit} {filter:?}: {problem}; store {got:?}; model {want:?}"))
    }

    /// Holds a `$all` page to the contract: a prefix of the matching events, a `next` that
    /// skips no match and never passes the head, a head that agrees with the model.
    fn check_all_slice(
        &self,
        from: Position,
        filter: &AllFilter,
        limit: usize,
        want: &AllSlice,
        got: &AllSlice,
        remaining: &[RecordedEvent],
    ) -> Checked {
        let head = want.head.map(|h| self.store_position(h)).transpose()?;
        if got.head != head {
            return Err(format!("head {:?}, expected {head:?}", got.head));
        }
        let returned = got.events.len();
        if returned > clamp_limit(limit) || returned > remaining.len() {
            return Err(format!("{returned} events returned"));
        }
        if !got
            .events
            .iter()
            .zip(remaining)
            .all(|(g, w)| same_event(g, w))
        {
            return Err("the events are not the first matching events from `from`".to_owned());
        }
        if filter.is_empty() && returned != clamp_limit(limit).min(remaining.len()) {
            return Err(format!("an unfiltered read returned {returned} events"));
        }
        match got.next {
            None if returned != remaining.len() => Err(format!(
                "next is None but {} matching events were not returned",
                remaining.len() - returned
            )),
            None => Ok(()),
            Some(next) => {
                if next <= from || got.events.last().is_some_and(|last| next <= last.position) {
                    return Err(format!("next {next} makes no progress"));
                }
                if head.is_none_or(|head| next > head.next()) {
                    return Err(format!("next {next} passes the head {head:?}"));
                }
                if remaining
                    .get(returned)
                    .is_some_and(|skipped| skipped.position < next)
                {
                    return Err(format!(
                        "next {next} skips the matching event at {}",
                        remaining[returned].position
                    ));
                }
                let exact = self.options.positions_gapless && filter.is_empty();
                if exact && got.next != want.next {
                    return Err(format!("next {next}, model {:?}", want.next));
                }
                Ok(())
            }
        }
    }

    /// After the sequence: every stream and all of `$all` agree.
    async fn compare_everything(&self) -> Checked {
        let model_all = self.model.all_events();
        let expected = model_all
            .iter()
            .map(|e| self.to_store(e))
            .collect::<Result<Vec<_>, _>>()?;
        let got = crate::conformance::support::all_events(self.store).await;
        if got.len() != expected.len() || !got.iter().zip(&expected).all(|(g, w)| same_event(g, w))
        {
            return Err(format!("$all differs: model {expected:?}, store {got:?}"));
        }
        for index in 0..STREAMS.len() {
            let stream = stream_name(index);
            let want = self
                .model
                .read_stream(&stream, None, Direction::Forward, 1_000)
                .await;
            let got = crate::conformance::support::stream_events_or_none(self.store, &stream).await;
            let want = want.map(|slice| slice.events).unwrap_or_default();
            let want = want
                .iter()
                .map(|e| self.to_store(e))
                .collect::<Result<Vec<_>, _>>()?;
            if got.len() != want.len() || !got.iter().zip(&want).all(|(g, w)| same_event(g, w)) {
                return Err(format!(
                    "stream {stream} differs: model {want:?}, store {got:?}"
                ));
            }
        }
        Ok(())
    }
}
