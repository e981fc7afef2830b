//! The suite proves itself on the reference model before any engine runs it: the conformance
//! behaviours pass on the model (gapless, and with gaps between appends as PostgreSQL may
//! leave them), the property checker finds no divergence between two models, and it does find
//! the divergence of a store with a planted flaw.

use std::sync::Arc;

use async_trait::async_trait;
use proptest::prelude::*;
use runnel_core::{
    AllFilter, AllSlice, AppendLimits, AppendOutcome, AppendRequest, Direction, ExpectedRevision,
    HeadWatch, Page, Position, Revision, Store, StoreError, StreamId, StreamInfo, StreamName,
    StreamSlice, StreamType, StreamTypeInfo,
};
use runnel_testkit::Fixture;
use runnel_testkit::model::ModelStore;
use runnel_testkit::property::{
    CheckOptions, Coverage, EventSpec, ExpectedSpec, IdSpec, Op, PayloadSpec, Pick,
    check_against_model, ops_strategy,
};

mod gapless_model {
    use super::*;

    async fn model() -> Fixture {
        Fixture::without_guard(Arc::new(ModelStore::new(AppendLimits::default())))
    }

    runnel_testkit::conformance_suite!(model);
}

mod model_with_position_gaps {
    use super::*;

    async fn model() -> Fixture {
        Fixture::without_guard(Arc::new(ModelStore::with_position_gaps(
            AppendLimits::default(),
            7,
        )))
    }

    runnel_testkit::conformance_suite!(model);
}

#[test]
fn every_conformance_behaviour_is_in_the_suite_macro() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/conformance");
    let mut defined = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the conformance sources are readable") {
        let path = entry.expect("a directory entry").path();
        let source = std::fs::read_to_string(&path).expect("a readable source file");
        for line in source.lines() {
            if let Some(rest) = line.strip_prefix("pub async fn ") {
                let name = rest.split('(').next().unwrap_or_default().trim().to_owned();
                defined.push(name);
            }
        }
    }
    defined.sort();
    let mut listed: Vec<String> = runnel_testkit::behaviour_names()
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    listed.sort();
    assert_eq!(
        defined, listed,
        "every `pub async fn` behaviour must be listed in conformance_suite!"
    );
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime starts")
        .block_on(future)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_model_agrees_with_a_second_model(ops in ops_strategy()) {
        let store = ModelStore::new(AppendLimits::default());
        let result = run(check_against_model(&store, &ops, CheckOptions { positions_gapless: true }));
        prop_assert!(result.is_ok(), "{}", result.err().map(|d| d.to_string()).unwrap_or_default());
    }

    #[test]
    fn a_model_with_position_gaps_agrees_when_only_order_is_compared(ops in ops_strategy()) {
        let store = ModelStore::with_position_gaps(AppendLimits::default(), 3);
        let result = run(check_against_model(&store, &ops, CheckOptions { positions_gapless: false }));
        prop_assert!(result.is_ok(), "{}", result.err().map(|d| d.to_string()).unwrap_or_default());
    }
}

#[test]
fn generated_sequences_exercise_every_kind_of_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut total = Coverage::default();
    for _ in 0..64 {
        let ops = ops_strategy()
            .new_tree(&mut runner)
            .expect("a sequence is generated")
            .current();
        let store = ModelStore::new(AppendLimits::default());
        let coverage = run(check_against_model(
            &store,
            &ops,
            CheckOptions {
                positions_gapless: true,
            },
        ))
        .unwrap_or_else(|divergence| panic!("{divergence}"));
        total.add(&coverage);
    }
    eprintln!("{total:?}");
    for (what, count) in [
        ("appends", total.appended),
        ("idempotent retries", total.retried),
        ("wrong expected revisions", total.wrong_expected_revision),
        ("duplicate ids", total.duplicate_event_id),
        ("other refusals", total.refused_otherwise),
        ("reads of missing streams", total.not_found),
        ("reads with events", total.reads_with_events),
    ] {
        assert!(
            count >= 10,
            "64 generated sequences had only {count} {what}: {total:?}"
        );
    }
}

fn json_event(id: IdSpec) -> EventSpec {
    EventSpec {
        id,
        event_type: 0,
        payload: PayloadSpec::Json(1),
        metadata: None,
    }
}

fn append(stream: usize, expected: ExpectedSpec, ids: Vec<IdSpec>) -> Op {
    Op::Append {
        stream,
        expected,
        events: ids.into_iter().map(json_event).collect(),
    }
}

#[test]
fn gapless_comparison_catches_positions_with_gaps() {
    let ops = [
        append(0, ExpectedSpec::Any, vec![IdSpec::Fresh]),
        append(1, ExpectedSpec::Any, vec![IdSpec::Fresh]),
    ];
    let store = ModelStore::with_position_gaps(AppendLimits::default(), 1);
    let divergence = run(check_against_model(
        &store,
        &ops,
        CheckOptions {
            positions_gapless: true,
        },
    ))
    .expect_err("positions 0, 2 are not gapless");
    assert_eq!(divergence.op_index, 1, "{divergence}");
}

