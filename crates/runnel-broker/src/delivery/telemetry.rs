//! Prometheus metrics of webhook delivery, through the `metrics` facade. Every series carries
//! the group's name, so their number is bounded by the number of groups.
//!
//! Two gauges here concern every group, pull ones too: whether it is paused and its cursor.
//! They come from the listing the delivery supervisor makes anyway (on every change on this
//! node, and every `refresh_interval_ms` for other nodes' changes), which sees every group.

use std::collections::HashSet;

use metrics::{counter, gauge, histogram};

use crate::group::{GroupName, GroupView};

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

/// Whether the group is paused (1) or not (0), by a person, a 410 or a circuit breaker.
pub const GROUP_PAUSED: &str = "runnel_group_paused";
/// The next position of `$all` the group reads.
pub const GROUP_CURSOR: &str = "runnel_group_cursor_position";

/// Sets the status gauges of every group in `views`, and zeroes those of groups listed before
/// but gone now (the facade cannot remove a series). `listed` carries the names between calls.
pub(super) fn group_status(listed: &mut HashSet<GroupName>, views: &[GroupView]) {
    let now: HashSet<GroupName> = views.iter().map(|view| view.name.clone()).collect();
    for gone in listed.difference(&now) {
        gauge!(GROUP_PAUSED, "group" => gone.as_str().to_owned()).set(0.0);
    }
    for view in views {
        let group = view.name.as_str().to_owned();
        gauge!(GROUP_PAUSED, "group" => group.clone()).set(f64::from(u8::from(view.status.paused)));
        gauge!(GROUP_CURSOR, "group" => group).set(view.status.cursor as f64);
    }
    *listed = now;
}

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
