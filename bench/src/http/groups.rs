//! `runnel-bench groups`: consumer groups over HTTP against NATS JetStream in the same run.
//! Pull consumers drain a pre-filled backlog (receive up to 100, acknowledge them, again) with
//! one and with several competing consumers, beside a JetStream durable pull consumer with
//! explicit acks draining the same number of messages of the same payload; then webhook
//! delivery to a receiver in this process: how fast a backlog drains, and the end-to-end
//! latency (append sent → webhook received) at a steady rate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;

use super::client::Connection;
use super::load::{Drain, Tally, Window};
use super::receiver::{Arrivals, Receiver};
use super::runnel::{Commits, StoreCounters};
use super::{Common, cpu_groups, nats, process, runnel};
use crate::cpu::{GroupSample, GroupUse};
use crate::format;
use crate::latency::Latencies;

mod report;

/// The load generator's command name (the webhook receiver runs in it too).
const LOAD_GENERATOR: &[&str] = &["runnel-bench"];
/// Connections that load the backlog, and events per append while doing so.
const FILL_CONNECTIONS: u64 = 8;
const FILL_EVENTS_PER_APPEND: u64 = 100;
/// How long a consumer waits after a receive found nothing (the rest is with others).
const EMPTY_RECEIVE_PAUSE: Duration = Duration::from_millis(2);
/// How long the latency phase waits for stragglers after the producer stops.
const WEBHOOK_GRACE: Duration = Duration::from_secs(5);
/// The stream type every event goes to, and the groups' filter.
const FILTER: &str = r#"{"stream_types":["order"]}"#;

#[derive(Debug, clap::Args)]
pub(crate) struct GroupsArgs {
    #[command(flatten)]
    common: Common,
    /// A nats-server binary that supports `sync_interval: always` (2.10 or later); without it
    /// JetStream is not measured.
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// The numbers of competing pull consumers, one drain of the backlog each.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    consumers: Vec<usize>,
    /// Messages per receive (per fetch for JetStream).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Events in the backlog each pull drain and the webhook drain start from.
    #[arg(long, default_value_t = 200_000)]
    backlog: u64,
    /// The longest a drain runs; one that does not finish reports what it acknowledged.
    #[arg(long, default_value_t = 15.0)]
    drain_secs: f64,
    /// Streams the backlog's events are spread over.
    #[arg(long, default_value_t = 10_000)]
    streams: u64,
    /// `max_in_flight` of the webhook groups (Runnel's default is 16).
    #[arg(long, default_value_t = 16)]
    webhook_max_in_flight: u32,
    /// The steady append rate of the webhook latency phase, events per second.
    #[arg(long, default_value_t = 1_000)]
    webhook_rate: u64,
    /// Measured seconds of the webhook latency phase.
    #[arg(long, default_value_t = 10.0)]
    webhook_secs: f64,
    /// Unmeasured warm-up of the webhook latency phase, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    warmup_ms: u64,
}

impl GroupsArgs {
    fn check(&self) -> anyhow::Result<()> {
        let secs_ok = |secs: f64| (1.0..=600.0).contains(&secs);
        ensure!(
            secs_ok(self.drain_secs) && secs_ok(self.webhook_secs),
            "durations must be in [1, 600] seconds"
        );
        ensure!(self.warmup_ms <= 60_000, "--warmup-ms is at most 60000");
        ensure!(
            !self.consumers.is_empty() && self.consumers.iter().all(|&c| (1..=256).contains(&c)),
            "--consumers takes 1..=256 each"
        );
        ensure!((1..=1_000).contains(&self.batch), "--batch takes 1..=1000");
        ensure!(
            (1_000..=10_000_000).contains(&self.backlog),
            "--backlog takes 1000..=10000000"
        );
        ensure!(
            (1..=1_000_000).contains(&self.streams),
            "--streams takes 1..=1000000"
        );
        ensure!(
            (1..=1_000).contains(&self.webhook_max_in_flight),
            "--webhook-max-in-flight takes 1..=1000"
        );
        ensure!(
            (1..=100_000).contains(&self.webhook_rate),
            "--webhook-rate takes 1..=100000"
        );
        self.common.check()
    }

    fn drain_limit(&self) -> Duration {
        Duration::from_secs_f64(self.drain_secs)
    }
}

