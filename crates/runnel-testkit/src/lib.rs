//! The conformance suite every Runnel engine must pass, written once against the
//! [`runnel_core::Store`] trait, and the in-memory reference model it is checked against.
//!
//! - [`conformance`]: one `async fn` per behaviour of the store, and the
//!   [`conformance_suite!`] macro that turns them into individually named tests for an engine.
//! - [`model`]: [`model::ModelStore`], a deliberately plain implementation of the same
//!   semantics. It passes the suite itself, which is how the suite is known to be right.
//! - [`property`]: a proptest strategy of operation sequences and a checker that runs them on
//!   an engine and on the model side by side.
//!
//! An engine's test file needs only a factory that makes a fresh, empty store:
//!
//! ```ignore
//! async fn embedded() -> runnel_testkit::Fixture {
//!     let dir = tempfile::tempdir().expect("temp dir");
//!     let store = EmbeddedStore::open(dir.path(), EngineConfig::default()).expect("opens");
//!     runnel_testkit::Fixture::new(std::sync::Arc::new(store), dir)
//! }
//! runnel_testkit::conformance_suite!(embedded);
//! ```

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use runnel_core::Store;

pub mod conformance;
pub mod model;
pub mod property;

/// A fresh, empty store for one test, and whatever must outlive it (a temporary directory, a
/// database that is dropped afterwards).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    /// Dropped after the store, so that e.g. a temporary directory outlives the engine in it.
    guard: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    pub fn new(store: Arc<dyn Store>, guard: impl Any + Send + Sync) -> Self {
        Self {
            store,
            guard: Box::new(guard),
        }
    }

    /// A fixture with nothing to keep alive, e.g. for an in-memory store.
    pub fn without_guard(store: Arc<dyn Store>) -> Self {
        Self::new(store, ())
    }

    /// Separates the guard, so that the runner can close the store before the guard goes.
    fn detach_guard(self) -> (Self, Box<dyn Any + Send + Sync>) {
        let Self { store, guard } = self;
        (Self::without_guard(store), guard)
    }
}

impl fmt::Debug for Fixture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The most one conformance test may take, setup and close included. Generous, because the
/// machines that run the suite may be busy; every test is far below it when healthy.
pub const CONFORMANCE_TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one behaviour on a fresh fixture in a multi-threaded runtime with two workers (so that
/// concurrency tests really run in parallel), bounded by [`CONFORMANCE_TEST_TIMEOUT`], then
/// closes the store before dropping the fixture's guard. Used by [`conformance_suite!`].
#[doc(hidden)]
pub fn run_conformance<F, FFut, B, BFut>(name: &str, factory: F, behaviour: B)
where
    F: FnOnce() -> FFut,
    FFut: Future<Output = Fixture>,
    B: FnOnce(Fixture) -> BFut,
    BFut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a test runtime starts");
    runtime.block_on(async {
        let run = async {
            let (fixture, guard) = factory().await.detach_guard();
            let store = Arc::clone(&fixture.store);
            behaviour(fixture).await;
            // Closing is idempotent, so a behaviour that closed the store itself is fine.
            if let Err(error) = store.close().await {
                panic!("{name}: closing the store after the test failed: {error}");
            }
            drop(store);
            drop(guard);
        };
        if tokio::time::timeout(CONFORMANCE_TEST_TIMEOUT, run)
            .await
            .is_err()
        {
            panic!("{name}: did not finish within {CONFORMANCE_TEST_TIMEOUT:?}");
        }
    });
}

