//! Runnel over HTTP: appends from N kept-alive connections, paged reads, and the end-to-end
//! latency of a live subscription (append sent → event delivered over SSE).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::client::Connection;
use super::load::{LoadResult, ReadResult, Tally, Window};
use super::{Settings, cpu_groups};
use crate::cpu::GroupSample;
use crate::latency::Latencies;
use crate::{format, payload};

/// The command name of the load generator, for CPU accounting (the server's is its binary's).
const LOAD_GENERATOR: &[&str] = &["runnel-bench"];
/// Distinct request bodies cycled through.
const DISTINCT_BODIES: u64 = 64;
/// The largest page a read asks for (the API's maximum).
const PAGE_EVENTS: usize = 1_000;
/// Connections a steady producer spreads its appends over, so that slow appends do not hold
/// back the schedule (64 keep 5,000/s as long as an append takes under 12.8 ms).
const PRODUCER_CONNECTIONS: u64 = 64;
/// How long the SSE subscriber waits for stragglers after the producer stops.
const SSE_GRACE: Duration = Duration::from_secs(5);
/// The longest the SSE subscriber reads, whatever happens.
const SSE_MAX_READ: Duration = Duration::from_secs(120);
/// The stream the read phase reads.
const READ_STREAM: &str = "order/read-target";

/// An append request body: `events` copies of the order payload.
pub(crate) fn append_body(events: usize, seed: u64, sent_us: Option<u64>) -> Bytes {
    let events: Vec<String> = (0..events as u64)
        .map(|i| {
            format!(
                r#"{{"type":"{}","data":{}}}"#,
                payload::EVENT_TYPE,
                payload::order_json_sent_at(seed + i, sent_us)
            )
        })
        .collect();
    Bytes::from(format!(
        r#"{{"expected_revision":"any","events":[{}]}}"#,
        events.join(",")
    ))
}

/// `events` per append from `clients` connections, each append to a random one of `streams`;
/// client `i` talks to node `i mod nodes` of `addrs` (one node, or several over one database).
pub(crate) async fn appends(
    addrs: &[SocketAddr],
    settings: &Settings,
    clients: usize,
    events: usize,
) -> anyhow::Result<LoadResult> {
    ensure!(!addrs.is_empty(), "appends need a server to talk to");
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        (0..DISTINCT_BODIES)
            .map(|seed| append_body(events, seed * events as u64, None))
            .collect(),
    );
    let mut connections = Vec::with_capacity(clients);
    for client in 0..clients {
        connections.push(Connection::open(addrs[client % addrs.len()]).await?);
    }
    let window = Window::after(settings.warmup, settings.measured);
    let streams = settings.streams;
    let mut tasks = Vec::with_capacity(clients);
    for (client, mut connection) in connections.into_iter().enumerate() {
        let bodies = Arc::clone(&bodies);
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(client as u64 + 1);
            let mut tally = Tally::default();
            while window.is_open_at(Instant::now()) {
                let path = format!("/streams/order/o-{}/events", rng.u64(..streams));
                let body = bodies[rng.usize(..bodies.len())].clone();
                let began = Instant::now();
                let outcome = match connection.call(Method::POST, &path, Some(body)).await {
                    Ok((StatusCode::OK, _)) => Ok(events as u64),
                    Ok((status, body)) => {
                        Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
                    }
                    Err(error) => {
                        // The connection is gone: stop this client rather than spin on errors.
                        tally.fail(format!("{error:#}"));
                        break;
                    }
                };
                tally.record(&window, began, Instant::now(), outcome);
            }
            tally
        }));
    }
    let cpu = measure_cpu(&window, &settings.server_comms).await;
    Ok(LoadResult {
        clients,
        window: window.length(),
        tally: Tally::collect(tasks).await,
        cpu,
    })
}

async fn measure_cpu(window: &Window, server_comms: &[String]) -> crate::cpu::GroupUse {
    let server: Vec<&str> = server_comms.iter().map(String::as_str).collect();
    tokio::time::sleep_until(window.start.into()).await;
    let before = GroupSample::now(&cpu_groups(&server, LOAD_GENERATOR));
    tokio::time::sleep_until(window.deadline.into()).await;
    before.until(&GroupSample::now(&cpu_groups(&server, LOAD_GENERATOR)))
}

