//! A quick measurement, not a benchmark: single-event appends from many concurrent tasks into
//! a fresh schema, reporting events per second and how many appends each group commit carried.
//!
//! `cargo run --release -p runnel-postgres --example append_rate -- [URL] [TASKS] [SECONDS]`
//! (default: the local test database, 64 tasks, 5 seconds). The schema it creates is dropped
//! at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use runnel_core::{
    AppendRequest, EventType, ExpectedRevision, JsonText, ProposedEvent, Store, StreamName,
};
use runnel_postgres::{PostgresConfig, PostgresStore, migrate};
use tokio_postgres::NoTls;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let tasks: usize = args.next().map_or(Ok(64), |n| n.parse())?;
    let seconds: u64 = args.next().map_or(Ok(5), |n| n.parse())?;

    let schema = format!("runnel_rate_{}", uuid::Uuid::now_v7().simple());
    let (admin, connection) = tokio_postgres::connect(&base, NoTls).await?;
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await?;
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    migrate(&url).await?;
    let store = Arc::new(PostgresStore::open(PostgresConfig::new(url)).await?);

    let appended = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|task| {
            let store = Arc::clone(&store);
            let appended = Arc::clone(&appended);
            tokio::spawn(async move {
                let stream = StreamName::parse(&format!("bench/s-{task}"))?;
                let event_type = EventType::parse("Measured")?;
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let data = JsonText::parse(r#"{"amount":42,"currency":"EUR"}"#.to_owned())?;
                    let request = AppendRequest {
                        stream: stream.clone(),
                        expected: ExpectedRevision::Any,
                        events: vec![ProposedEvent::json(event_type.clone(), data)],
                    };
                    let sent = Instant::now();
                    store.append(request).await?;
                    latencies.push(sent.elapsed());
                    appended.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed();
    let metrics = store.metrics();
    store.close().await?;
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let events = appended.load(Ordering::Relaxed);
    println!(
        "{tasks} tasks, {elapsed:.1?}: {events} single-event appends, {:.0} events/s; \
         {} commits ({:.1} appends each); latency p50 {:?} p99 {:?}",
        events as f64 / elapsed.as_secs_f64(),
        metrics.commits,
        events as f64 / metrics.commits.max(1) as f64,
        percentile(0.50),
        percentile(0.99),
    );
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    Ok(())
}
