//! What every load phase measures, whichever system it drives: operations that start after the
//! warm-up and finish before the deadline count; their latencies go into one histogram.

use std::time::{Duration, Instant};

use crate::cpu::GroupUse;
use crate::latency::Latencies;

/// The measured part of a phase.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) deadline: Instant,
}

impl Window {
    /// A window that opens `warmup` from now and lasts `measured`.
    pub(crate) fn after(warmup: Duration, measured: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            deadline: start + measured,
        }
    }

    pub(crate) fn length(&self) -> Duration {
        self.deadline - self.start
    }

    pub(crate) fn is_open_at(&self, now: Instant) -> bool {
        now < self.deadline
    }
}

/// One client's (or all clients') counts.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) ops: u64,
    pub(crate) events: u64,
    pub(crate) latencies: Latencies,
    pub(crate) failures: u64,
    pub(crate) first_failure: Option<String>,
}

impl Tally {
    /// Counts an operation of `events` events that ran from `began` to `ended`, if it lies in
    /// the window.
    pub(crate) fn record(
        &mut self,
        window: &Window,
        began: Instant,
        ended: Instant,
        outcome: Result<u64, String>,
    ) {
        if began < window.start || ended > window.deadline {
            return;
        }
        match outcome {
            Ok(events) => {
                self.ops += 1;
                self.events += events;
                self.latencies.record(ended - began);
            }
            Err(failure) => self.fail(failure),
        }
    }

    pub(crate) fn fail(&mut self, failure: String) {
        self.failures += 1;
        self.first_failure.get_or_insert(failure);
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.ops += other.ops;
        self.events += other.events;
        self.latencies.merge(&other.latencies);
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    /// Waits for the client tasks and adds up their tallies.
    pub(crate) async fn collect(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
        let mut total = Tally::default();
        for task in tasks {
            match task.await {
                Ok(tally) => total.merge(tally),
                Err(error) => total.fail(format!("a client task failed: {error}")),
            }
        }
        total
    }
}

/// A measured load phase against one system.
#[derive(Debug)]
pub(crate) struct LoadResult {
    pub(crate) clients: usize,
    pub(crate) window: Duration,
    pub(crate) tally: Tally,
    /// Cores used by the server and by the load generator, and by the rest of the machine.
    pub(crate) cpu: GroupUse,
}

impl LoadResult {
    pub(crate) fn events_per_second(&self) -> f64 {
        self.tally.events as f64 / self.window.as_secs_f64().max(1e-9)
    }
}

/// A sequential read: one client paging through a stream or the whole log.
#[derive(Debug)]
pub(crate) struct ReadResult {
    pub(crate) what: String,
    pub(crate) events: u64,
    pub(crate) elapsed: Duration,
    pub(crate) page_latencies: Latencies,
    pub(crate) note: String,
}

impl ReadResult {
    pub(crate) fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}