/// Fills the read stream with `events` events, 1,000 per append.
pub(crate) async fn fill_read_stream(addr: SocketAddr, events: u64) -> anyhow::Result<()> {
    let mut connection = Connection::open(addr).await?;
    let mut written = 0;
    while written < events {
        let n = (events - written).min(PAGE_EVENTS as u64);
        let (status, body) = connection
            .call(
                Method::POST,
                &format!("/streams/{READ_STREAM}/events"),
                Some(append_body(n as usize, written, None)),
            )
            .await?;
        ensure!(
            status == StatusCode::OK,
            "filling {READ_STREAM}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        written += n;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct PageOf {
    events: Vec<serde::de::IgnoredAny>,
    next: Option<u64>,
}

/// Reads one page and returns how many events it held and where the next one starts.
async fn read_page(connection: &mut Connection, path: &str) -> anyhow::Result<(u64, Option<u64>)> {
    let (status, body) = connection.call(Method::GET, path, None).await?;
    ensure!(
        status == StatusCode::OK,
        "GET {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let page: PageOf =
        serde_json::from_slice(&body).with_context(|| format!("the page of {path}"))?;
    Ok((page.events.len() as u64, page.next))
}

/// One client reads the read stream from revision 0 in pages of 1,000, pass after pass.
pub(crate) async fn read_stream(
    addr: SocketAddr,
    expected: u64,
    duration: Duration,
) -> anyhow::Result<ReadResult> {
    let mut connection = Connection::open(addr).await?;
    let mut page_latencies = Latencies::new();
    let (mut events, mut passes) = (0u64, 0u64);
    let start = Instant::now();
    while passes == 0 || (start.elapsed() < duration && passes < 1_000) {
        let mut from = Some(0);
        let mut pass = 0;
        while let Some(revision) = from {
            let began = Instant::now();
            let path = format!("/streams/{READ_STREAM}/events?from={revision}&limit={PAGE_EVENTS}");
            let (n, next) = read_page(&mut connection, &path).await?;
            page_latencies.record(began.elapsed());
            pass += n;
            from = next;
        }
        ensure!(
            pass == expected,
            "a pass over {READ_STREAM} read {pass} events, expected {expected}"
        );
        events += pass;
        passes += 1;
    }
    Ok(ReadResult {
        what: format!(
            "one stream of {} events, pages of {}, 1 client",
            format::int(expected),
            format::int(PAGE_EVENTS as u64)
        ),
        events,
        elapsed: start.elapsed(),
        page_latencies,
        note: format!("{passes} passes"),
    })
}

/// One client reads `$all` (`GET /events`) from position 0 until the head or `limit`.
pub(crate) async fn scan_all(addr: SocketAddr, limit: Duration) -> anyhow::Result<ReadResult> {
    let mut connection = Connection::open(addr).await?;
    let mut page_latencies = Latencies::new();
    let mut events = 0u64;
    let mut from = Some(0);
    let start = Instant::now();
    while let Some(position) = from {
        if start.elapsed() >= limit {
            break;
        }
        let began = Instant::now();
        let path = format!("/events?from={position}&limit={PAGE_EVENTS}");
        let (n, next) = read_page(&mut connection, &path).await?;
        page_latencies.record(began.elapsed());
        events += n;
        from = next;
    }
    let note = if from.is_some() {
        format!("stopped at the time limit of {} s", limit.as_secs_f64())
    } else {
        "the whole log, one pass".to_owned()
    };
    Ok(ReadResult {
        what: "`$all` (`GET /events`) from position 0, 1 client".to_owned(),
        events,
        elapsed: start.elapsed(),
        page_latencies,
        note,
    })
}

/// The store's own counters, as `GET /metrics` shows them, summed over the nodes asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreCounters {
    at: Instant,
    commits: u64,
    events: u64,
    sync_seconds: f64,
}

/// What the store did between two readings of its counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Commits {
    pub(crate) commits: u64,
    /// Events (records) written, the consumer groups' own records included.
    pub(crate) events: u64,
    /// Time in durable writes: the embedded engine's fdatasyncs, or PostgreSQL's second round
    /// trip of a group commit (inserts, upserts and COMMIT with its WAL flush).
    pub(crate) sync_seconds: f64,
    pub(crate) wall: Duration,
}

impl Commits {
    pub(crate) fn per_second(&self) -> f64 {
        self.commits as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub(crate) fn events_per_commit(&self) -> f64 {
        self.events as f64 / (self.commits as f64).max(1.0)
    }

    pub(crate) fn mean_sync(&self) -> Duration {
        Duration::from_secs_f64(self.sync_seconds / (self.commits as f64).max(1.0))
    }
}

impl StoreCounters {
    /// Reads every node's `/metrics`.
    pub(crate) async fn read(addrs: &[SocketAddr]) -> anyhow::Result<Self> {
        let mut counters = Self {
            at: Instant::now(),
            commits: 0,
            events: 0,
            sync_seconds: 0.0,
        };
        for &addr in addrs {
            let mut connection = Connection::open(addr).await?;
            let (status, body) = connection.call(Method::GET, "/metrics", None).await?;
            ensure!(status == StatusCode::OK, "GET /metrics: {status}");
            let text = String::from_utf8_lossy(&body);
            let value = |name: &str| -> f64 {
                text.lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0.0)
            };
            counters.commits += value("runnel_store_commits_total") as u64;
            counters.events += value("runnel_store_events_written_total") as u64;
            counters.sync_seconds += value("runnel_store_sync_duration_seconds_sum");
        }
        Ok(counters)
    }

    pub(crate) fn until(&self, later: &Self) -> Commits {
        Commits {
            commits: later.commits.saturating_sub(self.commits),
            events: later.events.saturating_sub(self.events),
            sync_seconds: (later.sync_seconds - self.sync_seconds).max(0.0),
            wall: later.at.duration_since(self.at),
        }
    }
}

/// End-to-end latency of a live subscription at a steady append rate.
#[derive(Debug)]
pub(crate) struct SseResult {
    pub(crate) rate: u64,
    pub(crate) sent: u64,
    /// Events of the measured part the subscriber received (of those the producer sent then).
    pub(crate) delivered: u64,
    pub(crate) expected: u64,
    pub(crate) achieved_rate: f64,
    pub(crate) latencies: Latencies,
    pub(crate) append_latencies: Latencies,
    pub(crate) failures: u64,
    pub(crate) first_failure: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delivered {
    data: Stamp,
}

#[derive(Debug, Deserialize)]
struct Stamp {
    sent_us: Option<u64>,
}

/// Subscribes to `/subscribe` (live from the end), then appends single events at `rate` per
/// second for `duration`, each stamped with the time it was sent; the subscriber measures when
/// each arrives. The first `warmup` of events is not measured.
pub(crate) async fn sse_latency(
    addr: SocketAddr,
    rate: u64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<SseResult> {
    let clock = Instant::now();
    let mut subscriber = Connection::open(addr).await?;
    let response = subscriber.start(Method::GET, "/subscribe", None).await?;
    if response.status() != StatusCode::OK {
        bail!("GET /subscribe answered {}", response.status());
    }
    let total = rate * (warmup + duration).as_secs_f64() as u64;
    let warmup_us = warmup.as_micros() as u64;
    let (stop, stopped) = tokio::sync::watch::channel(None);
    let subscriber = tokio::spawn(receive(
        response.into_body(),
        clock,
        warmup_us,
        stopped,
        total,
    ));
    // Give the subscription a moment to go live before the first event.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let produced = steady_appends(addr, rate, total, clock, warmup_us).await?;
    let production_time = start.elapsed();
    // The subscriber reads on until it has every event, or for the grace period after this.
    let _ = stop.send(Some(Instant::now() + SSE_GRACE));
    let (latencies, delivered) = subscriber.await.context("the subscriber task")??;
    Ok(SseResult {
        rate,
        sent: total - produced.failures,
        delivered,
        expected: produced.ops,
        achieved_rate: total as f64 / production_time.as_secs_f64(),
        latencies,
        append_latencies: produced.latencies,
        failures: produced.failures,
        first_failure: produced.first_failure,
    })
}

/// Single-event appends at a steady `rate` per second, `total` in all, to random `order`
/// streams, spread over [`PRODUCER_CONNECTIONS`] connections so that a slow append does not
/// hold back the schedule. Each event carries `sent_us`, the microseconds since `clock` when
/// its append was sent; the tally counts the acknowledged appends sent from `warmup_us` on.
pub(crate) async fn steady_appends(
    addr: SocketAddr,
    rate: u64,
    total: u64,
    clock: Instant,
    warmup_us: u64,
) -> anyhow::Result<Tally> {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let interval_ns = 1_000_000_000 / rate.max(1);
    let mut producers = Vec::new();
    for _ in 0..PRODUCER_CONNECTIONS {
        let mut connection = Connection::open(addr).await?;
        let next = Arc::clone(&next);
        producers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut rng = fastrand::Rng::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                tokio::time::sleep_until((start + Duration::from_nanos(i * interval_ns)).into())
                    .await;
                let sent_us = clock.elapsed().as_micros() as u64;
                let body = append_body(1, i, Some(sent_us));
                let path = format!("/streams/order/o-{}/events", rng.u64(..10_000));
                let began = Instant::now();
                match connection.call(Method::POST, &path, Some(body)).await {
                    Ok((StatusCode::OK, _)) => {
                        if sent_us >= warmup_us {
                            tally.ops += 1;
                            tally.events += 1;
                            tally.latencies.record(began.elapsed());
                        }
                    }
                    Ok((status, body)) => {
                        tally.fail(format!("{status}: {}", String::from_utf8_lossy(&body)))
                    }
                    Err(error) => tally.fail(format!("{error:#}")),
                }
            }
            tally
        }));
    }
    Ok(Tally::collect(producers).await)
}

