//! The delivery worker of one webhook group.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runnel_core::RecordedEvent;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::circuit::{CircuitState, Outcome};
use crate::group::{
    ConsumerKind, Delivery, GroupError, GroupName, GroupService, GroupView, NackAction,
    ReceivedMessage, WebhookDelivery,
};

use super::DeliveryConfig;
use super::attempt::{AttemptResult, deliver};
use super::audit::{AuditTrail, ServerAction, ServerActionRecord};
use super::endpoint::{Change, EndpointBreaker, Ticket};
use super::telemetry;

/// How a pause by the circuit breaker reads in the group's status; the worker resumes only
/// pauses that start with it (never one a person or a 410 asked for).
pub const CIRCUIT_PAUSE_PREFIX: &str = "circuit open";

/// How many times `max_in_flight` events a worker keeps leased: the requests out, and the
/// next ones, leased while those are out so that each request that ends is followed at once
/// by another, without waiting for a lease to be committed.
const LEASE_AHEAD: usize = 2;

/// How long the worker waits before trying again after its group could not be read.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

pub(super) struct Worker {
    pub(super) groups: GroupService,
    pub(super) name: GroupName,
    pub(super) client: reqwest::Client,
    pub(super) config: Arc<DeliveryConfig>,
    pub(super) audit: Arc<dyn AuditTrail>,
    /// The breaker of the group's endpoint, shared with every group delivering there.
    pub(super) breaker: Arc<EndpointBreaker>,
    /// The group as last listed; the supervisor sends each new listing.
    pub(super) view: watch::Receiver<GroupView>,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// What every attempt of one worker shares.
struct Shared {
    groups: GroupService,
    name: GroupName,
    client: reqwest::Client,
    config: Arc<DeliveryConfig>,
    audit: Arc<dyn AuditTrail>,
    webhook: WebhookDelivery,
    breaker: Arc<EndpointBreaker>,
    /// Events leased and not yet acknowledged (or rejected): `lease_capacity`.
    leases: Arc<Semaphore>,
    /// `max_in_flight`, times [`LEASE_AHEAD`] when the lease outlasts two requests.
    lease_capacity: usize,
    /// Requests out to the endpoint: `max_in_flight`.
    requests: Arc<Semaphore>,
    max_in_flight: usize,
    /// Bumped when an answer of the endpoint pauses the group: events leased before that
    /// and still waiting for their turn are given back instead of sent.
    halts: AtomicU64,
}

impl Shared {
    fn report_in_flight(&self) {
        let busy = self
            .max_in_flight
            .saturating_sub(self.requests.available_permits());
        telemetry::in_flight(&self.name, busy);
    }

    /// Pauses the group on the server's own account, and records that in the audit trail
    /// when it was not paused already.
    async fn pause(&self, reason: &str) {
        match self.groups.pause(&self.name, reason).await {
            Ok(true) => self.audit(ServerAction::Paused, reason).await,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(group = %self.name, %error, "cannot pause the subscription");
            }
        }
    }

    /// Resumes the group on the server's own account, and records that in the audit trail
    /// when it was paused.
    async fn resume(&self, reason: &str) -> Result<(), GroupError> {
        if self.groups.resume(&self.name).await? {
            self.audit(ServerAction::Resumed, reason).await;
        }
        Ok(())
    }

    async fn audit(&self, action: ServerAction, reason: &str) {
        let record = ServerActionRecord {
            group: self.name.clone(),
            action,
            reason: reason.to_owned(),
            endpoint: self.breaker.key().to_owned(),
        };
        if let Err(error) = self.audit.record(&record).await {
            tracing::warn!(group = %self.name, ?action, %error, "cannot record the change in the audit trail");
        }
    }

    /// Pauses the group because its endpoint's breaker is open until `until`.
    async fn pause_for_circuit(&self, until: Instant) {
        telemetry::circuit_open(&self.name, true);
        let probe_in_ms = until.saturating_duration_since(Instant::now()).as_millis();
        let reason = format!(
            "{CIRCUIT_PAUSE_PREFIX}: the endpoint keeps failing (last: {}); a probe follows \
             in {probe_in_ms} ms",
            self.breaker.last_error()
        );
        tracing::warn!(group = %self.name, endpoint = %self.breaker.key(), "the webhook endpoint keeps failing; pausing the subscription until a probe succeeds");
        self.pause(&reason).await;
    }
}

