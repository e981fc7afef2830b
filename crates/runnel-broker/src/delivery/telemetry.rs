//! Prometheus metrics of webhook delivery, through the `metrics` facade. Every series carries
//! the group's name, so their number is bounded by the number of groups.

use metrics::{counter, gauge, histogram};

use crate::group::GroupName;

/// Delivery attempts, by outcome (`success`, `http_error`, `gone`, `timeout`, `connect_error`,
/// `refused`).
pub const WEBHOOK_ATTEMPTS: &str = "runnel_webhook_attempts_total";
/// Seconds from an event's append to its acknowledged delivery.
pub const WEBHOOK_DELIVERY_LATENCY: &str = "runnel_webhook_delivery_latency_seconds";
/// Seconds one attempt took, from sending the request to its answer (or failure).
pub const WEBHOOK_ATTEMPT_DURATION: &str = "runnel_webhook_attempt_duration_seconds";
/// Webhook requests in flight.
pub const WEBHOOK_IN_FLIGHT: &str = "runnel_webhook_in_flight";
/// Whether the endpoint's circuit breaker is open (1) or not (0).
pub const WEBHOOK_CIRCUIT_OPEN: &str = "runnel_webhook_circuit_open";

pub(super) fn attempt(group: &GroupName, outcome: &'static str, seconds: f64) {
    counter!(WEBHOOK_ATTEMPTS, "group" => group.as_str().to_owned(), "outcome" => outcome)
        .increment(1);
    histogram!(WEBHOOK_ATTEMPT_DURATION, "group" => group.as_str().to_owned()).record(seconds);
}

pub(super) fn delivered(group: &GroupName, seconds_since_append: f64) {
    histogram!(WEBHOOK_DELIVERY_LATENCY, "group" => group.as_str().to_owned())
        .record(seconds_since_append.max(0.0));
}

pub(super) fn in_flight(group: &GroupName, count: usize) {
    gauge!(WEBHOOK_IN_FLIGHT, "group" => group.as_str().to_owned()).set(count as f64);
}

pub(super) fn circuit_open(group: &GroupName, open: bool) {
    gauge!(WEBHOOK_CIRCUIT_OPEN, "group" => group.as_str().to_owned()).set(if open {
        1.0
    } else {
        0.0
    });
}
