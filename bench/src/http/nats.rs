//! NATS JetStream with file storage that fsyncs every write (`sync_interval: always`):
//! publishers wait for each publish's acknowledgement, which JetStream sends once the message
//! is stored, so an acknowledged message is as durable as an acknowledged Runnel append.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use async_nats::jetstream;
use bytes::Bytes;

use super::load::{Drain, LoadResult, Tally, Window};
use super::{Settings, cpu_groups};
use crate::cpu::GroupSample;
use crate::payload;

const SERVER: &[&str] = &["nats-server"];
const LOAD_GENERATOR: &[&str] = &["runnel-bench"];
const STREAM: &str = "ORDERS";
const DISTINCT_PAYLOADS: u64 = 64;
/// How long a pull consumer waits after a fetch found nothing (the rest is with others).
const EMPTY_FETCH_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

/// Creates the stream `ORDERS` on subjects `orders.>`, stored in files, one replica.
pub(crate) async fn create_stream(url: &str) -> anyhow::Result<()> {
    let client = async_nats::connect(url)
        .await
        .context("connecting to nats-server")?;
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: STREAM.to_owned(),
        subjects: vec!["orders.>".to_owned()],
        storage: jetstream::stream::StorageType::File,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .context("creating the JetStream stream")?;
    Ok(())
}

/// Publish-with-ack of single messages from `clients` connections, each to the subject of a
/// random one of `streams` orders.
pub(crate) async fn publishes(
    url: &str,
    settings: &Settings,
    clients: usize,
) -> anyhow::Result<LoadResult> {
    let payloads: Arc<Vec<Bytes>> = Arc::new(
        (0..DISTINCT_PAYLOADS)
            .map(|n| Bytes::from(payload::order_json(n)))
            .collect(),
    );
    let mut contexts = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = async_nats::connect(url)
            .await
            .context("connecting to nats-server")?;
        contexts.push(jetstream::new(client));
    }
    let window = Window::after(settings.warmup, settings.measured);
    let streams = settings.streams;
    let mut tasks = Vec::with_capacity(clients);
    for (publisher, js) in contexts.into_iter().enumerate() {
        let payloads = Arc::clone(&payloads);
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(publisher as u64 + 1);
            let mut tally = Tally::default();
            while window.is_open_at(Instant::now()) {
                let subject = format!("orders.o-{}", rng.u64(..streams));
                let message = payloads[rng.usize(..payloads.len())].clone();
                let began = Instant::now();
                let outcome = match js.publish(subject, message).await {
                    Ok(ack) => ack.await.map(|_| 1).map_err(|e| format!("ack: {e}")),
                    Err(error) => Err(format!("publish: {error}")),
                };
                tally.record(&window, began, Instant::now(), outcome);
            }
            tally
        }));
    }
    tokio::time::sleep_until(window.start.into()).await;
    let before = GroupSample::now(&cpu_groups(SERVER, LOAD_GENERATOR));
    tokio::time::sleep_until(window.deadline.into()).await;
    let cpu = before.until(&GroupSample::now(&cpu_groups(SERVER, LOAD_GENERATOR)));
    Ok(LoadResult {
        clients,
        window: window.length(),
        tally: Tally::collect(tasks).await,
        cpu,
    })
}

/// Publishes `messages` single messages to random order subjects, many acknowledgements
/// outstanding at once: a backlog for the pull consumers (loaded while the server syncs on
/// its own schedule, which is why it is fast; the consumers then run syncing always).
pub(crate) async fn fill_backlog(url: &str, messages: u64, streams: u64) -> anyhow::Result<()> {
    const OUTSTANDING: usize = 1_000;
    let client = async_nats::connect(url)
        .await
        .context("connecting to nats-server")?;
    let js = jetstream::new(client);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut pending = Vec::with_capacity(OUTSTANDING);
    for n in 0..messages {
        let subject = format!("orders.o-{}", rng.u64(..streams));
        let ack = js
            .publish(subject, Bytes::from(payload::order_json(n)))
            .await
            .context("publishing the backlog")?;
        pending.push(ack);
        if pending.len() == OUTSTANDING || n + 1 == messages {
            for ack in pending.drain(..) {
                ack.await.context("the backlog's publish acknowledgement")?;
            }
        }
    }
    Ok(())
}

