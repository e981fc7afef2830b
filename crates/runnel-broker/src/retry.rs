//! How long a webhook delivery waits before its next attempt: exponential backoff with jitter
//! (as in "Exponential Backoff And Jitter", AWS Architecture Blog, 2015), or what the endpoint
//! asked for in `Retry-After`, within a cap.
//!
//! Nothing here reads a clock or draws from a global generator: the caller passes the time and
//! the random source, so a seeded generator gives the same delays every time.

use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, RngExt as _, SeedableRng as _};

/// The longest delay a policy may be configured with, in milliseconds (one day).
pub const MAX_BACKOFF_DELAY_MS: u64 = 24 * 60 * 60 * 1000;

/// How randomness spreads the delays, so that deliveries that failed together do not all retry
/// at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// No randomness: attempt `n` waits `min_delay * 2^(n-1)`, capped. For tests and demos.
    None,
    /// Uniform between the minimum and the exponential ceiling of this attempt.
    #[default]
    Full,
    /// Uniform between the minimum and three times the previous delay, capped: grows like the
    /// exponential, but each delay depends on the last rather than on the attempt number.
    Decorrelated,
}

/// The backoff between delivery attempts. All delays lie within `[min_delay_ms, max_delay_ms]`,
/// except a `Retry-After`, which may ask for up to `max_retry_after_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The shortest delay, and the base that doubles with each attempt, in milliseconds.
    pub min_delay_ms: u64,
    /// The longest computed delay, in milliseconds.
    pub max_delay_ms: u64,
    /// The longest delay a `Retry-After` may impose, in milliseconds; a longer request is cut
    /// to this, so that one endpoint cannot park its deliveries for a week.
    pub max_retry_after_ms: u64,
    /// How randomness spreads the delays.
    pub jitter: Jitter,
}

impl Default for BackoffPolicy {
    /// One second doubling up to ten minutes, full jitter, `Retry-After` honoured up to an hour.
    fn default() -> Self {
        Self {
            min_delay_ms: 1_000,
            max_delay_ms: 10 * 60 * 1_000,
            max_retry_after_ms: 60 * 60 * 1_000,
            jitter: Jitter::Full,
        }
    }
}

/// A policy whose bounds contradict each other or exceed [`MAX_BACKOFF_DELAY_MS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackoffError {
    /// The minimum delay is zero, which would retry in a tight loop.
    #[error("min_delay_ms must be at least 1")]
    ZeroMinimum,
    /// The minimum delay is above the maximum.
    #[error("min_delay_ms ({min_delay_ms}) must not exceed max_delay_ms ({max_delay_ms})")]
    MinimumAboveMaximum {
        /// The minimum given.
        min_delay_ms: u64,
        /// The maximum given.
        max_delay_ms: u64,
    },
    /// A bound is above [`MAX_BACKOFF_DELAY_MS`].
    #[error("{field} must be at most {MAX_BACKOFF_DELAY_MS} ms (one day)")]
    TooLong {
        /// The offending field.
        field: &'static str,
    },
}

impl BackoffPolicy {
    /// Checks that the bounds are consistent.
    pub fn validate(&self) -> Result<(), BackoffError> {
        if self.min_delay_ms == 0 {
            return Err(BackoffError::ZeroMinimum);
        }
        if self.min_delay_ms > self.max_delay_ms {
            return Err(BackoffError::MinimumAboveMaximum {
                min_delay_ms: self.min_delay_ms,
                max_delay_ms: self.max_delay_ms,
            });
        }
        if self.max_delay_ms > MAX_BACKOFF_DELAY_MS {
            return Err(BackoffError::TooLong {
                field: "max_delay_ms",
            });
        }
        if self.max_retry_after_ms > MAX_BACKOFF_DELAY_MS {
            return Err(BackoffError::TooLong {
                field: "max_retry_after_ms",
            });
        }
        Ok(())
    }

    /// The wait before the next attempt, after `failed_attempts` failures (1 after the first).
    /// `previous` is the last wait (for decorrelated jitter; `None` before the first retry).
    /// `retry_after` is what the endpoint asked for, if anything: it replaces the computed
    /// delay, cut to `max_retry_after_ms` and raised to `min_delay_ms`.
    pub fn next_delay<R: Rng + ?Sized>(
        &self,
        failed_attempts: u32,
        previous: Option<Duration>,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        match retry_after {
            Some(asked) => {
                let asked_ms = u64::try_from(asked.as_millis()).unwrap_or(u64::MAX);
                let ms = asked_ms.min(self.max_retry_after_ms).max(self.min_delay_ms);
                Duration::from_millis(ms)
            }
            None => self.backoff(failed_attempts, previous, rng),
        }
    }

    /// [`BackoffPolicy::next_delay`] with a generator seeded from `seed`, so the same inputs
    /// always give the same delay (derive the seed from the event id and the attempt, say).
    pub fn next_delay_seeded(
        &self,
        failed_attempts: u32,
        previous: Option<Duration>,
        retry_after: Option<Duration>,
        seed: u64,
    ) -> Duration {
        let mut rng = StdRng::seed_from_u64(seed);
        self.next_delay(failed_attempts, previous, retry_after, &mut rng)
    }

