//! The circuit breaker of one webhook endpoint: after enough failures it stops deliveries
//! (open), lets one probe through after a cool-down (half-open), and resumes (closed) when the
//! probe succeeds, or waits longer when it fails.
//!
//! ```text
//!            N consecutive failures, or failure rate >= R over the window
//!   Closed ─────────────────────────────────────────────────────────────▶ Open
//!     ▲                                                                  │ cool-down over
//!     │ probes succeed                   probe fails (cool-down doubles) ▼
//!     └───────────────────────────── HalfOpen ◀─────────────────────────┘
//! ```
//!
//! Time is passed in ([`Instant`]) and nothing here sleeps or spawns, so every transition is a
//! plain function call a test can drive. Each admitted attempt carries a [`Permit`] stamped
//! with the breaker's generation; an outcome reported for an older generation (an attempt that
//! was in flight when the state changed) is ignored, so a late success cannot close a breaker
//! that opened after the attempt began.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How many slices the failure-rate window is kept in. The window slides a slice at a time, so
/// its memory is bounded whatever the request rate.
pub const WINDOW_SLICES: u32 = 10;

/// The longest window or cool-down a configuration may ask for, in milliseconds (one day).
pub const MAX_CIRCUIT_DURATION_MS: u64 = 24 * 60 * 60 * 1000;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitConfig {
    /// Open after this many failures in a row (0 disables the rule).
    pub consecutive_failures: u32,
    /// Open when failures reach this fraction (0.0 to 1.0) of the attempts in the window
    /// (0.0 disables the rule)...
    pub failure_rate: f64,
    /// ...provided the window holds at least this many attempts.
    pub min_attempts_in_window: u32,
    /// How far back the failure rate looks, in milliseconds.
    pub window_ms: u64,
    /// How long the breaker stays open before the first probe, in milliseconds.
    pub cool_down_ms: u64,
    /// The longest cool-down, in milliseconds: each failed probe doubles it up to this.
    pub max_cool_down_ms: u64,
    /// How many probes must succeed, one after another, to close again.
    pub probes_to_close: u32,
}

impl Default for CircuitConfig {
    /// Five failures in a row, or half of at least twenty attempts in a minute, open the
    /// breaker for 30 s, doubling up to 10 min while probes fail; one good probe closes it.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_attempts_in_window: 20,
            window_ms: 60_000,
            cool_down_ms: 30_000,
            max_cool_down_ms: 600_000,
            probes_to_close: 1,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CircuitConfigError {
    /// The failure rate is not within 0.0..=1.0.
    #[error("failure_rate must be between 0.0 and 1.0")]
    FailureRate,
    /// A duration is zero or over [`MAX_CIRCUIT_DURATION_MS`], or the cool-downs contradict
    /// each other.
    #[error(
        "window_ms, cool_down_ms and max_cool_down_ms must be 1 ms to one day, \
         and max_cool_down_ms at least cool_down_ms"
    )]
    Durations,
    /// Closing would need no probe at all.
    #[error("probes_to_close must be at least 1")]
    Probes,
}

impl CircuitConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), CircuitConfigError> {
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(CircuitConfigError::FailureRate);
        }
        let in_range = |ms: u64| (1..=MAX_CIRCUIT_DURATION_MS).contains(&ms);
        if !in_range(self.window_ms)
            || !in_range(self.cool_down_ms)
            || !in_range(self.max_cool_down_ms)
            || self.max_cool_down_ms < self.cool_down_ms
        {
            return Err(CircuitConfigError::Durations);
        }
        if self.probes_to_close == 0 {
            return Err(CircuitConfigError::Probes);
        }
        Ok(())
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Deliveries flow.
    Closed,
    /// Deliveries are held until the instant given.
    Open {
        /// When the next probe may go.
        until: Instant,
    },
    /// One probe at a time is let through.
    HalfOpen,
}

/// The right to make one attempt, to be handed back with its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "report the attempt's outcome with CircuitBreaker::record"]
pub struct Permit {
    generation: u64,
    probe: bool,
}