fn is_circuit_pause(view: &GroupView) -> bool {
    view.status
        .paused_reason
        .as_deref()
        .is_some_and(|reason| reason.starts_with(CIRCUIT_PAUSE_PREFIX))
}

/// Why the worker resumes a group its endpoint's breaker paused.
const PROBE_REASON: &str = "the circuit breaker's cool-down is over: one event goes as a probe";
const CLOSED_REASON: &str = "the endpoint's circuit breaker closed";

impl Worker {
    pub(super) async fn run(mut self) {
        let view = self.view.borrow().clone();
        let Delivery::Webhook(webhook) = view.config.delivery.clone() else {
            return;
        };
        let max_in_flight = webhook.max_in_flight.max(1) as usize;
        // An event leased ahead waits for at most one request before its own goes: lease
        // ahead only when the lease outlasts both, so that waiting never costs a redelivery.
        let lease_capacity = if webhook.timeout_ms.saturating_mul(2) <= view.config.ack_timeout_ms {
            max_in_flight.saturating_mul(LEASE_AHEAD)
        } else {
            max_in_flight
        };
        if is_circuit_pause(&view) {
            // Paused by the breaker before a restart: probe after a cool-down, as then.
            self.breaker.trip_if_closed(
                Instant::now() + Duration::from_millis(self.config.circuit.cool_down_ms),
            );
        }
        let shared = Arc::new(Shared {
            groups: self.groups.clone(),
            name: self.name.clone(),
            client: self.client.clone(),
            config: Arc::clone(&self.config),
            audit: Arc::clone(&self.audit),
            webhook,
            breaker: Arc::clone(&self.breaker),
            leases: Arc::new(Semaphore::new(lease_capacity)),
            lease_capacity,
            requests: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            halts: AtomicU64::new(0),
        });
        let mut breaker_changes = self.breaker.subscribe();
        let mut attempts: JoinSet<()> = JoinSet::new();
        let poll_wait = Duration::from_millis(self.config.poll_wait_ms.max(10));
        if shared.webhook.timeout_ms > view.config.ack_timeout_ms {
            tracing::warn!(group = %self.name, timeout_ms = shared.webhook.timeout_ms, ack_timeout_ms = view.config.ack_timeout_ms, "the webhook's timeout_ms is longer than the lease (ack_timeout_ms): a slow answer is delivered again while still in flight");
        }
        // Whether a listing has shown the breaker's pause: once it has, a listing without any
        // pause while the breaker is still open means a person resumed the group.
        let mut circuit_pause_seen = is_circuit_pause(&view);
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            // Reap finished attempts, so the set stays as small as what is in flight.
            while attempts.try_join_next().is_some() {}
            let view = self.view.borrow_and_update().clone();
            breaker_changes.borrow_and_update();
            if is_circuit_pause(&view) {
                circuit_pause_seen = true;
            } else if circuit_pause_seen && !view.status.paused {
                circuit_pause_seen = false;
                if matches!(
                    self.breaker.state(Instant::now()),
                    CircuitState::Open { .. }
                ) {
                    // Resumed by a person: deliver at once, with the failures forgotten. The
                    // breaker is the endpoint's, so the other groups it paused resume too.
                    self.breaker.reset();
                    telemetry::circuit_open(&self.name, false);
                }
            }
            if view.status.paused && !is_circuit_pause(&view) {
                // Paused by a person, a 410 or a full parked list: wait for a change.
                tokio::select! {
                    changed = self.view.changed() => if changed.is_err() { return },
                    _ = self.shutdown.wait_for(|down| *down) => return,
                }
                continue;
            }
            let probe = match self.breaker.state(Instant::now()) {
                CircuitState::Open { until } => {
                    if !is_circuit_pause(&view) {
                        // Opened by this group's failures or another's on the same endpoint.
                        shared.pause_for_circuit(until).await;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(until.into()) => {}
                        changed = self.view.changed() => if changed.is_err() { return },
                        _ = breaker_changes.changed() => {}
                        _ = self.shutdown.wait_for(|down| *down) => return,
                    }
                    continue;
                }
                CircuitState::HalfOpen => match self.breaker.admit(Instant::now()) {
                    Ok(probe) => Some(probe),
                    Err(_) => {
                        // Another group's probe is out: wait for its outcome.
                        if !self.wait_for_breaker(&mut breaker_changes, poll_wait).await {
                            return;
                        }
                        continue;
                    }
                },
                CircuitState::Closed => None,
            };
            if is_circuit_pause(&view) {
                // The cool-down is over (deliver one event as the probe), or the breaker closed.
                circuit_pause_seen = false;
                let reason = if probe.is_some() {
                    PROBE_REASON
                } else {
                    telemetry::circuit_open(&self.name, false);
                    CLOSED_REASON
                };
                if let Err(error) = shared.resume(reason).await {
                    tracing::warn!(group = %self.name, %error, "cannot resume the subscription");
                    drop(probe);
                    self.pause_briefly().await;
                    continue;
                }
            }
            let wanted = if probe.is_some() {
                1
            } else {
                shared.lease_capacity
            };
            let permits = tokio::select! {
                permits = take_permits(&shared.leases, wanted) => permits,
                _ = self.shutdown.wait_for(|down| *down) => return,
            };
            let Some(mut permits) = permits else { return };
            if probe.is_none() && self.breaker.state(Instant::now()) != CircuitState::Closed {
                // An attempt that ended while this waited for a permit opened the breaker.
                continue;
            }
            let halts = shared.halts.load(Ordering::Acquire);
            let received = tokio::select! {
                received = self.groups.receive(&self.name, ConsumerKind::Webhook, permits.len(), poll_wait) => received,
                _ = self.shutdown.wait_for(|down| *down) => return,
            };
            let messages = match received {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(group = %self.name, %error, "cannot receive the subscription's events");
                    drop(permits);
                    drop(probe);
                    self.pause_briefly().await;
                    continue;
                }
            };
            let probing = probe.is_some();
            if probing && messages.is_empty() {
                // Nothing to probe with: give the probe back, so that a group on the same
                // endpoint with an event ready can go, and let it have the first turn.
                drop(probe);
                breaker_changes.borrow_and_update();
                if !self.wait_for_breaker(&mut breaker_changes, poll_wait).await {
                    return;
                }
                continue;
            }
            let mut probe = probe;
            for message in messages {
                let Some(permit) = permits.pop() else { break };
                let shared = Arc::clone(&shared);
                attempts.spawn(attempt(shared, message, probe.take(), permit, halts));
            }
            drop(permits);
            shared.report_in_flight();
            if probing {
                // Wait for the probe's outcome before deciding anything else.
                while attempts.join_next().await.is_some() {}
            }
        }
    }

    /// Waits for the endpoint's breaker to change (or `poll_wait`, or the group's listing);
    /// `false` when the worker should stop.
    async fn wait_for_breaker(
        &mut self,
        breaker_changes: &mut watch::Receiver<u64>,
        poll_wait: Duration,
    ) -> bool {
        tokio::select! {
            _ = breaker_changes.changed() => true,
            () = tokio::time::sleep(poll_wait) => true,
            changed = self.view.changed() => changed.is_ok(),
            _ = self.shutdown.wait_for(|down| *down) => false,
        }
    }

    async fn pause_briefly(&mut self) {
        tokio::select! {
            () = tokio::time::sleep(ERROR_PAUSE) => {}
            _ = self.shutdown.wait_for(|down| *down) => {}
        }
    }
}