/// Ways to break a store, each of which the checker must notice.
#[derive(Debug, Clone, Copy)]
enum Flaw {
    /// Appends as if every expectation were `any`.
    IgnoresExpectedRevision,
    /// Refuses every retry as a duplicate.
    ForgetsRetries,
    /// Returns backward reads in forward order.
    ReadsBackwardForward,
    /// Skips the first event of every non-empty filtered `$all` page.
    FilteredReadSkipsAnEvent,
}

#[derive(Debug)]
struct FlawedStore {
    inner: ModelStore,
    flaw: Flaw,
}

#[async_trait]
impl Store for FlawedStore {
    async fn append(&self, mut request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        match self.flaw {
            Flaw::IgnoresExpectedRevision => request.expected = ExpectedRevision::Any,
            Flaw::ForgetsRetries => {
                if let Some(id) = request.events.iter().find_map(|e| e.id)
                    && self.inner.contains_id(id)
                {
                    return Err(StoreError::DuplicateEventId { id });
                }
            }
            _ => {}
        }
        self.inner.append(request).await
    }

    async fn append_system(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.inner.append_system(request).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Revision>,
        direction: Direction,
        limit: usize,
    ) -> Result<StreamSlice, StoreError> {
        let mut slice = self
            .inner
            .read_stream(stream, from, direction, limit)
            .await?;
        if matches!(self.flaw, Flaw::ReadsBackwardForward) && direction == Direction::Backward {
            slice.events.reverse();
        }
        Ok(slice)
    }

    async fn stream_info(&self, stream: &StreamName) -> Result<StreamInfo, StoreError> {
        self.inner.stream_info(stream).await
    }

    async fn list_stream_types(
        &self,
        after: Option<&StreamType>,
        limit: usize,
    ) -> Result<Page<StreamTypeInfo, StreamType>, StoreError> {
        self.inner.list_stream_types(after, limit).await
    }

    async fn list_streams(
        &self,
        stream_type: &StreamType,
        after: Option<&StreamId>,
        limit: usize,
    ) -> Result<Page<StreamInfo, StreamId>, StoreError> {
        self.inner.list_streams(stream_type, after, limit).await
    }

    async fn read_all(
        &self,
        from: Position,
        filter: &AllFilter,
        limit: usize,
    ) -> Result<AllSlice, StoreError> {
        let mut slice = self.inner.read_all(from, filter, limit).await?;
        if matches!(self.flaw, Flaw::FilteredReadSkipsAnEvent)
            && !filter.is_empty()
            && !slice.events.is_empty()
        {
            slice.events.remove(0);
        }
        Ok(slice)
    }

    fn watch_head(&self) -> HeadWatch {
        self.inner.watch_head()
    }

    fn limits(&self) -> AppendLimits {
        self.inner.limits()
    }

    async fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

fn flawed(flaw: Flaw) -> FlawedStore {
    FlawedStore {
        inner: ModelStore::new(AppendLimits::default()),
        flaw,
    }
}

#[test]
fn the_checker_catches_planted_flaws() {
    let two_events = append(0, ExpectedSpec::Any, vec![IdSpec::Fresh, IdSpec::Fresh]);
    let cases: [(Flaw, Vec<Op>, usize); 4] = [
        (
            Flaw::IgnoresExpectedRevision,
            vec![
                append(0, ExpectedSpec::NoStream, vec![IdSpec::Server]),
                append(0, ExpectedSpec::NoStream, vec![IdSpec::Server]),
            ],
            1,
        ),
        (
            Flaw::ForgetsRetries,
            vec![
                two_events.clone(),
                Op::Retry {
                    of: Pick(0),
                    expected: None,
                },
            ],
            1,
        ),
        (
            Flaw::ReadsBackwardForward,
            vec![
                two_events.clone(),
                Op::ReadStream {
                    stream: 0,
                    from: None,
                    direction: Direction::Backward,
                    limit: 5,
                },
            ],
            1,
        ),
        (
            Flaw::FilteredReadSkipsAnEvent,
            vec![
                two_events,
                Op::ReadAll {
                    from: 0,
                    filter: runnel_testkit::property::FilterSpec {
                        event_types: vec![0],
                        ..Default::default()
                    },
                    limit: 5,
                },
            ],
            1,
        ),
    ];
    for (flaw, ops, diverging_op) in cases {
        let store = flawed(flaw);
        let result = run(check_against_model(
            &store,
            &ops,
            CheckOptions {
                positions_gapless: true,
            },
        ));
        match result {
            Err(divergence) => assert_eq!(
                divergence.op_index, diverging_op,
                "{flaw:?} caught at the wrong operation: {divergence}"
            ),
            Ok(_) => panic!("the checker missed the flaw {flaw:?}"),
        }
    }
}
