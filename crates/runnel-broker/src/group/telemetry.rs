//! Prometheus metrics of consumer groups, through the `metrics` facade (the server installs
//! the recorder). Every series carries the group's name, so their number is bounded by
//! [`super::GroupLimits::max_groups`].

use metrics::{counter, gauge};

use super::events::NackAction;
use super::name::GroupName;
use super::service::ReceivedMessage;
use super::state::GroupState;

/// Positions of `$all` a group has not read yet.
pub const GROUP_LAG_EVENTS: &str = "runnel_group_lag_events";
/// Deliveries leased now.
pub const GROUP_IN_FLIGHT: &str = "runnel_group_in_flight";
/// Events waiting for a retry, after an expired lease, or behind their stream.
pub const GROUP_PENDING: &str = "runnel_group_pending";
/// Events parked.
pub const GROUP_PARKED: &str = "runnel_group_parked";
/// Deliveries handed out (every attempt).
pub const GROUP_DELIVERIES: &str = "runnel_group_deliveries_total";
/// Deliveries that were second or later attempts.
pub const GROUP_REDELIVERIES: &str = "runnel_group_redeliveries_total";
/// Deliveries acknowledged.
pub const GROUP_ACKS: &str = "runnel_group_acks_total";
/// Deliveries rejected, by action.
pub const GROUP_NACKS: &str = "runnel_group_nacks_total";
/// Leases that ran out.
pub const GROUP_EXPIRED: &str = "runnel_group_lease_expiries_total";
/// Events parked (by a nack, or after their last delivery).
pub const GROUP_PARKED_TOTAL: &str = "runnel_group_parked_total";
/// Changes decided again because another writer changed the group first.
pub const GROUP_CONFLICTS: &str = "runnel_group_write_conflicts_total";

pub(super) fn gauges(name: &GroupName, state: &GroupState, lag: u64) {
    gauge!(GROUP_LAG_EVENTS, "group" => name.as_str().to_owned()).set(lag as f64);
    gauge!(GROUP_IN_FLIGHT, "group" => name.as_str().to_owned()).set(state.in_flight() as f64);
    gauge!(GROUP_PENDING, "group" => name.as_str().to_owned()).set(state.pending() as f64);
    gauge!(GROUP_PARKED, "group" => name.as_str().to_owned()).set(state.parked() as f64);
}

/// A deleted group's gauges drop to zero (the facade cannot remove a series).
pub(super) fn forget(name: &GroupName) {
    for metric in [
        GROUP_LAG_EVENTS,
        GROUP_IN_FLIGHT,
        GROUP_PENDING,
        GROUP_PARKED,
    ] {
        gauge!(metric, "group" => name.as_str().to_owned()).set(0.0);
    }
}

pub(super) fn received(name: &GroupName, messages: &[ReceivedMessage]) {
    let again = messages.iter().filter(|m| m.delivery > 1).count();
    counter!(GROUP_DELIVERIES, "group" => name.as_str().to_owned())
        .increment(messages.len() as u64);
    if again > 0 {
        counter!(GROUP_REDELIVERIES, "group" => name.as_str().to_owned()).increment(again as u64);
    }
}

pub(super) fn acked(name: &GroupName, count: usize) {
    counter!(GROUP_ACKS, "group" => name.as_str().to_owned()).increment(count as u64);
}

pub(super) fn nacked(name: &GroupName, action: NackAction, count: usize) {
    counter!(GROUP_NACKS, "group" => name.as_str().to_owned(), "action" => action.as_str())
        .increment(count as u64);
}

pub(super) fn expired(name: &GroupName, count: usize) {
    if count > 0 {
        counter!(GROUP_EXPIRED, "group" => name.as_str().to_owned()).increment(count as u64);
    }
}

pub(super) fn parked(name: &GroupName, count: usize) {
    if count > 0 {
        counter!(GROUP_PARKED_TOTAL, "group" => name.as_str().to_owned()).increment(count as u64);
    }
}

pub(super) fn conflict(name: &GroupName) {
    counter!(GROUP_CONFLICTS, "group" => name.as_str().to_owned()).increment(1);
}
