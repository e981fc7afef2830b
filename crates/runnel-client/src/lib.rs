//! A typed async client for Runnel's HTTP API.
//!
//! Appends return what they wrote; reads of a stream or of `$all` are async [`Stream`]s that
//! fetch the next page as you consume the current one; [`Client::subscribe`] follows `$all`
//! live over server-sent events and resumes by itself after a dropped connection. Errors are
//! a [`ClientError`] with a variant for each answer a program branches on.
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use runnel_client::{Client, ClientError, EventFilter, ExpectedRevision, NewEvent, StreamName,
//!                     SubscribeFrom};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:2113")?;
//! let order = StreamName::parse("order/o-1")?;
//!
//! // Append, but only if the stream is new.
//! let placed = NewEvent::json("OrderPlaced", &serde_json::json!({"total": 42.5}))?;
//! match client.append(&order, ExpectedRevision::NoStream, &[placed]).await {
//!     Ok(written) => println!("written at revision {}", written.last_revision),
//!     Err(ClientError::WrongExpectedRevision { current, .. }) => {
//!         println!("someone was first; the stream is at {current:?}")
//!     }
//!     Err(other) => return Err(other.into()),
//! }
//!
//! // Read the whole stream, a page at a time under the hood.
//! let events: Vec<_> = client.read_stream(&order, None).try_collect().await?;
//! for event in &events {
//!     let data: serde_json::Value = event.data_as()?;
//!     println!("{} {} {data}", event.revision, event.event_type);
//! }
//!
//! // Follow every order event from the beginning, then live.
//! let mut live = client.subscribe(SubscribeFrom::BEGINNING, EventFilter::default().stream_type("order"));
//! while let Some(event) = live.try_next().await? {
//!     println!("{} {}", event.position, event.event_type);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! [`Stream`]: futures::Stream

mod client;
mod error;
mod keys;
mod model;
mod sse;
mod subscribe;
mod subscriptions;

pub use client::{Client, ClientBuilder, MAX_PAGE_SIZE};
pub use error::{ClientError, Problem};
pub use keys::{CreatedKey, KeyActor, KeyInfo, KeyRule, KeysPage, NewKey};
pub use model::{
    AllEventsPage, AppendResult, Direction, Event, EventFilter, NewEvent, NewPayload,
    StreamEventsPage, StreamInfo, StreamTypeInfo, StreamTypesPage, StreamsPage, SubscribeFrom,
};
pub use runnel_core::{ExpectedRevision, Revision, StreamName};
pub use subscribe::{ReconnectPolicy, STABLE_CONNECTION, Subscription};
pub use subscriptions::{
    AckResult, NackAction, NackResult, ParkedEvent, ParkedPage, ReceivedMessage, ReplayResult,
    SpecFilter, SubscriptionInfo, SubscriptionSpec, SubscriptionStatus, SubscriptionsPage,
};
