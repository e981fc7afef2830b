//! A live subscription: catch-up from the log, then live, as one stream of SSE chunks.
//!
//! The subscription holds no queue of events. It keeps a cursor (the next position to read) and
//! reads one page of `$all` from the store each time the HTTP body asks for more, so a client
//! that stops reading stops the reads: memory is one page, whatever the client's speed. When it
//! has read up to the head it waits on the store's head watch and reads again from the cursor.
//! Because positions only grow in commit order and the cursor only moves past what was read,
//! the switch from catch-up to live has no gap and no duplicate.
//!
//! Events the caller's key may not see are dropped after the read, once the cursor has moved
//! past them: they are never sent, and a subscriber that resumes with `Last-Event-ID` does not
//! stop at them either.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use runnel_core::{AllFilter, AllSlice, HeadWatch, MAX_PAGE_LIMIT, Position, Store};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;

use crate::auth::{Auth, Caller};
use crate::model::EventView;
use crate::telemetry::{OpenSubscription, SUBSCRIPTION_LAG_EVENTS, SUBSCRIPTIONS_CLOSED_LAGGING};

/// How often a subscription that reads behind the head counts the events between it and the
/// head, when their positions span more than its lag limit.
const LAG_COUNT_INTERVAL: Duration = Duration::from_secs(1);

/// How a subscription reads and paces itself.
#[derive(Debug, Clone)]
pub(crate) struct FeedLimits {
    pub(crate) heartbeat: Duration,
    pub(crate) page_events: usize,
    pub(crate) page_bytes: usize,
    pub(crate) max_lag_events: u64,
}

/// Whose subscription it is: what they may see, and whether their key still holds.
pub(crate) struct FeedAccess {
    pub(crate) caller: Caller,
    pub(crate) auth: Auth,
}

pub(crate) struct Feed {
    store: Arc<dyn Store>,
    access: FeedAccess,
    filter: AllFilter,
    /// The next position to read: everything below it was delivered or did not match.
    cursor: Position,
    head: HeadWatch,
    shutdown: watch::Receiver<bool>,
    limits: FeedLimits,
    /// How many events the next read asks for; shrinks when events are large.
    page_limit: usize,
    /// Set once the subscription has read up to the head: only then can it lag.
    live: bool,
    /// The first chunk is a comment, so the client sees the response start at once.
    greeted: bool,
    last_sent: Instant,
    /// When this subscription last counted how far behind the head it is.
    lag_counted_at: Option<Instant>,
    done: bool,
    _permit: OwnedSemaphorePermit,
    _open: OpenSubscription,
}

