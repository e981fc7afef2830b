//! Consumer groups (`/subscriptions`): create, update, list, describe and delete them; receive,
//! acknowledge and reject their messages; list and replay parked events.
//!
//! Delivery is at least once: a message that is not acknowledged within the group's
//! `ack_timeout_ms` comes again, so consumers use the event id as their idempotency key.
//!
//! ```no_run
//! use std::time::Duration;
//! use runnel_client::{Client, SubscriptionSpec};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::new("http://127.0.0.1:2113")?;
//! client
//!     .put_subscription("billing", &SubscriptionSpec::new().stream_type("order").from_beginning())
//!     .await?;
//! loop {
//!     let messages = client.receive("billing", 100, Duration::from_secs(20)).await?;
//!     for message in &messages {
//!         println!("{} {}", message.event.id, message.event.event_type);
//!     }
//!     let receipts: Vec<String> = messages.into_iter().map(|m| m.receipt).collect();
//!     if !receipts.is_empty() {
//!         client.ack("billing", &receipts).await?;
//!     }
//! }
//! # }
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::Stream;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{Client, paged};
use crate::error::ClientError;
use crate::model::Event;

/// How much longer than the server's wait a receive may take before the client gives up: the
/// server answers at the end of the wait, so this covers only the network and the append.
const RECEIVE_MARGIN: Duration = Duration::from_secs(10);

/// A subscription's configuration, as `PUT /subscriptions/{name}` takes it. Fields left unset
/// take the server's defaults (every event, from the end, pull, no ordering, 30 s leases, 10
/// deliveries).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubscriptionSpec {
    #[serde(skip_serializing_if = "SpecFilter::is_empty")]
    pub filter: SpecFilter,
    /// `"beginning"`, `"end"` or `{"position": N}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Value>,
    /// `{"mode": "pull"}` or `{"mode": "webhook", ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Value>,
    /// `"none"` or `"per_stream"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deliveries: Option<u32>,
}

/// The filter part of a [`SubscriptionSpec`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpecFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_types: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// An EventBridge event pattern over the Event JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<Value>,
}

impl SpecFilter {
    fn is_empty(&self) -> bool {
        self.stream_types.is_none() && self.event_types.is_none() && self.pattern.is_none()
    }
}

impl SubscriptionSpec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Only events of streams of this type (repeat for more).
    pub fn stream_type(mut self, stream_type: impl Into<String>) -> Self {
        self.filter
            .stream_types
            .get_or_insert_with(Vec::new)
            .push(stream_type.into());
        self
    }

    /// Only events of this type (repeat for more).
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.filter
            .event_types
            .get_or_insert_with(Vec::new)
            .push(event_type.into());
        self
    }

    /// Only events matching this EventBridge pattern.
    pub fn pattern(mut self, pattern: Value) -> Self {
        self.filter.pattern = Some(pattern);
        self
    }

    /// Every stored event that matches, not only new ones.
    pub fn from_beginning(mut self) -> Self {
        self.start = Some(Value::from("beginning"));
        self
    }

    /// From this position of `$all`.
    pub fn from_position(mut self, position: u64) -> Self {
        self.start = Some(serde_json::json!({"position": position}));
        self
    }

    /// At most one event of a stream in flight, in revision order.
    pub fn per_stream(mut self) -> Self {
        self.ordering = Some("per_stream".to_owned());
        self
    }

    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    pub fn max_deliveries(mut self, max: u32) -> Self {
        self.max_deliveries = Some(max);
        self
    }
}

/// A subscription as the server describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    pub name: String,
    pub filter: Value,
    pub start: Value,
    /// The webhook secret is masked, except in the answer that created it when the server
    /// generated it.
    pub delivery: Value,
    pub ordering: String,
    pub ack_timeout_ms: u64,
    pub max_deliveries: u32,
    pub created_at: DateTime<Utc>,
    pub status: SubscriptionStatus,
}