/// `consumers` connections share one new durable pull consumer (explicit acks, from the
/// first message of `ORDERS`), each fetching up to `batch` messages at a time and
/// acknowledging them, until `backlog` messages are acknowledged or `limit` passes.
///
/// Acknowledgements: JetStream has no multi-message explicit ack (`AckAll` acknowledges every
/// earlier sequence, which with competing consumers would acknowledge other consumers'
/// messages, so it is not the equivalent). Each message gets its own ack, as JetStream
/// clients do; the batch's last one is a double ack, which waits for the server's reply.
/// Acks on one connection are handled in order, so that reply means the server has applied
/// the whole batch's acks, as Runnel's answer to an `ack` of a batch of receipts does, and
/// only then does the consumer fetch again.
pub(crate) async fn pull_drain(
    url: &str,
    name: &str,
    consumers: usize,
    batch: usize,
    backlog: u64,
    limit: std::time::Duration,
) -> anyhow::Result<Drain> {
    use futures::StreamExt as _;
    use jetstream::consumer::{AckPolicy, DeliverPolicy, pull};

    let setup = jetstream::new(
        async_nats::connect(url)
            .await
            .context("connecting to nats-server")?,
    );
    setup
        .get_stream(STREAM)
        .await
        .context("the JetStream stream")?
        .create_consumer(pull::Config {
            durable_name: Some(name.to_owned()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: std::time::Duration::from_secs(60),
            max_ack_pending: 10_000,
            ..Default::default()
        })
        .await
        .context("creating the pull consumer")?;
    let mut handles = Vec::with_capacity(consumers);
    for _ in 0..consumers {
        let js = jetstream::new(
            async_nats::connect(url)
                .await
                .context("connecting to nats-server")?,
        );
        let consumer: jetstream::consumer::PullConsumer = js
            .get_stream(STREAM)
            .await
            .context("the JetStream stream")?
            .get_consumer(name)
            .await
            .map_err(|error| anyhow::anyhow!("the pull consumer: {error}"))?;
        handles.push(consumer);
    }
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let before = GroupSample::now(&cpu_groups(SERVER, LOAD_GENERATOR));
    let window = Window::after(std::time::Duration::ZERO, limit);
    let mut tasks = Vec::with_capacity(consumers);
    for consumer in handles {
        let acked = Arc::clone(&acked);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut redelivered = 0u64;
            let mut last_ack = None;
            while acked.load(std::sync::atomic::Ordering::Relaxed) < backlog
                && window.is_open_at(Instant::now())
            {
                let began = Instant::now();
                let mut messages = Vec::with_capacity(batch);
                match consumer.fetch().max_messages(batch).messages().await {
                    Ok(mut fetched) => {
                        while let Some(message) = fetched.next().await {
                            match message {
                                Ok(message) => messages.push(message),
                                Err(error) => tally.fail(format!("fetch: {error}")),
                            }
                        }
                    }
                    Err(error) => {
                        tally.fail(format!("fetch: {error}"));
                        break;
                    }
                }
                let Some((last, rest)) = messages.split_last() else {
                    // Everything left is leased to other consumers, or gone.
                    tokio::time::sleep(EMPTY_FETCH_PAUSE).await;
                    continue;
                };
                redelivered += messages
                    .iter()
                    .filter(|m| m.info().is_ok_and(|info| info.delivered > 1))
                    .count() as u64;
                let mut outcome = Ok(messages.len() as u64);
                for message in rest {
                    if let Err(error) = message.ack().await {
                        outcome = Err(format!("ack: {error}"));
                    }
                }
                if let Err(error) = last.double_ack().await {
                    outcome = Err(format!("double ack: {error}"));
                }
                if let Ok(n) = outcome {
                    acked.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    last_ack = Some(Instant::now());
                }
                tally.record(&window, began, Instant::now(), outcome);
            }
            (tally, redelivered, last_ack)
        }));
    }
    let drain = Drain::collect(consumers, backlog, window, tasks).await;
    let cpu = before.until(&GroupSample::now(&cpu_groups(SERVER, LOAD_GENERATOR)));
    Ok(Drain { cpu, ..drain })
}
