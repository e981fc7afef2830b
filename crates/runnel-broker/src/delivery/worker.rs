//! The delivery worker of one webhook group.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use runnel_core::RecordedEvent;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::circuit::{Admission, CircuitBreaker, CircuitState, Outcome, Permit};
use crate::group::{
    ConsumerKind, Delivery, GroupName, GroupService, GroupView, NackAction, ReceivedMessage,
    WebhookDelivery,
};

use super::DeliveryConfig;
use super::attempt::{AttemptResult, deliver};
use super::telemetry;

/// How a pause by the circuit breaker reads in the group's status; the worker resumes only
/// pauses that start with it (never one a person or a 410 asked for).
pub const CIRCUIT_PAUSE_PREFIX: &str = "circuit open";

/// How long the worker waits before trying again after its group could not be read.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

pub(super) struct Worker {
    pub(super) groups: GroupService,
    pub(super) name: GroupName,
    pub(super) client: reqwest::Client,
    pub(super) config: Arc<DeliveryConfig>,
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
    webhook: WebhookDelivery,
    breaker: StdMutex<CircuitBreaker>,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
}

impl Shared {
    fn breaker(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // The breaker is consistent after every call, so a poisoned lock is still usable.
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn report_in_flight(&self) {
        let busy = self
            .max_in_flight
            .saturating_sub(self.permits.available_permits());
        telemetry::in_flight(&self.name, busy);
    }
}

fn is_circuit_pause(view: &GroupView) -> bool {
    view.status
        .paused_reason
        .as_deref()
        .is_some_and(|reason| reason.starts_with(CIRCUIT_PAUSE_PREFIX))
}

impl Worker {
    pub(super) async fn run(mut self) {
        let view = self.view.borrow().clone();
        let Delivery::Webhook(webhook) = view.config.delivery.clone() else {
            return;
        };
        let max_in_flight = webhook.max_in_flight.max(1) as usize;
        let mut breaker = CircuitBreaker::new(self.config.circuit);
        if is_circuit_pause(&view) {
            // Paused by the breaker before a restart: probe after a cool-down, as then.
            breaker.trip(Instant::now() + Duration::from_millis(self.config.circuit.cool_down_ms));
        }
        let shared = Arc::new(Shared {
            groups: self.groups.clone(),
            name: self.name.clone(),
            client: self.client.clone(),
            config: Arc::clone(&self.config),
            webhook,
            breaker: StdMutex::new(breaker),
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
        });
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
            if is_circuit_pause(&view) {
                circuit_pause_seen = true;
            } else if circuit_pause_seen && !view.status.paused {
                circuit_pause_seen = false;
                if matches!(
                    shared.breaker().state(Instant::now()),
                    CircuitState::Open { .. }
                ) {
                    // Resumed by a person: deliver at once, with the failures forgotten.
                    shared.breaker().reset();
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
            let state = shared.breaker().state(Instant::now());
            let wanted = match state {
                CircuitState::Open { until } => {
                    tokio::select! {
                        () = tokio::time::sleep_until(until.into()) => {}
                        changed = self.view.changed() => if changed.is_err() { return },
                        _ = self.shutdown.wait_for(|down| *down) => return,
                    }
                    continue;
                }
                CircuitState::HalfOpen => 1,
                CircuitState::Closed => max_in_flight,
            };
            if is_circuit_pause(&view) || state == CircuitState::HalfOpen {
                // The cool-down is over: deliver again (one probe first).
                circuit_pause_seen = false;
                if let Err(error) = self.groups.resume(&self.name).await {
                    tracing::warn!(group = %self.name, %error, "cannot resume the subscription for a probe");
                    self.pause_briefly().await;
                    continue;
                }
            }
            let permits = tokio::select! {
                permits = take_permits(&shared.permits, wanted) => permits,
                _ = self.shutdown.wait_for(|down| *down) => return,
            };
            let Some(mut permits) = permits else { return };
            if shared.breaker().state(Instant::now()) != state {
                // An attempt that ended while this waited for a permit changed the breaker.
                continue;
            }
            let received = tokio::select! {
                received = self.groups.receive(&self.name, ConsumerKind::Webhook, permits.len(), poll_wait) => received,
                _ = self.shutdown.wait_for(|down| *down) => return,
            };
            let messages = match received {
                Ok(messages) => messages,
                Err(error) => {
                    tracing::warn!(group = %self.name, %error, "cannot receive the subscription's events");
                    drop(permits);
                    self.pause_briefly().await;
                    continue;
                }
            };
            for message in messages {
                let Some(permit) = permits.pop() else { break };
                let admission = shared.breaker().admit(Instant::now());
                let shared = Arc::clone(&shared);
                attempts.spawn(attempt(shared, message, admission, permit));
            }
            drop(permits);
            shared.report_in_flight();
            if state == CircuitState::HalfOpen {
                // Wait for the probe's outcome before deciding anything else.
                while attempts.join_next().await.is_some() {}
            }
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
    let mut permits = vec![first];
    while permits.len() < wanted {
        match Arc::clone(semaphore).try_acquire_owned() {
            Ok(permit) => permits.push(permit),
            Err(_) => break,
        }
    }
    Some(permits)
}

/// Delivers one leased event and acks or nacks it.
async fn attempt(
    shared: Arc<Shared>,
    message: ReceivedMessage,
    admission: Admission,
    permit: OwnedSemaphorePermit,
) {
    let receipt = [message.receipt.to_string()];
    let name = &shared.name;
    let circuit_permit: Permit = match admission {
        Admission::Admitted(permit) => permit,
        Admission::Rejected { until } => {
            // The breaker opened between the receive and now: give the lease back, to be
            // delivered after the cool-down.
            let delay = until.map_or(shared.config.circuit.cool_down_ms, |until| {
                until.saturating_duration_since(Instant::now()).as_millis() as u64
            });
            nack(
                &shared,
                &receipt,
                delay,
                "held back: the endpoint's circuit breaker is open",
            )
            .await;
            drop(permit);
            shared.report_in_flight();
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
    match result {
        AttemptResult::Delivered => {
            shared
                .breaker()
                .record(circuit_permit, Outcome::Success, Instant::now());
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
            shared
                .breaker()
                .record(circuit_permit, Outcome::Success, Instant::now());
            telemetry::attempt(name, "gone", seconds);
            let reason =
                format!("the endpoint answered {error}; resume the subscription to deliver again");
            tracing::warn!(group = %name, url = %shared.webhook.url, "the webhook endpoint answered 410 Gone; pausing the subscription");
            // Pause first, so that the event given back is not handed out again at once.
            if let Err(error) = shared.groups.pause(name, &reason).await {
                tracing::warn!(group = %name, %error, "cannot pause the subscription");
            }
            nack(&shared, &receipt, 0, &error).await;
        }
        AttemptResult::Failed {
            error,
            retry_after,
            outcome,
        } => {
            let opened = {
                let mut breaker = shared.breaker();
                let now = Instant::now();
                let before = breaker.state(now);
                breaker.record(circuit_permit, Outcome::Failure, now);
                match breaker.state(now) {
                    CircuitState::Open { until } if before != breaker.state(now) => Some(until),
                    _ => None,
                }
            };
            telemetry::attempt(name, outcome, seconds);
            let delay = shared.config.backoff.next_delay_seeded(
                message.delivery,
                None,
                retry_after,
                rand::random(),
            );
            tracing::debug!(group = %name, event = %message.event.id, delivery = message.delivery, delay_ms = delay.as_millis() as u64, %error, "webhook delivery failed");
            nack(&shared, &receipt, delay.as_millis() as u64, &error).await;
            if let Some(until) = opened {
                telemetry::circuit_open(name, true);
                let probe_in_ms = until.saturating_duration_since(Instant::now()).as_millis();
                let reason = format!(
                    "{CIRCUIT_PAUSE_PREFIX}: the endpoint keeps failing (last: {error}); \
                     a probe follows in {probe_in_ms} ms"
                );
                tracing::warn!(group = %name, url = %shared.webhook.url, %error, "the webhook endpoint keeps failing; pausing the subscription until a probe succeeds");
                if let Err(error) = shared.groups.pause(name, &reason).await {
                    tracing::warn!(group = %name, %error, "cannot pause the subscription");
                }
            }
        }
    }
    drop(permit);
    shared.report_in_flight();
}

async fn nack(shared: &Shared, receipt: &[String], delay_ms: u64, error: &str) {
    if let Err(failure) = shared
        .groups
        .nack(
            &shared.name,
            receipt,
            NackAction::Retry,
            delay_ms,
            Some(error),
        )
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