impl Permit {
    /// Whether this attempt is a probe of a half-open breaker.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// The answer to "may I deliver now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead, and report the outcome with this permit.
    Admitted(Permit),
    /// Not now. `until` is when the breaker will let a probe through, or `None` while a probe is
    /// already in flight (wait for its outcome).
    Rejected {
        /// When to ask again, when known.
        until: Option<Instant>,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Success,
    /// Anything else that counts against the endpoint (5xx, timeouts, refused connections).
    Failure,
}

/// Attempts and failures in one slice of the window.
#[derive(Debug, Clone, Copy)]
struct Slice {
    start: Instant,
    attempts: u32,
    failures: u32,
}

/// The breaker of one endpoint.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: CircuitConfig,
    state: CircuitState,
    /// Bumped on every change of state; permits of older generations are stale.
    generation: u64,
    consecutive_failures: u32,
    window: VecDeque<Slice>,
    /// The cool-down of the next opening.
    cool_down: Duration,
    probes_in_flight: u32,
    probe_successes: u32,
}

impl CircuitBreaker {
    /// A closed breaker. The configuration should have passed [`CircuitConfig::validate`].
    pub fn new(config: CircuitConfig) -> Self {
        debug_assert!(config.validate().is_ok(), "{config:?}");
        Self {
            config,
            state: CircuitState::Closed,
            generation: 0,
            consecutive_failures: 0,
            window: VecDeque::with_capacity(WINDOW_SLICES as usize + 1),
            cool_down: Duration::from_millis(config.cool_down_ms),
            probes_in_flight: 0,
            probe_successes: 0,
        }
    }

    /// The state at `now` (an open breaker whose cool-down is over reads as half-open).
    pub fn state(&self, now: Instant) -> CircuitState {
        match self.state {
            CircuitState::Open { until } if now >= until => CircuitState::HalfOpen,
            state => state,
        }
    }