impl Feed {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        access: FeedAccess,
        filter: AllFilter,
        from: Position,
        shutdown: watch::Receiver<bool>,
        limits: FeedLimits,
        permit: OwnedSemaphorePermit,
    ) -> Self {
        let head = store.watch_head();
        let page_limit = limits.page_events.clamp(1, MAX_PAGE_LIMIT);
        Self {
            store,
            access,
            filter,
            cursor: from,
            head,
            shutdown,
            page_limit,
            limits,
            live: false,
            greeted: false,
            last_sent: Instant::now(),
            lag_counted_at: None,
            done: false,
            _permit: permit,
            _open: OpenSubscription::new(),
        }
    }

    /// The body of the SSE response: chunks produced only when the connection asks for them.
    pub(crate) fn into_stream(
        self,
    ) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        futures::stream::unfold(self, |mut feed| async move {
            let chunk = feed.next_chunk().await?;
            Some((Ok(chunk), feed))
        })
    }

    /// The next chunk to send: a page of events, a heartbeat, or a closing comment; `None` once
    /// the subscription has ended.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if !self.greeted {
            self.greeted = true;
            return Some(Bytes::from(format!(
                ": subscribed from position {}\n\n",
                self.cursor
            )));
        }
        let chunk = self.produce().await;
        self.last_sent = Instant::now();
        Some(chunk)
    }

    async fn produce(&mut self) -> Bytes {
        loop {
            if *self.shutdown.borrow() {
                return self.close("the server is shutting down; resume with Last-Event-ID");
            }
            if !self.access.auth.is_active(&self.access.caller) {
                return self.close("the API key was revoked");
            }
            // Live and nothing committed past the cursor: a read would come back empty.
            if self.live && self.head.current().is_none_or(|head| head < self.cursor) {
                match self.wait_for_more().await {
                    Some(chunk) => return chunk,
                    None => continue,
                }
            }
            let slice = match self
                .store
                .read_all(self.cursor, &self.filter, self.page_limit)
                .await
            {
                Ok(slice) => slice,
                Err(error) => {
                    tracing::warn!(%error, "a subscription's read failed; closing it");
                    return self.close("the store failed a read; resume with Last-Event-ID");
                }
            };
            if let Some(chunk) = self.check_lag(&slice).await {
                return chunk;
            }
            let caught_up = slice.next.is_none();
            let mut next_cursor = slice.next.unwrap_or(self.cursor);
            if caught_up {
                // Everything up to the head was seen (matching or not).
                if let Some(head) = slice.head {
                    next_cursor = next_cursor.max(head.next());
                }
            }
            if let Some(last) = slice.events.last() {
                next_cursor = next_cursor.max(last.position.next());
            }
            debug_assert!(
                next_cursor >= self.cursor,
                "a subscription's cursor went back"
            );
            self.cursor = next_cursor;
            if caught_up {
                self.live = true;
            }
            let mut events = slice.events;
            let caller = &self.access.caller;
            events.retain(|event| {
                caller.may_see(
                    event.stream.stream_type().as_str(),
                    event.event_type.as_str(),
                )
            });
            if !events.is_empty() {
                return self.encode_page(events);
            }
            if self.last_sent.elapsed() >= self.limits.heartbeat {
                return heartbeat();
            }
            if caught_up && let Some(chunk) = self.wait_for_more().await {
                return chunk;
            }
        }
    }

    /// Waits for the head to move past what was read, for a heartbeat to fall due, or for the
    /// shutdown; returns a chunk to send, or `None` to read again.
    async fn wait_for_more(&mut self) -> Option<Bytes> {
        let seen = self.cursor.0.checked_sub(1).map(Position);
        let due = self.last_sent + self.limits.heartbeat;
        enum Woke {
            Moved,
            StoreClosed,
            HeartbeatDue,
            ShuttingDown,
        }
        let woke = tokio::select! {
            moved = self.head.wait_past(seen) => if moved.is_some() { Woke::Moved } else { Woke::StoreClosed },
            () = tokio::time::sleep_until(due) => Woke::HeartbeatDue,
            _ = self.shutdown.wait_for(|down| *down) => Woke::ShuttingDown,
        };
        match woke {
            Woke::Moved => None,
            Woke::StoreClosed => Some(self.close("the store has closed")),
            Woke::HeartbeatDue => Some(heartbeat()),
            Woke::ShuttingDown => {
                Some(self.close("the server is shutting down; resume with Last-Event-ID"))
            }
        }
    }

    /// A live subscription that fell more than `max_lag_events` behind is closed: it is cheaper
    /// for the client to resume with `Last-Event-ID` than for the server to keep a connection
    /// that may never catch up.
    ///
    /// Positions may have gaps (on PostgreSQL each transaction takes 2^16), so the span of
    /// positions between the cursor and the head is only an upper bound of the events in it:
    /// within the limit, nothing is counted; beyond it, the store counts the events, at most
    /// once per [`LAG_COUNT_INTERVAL`].
    async fn check_lag(&mut self, slice: &AllSlice) -> Option<Bytes> {
        let head = slice.head?;
        if slice.next.is_none() {
            // This read reached the head.
            metrics::histogram!(SUBSCRIPTION_LAG_EVENTS).record(0.0);
            return None;
        }
        let span = (head.0 + 1).saturating_sub(self.cursor.0);
        if span <= self.limits.max_lag_events
            || self
                .lag_counted_at
                .is_some_and(|at| at.elapsed() < LAG_COUNT_INTERVAL)
        {
            return None;
        }
        self.lag_counted_at = Some(Instant::now());
        let cap = self.limits.max_lag_events.saturating_add(1);
        let lag = match self.store.count_events(self.cursor, head, cap).await {
            Ok(lag) => lag,
            Err(error) => {
                tracing::debug!(%error, "a subscription could not count its lag");
                return None;
            }
        };
        metrics::histogram!(SUBSCRIPTION_LAG_EVENTS).record(lag as f64);
        if self.live && lag > self.limits.max_lag_events {
            metrics::counter!(SUBSCRIPTIONS_CLOSED_LAGGING).increment(1);
            return Some(self.close(&format!(
                "this subscription is more than {} events behind the head (subscription_max_lag_events); resume with Last-Event-ID",
                self.limits.max_lag_events
            )));
        }
        None
    }

    fn encode_page(&mut self, events: Vec<runnel_core::RecordedEvent>) -> Bytes {
        let mut page_bytes = 0usize;
        let count = events.len();
        let mut out = BytesMut::new();
        for event in events {
            page_bytes += event.data.len() + event.metadata.as_ref().map_or(0, |m| m.len());
            let position = event.position.0;
            let view = EventView::from(event);
            // Serialising a view cannot fail: its JSON parts were validated when appended.
            let json = serde_json::to_vec(&view).unwrap_or_default();
            out.put_slice(b"id: ");
            out.put_slice(position.to_string().as_bytes());
            out.put_slice(b"\ndata: ");
            // JSON text can hold raw line breaks only as whitespace between tokens (inside
            // strings they are escaped), so blanking them keeps the value and its one line.
            out.extend(
                json.into_iter()
                    .map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
            );
            out.put_slice(b"\n\n");
        }
        self.adapt_page_limit(page_bytes, count);
        out.freeze()
    }

    /// Aims the next read at `page_bytes` of event data, so a page of large events stays small.
    fn adapt_page_limit(&mut self, page_bytes: usize, count: usize) {
        let average = (page_bytes / count.max(1)).max(1);
        let fits = (self.limits.page_bytes / average).max(1);
        self.page_limit = fits.min(self.limits.page_events).clamp(1, MAX_PAGE_LIMIT);
    }

    fn close(&mut self, reason: &str) -> Bytes {
        self.done = true;
        Bytes::from(format!(": closing: {reason}\n\n"))
    }
}

fn heartbeat() -> Bytes {
    Bytes::from_static(b": keep-alive\n\n")
}
