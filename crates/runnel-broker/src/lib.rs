//! Runnel's broker foundations, free of I/O: what consumer groups need to decide without
//! touching a socket, a disk or a clock.
//!
//! - [`pattern`]: the EventBridge event-pattern language, compiled once, matched per event.
//! - [`filter`]: a subscription's filter (stream types, event types, pattern).
//! - [`event_json`]: the one conversion of a recorded event to the Event JSON of API.md.
//! - [`webhook`]: Standard Webhooks secrets and signatures.
//! - [`cloudevents`]: the CloudEvents 1.0 HTTP binding, structured and binary.
//! - [`retry`]: the delivery backoff policy and `Retry-After`.
//! - [`circuit`]: the per-endpoint circuit breaker.

#![warn(missing_docs)]

pub mod circuit;
pub mod cloudevents;
pub mod event_json;
pub mod filter;
pub mod pattern;
pub mod retry;
pub mod webhook;