/// A subscription's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionStatus {
    /// The next position of `$all` it reads.
    pub cursor: u64,
    /// The last position of `$all`.
    pub head: Option<u64>,
    /// Positions of `$all` not read yet.
    pub lag: u64,
    pub in_flight: u64,
    /// Waiting for a retry, after an expired lease, or behind an earlier event of a stream.
    #[serde(default)]
    pub pending: u64,
    pub parked: u64,
    /// Events acknowledged since creation.
    pub delivered: u64,
    pub paused: bool,
    #[serde(default)]
    pub paused_reason: Option<String>,
    pub last_error: Option<String>,
}

/// A page of `GET /subscriptions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriptionsPage {
    pub subscriptions: Vec<SubscriptionInfo>,
    pub next: Option<String>,
}

/// One leased delivery. Acknowledge it with its `receipt` within the lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceivedMessage {
    pub receipt: String,
    /// The attempt's number, from 1.
    pub delivery: u32,
    pub event: Event,
}

#[derive(Deserialize)]
struct ReceiveAnswer {
    messages: Vec<ReceivedMessage>,
}

/// What an ack did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckResult {
    pub acked: u64,
    /// Receipts that acknowledged nothing: already acknowledged, or from an attempt that was
    /// delivered again since.
    pub unknown: Vec<String>,
}

/// What a nack asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackAction {
    /// Deliver again after the delay (parked instead after the last allowed delivery).
    Retry,
    /// Set aside as parked now.
    Park,
    /// Never deliver again.
    Skip,
}

impl NackAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Park => "park",
            Self::Skip => "skip",
        }
    }
}

/// What a nack did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NackResult {
    pub nacked: u64,
    pub unknown: Vec<String>,
}

/// A parked event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedEvent {
    pub position: u64,
    pub stream_type: String,
    pub stream_id: String,
    pub deliveries: u32,
    pub last_error: Option<String>,
    pub parked_at: DateTime<Utc>,
    pub event: Option<Event>,
}

/// A page of parked events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParkedPage {
    pub parked: Vec<ParkedEvent>,
    pub next: Option<u64>,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayResult {
    pub replayed: u64,
    pub unknown: Vec<u64>,
}

impl Client {
    /// `PUT /subscriptions/{name}`: creates the subscription (`true`) or updates it (`false`).
    pub async fn put_subscription(
        &self,
        name: &str,
        spec: &SubscriptionSpec,
    ) -> Result<(SubscriptionInfo, bool), ClientError> {
        let request = self
            .request(Method::PUT, self.url(&["subscriptions", name]))
            .json(spec);
        let (status, body) = self.send(request).await?;
        if !status.is_success() {
            return Err(ClientError::from_response(status.as_u16(), &body));
        }
        let subscription = serde_json::from_slice(&body)
            .map_err(|error| ClientError::Decode(error.to_string()))?;
        Ok((subscription, status == StatusCode::CREATED))
    }

    /// `GET /subscriptions/{name}`: its configuration and status.
    pub async fn get_subscription(&self, name: &str) -> Result<SubscriptionInfo, ClientError> {
        self.get_json(self.url(&["subscriptions", name])).await
    }

    /// One page of subscriptions in name order, after the name `after`.
    pub async fn list_subscriptions_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<SubscriptionsPage, ClientError> {
        self.get_json(self.listing_url(&["subscriptions"], after, limit))
            .await
    }

