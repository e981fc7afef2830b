//! Webhook endpoints and their shared circuit breakers.
//!
//! A breaker belongs to an endpoint, not to a subscription: when several subscriptions deliver
//! to one failing endpoint, their failures add up in one breaker, it opens once for all of
//! them, and one probe (from whichever subscription has an event ready) decides for all.
//!
//! An endpoint is the full URL (scheme, host, port, path and query; not the credentials or the
//! fragment), not just its origin. Webhook receivers are often multi-tenant: one host serves a
//! path per customer or per integration, and one tenant's broken path (a 404, a 500 from a
//! misconfigured handler) must not pause every other tenant's deliveries to the same host.
//! What that costs: a host that is down altogether trips each of its URLs' breakers separately,
//! after `consecutive_failures` failures each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, Weak};
use std::time::Instant;

use tokio::sync::watch;

use crate::circuit::{Admission, CircuitBreaker, CircuitConfig, CircuitState, Outcome, Permit};

/// The key of an endpoint: its URL normalised (scheme and host lowercased, default port
/// dropped) without userinfo and fragment. Safe to log and to write in the audit trail.
pub(crate) fn endpoint_key(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut url) => {
            // Setting these cannot fail on the http(s) URLs a webhook config accepts.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_fragment(None);
            url.to_string()
        }
        // A config that passed validation always parses; keep the text as its own key.
        Err(_) => url.to_owned(),
    }
}

/// How a breaker changed with one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// It opened (or opened again after a failed probe) until the instant given.
    Opened(Instant),
    /// A probe succeeded and it closed.
    Closed,
}

/// The breaker of one endpoint, shared by the workers of every group that delivers there.
pub(crate) struct EndpointBreaker {
    key: String,
    state: StdMutex<BreakerState>,
    /// Moves on every change of the breaker's state, so that workers waiting on it (for a
    /// probe's outcome, or another group's) wake up.
    changes: watch::Sender<u64>,
}

struct BreakerState {
    breaker: CircuitBreaker,
    /// The error of the last failed attempt, for the pause reason of every group.
    last_error: String,
}

impl EndpointBreaker {
    fn new(key: String, config: CircuitConfig) -> Self {
        Self {
            key,
            state: StdMutex::new(BreakerState {
                breaker: CircuitBreaker::new(config),
                last_error: String::new(),
            }),
            changes: watch::channel(0).0,
        }
    }

    /// The endpoint's key ([`endpoint_key`]).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    fn lock(&self) -> MutexGuard<'_, BreakerState> {
        // The breaker is consistent after every call, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    pub(crate) fn state(&self, now: Instant) -> CircuitState {
        self.lock().breaker.state(now)
    }

    /// Asks to make one attempt at `now`: a [`Ticket`] to report the outcome with, or when to
    /// ask again (`None`: when another attempt's probe has ended).
    pub(crate) fn admit(self: &Arc<Self>, now: Instant) -> Result<Ticket, Option<Instant>> {
        match self.lock().breaker.admit(now) {
            Admission::Admitted(permit) => Ok(Ticket {
                breaker: Arc::clone(self),
                permit: Some(permit),
            }),
            Admission::Rejected { until } => Err(until),
        }
    }

    /// Gives back a permit that found nothing to deliver.
    fn release(&self, permit: Permit) {
        self.lock().breaker.release(permit);
        if permit.is_probe() {
            self.changed();
        }
    }

    /// Records how an attempt ended; says whether that opened or closed the breaker.
    fn record(
        &self,
        permit: Permit,
        outcome: Outcome,
        error: Option<&str>,
        now: Instant,
    ) -> Option<Change> {
        let change = {
            let mut state = self.lock();
            if let Some(error) = error {
                state.last_error = error.to_owned();
            }
            let before = state.breaker.state(now);
            state.breaker.record(permit, outcome, now);
            match (before, state.breaker.state(now)) {
                (before, CircuitState::Open { until })
                    if before != (CircuitState::Open { until }) =>
                {
                    Some(Change::Opened(until))
                }
                (CircuitState::HalfOpen, CircuitState::Closed) => Some(Change::Closed),
                _ => None,
            }
        };
        if change.is_some() {
            self.changed();
        }
        change
    }

    /// The error of the last failed attempt.
    pub(crate) fn last_error(&self) -> String {
        self.lock().last_error.clone()
    }

    /// Opens the breaker until `until` if it is closed (a group found paused by the breaker
    /// after a restart).
    pub(crate) fn trip_if_closed(&self, until: Instant) {
        let mut state = self.lock();
        if state.breaker.state(Instant::now()) == CircuitState::Closed {
            state.breaker.trip(until);
            drop(state);
            self.changed();
        }
    }

    /// Closes the breaker (a person resumed a group it had paused).
    pub(crate) fn reset(&self) {
        self.lock().breaker.reset();
        self.changed();
    }

    /// A receiver that moves on every change of state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// The right to make one attempt. Report its outcome with [`Ticket::record`]; a ticket dropped
/// unreported (nothing to deliver, or the worker stopped mid-attempt) gives its permit back,
/// so that a probe slot is never held by an attempt that will not report.
pub(crate) struct Ticket {
    breaker: Arc<EndpointBreaker>,
    permit: Option<Permit>,
}