/// Webhook delivery of a backlog.
#[derive(Debug)]
pub(crate) struct WebhookDrain {
    backlog: u64,
    max_in_flight: u32,
    arrivals: Arrivals,
    elapsed: Duration,
    drained: bool,
    cpu: GroupUse,
}

impl WebhookDrain {
    fn events_per_second(&self) -> f64 {
        self.arrivals.unique as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Append sent → webhook received at a steady rate.
#[derive(Debug)]
pub(crate) struct WebhookLatency {
    rate: u64,
    sent: u64,
    /// Appends acknowledged in the measured part, and the webhooks of them that arrived.
    expected: u64,
    arrivals: Arrivals,
    achieved_rate: f64,
    append_latencies: Latencies,
    failures: u64,
    first_failure: Option<String>,
    cpu: GroupUse,
}

/// Runnel's figures.
#[derive(Debug)]
pub(crate) struct GroupsRun {
    banner: String,
    fill_rate: f64,
    pulls: Vec<Drain>,
    webhook_drain: WebhookDrain,
    webhook_latency: WebhookLatency,
    /// Per phase: its name, the events it acknowledged or delivered, and the store's counters.
    commits: Vec<(String, u64, Commits)>,
}

/// JetStream's figures, or why it was not measured.
#[derive(Debug)]
pub(crate) struct JetStreamRun {
    version: String,
    pulls: Vec<Drain>,
}

/// Runs both systems and returns the report as Markdown.
pub(crate) fn run(args: &GroupsArgs, command_line: &str) -> anyhow::Result<String> {
    args.check()?;
    args.common.in_scratch("groups", |work| {
        let runtime = super::runtime()?;
        let runnel = runtime.block_on(bench_runnel(args, work))?;
        let jetstream = match &args.nats_server {
            Some(binary) => runtime
                .block_on(bench_jetstream(args, binary, work))
                .map_err(|e| format!("{e:#}")),
            None => Err("no --nats-server given".to_owned()),
        };
        Ok(report::write(args, command_line, work, &runnel, &jetstream))
    })
}

async fn bench_runnel(args: &GroupsArgs, work: &Path) -> anyhow::Result<GroupsRun> {
    let mut serve_args = args.common.serve_args.clone();
    // The receiver listens on loopback, which webhook delivery refuses unless allowed.
    if !serve_args.iter().any(|a| a == "--webhook-allow-private") {
        serve_args.push("--webhook-allow-private".to_owned());
    }
    let (server, addr, banner) = process::start_runnel(
        &args.common.runnel_bin,
        &work.join("runnel-data"),
        &serve_args,
        &work.join("runnel.log"),
    )?;
    eprintln!("runnel: {banner}");
    let server_comm = [args.common.server_comm()];
    eprintln!("runnel: loading a backlog of {} events", args.backlog);
    let began = Instant::now();
    fill(addr, args.backlog, args.streams).await?;
    let fill_rate = args.backlog as f64 / began.elapsed().as_secs_f64();
    let mut pulls = Vec::new();
    let mut commits = Vec::new();
    for &consumers in &args.consumers {
        eprintln!(
            "runnel: pull, {consumers} consumers, batches of {}",
            args.batch
        );
        let before = StoreCounters::read(&[addr]).await?;
        let drain = pull_drain(addr, args, consumers, &server_comm).await?;
        let phase = before.until(&StoreCounters::read(&[addr]).await?);
        commits.push((
            format!("pull, {consumers} consumer(s)"),
            drain.tally.events,
            phase,
        ));
        pulls.push(drain);
    }
    eprintln!(
        "runnel: webhook delivery of the backlog, max_in_flight {}",
        args.webhook_max_in_flight
    );
    let before = StoreCounters::read(&[addr]).await?;
    let webhook_drain = webhook_drain(addr, args, &server_comm).await?;
    commits.push((
        "webhook delivery of the backlog".to_owned(),
        webhook_drain.arrivals.unique,
        before.until(&StoreCounters::read(&[addr]).await?),
    ));
    eprintln!(
        "runnel: webhook end-to-end latency at {} events/s",
        args.webhook_rate
    );
    let before = StoreCounters::read(&[addr]).await?;
    let webhook_latency = webhook_latency(addr, args, &server_comm).await?;
    commits.push((
        format!(
            "webhooks at {}/s (appends included)",
            format::int(args.webhook_rate)
        ),
        webhook_latency.arrivals.unique,
        before.until(&StoreCounters::read(&[addr]).await?),
    ));
    drop(server);
    Ok(GroupsRun {
        banner,
        fill_rate,
        pulls,
        webhook_drain,
        webhook_latency,
        commits,
    })
}

async fn bench_jetstream(
    args: &GroupsArgs,
    binary: &Path,
    work: &Path,
) -> anyhow::Result<JetStreamRun> {
    let dir = work.join("nats");
    {
        eprintln!(
            "nats: loading a backlog of {} messages (syncing on nats-server's schedule)",
            args.backlog
        );
        let (server, port) = process::start_nats_syncing(binary, &dir, false)?;
        let url = format!("127.0.0.1:{port}");
        nats::create_stream(&url).await?;
        nats::fill_backlog(&url, args.backlog, args.streams).await?;
        drop(server);
    }
    eprintln!("nats: restart on the same store with sync_interval: always");
    let (server, port) = process::start_nats_syncing(binary, &dir, true)?;
    let url = format!("127.0.0.1:{port}");
    let mut pulls = Vec::new();
    for &consumers in &args.consumers {
        eprintln!(
            "nats: pull consumer, {consumers} consumers, batches of {}",
            args.batch
        );
        pulls.push(
            nats::pull_drain(
                &url,
                &format!("pull-{consumers}"),
                consumers,
                args.batch,
                args.backlog,
                args.drain_limit(),
            )
            .await?,
        );
    }
    drop(server);
    Ok(JetStreamRun {
        version: process::version_of(binary),
        pulls,
    })
}

/// Loads `events` events into random `order` streams, 100 per append, from 8 connections.
async fn fill(addr: SocketAddr, events: u64, streams: u64) -> anyhow::Result<()> {
    let appends = events.div_ceil(FILL_EVENTS_PER_APPEND);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..FILL_CONNECTIONS {
        let mut connection = Connection::open(addr).await?;
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= appends {
                    return Ok(());
                }
                let n = (events - i * FILL_EVENTS_PER_APPEND).min(FILL_EVENTS_PER_APPEND);
                let path = format!("/streams/order/o-{}/events", rng.u64(..streams));
                let body = runnel::append_body(n as usize, i * FILL_EVENTS_PER_APPEND, None);
                let (status, answer) = connection.call(Method::POST, &path, Some(body)).await?;
                ensure!(
                    status == StatusCode::OK,
                    "loading the backlog: {status} {}",
                    String::from_utf8_lossy(&answer)
                );
            }
        }));
    }
    for task in tasks {
        task.await.context("a loading task")??;
    }
    Ok(())
}

