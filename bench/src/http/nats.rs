//! NATS JetStream with file storage that fsyncs every write (`sync_interval: always`):
//! publishers wait for each publish's acknowledgement, which JetStream sends once the message
//! is stored, so an acknowledged message is as durable as an acknowledged Runnel append.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use async_nats::jetstream;
use bytes::Bytes;

use super::load::{LoadResult, Tally, Window};
use super::{Settings, cpu_groups};
use crate::cpu::GroupSample;
use crate::payload;

const SERVER: &[&str] = &["nats-server"];
const LOAD_GENERATOR: &[&str] = &["runnel-bench"];
const STREAM: &str = "ORDERS";
const DISTINCT_PAYLOADS: u64 = 64;

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