/// One permit, waiting for it, then as many more (up to `wanted`) as are free now.
async fn take_permits(
    semaphore: &Arc<Semaphore>,
    wanted: usize,
) -> Option<Vec<OwnedSemaphorePermit>> {
    let first = Arc::clone(semaphore).acquire_owned().await.ok()?;
    // Acks are committed together, so the attempts they answer end together: let the others
    // give their permits back too, and lease for all of them in one receive.
    tokio::task::yield_now().await;
    let mut permits = vec![first];
    while permits.len() < wanted {
        match Arc::clone(semaphore).try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
    Some(permits)
}

/// Delivers one leased event (as `probe`, when given) once a request may go out, and acks or
/// nacks it. `lease` is held until the ack or nack is durable.
async fn attempt(
    shared: Arc<Shared>,
    message: ReceivedMessage,
    probe: Option<Ticket>,
    lease: OwnedSemaphorePermit,
    halts: u64,
) {
    let receipt = [message.receipt.to_string()];
    let name = &shared.name;
    // Never closed: the worker that owns it outlives its attempts.
    let Ok(request) = Arc::clone(&shared.requests).acquire_owned().await else {
        return;
    };
    if shared.halts.load(Ordering::Acquire) != halts {
        // The endpoint paused the group while this waited for its turn: give it back
        // unsent (no error: nothing was tried), to go when the group is resumed.
        drop(request);
        nack(&shared, &receipt, 0, None).await;
        drop(lease);
        return;
    }
    shared.report_in_flight();
    // Asked only now, when the request would go: the breaker may have opened while this
    // waited for its turn.
    let admission = match probe {
        Some(probe) => Ok(probe),
        None => shared.breaker.admit(Instant::now()),
    };
    let ticket = match admission {
        Ok(ticket) => ticket,
        Err(_) => {
            // The breaker opened between the receive and now (this group's failures or another
            // group's on the same endpoint): give the lease back. Without a delay: no worker
            // receives while the breaker is open, and a delay until the end of the cool-down
            // would outlast a person's resume or a probe that closes the breaker. No error is
            // recorded: nothing was sent, and the last real one stays the event's last error.
            drop(request);
            shared.report_in_flight();
            nack(&shared, &receipt, 0, None).await;
            drop(lease);
            return;
        }
    };
    let started = Instant::now();
    let result = deliver(
        &shared.client,
        &shared.webhook,
        &message.event,
        shared.config.allow_private,
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    // The endpoint is done with this request: the next may go while this one is recorded.
    drop(request);
    shared.report_in_flight();
    match result {
        AttemptResult::Delivered => {
            ticket.record(Outcome::Success, None, Instant::now());
            telemetry::attempt(name, "success", seconds);
            telemetry::circuit_open(name, false);
            match shared.groups.ack(name, &receipt).await {
                Ok(outcome) if outcome.acked == 1 => {
                    telemetry::delivered(name, seconds_since_append(&message.event));
                }
                Ok(_) => {
                    tracing::debug!(group = %name, event = %message.event.id, "delivered after its lease ran out; it will be delivered again")
                }
                Err(error) => {
                    tracing::warn!(group = %name, %error, "cannot acknowledge a delivered event; it will be delivered again")
                }
            }
        }
        AttemptResult::Gone { error } => {
            // The endpoint answered deliberately: not a sign of failing health.
            ticket.record(Outcome::Success, None, Instant::now());
            telemetry::attempt(name, "gone", seconds);
            let reason =
                format!("the endpoint answered {error}; resume the subscription to deliver again");
            tracing::warn!(group = %name, endpoint = %shared.breaker.key(), "the webhook endpoint answered 410 Gone; pausing the subscription");
            // Pause first, so that the event given back is not handed out again at once.
            shared.halts.fetch_add(1, Ordering::AcqRel);
            shared.pause(&reason).await;
            nack(&shared, &receipt, 0, Some(&error)).await;
        }
        AttemptResult::Failed {
            error,
            retry_after,
            outcome,
        } => {
            let change = ticket.record(Outcome::Failure, Some(&error), Instant::now());
            telemetry::attempt(name, outcome, seconds);
            let delay = shared.config.backoff.next_delay_seeded(
                message.delivery,
                None,
                retry_after,
                rand::random(),
            );
            tracing::debug!(group = %name, event = %message.event.id, delivery = message.delivery, delay_ms = delay.as_millis() as u64, %error, "webhook delivery failed");
            nack(&shared, &receipt, delay.as_millis() as u64, Some(&error)).await;
            if let Some(Change::Opened(until)) = change {
                shared.pause_for_circuit(until).await;
            }
        }
    }
    drop(lease);
}

async fn nack(shared: &Shared, receipt: &[String], delay_ms: u64, error: Option<&str>) {
    if let Err(failure) = shared
        .groups
        .nack(&shared.name, receipt, NackAction::Retry, delay_ms, error)
        .await
    {
        tracing::warn!(group = %shared.name, error = %failure, "cannot record a failed delivery; its lease runs out and it is delivered again");
    }
}

fn seconds_since_append(event: &RecordedEvent) -> f64 {
    let now_micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as i64);
    (now_micros - event.recorded_at.as_micros()) as f64 / 1_000_000.0
}