    /// Every subscription, in name order, paging internally.
    pub fn list_subscriptions(
        &self,
    ) -> impl Stream<Item = Result<SubscriptionInfo, ClientError>> + Send + 'static {
        let client = self.clone();
        let page_size = self.config.page_size;
        paged(None, move |cursor: Option<String>| {
            let client = client.clone();
            async move {
                let page = client
                    .list_subscriptions_page(cursor.as_deref(), page_size)
                    .await?;
                Ok((page.subscriptions, page.next))
            }
        })
    }

    /// `DELETE /subscriptions/{name}`.
    pub async fn delete_subscription(&self, name: &str) -> Result<(), ClientError> {
        let request = self.request(Method::DELETE, self.url(&["subscriptions", name]));
        let (status, body) = self.send(request).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(ClientError::from_response(status.as_u16(), &body))
        }
    }

    /// `POST /subscriptions/{name}/pause`.
    pub async fn pause_subscription(
        &self,
        name: &str,
        reason: Option<&str>,
    ) -> Result<SubscriptionInfo, ClientError> {
        let request = self
            .request(Method::POST, self.url(&["subscriptions", name, "pause"]))
            .json(&serde_json::json!({"reason": reason}));
        self.send_json(request).await
    }

    /// `POST /subscriptions/{name}/resume`.
    pub async fn resume_subscription(&self, name: &str) -> Result<SubscriptionInfo, ClientError> {
        let request = self
            .request(Method::POST, self.url(&["subscriptions", name, "resume"]))
            .json(&serde_json::json!({}));
        self.send_json(request).await
    }

    /// Leases up to `max` messages, waiting up to `wait` (at most 30 s) when none is ready;
    /// the answer comes as soon as something is. Empty when the wait ended first.
    pub async fn receive(
        &self,
        name: &str,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, ClientError> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        let request = self
            .request(Method::POST, self.url(&["subscriptions", name, "receive"]))
            .json(&serde_json::json!({"max": max, "wait_ms": wait_ms}));
        let timeout = self.config.request_timeout.max(wait + RECEIVE_MARGIN);
        let (status, body) = self.send_within(request, timeout).await?;
        if !status.is_success() {
            return Err(ClientError::from_response(status.as_u16(), &body));
        }
        let answer: ReceiveAnswer = serde_json::from_slice(&body)
            .map_err(|error| ClientError::Decode(error.to_string()))?;
        Ok(answer.messages)
    }

    /// Acknowledges deliveries: once this returns, they are never delivered again.
    pub async fn ack(&self, name: &str, receipts: &[String]) -> Result<AckResult, ClientError> {
        let request = self
            .request(Method::POST, self.url(&["subscriptions", name, "ack"]))
            .json(&serde_json::json!({"receipts": receipts}));
        self.send_json(request).await
    }

    /// Rejects deliveries: retried after `delay`, parked, or skipped. `error` is kept as the
    /// events' last error.
    pub async fn nack(
        &self,
        name: &str,
        receipts: &[String],
        action: NackAction,
        delay: Duration,
        error: Option<&str>,
    ) -> Result<NackResult, ClientError> {
        let mut body = serde_json::json!({
            "receipts": receipts,
            "action": action.as_str(),
            "delay_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(error) = error {
            body["error"] = Value::from(error);
        }
        let request = self
            .request(Method::POST, self.url(&["subscriptions", name, "nack"]))
            .json(&body);
        self.send_json(request).await
    }

    /// One page of parked events, after the position `after`.
    pub async fn parked_page(
        &self,
        name: &str,
        after: Option<u64>,
        limit: u32,
    ) -> Result<ParkedPage, ClientError> {
        let mut url = self.url(&["subscriptions", name, "parked"]);
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query.append_pair("after", &after.to_string());
            }
            query.append_pair("limit", &limit.to_string());
        }
        self.get_json(url).await
    }

    /// Every parked event, in position order, paging internally.
    pub fn parked(
        &self,
        name: &str,
    ) -> impl Stream<Item = Result<ParkedEvent, ClientError>> + Send + 'static {
        let client = self.clone();
        let name = name.to_owned();
        let page_size = self.config.page_size;
        paged(None, move |cursor: Option<u64>| {
            let client = client.clone();
            let name = name.clone();
            async move {
                let page = client.parked_page(&name, cursor, page_size).await?;
                Ok((page.parked, page.next))
            }
        })
    }

    /// Puts parked events back in line: `positions`, or all of them.
    pub async fn replay_parked(
        &self,
        name: &str,
        positions: Option<&[u64]>,
    ) -> Result<ReplayResult, ClientError> {
        let body = match positions {
            Some(positions) => serde_json::json!({"positions": positions}),
            None => serde_json::json!({}),
        };
        let request = self
            .request(
                Method::POST,
                self.url(&["subscriptions", name, "parked", "replay"]),
            )
            .json(&body);
        self.send_json(request).await
    }

    /// Like `send`, with a time limit of its own (a long poll outlasts the usual one).
    async fn send_within(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| ClientError::transport("request failed", error))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| ClientError::transport("reading the answer failed", error))?
        {
            if body.len() + chunk.len() > self.config.max_response_bytes {
                return Err(ClientError::Decode(format!(
                    "the answer is larger than max_response_bytes = {}",
                    self.config.max_response_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }
}
