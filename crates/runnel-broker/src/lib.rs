//! Runnel's broker: consumer groups over the store, and the parts of delivery that decide
//! without touching a socket, a disk or a clock.
//!
//! - [`group`]: consumer groups — configuration, the pure state machine, and the service that
//!   runs it over any [`runnel_core::Store`].
//! - [`pattern`]: the EventBridge event-pattern language, compiled once, matched per event.
//! - [`filter`]: a subscription's filter (stream types, event types, pattern).
//! - [`event_json`]: the one conversion of a recorded event to the Event JSON of API.md.
//! - [`webhook`]: Standard Webhooks secrets and signatures.
//! - [`cloudevents`]: the CloudEvents 1.0 HTTP binding, structured and binary.
//! - [`retry`]: the delivery backoff policy and `Retry-After`.
//! - [`circuit`]: the per-endpoint circuit breaker.
//! - [`delivery`]: the webhook workers, which deliver webhook groups' events over HTTP.

#![warn(missing_docs)]

pub mod circuit;
pub mod cloudevents;
pub mod delivery;
pub mod event_json;
pub mod filter;
pub mod group;
pub mod pattern;
pub mod retry;
pub mod webhook;