/// Reads SSE messages until `total` stamped events came, or until the deadline that `stop`
/// announces once the producers are done; returns the latencies of the events sent after
/// `warmup_us`, and how many of those there were.
async fn receive(
    mut body: hyper::body::Incoming,
    clock: Instant,
    warmup_us: u64,
    mut stop: tokio::sync::watch::Receiver<Option<Instant>>,
    total: u64,
) -> anyhow::Result<(Latencies, u64)> {
    let mut latencies = Latencies::new();
    let (mut seen, mut measured) = (0u64, 0u64);
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let hard_deadline = Instant::now() + SSE_MAX_READ;
    while seen < total {
        let announced = *stop.borrow();
        let deadline = announced.unwrap_or(hard_deadline).min(hard_deadline);
        let frame = tokio::select! {
            frame = tokio::time::timeout_at(deadline.into(), body.frame()) => frame,
            // The producers finished: read on until the deadline they announced.
            changed = stop.changed(), if announced.is_none() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let frame = match frame {
            Err(_) | Ok(None) => break,
            Ok(Some(frame)) => frame.context("reading the event stream")?,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend(data.iter().filter(|&&b| b != b'\r'));
        let now_us = clock.elapsed().as_micros() as u64;
        while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
            let message: Vec<u8> = buffer.drain(..end + 2).collect();
            let Some(sent_us) = stamp_of(&message) else {
                continue;
            };
            seen += 1;
            if sent_us >= warmup_us {
                measured += 1;
                latencies.record(Duration::from_micros(now_us.saturating_sub(sent_us)));
            }
        }
    }
    Ok((latencies, measured))
}

/// The `sent_us` of an SSE message's event, if it is one of ours.
fn stamp_of(message: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(message).ok()?;
    let data: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|rest| rest.strip_prefix(' ').unwrap_or(rest))
        .collect::<Vec<_>>()
        .join("\n");
    if data.is_empty() {
        return None;
    }
    stamp_of_event(data.as_bytes())
}

/// The `sent_us` of an Event JSON's `data`, if it is one of ours.
pub(crate) fn stamp_of_event(json: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Delivered>(json).ok()?.data.sent_us
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_body_carries_the_benchmark_payload() {
        let body = append_body(3, 10, Some(99));
        let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(value["expected_revision"], "any");
        let events = value["events"].as_array().expect("events");
        assert_eq!(events.len(), 3);
        assert_eq!(events[0]["type"], payload::EVENT_TYPE);
        assert_eq!(events[2]["data"]["sent_us"], 99);
    }

    #[test]
    fn the_stamp_is_read_from_an_sse_message() {
        let message =
            b"id: 7\ndata: {\"position\":7,\"data\":{\"order_id\":\"o-1\",\"sent_us\":1234}}\n\n";
        assert_eq!(stamp_of(message), Some(1234));
        assert_eq!(stamp_of(b": keep-alive\n\n"), None);
    }
}