    /// Asks to make one attempt at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        if let CircuitState::Open { until } = self.state {
            if now < until {
                return Admission::Rejected { until: Some(until) };
            }
            self.transition(CircuitState::HalfOpen);
        }
        match self.state {
            CircuitState::Closed => Admission::Admitted(self.permit(false)),
            CircuitState::HalfOpen if self.probes_in_flight == 0 => {
                self.probes_in_flight += 1;
                Admission::Admitted(self.permit(true))
            }
            _ => Admission::Rejected { until: None },
        }
    }

    /// Reports how an admitted attempt ended. Outcomes of permits issued before the last
    /// change of state are ignored.
    pub fn record(&mut self, permit: Permit, outcome: Outcome, now: Instant) {
        if permit.generation != self.generation {
            return;
        }
        match self.state {
            CircuitState::Closed => self.record_closed(outcome, now),
            CircuitState::HalfOpen if permit.probe => self.record_probe(outcome, now),
            // A current-generation permit cannot be outstanding while open: opening bumps
            // the generation.
            _ => debug_assert!(false, "unexpected outcome in {:?}", self.state),
        }
    }

    /// Gives back a permit that was not used (the attempt it was taken for found nothing to
    /// deliver), so that a half-open breaker lets another probe through. A stale permit, or one
    /// of a closed breaker, changes nothing. Each permit goes back once, by `record` or here.
    pub fn release(&mut self, permit: Permit) {
        if permit.generation == self.generation && permit.probe {
            self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        }
    }

    /// Opens the breaker by hand (an operator pausing the endpoint) until `until`.
    pub fn trip(&mut self, until: Instant) {
        self.transition(CircuitState::Open { until });
    }

    /// Closes the breaker by hand (an operator resuming the endpoint), forgetting past failures
    /// and resetting the cool-down.
    pub fn reset(&mut self) {
        self.cool_down = Duration::from_millis(self.config.cool_down_ms);
        self.transition(CircuitState::Closed);
    }

    fn permit(&self, probe: bool) -> Permit {
        Permit {
            generation: self.generation,
            probe,
        }
    }

    fn record_closed(&mut self, outcome: Outcome, now: Instant) {
        let failed = outcome == Outcome::Failure;
        let slice = self.slice_at(now);
        slice.attempts += 1;
        slice.failures += u32::from(failed);
        self.consecutive_failures = if failed {
            self.consecutive_failures + 1
        } else {
            0
        };
        if self.should_open() {
            self.open(now);
        }
    }

    fn record_probe(&mut self, outcome: Outcome, now: Instant) {
        self.probes_in_flight = self.probes_in_flight.saturating_sub(1);
        match outcome {
            Outcome::Success => {
                self.probe_successes += 1;
                if self.probe_successes >= self.config.probes_to_close {
                    self.reset();
                }
            }
            Outcome::Failure => {
                let max = Duration::from_millis(self.config.max_cool_down_ms);
                self.cool_down = self.cool_down.saturating_mul(2).min(max);
                self.open(now);
            }
        }
    }

    fn should_open(&self) -> bool {
        let config = &self.config;
        if config.consecutive_failures > 0
            && self.consecutive_failures >= config.consecutive_failures
        {
            return true;
        }
        let (attempts, failures) = self.window.iter().fold((0_u32, 0_u32), |(a, f), slice| {
            (a + slice.attempts, f + slice.failures)
        });
        config.failure_rate > 0.0
            && failures > 0
            && attempts >= config.min_attempts_in_window
            && f64::from(failures) >= config.failure_rate * f64::from(attempts)
    }

    fn open(&mut self, now: Instant) {
        // Validated durations keep this far from the end of time; if not, probe at once
        // rather than panic.
        let until = now.checked_add(self.cool_down).unwrap_or(now);
        self.transition(CircuitState::Open { until });
    }

    /// Enters `state`, starting a new generation with clean counters.
    fn transition(&mut self, state: CircuitState) {
        self.state = state;
        self.generation += 1;
        self.consecutive_failures = 0;
        self.window.clear();
        self.probes_in_flight = 0;
        self.probe_successes = 0;
    }

    /// The slice of the window that `now` falls in, dropping slices that slid out of it.
    fn slice_at(&mut self, now: Instant) -> &mut Slice {
        let window = Duration::from_millis(self.config.window_ms);
        let slice_length = window / WINDOW_SLICES;
        while self
            .window
            .front()
            .is_some_and(|slice| now.saturating_duration_since(slice.start) >= window)
        {
            self.window.pop_front();
        }
        let current = self
            .window
            .back()
            .is_some_and(|slice| now.saturating_duration_since(slice.start) < slice_length);
        if !current {
            self.window.push_back(Slice {
                start: now,
                attempts: 0,
                failures: 0,
            });
        }
        debug_assert!(self.window.len() <= WINDOW_SLICES as usize + 1);
        // Just ensured non-empty.
        self.window
            .back_mut()
            .expect("the window has a current slice")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CircuitConfig {
        CircuitConfig {
            consecutive_failures: 3,
            failure_rate: 0.5,
            min_attempts_in_window: 10,
            window_ms: 10_000,
            cool_down_ms: 1_000,
            max_cool_down_ms: 4_000,
            probes_to_close: 1,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn attempt(breaker: &mut CircuitBreaker, outcome: Outcome, now: Instant) {
        match breaker.admit(now) {
            Admission::Admitted(permit) => breaker.record(permit, outcome, now),
            rejected => panic!("not admitted: {rejected:?}"),
        }
    }

    #[test]
    fn consecutive_failures_open_the_breaker() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config());
        attempt(&mut breaker, Outcome::Failure, t0);
        attempt(&mut breaker, Outcome::Failure, t0);
        assert_eq!(breaker.state(t0), CircuitState::Closed);
        attempt(&mut breaker, Outcome::Failure, t0);
        let until = t0 + secs(1);
        assert_eq!(breaker.state(t0), CircuitState::Open { until });
        assert_eq!(
            breaker.admit(t0),
            Admission::Rejected { until: Some(until) }
        );
    }

    #[test]
    fn a_success_resets_the_run_of_failures() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(CircuitConfig {
            min_attempts_in_window: u32::MAX,
            ..config()
        });
        for _ in 0..4 {
            attempt(&mut breaker, Outcome::Failure, t0);
            attempt(&mut breaker, Outcome::Failure, t0);
            attempt(&mut breaker, Outcome::Success, t0);
        }
        assert_eq!(breaker.state(t0), CircuitState::Closed);
    }

    #[test]
    fn a_high_failure_rate_over_the_window_opens_the_breaker() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config());
        let mut now = t0;
        let mut step = |breaker: &mut CircuitBreaker, outcome| {
            now += Duration::from_millis(100);
            attempt(breaker, outcome, now);
            breaker.state(now)
        };
        // Alternating, so never three failures in a row: S F S F S F S F S.
        for i in 0..9 {
            let outcome = if i % 2 == 1 {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            assert_eq!(step(&mut breaker, outcome), CircuitState::Closed, "{i}");
        }
        let closed = CircuitState::Closed;
        assert_eq!(
            step(&mut breaker, Outcome::Success),
            closed,
            "4 of 10 failed"
        );
        assert_eq!(
            step(&mut breaker, Outcome::Failure),
            closed,
            "5 of 11 failed"
        );
        assert!(
            matches!(
                step(&mut breaker, Outcome::Failure),
                CircuitState::Open { .. }
            ),
            "6 of 12 failed"
        );
    }

    #[test]
    fn rules_set_to_zero_are_disabled() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(CircuitConfig {
            consecutive_failures: 0,
            failure_rate: 0.0,
            min_attempts_in_window: 1,
            ..config()
        });
        for _ in 0..50 {
            attempt(&mut breaker, Outcome::Failure, t0);
        }
        assert_eq!(breaker.state(t0), CircuitState::Closed);
    }

    #[test]
    fn failures_that_slid_out_of_the_window_do_not_count() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(CircuitConfig {
            consecutive_failures: 0,
            ..config()
        });
        for i in 0..9 {
            attempt(
                &mut breaker,
                Outcome::Failure,
                t0 + Duration::from_millis(i),
            );
        }
        assert_eq!(
            breaker.state(t0),
            CircuitState::Closed,
            "too few attempts to judge"
        );
        // Counted together, these would be 9 failures in 10 attempts; but the window has moved
        // on past the failures.
        let later = t0 + secs(11);
        attempt(&mut breaker, Outcome::Success, later);
        assert_eq!(breaker.state(later), CircuitState::Closed);
    }

    #[test]
    fn after_the_cool_down_one_probe_goes_and_its_success_closes() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config());
        for _ in 0..3 {
            attempt(&mut breaker, Outcome::Failure, t0);
        }
        let t1 = t0 + secs(1);
        assert_eq!(breaker.state(t1), CircuitState::HalfOpen);
        let Admission::Admitted(probe) = breaker.admit(t1) else {
            panic!("the probe is admitted");
        };
        assert!(probe.is_probe());
        assert_eq!(
            breaker.admit(t1),
            Admission::Rejected { until: None },
            "one probe at a time"
        );
        breaker.record(probe, Outcome::Success, t1);
        assert_eq!(breaker.state(t1), CircuitState::Closed);
        let Admission::Admitted(normal) = breaker.admit(t1) else {
            panic!("closed again");
        };
        assert!(!normal.is_probe());
    }

    #[test]
    fn a_failed_probe_reopens_with_a_doubled_cool_down_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config());
        for _ in 0..3 {
            attempt(&mut breaker, Outcome::Failure, t0);
        }
        let mut now = t0 + secs(1);
        for expected in [2, 4, 4] {
            attempt(&mut breaker, Outcome::Failure, now);
            assert_eq!(
                breaker.state(now),
                CircuitState::Open {
                    until: now + secs(expected)
                }
            );
            now += secs(expected);
        }
        // Recovery resets the cool-down.
        attempt(&mut breaker, Outcome::Success, now);
        for _ in 0..3 {
            attempt(&mut breaker, Outcome::Failure, now);
        }
        assert_eq!(
            breaker.state(now),
            CircuitState::Open {
                until: now + secs(1)
            }
        );
    }

    #[test]
    fn closing_can_require_several_probes_in_a_row() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(CircuitConfig {
            probes_to_close: 2,
            ..config()
        });
        for _ in 0..3 {
            attempt(&mut breaker, Outcome::Failure, t0);
        }
        let t1 = t0 + secs(1);
        attempt(&mut breaker, Outcome::Success, t1);
        assert_eq!(breaker.state(t1), CircuitState::HalfOpen);
        attempt(&mut breaker, Outcome::Success, t1);
        assert_eq!(breaker.state(t1), CircuitState::Closed);
    }

    #[test]
    fn outcomes_of_attempts_begun_before_a_change_of_state_are_ignored() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config());
        let Admission::Admitted(early) = breaker.admit(t0) else {
            panic!("closed");
        };
        for _ in 0..3 {
            attempt(&mut breaker, Outcome::Failure, t0);
        }
        let t1 = t0 + secs(1);
        let Admission::Admitted(probe) = breaker.admit(t1) else {
            panic!("probe");
        };
        // The attempt admitted while closed succeeds late: it says nothing about the endpoint
        // now, and must not close the breaker or free the probe slot.
        breaker.record(early, Outcome::Success, t1);
        assert_eq!(breaker.state(t1), CircuitState::HalfOpen);
        assert_eq!(breaker.admit(t1), Admission::Rejected { until: None });
        breaker.record(probe, Outcome::Success, t1);
        assert_eq!(breaker.state(t1), CircuitState::Closed);
    }

    #[test]
    fn a_released_probe_permit_lets_another_probe_through() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config());
        for _ in 0..3 {
            attempt(&mut breaker, Outcome::Failure, t0);
        }
        let t1 = t0 + secs(1);
        let Admission::Admitted(unused) = breaker.admit(t1) else {
            panic!("the probe is admitted");
        };
        assert_eq!(breaker.admit(t1), Admission::Rejected { until: None });
        breaker.release(unused);
        assert_eq!(breaker.state(t1), CircuitState::HalfOpen);
        let Admission::Admitted(probe) = breaker.admit(t1) else {
            panic!("the slot is free again");
        };
        breaker.record(probe, Outcome::Success, t1);
        assert_eq!(breaker.state(t1), CircuitState::Closed);
    }

    #[test]
    fn an_operator_can_trip_and_reset_the_breaker() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(config());
        breaker.trip(t0 + secs(3600));
        assert_eq!(
            breaker.admit(t0 + secs(60)),
            Admission::Rejected {
                until: Some(t0 + secs(3600))
            }
        );
        breaker.reset();
        assert_eq!(breaker.state(t0), CircuitState::Closed);
        assert!(matches!(breaker.admit(t0), Admission::Admitted(_)));
    }

    #[test]
    fn the_window_keeps_a_bounded_number_of_slices() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(CircuitConfig {
            consecutive_failures: 0,
            min_attempts_in_window: u32::MAX,
            ..config()
        });
        for i in 0..1_000 {
            attempt(
                &mut breaker,
                Outcome::Success,
                t0 + Duration::from_millis(i * 37),
            );
            assert!(breaker.window.len() <= WINDOW_SLICES as usize + 1);
        }
    }

    #[test]
    fn contradictory_configurations_are_rejected() {
        assert_eq!(CircuitConfig::default().validate(), Ok(()));
        let bad_rate = CircuitConfig {
            failure_rate: 1.5,
            ..config()
        };
        assert_eq!(bad_rate.validate(), Err(CircuitConfigError::FailureRate));
        let nan_rate = CircuitConfig {
            failure_rate: f64::NAN,
            ..config()
        };
        assert_eq!(nan_rate.validate(), Err(CircuitConfigError::FailureRate));
        let cool = CircuitConfig {
            max_cool_down_ms: 10,
            ..config()
        };
        assert_eq!(cool.validate(), Err(CircuitConfigError::Durations));
        let long = CircuitConfig {
            max_cool_down_ms: MAX_CIRCUIT_DURATION_MS + 1,
            ..config()
        };
        assert_eq!(long.validate(), Err(CircuitConfigError::Durations));
        let probes = CircuitConfig {
            probes_to_close: 0,
            ..config()
        };
        assert_eq!(probes.validate(), Err(CircuitConfigError::Probes));
    }
}
