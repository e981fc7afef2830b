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

/// What a consumer task reports: its tally (cycles of receive + acknowledge, events
/// acknowledged, cycle latencies), the redeliveries it saw, and when its last ack completed.
pub(crate) type ConsumerReport = (Tally, u64, Option<Instant>);

/// Competing consumers draining a pre-filled backlog, each cycle receiving a batch and
/// acknowledging it.
#[derive(Debug)]
pub(crate) struct Drain {
    pub(crate) consumers: usize,
    /// Cycles as operations, acknowledged events as events, and the cycles' latencies.
    pub(crate) tally: Tally,
    /// Messages received with a delivery count above one.
    pub(crate) redelivered: u64,
    /// From the first receive to the last acknowledgement, or to the time limit.
    pub(crate) elapsed: Duration,
    pub(crate) drained: bool,
    pub(crate) cpu: GroupUse,
}

impl Drain {
    /// Waits for the consumer tasks of a drain that started when `window` opened.
    pub(crate) async fn collect(
        consumers: usize,
        backlog: u64,
        window: Window,
        tasks: Vec<tokio::task::JoinHandle<ConsumerReport>>,
    ) -> Self {
        let mut tally = Tally::default();
        let mut redelivered = 0;
        let mut last_ack: Option<Instant> = None;
        for task in tasks {
            match task.await {
                Ok((consumer, seen, last)) => {
                    tally.merge(consumer);
                    redelivered += seen;
                    last_ack = last_ack.max(last);
                }
                Err(error) => tally.fail(format!("a consumer task failed: {error}")),
            }
        }
        let drained = tally.events >= backlog;
        let elapsed = match last_ack {
            Some(at) if drained => at.min(window.deadline) - window.start,
            _ => window.length(),
        };
        Self {
            consumers,
            tally,
            redelivered,
            elapsed,
            drained,
            cpu: GroupUse::default(),
        }
    }

    pub(crate) fn events_per_second(&self) -> f64 {
        self.tally.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(events: u64, last_ack: Option<Instant>) -> ConsumerReport {
        let tally = Tally {
            ops: 1,
            events,
            ..Tally::default()
        };
        (tally, 0, last_ack)
    }

    #[tokio::test]
    async fn a_drain_that_finishes_is_timed_to_its_last_ack() {
        let window = Window::after(Duration::ZERO, Duration::from_secs(10));
        let last = window.start + Duration::from_secs(2);
        let tasks = vec![
            tokio::spawn(async move { consumer(60, Some(last - Duration::from_secs(1))) }),
            tokio::spawn(async move { consumer(40, Some(last)) }),
        ];
        let drain = Drain::collect(2, 100, window, tasks).await;
        assert!(drain.drained);
        assert_eq!(drain.elapsed, Duration::from_secs(2));
        assert!((drain.events_per_second() - 50.0).abs() < 1e-6);
    }

    #[tokio::test]
    async fn a_drain_cut_by_its_limit_counts_the_whole_window() {
        let window = Window::after(Duration::ZERO, Duration::from_secs(10));
        let last = window.start + Duration::from_secs(9);
        let tasks = vec![tokio::spawn(async move { consumer(50, Some(last)) })];
        let drain = Drain::collect(1, 100, window, tasks).await;
        assert!(!drain.drained);
        assert_eq!(drain.elapsed, Duration::from_secs(10));
    }
}
