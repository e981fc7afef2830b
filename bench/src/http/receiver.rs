//! The webhook receiver: a bare hyper HTTP/1.1 server on 127.0.0.1 that answers every POST
//! with 204 at once and only counts and timestamps (checking signatures is the tests' job, and
//! would put the receiver's CPU into the figures). It tells deliveries apart by their
//! `webhook-id` (the event id, the same in every attempt), so retried events show as
//! duplicates rather than as throughput.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::runnel::stamp_of_event;
use crate::latency::Latencies;

/// The most distinct event ids remembered; beyond it, arrivals still count but are no longer
/// checked for duplicates (bounds the receiver's memory whatever the backlog).
const MAX_REMEMBERED_IDS: usize = 2_000_000;

/// What arrived so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Arrivals {
    /// Every POST, first attempts and retries.
    pub(crate) deliveries: u64,
    /// Distinct `webhook-id`s.
    pub(crate) unique: u64,
    /// POSTs of an id that had arrived before.
    pub(crate) duplicates: u64,
    pub(crate) first_at: Option<Instant>,
    pub(crate) last_at: Option<Instant>,
    /// Append sent → webhook received, for events stamped from `measure_from_us` on.
    pub(crate) latencies: Latencies,
    /// Distinct stamped events from `measure_from_us` on.
    pub(crate) measured: u64,
}

#[derive(Default)]
struct Tracked {
    arrivals: Arrivals,
    ids: HashSet<String>,
}

struct State {
    clock: Instant,
    measure_from_us: u64,
    tracked: Mutex<Tracked>,
    /// The number of distinct ids, for waiters.
    unique: watch::Sender<u64>,
}

/// A running receiver; it stops when dropped.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}

impl Receiver {
    /// Listens on a free 127.0.0.1 port. Latency counts for events whose `sent_us` (micros
    /// since `clock`) is at least `measure_from_us`.
    pub(crate) async fn start(clock: Instant, measure_from_us: u64) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the webhook receiver")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            clock,
            measure_from_us,
            tracked: Mutex::new(Tracked::default()),
            unique: watch::Sender::new(0),
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, hyper::Error>(handle(&state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Waits until `unique` distinct events arrived or `deadline` passed; returns how many
    /// had.
    pub(crate) async fn wait_for(&self, unique: u64, deadline: Instant) -> u64 {
        let mut seen = self.state.unique.subscribe();
        let reached = tokio::time::timeout_at(deadline.into(), seen.wait_for(|&n| n >= unique));
        let _ = reached.await;
        *seen.borrow()
    }

    /// What arrived so far.
    pub(crate) fn arrivals(&self) -> Arrivals {
        self.state.lock().arrivals.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        // Counters stay consistent after every update, so a poisoned lock is still usable.
        self.tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Empty<Bytes>> {
    let id = request
        .headers()
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return status(StatusCode::BAD_REQUEST),
    };
    let now = Instant::now();
    let now_us = now.duration_since(state.clock).as_micros() as u64;
    let stamp = stamp_of_event(&body);
    let unique = {
        let mut tracked = state.lock();
        let first_time = match id {
            Some(id) if tracked.ids.len() < MAX_REMEMBERED_IDS => tracked.ids.insert(id),
            _ => true,
        };
        let arrivals = &mut tracked.arrivals;
        arrivals.deliveries += 1;
        arrivals.first_at.get_or_insert(now);
        arrivals.last_at = Some(now);
        if first_time {
            arrivals.unique += 1;
            if let Some(sent_us) = stamp.filter(|&us| us >= state.measure_from_us) {
                arrivals.measured += 1;
                arrivals
                    .latencies
                    .record(Duration::from_micros(now_us.saturating_sub(sent_us)));
            }
        } else {
            arrivals.duplicates += 1;
        }
        arrivals.unique
    };
    state.unique.send_replace(unique);
    status(StatusCode::NO_CONTENT)
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = code;
    response
}
