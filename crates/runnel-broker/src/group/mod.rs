//! Consumer groups: durable, server-side subscriptions with a filter, a cursor over `$all`,
//! leases, retries and a parked list (API.md "Consumer groups"; DESIGN.md "Broker").
//!
//! - [`config`]: a group's configuration, validated with JSON pointers.
//! - [`state`]: the pure state machine — what a receive leases, what an ack, a nack or an
//!   expired lease changes — tested without a store.
//! - [`events`]: the events of a group's state stream `$group/{name}`, which is the only
//!   place its state lives.
//! - [`service`]: the state machine over the store: optimistic appends, long polls, the
//!   sweeper of expired leases.
//!
//! Delivery is at least once: an event is delivered again until a delivery of it is
//! acknowledged (or it is skipped or parked), and the event id is the consumer's idempotency
//! key.

pub mod config;
mod error;
pub mod events;
mod limits;
mod name;
mod receipt;
mod service;
pub mod state;
pub mod telemetry;

pub use config::{
    ConfigError, Delivery, GroupConfig, GroupOrdering, Start, WebhookDelivery, WebhookFormat,
};
pub use error::GroupError;
pub use events::NackAction;
pub use limits::GroupLimits;
pub use name::{
    GROUP_STREAM_TYPE, GroupName, GroupNameError, MAX_GROUP_NAME_LEN, group_stream_type,
};
pub use receipt::{RECEIPT_CHARS, Receipt};
pub use service::{
    AckOutcome, ConsumerKind, GroupService, GroupStatus, GroupView, NackOutcome, ParkedEvent,
    PutOutcome, ReceivedMessage, ReplayOutcome,
};
