//! What the delivery workers tell the audit trail: a subscription paused or resumed by the
//! server itself (a 410 from the endpoint, its circuit breaker opening, probing or closing).
//!
//! The audit trail is written by the server crate, which depends on this one; the workers reach
//! it through [`AuditTrail`], which the server implements and hands to [`super::run`].

use std::future::Future;
use std::pin::Pin;

use crate::group::GroupName;

/// What the server did to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerAction {
    /// Delivery was paused.
    Paused,
    /// Delivery was resumed.
    Resumed,
}

/// One action of the server on a subscription, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerActionRecord {
    /// The subscription.
    pub group: GroupName,
    /// What was done.
    pub action: ServerAction,
    /// Why, in words (the pause reason the status shows, or why delivery resumed).
    pub reason: String,
    /// The endpoint concerned: its URL without credentials or fragment.
    pub endpoint: String,
}

/// A future an [`AuditTrail`] returns.
pub type AuditFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Where the delivery workers record what they do to subscriptions on their own. A failure
/// is logged by the worker and does not stop delivery: the pause itself is already durable in
/// the group's state.
pub trait AuditTrail: Send + Sync + 'static {
    /// Appends `record` to the audit trail.
    fn record<'a>(&'a self, record: &'a ServerActionRecord) -> AuditFuture<'a>;
}

/// An audit trail that keeps nothing (for embedding without one, and for tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuditTrail;

impl AuditTrail for NoAuditTrail {
    fn record<'a>(&'a self, _record: &'a ServerActionRecord) -> AuditFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}