    /// The computed delay, before any `Retry-After`.
    fn backoff<R: Rng + ?Sized>(
        &self,
        failed_attempts: u32,
        previous: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        debug_assert!(self.validate().is_ok(), "{self:?}");
        let min = self.min_delay_ms;
        let max = self.max_delay_ms.max(min);
        let ms = match self.jitter {
            Jitter::None => self.ceiling_ms(failed_attempts),
            Jitter::Full => rng.random_range(min..=self.ceiling_ms(failed_attempts)),
            Jitter::Decorrelated => {
                let previous_ms =
                    previous.map_or(min, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                let upper = previous_ms.saturating_mul(3).clamp(min, max);
                rng.random_range(min..=upper)
            }
        };
        Duration::from_millis(ms)
    }

    /// `min_delay * 2^(failed_attempts - 1)`, within `[min_delay_ms, max_delay_ms]`.
    fn ceiling_ms(&self, failed_attempts: u32) -> u64 {
        let doublings = failed_attempts.saturating_sub(1);
        let factor = 1_u64.checked_shl(doublings).unwrap_or(u64::MAX);
        self.min_delay_ms
            .saturating_mul(factor)
            .clamp(self.min_delay_ms, self.max_delay_ms.max(self.min_delay_ms))
    }
}

/// Reads a `Retry-After` header (RFC 9110, 10.2.3): delay-seconds, or an HTTP-date, which
/// becomes the time from `now` until then (zero when it has passed). `None` when the value is
/// neither. The result is not yet capped; [`BackoffPolicy::next_delay`] caps it.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than a u64 holds still mean "a very long time".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: Jitter) -> BackoffPolicy {
        BackoffPolicy {
            min_delay_ms: 100,
            max_delay_ms: 10_000,
            max_retry_after_ms: 60_000,
            jitter,
        }
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn without_jitter_the_delay_doubles_up_to_the_maximum() {
        let p = policy(Jitter::None);
        let delays: Vec<_> = (1..=9)
            .map(|attempt| p.next_delay_seeded(attempt, None, None, 0))
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000].map(ms)
        );
        assert_eq!(p.next_delay_seeded(0, None, None, 0), ms(100));
        assert_eq!(p.next_delay_seeded(u32::MAX, None, None, 0), ms(10_000));
    }

    #[test]
    fn full_jitter_stays_between_the_minimum_and_the_attempts_ceiling() {
        let p = policy(Jitter::Full);
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 1..=12 {
            let ceiling = p.ceiling_ms(attempt);
            for _ in 0..50 {
                let delay = p.next_delay(attempt, None, None, &mut rng);
                assert!(
                    delay >= ms(100) && delay <= ms(ceiling),
                    "{attempt}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn full_jitter_spreads_the_delays() {
        let p = policy(Jitter::Full);
        let mut rng = StdRng::seed_from_u64(1);
        let delays: std::collections::BTreeSet<_> = (0..20)
            .map(|_| p.next_delay(8, None, None, &mut rng))
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn decorrelated_jitter_stays_within_three_times_the_previous_delay() {
        let p = policy(Jitter::Decorrelated);
        let mut rng = StdRng::seed_from_u64(3);
        let mut previous = None;
        for attempt in 1..=30 {
            let delay = p.next_delay(attempt, previous, None, &mut rng);
            let upper = previous.map_or(ms(300), |d: Duration| (d * 3).min(ms(10_000)));
            assert!(delay >= ms(100) && delay <= upper.max(ms(100)), "{delay:?}");
            previous = Some(delay);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        for jitter in [Jitter::Full, Jitter::Decorrelated] {
            let p = policy(jitter);
            let run = |seed| -> Vec<Duration> {
                (1..=8)
                    .map(|attempt| p.next_delay_seeded(attempt, Some(ms(900)), None, seed))
                    .collect()
            };
            assert_eq!(run(42), run(42));
            assert_ne!(run(42), run(43), "{jitter:?}");
        }
    }

    #[test]
    fn retry_after_replaces_the_backoff_within_the_cap() {
        let p = policy(Jitter::Full);
        assert_eq!(
            p.next_delay_seeded(1, None, Some(Duration::from_secs(30)), 0),
            ms(30_000)
        );
        assert_eq!(
            p.next_delay_seeded(9, None, Some(Duration::from_secs(2)), 0),
            ms(2_000),
            "even below the computed backoff: the endpoint knows when it is ready"
        );
        assert_eq!(
            p.next_delay_seeded(1, None, Some(Duration::from_secs(86_400)), 0),
            ms(60_000),
            "cut to max_retry_after_ms"
        );
        assert_eq!(
            p.next_delay_seeded(1, None, Some(Duration::ZERO), 0),
            ms(100),
            "raised to min_delay_ms"
        );
        assert_eq!(
            p.next_delay_seeded(1, None, Some(Duration::MAX), 0),
            ms(60_000)
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(parse_retry_after("120", now), secs(120));
        assert_eq!(parse_retry_after(" 0 ", now), secs(0));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            secs(u64::MAX)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            secs(60)
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
            secs(60)
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:50:37 1994", now), secs(60));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            secs(0),
            "a date in the past means now"
        );
        for invalid in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(invalid, now), None, "{invalid:?}");
        }
    }

    #[test]
    fn contradictory_policies_are_rejected() {
        assert_eq!(BackoffPolicy::default().validate(), Ok(()));
        let with = |min_delay_ms, max_delay_ms, max_retry_after_ms| BackoffPolicy {
            min_delay_ms,
            max_delay_ms,
            max_retry_after_ms,
            jitter: Jitter::Full,
        };
        assert_eq!(with(0, 10, 10).validate(), Err(BackoffError::ZeroMinimum));
        assert_eq!(
            with(20, 10, 10).validate(),
            Err(BackoffError::MinimumAboveMaximum {
                min_delay_ms: 20,
                max_delay_ms: 10
            })
        );
        assert_eq!(
            with(1, MAX_BACKOFF_DELAY_MS + 1, 10).validate(),
            Err(BackoffError::TooLong {
                field: "max_delay_ms"
            })
        );
        assert_eq!(
            with(1, 10, MAX_BACKOFF_DELAY_MS + 1).validate(),
            Err(BackoffError::TooLong {
                field: "max_retry_after_ms"
            })
        );
    }
}