/// Expands to one `#[test]` per conformance behaviour, each running
/// `runnel_testkit::conformance::<behaviour>(factory().await)` on a fresh fixture.
///
/// `factory` is a path to an `async fn() -> Fixture` that returns a fresh, empty store.
/// Put each engine's instantiation in its own module so that test names say which engine
/// failed (`embedded::append_with_stale_revision_is_rejected_and_writes_nothing`).
#[macro_export]
macro_rules! conformance_suite {
    ($factory:path) => {
        $crate::__for_each_behaviour!(__conformance_tests, $factory);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($factory:path; $($behaviour:ident),* $(,)?) => {
        $(
            #[test]
            fn $behaviour() {
                $crate::run_conformance(
                    stringify!($behaviour),
                    $factory,
                    $crate::conformance::$behaviour,
                );
            }
        )*
    };
}

/// The names of all behaviours, in one place, for `conformance_suite!` and for the test that
/// checks no behaviour was left out of it.
#[doc(hidden)]
#[macro_export]
macro_rules! __behaviour_names {
    ($unused:path; $($behaviour:ident),* $(,)?) => {
        &[$(stringify!($behaviour)),*]
    };
}

/// Calls `$callback!($factory; behaviour, behaviour, …)` with every conformance behaviour.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_behaviour {
    ($callback:ident, $factory:path) => {
        $crate::$callback! {$factory;
            // Appends and expected revisions.
            append_to_new_stream_starts_at_revision_zero,
            append_to_existing_stream_continues_at_the_next_revision,
            append_with_any_succeeds_on_missing_and_existing_streams,
            append_with_no_stream_succeeds_on_a_missing_stream,
            append_with_no_stream_on_an_existing_stream_is_rejected_and_writes_nothing,
            append_with_exists_succeeds_on_an_existing_stream,
            append_with_exists_on_a_missing_stream_is_rejected_and_writes_nothing,
            append_with_exact_current_revision_succeeds,
            append_with_stale_revision_is_rejected_and_writes_nothing,
            append_with_revision_ahead_of_the_stream_is_rejected_and_writes_nothing,
            append_with_exact_revision_on_a_missing_stream_is_rejected_and_writes_nothing,
            multi_event_append_has_consecutive_revisions_and_positions,
            rejected_multi_event_append_writes_none_of_its_events,
            positions_increase_strictly_in_commit_order,
            revisions_are_gapless_across_many_appends,
            server_assigned_event_ids_are_uuid_v7_and_unique,
            client_event_ids_are_kept,
            // Idempotency and duplicate ids.
            retried_append_with_the_same_ids_returns_the_original_outcome_and_writes_nothing,
            retried_append_is_idempotent_even_when_its_expected_revision_now_fails,
            retried_single_event_append_is_idempotent_after_the_stream_moved_on,
            event_id_that_exists_in_another_stream_is_rejected_as_duplicate,
            append_with_partially_overlapping_ids_is_rejected_as_duplicate_and_writes_nothing,
            retry_with_reordered_ids_is_rejected_as_duplicate,
            append_with_the_same_id_twice_is_rejected_as_duplicate,
            // Validation and limits.
            empty_append_is_rejected,
            append_to_a_system_stream_is_rejected,
            system_appends_write_only_system_streams,
            event_larger_than_max_event_bytes_is_rejected_naming_the_limit,
            append_with_more_events_than_max_events_per_append_is_rejected_naming_the_limit,
            append_larger_than_max_append_bytes_is_rejected_naming_the_limit,
            events_exactly_at_the_limits_are_accepted,
            // Reading a stream.
            read_stream_forward_returns_events_in_revision_order,
            read_stream_backward_returns_events_newest_first,
            read_stream_forward_from_the_middle,
            read_stream_backward_from_the_middle,
            read_stream_with_limit_one_pages_forward_through_the_stream,
            read_stream_with_limit_one_pages_backward_through_the_stream,
            read_stream_next_is_none_when_a_page_ends_at_the_edge,
            read_stream_forward_past_the_end_is_empty,
            read_of_a_missing_stream_is_stream_not_found,
            read_stream_returns_only_that_streams_events,
            stream_info_reports_the_last_revision_and_times,
            // Listings.
            list_stream_types_counts_streams_and_pages,
            list_streams_returns_ids_in_order_and_pages,
            list_streams_orders_utf8_ids_bytewise,
            list_streams_of_an_unknown_type_is_empty,
            // Reading $all.
            read_all_on_an_empty_store_is_empty,
            read_all_from_zero_returns_everything_in_position_order,
            read_all_from_the_middle,
            read_all_past_the_end_is_empty_with_no_next,
            count_events_counts_the_events_between_two_positions_up_to_a_cap,
            read_all_with_limit_one_pages_over_everything,
            read_all_filters_by_stream_type,
            read_all_filters_by_event_type,
            read_all_filters_by_stream,
            read_all_filters_match_any_value_within_a_list_and_all_lists,
            filtered_read_all_next_skips_past_scanned_non_matching_events,
            filtered_paging_never_returns_an_event_twice,
            // Payloads.
            binary_payloads_and_metadata_round_trip_byte_for_byte,
            json_data_text_is_preserved_byte_for_byte,
            events_read_from_a_stream_and_from_all_are_identical,
            // Concurrency.
            concurrent_appenders_with_exact_revisions_have_one_winner_per_revision,
            concurrent_appenders_to_one_stream_leave_it_gapless,
            concurrent_appenders_to_different_streams_are_all_readable_with_unique_positions,
            every_acknowledged_append_is_readable_at_once_under_concurrent_appends,
            tailing_reader_sees_every_event_once_in_position_order_during_appends,
            // Head watch and lifecycle.
            head_watch_follower_wakes_when_an_append_commits,
            many_head_watch_followers_all_wake,
            woken_follower_can_read_up_to_the_new_head,
            head_watch_reaches_the_last_appended_position,
            head_watch_ends_when_the_store_closes,
            ready_is_ok_on_a_fresh_store,
            close_is_idempotent_and_later_appends_are_refused,
            reads_with_limit_zero_are_clamped_to_one,
            reads_with_limit_above_the_maximum_are_clamped,
        }
    };
}

/// The names of every behaviour in [`conformance_suite!`].
pub fn behaviour_names() -> &'static [&'static str] {
    __for_each_behaviour!(__behaviour_names, unused)
}