impl Ticket {
    /// Whether this attempt is the probe of a half-open breaker.
    #[cfg(test)]
    pub(crate) fn is_probe(&self) -> bool {
        self.permit.is_some_and(|permit| permit.is_probe())
    }

    /// Reports the outcome (with the error of a failure); says whether it opened or closed the
    /// breaker.
    pub(crate) fn record(
        mut self,
        outcome: Outcome,
        error: Option<&str>,
        now: Instant,
    ) -> Option<Change> {
        let permit = self.permit.take()?;
        self.breaker.record(permit, outcome, error, now)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.breaker.release(permit);
        }
    }
}

/// The breakers of every endpoint in use. Entries are held weakly: a breaker lives as long as
/// a worker delivers to its endpoint, so the map is bounded by the number of webhook groups.
#[derive(Clone, Default)]
pub(crate) struct Endpoints {
    breakers: Arc<StdMutex<HashMap<String, Weak<EndpointBreaker>>>>,
}

impl Endpoints {
    /// The breaker of the endpoint of `url`, shared with every other group delivering there.
    pub(crate) fn breaker(&self, url: &str, config: CircuitConfig) -> Arc<EndpointBreaker> {
        let key = endpoint_key(url);
        let mut breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        breakers.retain(|_, breaker| breaker.strong_count() > 0);
        if let Some(breaker) = breakers.get(&key).and_then(Weak::upgrade) {
            return breaker;
        }
        let breaker = Arc::new(EndpointBreaker::new(key.clone(), config));
        breakers.insert(key, Arc::downgrade(&breaker));
        breaker
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> CircuitConfig {
        CircuitConfig {
            consecutive_failures: 2,
            cool_down_ms: 1_000,
            ..CircuitConfig::default()
        }
    }

    #[test]
    fn an_endpoint_is_its_url_without_credentials_or_fragment() {
        assert_eq!(
            endpoint_key("HTTPS://user:pw@Example.COM:443/hooks/a?x=1#f"),
            "https://example.com/hooks/a?x=1"
        );
        assert_eq!(
            endpoint_key("http://example.com:8080/a"),
            "http://example.com:8080/a"
        );
        assert_ne!(
            endpoint_key("https://example.com/tenant-a"),
            endpoint_key("https://example.com/tenant-b")
        );
    }

    #[test]
    fn groups_delivering_to_one_endpoint_share_its_breaker() {
        let endpoints = Endpoints::default();
        let a = endpoints.breaker("https://example.com/hook", config());
        let b = endpoints.breaker("https://EXAMPLE.com:443/hook", config());
        let other = endpoints.breaker("https://example.com/other", config());
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &other));

        // One failure through each group's handle: together they reach the threshold.
        let now = Instant::now();
        let mut changes = b.subscribe();
        let opened = Some(Change::Opened(now + Duration::from_secs(1)));
        for (handle, change) in [(&a, None), (&b, opened)] {
            let ticket = handle.admit(now).expect("closed");
            assert_eq!(
                ticket.record(Outcome::Failure, Some("HTTP 500"), now),
                change
            );
        }
        assert!(changes.has_changed().unwrap_or(false), "waiters are woken");
        changes.mark_unchanged();
        assert!(matches!(a.state(now), CircuitState::Open { .. }));
        assert_eq!(a.last_error(), "HTTP 500");
        assert_eq!(other.state(now), CircuitState::Closed);

        // One probe for both; its success closes the breaker for both.
        let later = now + Duration::from_secs(1);
        let probe = a.admit(later).expect("a probe");
        assert!(probe.is_probe());
        assert!(matches!(b.admit(later), Err(None)), "one probe for both");
        assert_eq!(
            probe.record(Outcome::Success, None, later),
            Some(Change::Closed)
        );
        assert_eq!(b.state(later), CircuitState::Closed);
        assert!(changes.has_changed().unwrap_or(false));
    }

    #[test]
    fn a_probe_dropped_unreported_frees_the_slot_for_another_group() {
        let endpoints = Endpoints::default();
        let a = endpoints.breaker("https://example.com/hook", config());
        let now = Instant::now();
        for _ in 0..2 {
            let ticket = a.admit(now).expect("closed");
            ticket.record(Outcome::Failure, Some("HTTP 500"), now);
        }
        let later = now + Duration::from_secs(1);
        let probe = a.admit(later).expect("a probe");
        assert!(matches!(a.admit(later), Err(None)));
        // The group holding the probe had nothing to deliver, or its worker was stopped.
        drop(probe);
        assert!(a.admit(later).expect("free again").is_probe());
    }

    #[test]
    fn a_breaker_no_group_uses_is_forgotten() {
        let endpoints = Endpoints::default();
        let first = endpoints.breaker("https://example.com/hook", config());
        let now = Instant::now();
        first.trip_if_closed(now + Duration::from_secs(60));
        drop(first);
        let again = endpoints.breaker("https://example.com/hook", config());
        assert_eq!(again.state(now), CircuitState::Closed);
        assert_eq!(
            endpoints
                .breakers
                .lock()
                .map(|breakers| breakers.len())
                .unwrap_or(0),
            1
        );
    }
}