/// Calls the API and insists on `expected`.
async fn call_expecting(
    connection: &mut Connection,
    method: Method,
    path: &str,
    body: Option<String>,
    expected: &[StatusCode],
) -> anyhow::Result<Bytes> {
    let (status, answer) = connection
        .call(method.clone(), path, body.map(Bytes::from))
        .await?;
    ensure!(
        expected.contains(&status),
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    Ok(answer)
}

async fn create_group(addr: SocketAddr, name: &str, body: String) -> anyhow::Result<()> {
    let mut connection = Connection::open(addr).await?;
    call_expecting(
        &mut connection,
        Method::PUT,
        &format!("/subscriptions/{name}"),
        Some(body),
        &[StatusCode::CREATED],
    )
    .await
    .map(|_| ())
}

async fn delete_group(addr: SocketAddr, name: &str) -> anyhow::Result<()> {
    let mut connection = Connection::open(addr).await?;
    call_expecting(
        &mut connection,
        Method::DELETE,
        &format!("/subscriptions/{name}"),
        None,
        &[StatusCode::OK, StatusCode::NO_CONTENT],
    )
    .await
    .map(|_| ())
}

#[derive(Debug, Deserialize)]
struct Received {
    messages: Vec<Message>,
}

#[derive(Debug, Deserialize)]
struct Message {
    receipt: String,
    delivery: u64,
}

#[derive(Debug, Deserialize)]
struct Acked {
    acked: u64,
}

/// A new pull group from the beginning; `consumers` connections receive up to `batch` and
/// acknowledge what came, until the backlog is acknowledged or the time limit passes.
async fn pull_drain(
    addr: SocketAddr,
    args: &GroupsArgs,
    consumers: usize,
    server_comm: &[String],
) -> anyhow::Result<Drain> {
    let name = format!("pull-{consumers}");
    create_group(
        addr,
        &name,
        format!(r#"{{"filter":{FILTER},"start":"beginning","ack_timeout_ms":60000}}"#),
    )
    .await?;
    let mut connections = Vec::with_capacity(consumers);
    for _ in 0..consumers {
        connections.push(Connection::open(addr).await?);
    }
    let receive_path = format!("/subscriptions/{name}/receive");
    let ack_path = format!("/subscriptions/{name}/ack");
    let receive_body = Bytes::from(format!(r#"{{"max":{},"wait_ms":0}}"#, args.batch));
    let backlog = args.backlog;
    let acked = Arc::new(AtomicU64::new(0));
    let server: Vec<&str> = server_comm.iter().map(String::as_str).collect();
    let before = GroupSample::now(&cpu_groups(&server, LOAD_GENERATOR));
    let window = Window::after(Duration::ZERO, args.drain_limit());
    let mut tasks = Vec::with_capacity(consumers);
    for mut connection in connections {
        let (acked, receive_path, ack_path, receive_body) = (
            Arc::clone(&acked),
            receive_path.clone(),
            ack_path.clone(),
            receive_body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut redelivered = 0u64;
            let mut last_ack = None;
            while acked.load(Ordering::Relaxed) < backlog && window.is_open_at(Instant::now()) {
                let began = Instant::now();
                let received = match receive(&mut connection, &receive_path, &receive_body).await {
                    Ok(received) => received,
                    Err(error) => {
                        tally.fail(format!("{error:#}"));
                        break;
                    }
                };
                if received.messages.is_empty() {
                    // Everything left is leased to other consumers, or gone.
                    tokio::time::sleep(EMPTY_RECEIVE_PAUSE).await;
                    continue;
                }
                redelivered += received.messages.iter().filter(|m| m.delivery > 1).count() as u64;
                let outcome = ack(&mut connection, &ack_path, received.messages).await;
                if let Ok(n) = &outcome {
                    acked.fetch_add(*n, Ordering::Relaxed);
                    last_ack = Some(Instant::now());
                }
                tally.record(&window, began, Instant::now(), outcome);
            }
            (tally, redelivered, last_ack)
        }));
    }
    let drain = Drain::collect(consumers, backlog, window, tasks).await;
    let cpu = before.until(&GroupSample::now(&cpu_groups(&server, LOAD_GENERATOR)));
    delete_group(addr, &name).await?;
    Ok(Drain { cpu, ..drain })
}

async fn receive(
    connection: &mut Connection,
    path: &str,
    body: &Bytes,
) -> anyhow::Result<Received> {
    let (status, answer) = connection
        .call(Method::POST, path, Some(body.clone()))
        .await?;
    ensure!(
        status == StatusCode::OK,
        "POST {path}: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    serde_json::from_slice(&answer).with_context(|| format!("the answer of POST {path}"))
}

/// Acknowledges the messages; the number acknowledged, or why not.
async fn ack(
    connection: &mut Connection,
    path: &str,
    messages: Vec<Message>,
) -> Result<u64, String> {
    let receipts: Vec<String> = messages.into_iter().map(|m| m.receipt).collect();
    let body = serde_json::json!({ "receipts": receipts }).to_string();
    match connection
        .call(Method::POST, path, Some(Bytes::from(body)))
        .await
    {
        Ok((StatusCode::OK, answer)) => serde_json::from_slice::<Acked>(&answer)
            .map(|a| a.acked)
            .map_err(|e| format!("the answer of POST {path}: {e}")),
        Ok((status, answer)) => Err(format!("{status}: {}", String::from_utf8_lossy(&answer))),
        Err(error) => Err(format!("{error:#}")),
    }
}

fn webhook_group(url: &str, start: &str, max_in_flight: u32) -> String {
    format!(
        r#"{{"filter":{FILTER},"start":{start},"delivery":{{"mode":"webhook","url":"{url}","format":"json","max_in_flight":{max_in_flight}}}}}"#
    )
}

/// A webhook group from the beginning delivers the backlog to the receiver, until every
/// event arrived or the time limit passed.
async fn webhook_drain(
    addr: SocketAddr,
    args: &GroupsArgs,
    server_comm: &[String],
) -> anyhow::Result<WebhookDrain> {
    let receiver = Receiver::start(Instant::now(), u64::MAX).await?;
    let server: Vec<&str> = server_comm.iter().map(String::as_str).collect();
    let before = GroupSample::now(&cpu_groups(&server, LOAD_GENERATOR));
    let start = Instant::now();
    let deadline = start + args.drain_limit();
    create_group(
        addr,
        "hook-backlog",
        webhook_group(
            &receiver.url(),
            r#""beginning""#,
            args.webhook_max_in_flight,
        ),
    )
    .await?;
    receiver.wait_for(args.backlog, deadline).await;
    let cpu = before.until(&GroupSample::now(&cpu_groups(&server, LOAD_GENERATOR)));
    let arrivals = receiver.arrivals();
    delete_group(addr, "hook-backlog").await?;
    let drained = arrivals.unique >= args.backlog;
    let elapsed = match arrivals.last_at {
        Some(last) if drained => last - start,
        _ => deadline - start,
    };
    Ok(WebhookDrain {
        backlog: args.backlog,
        max_in_flight: args.webhook_max_in_flight,
        arrivals,
        elapsed,
        drained,
        cpu,
    })
}

/// A webhook group from the end; single-event appends at a steady rate, each stamped with the
/// time it was sent, and the receiver measures when each arrives.
async fn webhook_latency(
    addr: SocketAddr,
    args: &GroupsArgs,
    server_comm: &[String],
) -> anyhow::Result<WebhookLatency> {
    let clock = Instant::now();
    let warmup = Duration::from_millis(args.warmup_ms);
    // Stamps count from the clock, and the producer starts after the group exists.
    let settle = Duration::from_millis(200);
    let warmup_us = (settle + warmup).as_micros() as u64;
    let receiver = Receiver::start(clock, warmup_us).await?;
    create_group(
        addr,
        "hook-live",
        webhook_group(&receiver.url(), r#""end""#, args.webhook_max_in_flight),
    )
    .await?;
    tokio::time::sleep_until((clock + settle).into()).await;
    let server: Vec<&str> = server_comm.iter().map(String::as_str).collect();
    let measured = warmup + Duration::from_secs_f64(args.webhook_secs);
    let total = (args.webhook_rate as f64 * measured.as_secs_f64()) as u64;
    let start = Instant::now();
    let before = GroupSample::now(&cpu_groups(&server, LOAD_GENERATOR));
    let produced = runnel::steady_appends(addr, args.webhook_rate, total, clock, warmup_us).await?;
    let production_time = start.elapsed();
    let cpu = before.until(&GroupSample::now(&cpu_groups(&server, LOAD_GENERATOR)));
    let sent = total - produced.failures;
    receiver
        .wait_for(sent, Instant::now() + WEBHOOK_GRACE)
        .await;
    let arrivals = receiver.arrivals();
    delete_group(addr, "hook-live").await?;
    Ok(WebhookLatency {
        rate: args.webhook_rate,
        sent,
        expected: produced.ops,
        arrivals,
        achieved_rate: total as f64 / production_time.as_secs_f64(),
        append_latencies: produced.latencies,
        failures: produced.failures,
        first_failure: produced.first_failure,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_group_is_valid_json_with_its_delivery() {
        let body = webhook_group("http://127.0.0.1:9/hook", r#""end""#, 16);
        let value: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(value["filter"]["stream_types"][0], "order");
        assert_eq!(value["start"], "end");
        assert_eq!(value["delivery"]["mode"], "webhook");
        assert_eq!(value["delivery"]["url"], "http://127.0.0.1:9/hook");
        assert_eq!(value["delivery"]["max_in_flight"], 16);
    }

    #[test]
    fn a_receive_answer_gives_receipts_and_delivery_counts() {
        let answer = br#"{"messages":[{"receipt":"AAAB","delivery":2,"event":{"id":"x"}}]}"#;
        let received: Received = serde_json::from_slice(answer).expect("a receive answer");
        assert_eq!(received.messages.len(), 1);
        assert_eq!(received.messages[0].receipt, "AAAB");
        assert_eq!(received.messages[0].delivery, 2);
    }
}
