//! PostgreSQL as an event store, driven by pgbench with the same payload, the same number of
//! clients and the same durability (`synchronous_commit = on`, `fsync = on`) as Runnel.
//! Throughput and latency come from pgbench's per-transaction log, cut to the same measured
//! window as the other systems' phases.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};

use super::load::{LoadResult, ReadResult, Tally};
use super::{Settings, cpu_groups};
use crate::cpu::{GroupSample, GroupUse};
use crate::http::process::Postgres;
use crate::{format, payload};

const SCHEMA: &str = include_str!("../../sql/schema.sql");
const APPEND: &str = include_str!("../../sql/append.pgbench");
const READ_STREAM: &str = include_str!("../../sql/read-stream.pgbench");
const SCAN: &str = include_str!("../../sql/scan.pgbench");

const SERVER: &[&str] = &["postgres"];
const LOAD_GENERATOR: &[&str] = &["pgbench"];
/// Rows per read query (see the read scripts).
const PAGE_EVENTS: u64 = 1_000;

/// The scripts, written where pgbench can read them.
#[derive(Debug)]
pub(crate) struct Scripts {
    append: PathBuf,
    read_stream: PathBuf,
    scan: PathBuf,
    logs: PathBuf,
}

impl Scripts {
    pub(crate) fn write(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let scripts = Self {
            append: dir.join("append.pgbench"),
            read_stream: dir.join("read-stream.pgbench"),
            scan: dir.join("scan.pgbench"),
            logs: dir.join("logs"),
        };
        std::fs::write(&scripts.append, APPEND)?;
        std::fs::write(&scripts.read_stream, READ_STREAM)?;
        std::fs::write(&scripts.scan, SCAN)?;
        std::fs::create_dir_all(&scripts.logs)?;
        Ok(scripts)
    }
}

pub(crate) fn create_schema(pg: &Postgres) -> anyhow::Result<()> {
    pg.psql(SCHEMA).map(|_| ())
}

/// One pgbench run: `clients` connections running `script` through a warm-up and the window.
struct Run<'a> {
    pg: &'a Postgres,
    script: &'a Path,
    clients: usize,
    variables: Vec<(&'static str, String)>,
}

impl Run<'_> {
    fn execute(
        &self,
        settings: &Settings,
        logs: &Path,
        label: &str,
    ) -> anyhow::Result<(Tally, GroupUse, Duration)> {
        let prefix = logs.join(label);
        // pgbench runs whole seconds: the warm-up, the window, and a second of slack after it.
        let seconds = (settings.warmup + settings.measured).as_secs_f64().ceil() as u64 + 1;
        let mut command = Command::new(self.pg.bin_dir.join("pgbench"));
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.pg.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-n", "-M", "prepared", "-c", &self.clients.to_string()])
            .args([
                "-j",
                &self.clients.min(2).to_string(),
                "-T",
                &seconds.to_string(),
            ])
            .arg("-f")
            .arg(self.script)
            .arg("-l")
            .arg(format!("--log-prefix={}", prefix.display()));
        for (name, value) in &self.variables {
            command.arg("-D").arg(format!("{name}={value}"));
        }
        let started = SystemTime::now();
        let child = command
            .arg("postgres")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting pgbench")?;
        let launched = Instant::now();
        std::thread::sleep(settings.warmup);
        let before = GroupSample::now(&cpu_groups(SERVER, LOAD_GENERATOR));
        std::thread::sleep(
            (launched + settings.warmup + settings.measured)
                .saturating_duration_since(Instant::now()),
        );
        let cpu = before.until(&GroupSample::now(&cpu_groups(SERVER, LOAD_GENERATOR)));
        let output = child.wait_with_output().context("waiting for pgbench")?;
        if !output.status.success() {
            bail!(
                "pgbench failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let window_start = micros_since_epoch(started) + settings.warmup.as_micros() as u64;
        let window_end = window_start + settings.measured.as_micros() as u64;
        let tally = read_logs(logs, label, window_start, window_end)?;
        Ok((tally, cpu, settings.measured))
    }
}

fn micros_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Transactions from pgbench's logs (`client_id transaction_no time script_no time_epoch
/// time_us`, `time` being the latency in µs) that started and finished inside the window.
fn read_logs(dir: &Path, label: &str, start_us: u64, end_us: u64) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for entry in std::fs::read_dir(dir)?.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(label) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())?;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let parsed = (|| {
                let latency: u64 = fields.get(2)?.parse().ok()?;
                let epoch: u64 = fields.get(4)?.parse().ok()?;
                let micros: u64 = fields.get(5)?.parse().ok()?;
                Some((latency, epoch * 1_000_000 + micros))
            })();
            let Some((latency, finished)) = parsed else {
                tally.fail(format!("an unexpected pgbench log line: {line}"));
                continue;
            };
            if finished <= end_us && finished.saturating_sub(latency) >= start_us {
                tally.ops += 1;
                tally.latencies.record(Duration::from_micros(latency));
            }
        }
        std::fs::remove_file(entry.path())?;
    }
    Ok(tally)
}

/// Appends of `events` events (one transaction each) from `clients` connections.
pub(crate) fn appends(
    pg: &Postgres,
    scripts: &Scripts,
    settings: &Settings,
    clients: usize,
    events: usize,
) -> anyhow::Result<LoadResult> {
    let run = Run {
        pg,
        script: &scripts.append,
        clients,
        variables: vec![
            ("streams", settings.streams.to_string()),
            ("count", events.to_string()),
            ("payload", payload::order_json(7)),
        ],
    };
    let (mut tally, cpu, window) = run.execute(
        settings,
        &scripts.logs,
        &format!("append-{clients}-{events}"),
    )?;
    tally.events = tally.ops * events as u64;
    Ok(LoadResult {
        clients,
        window,
        tally,
        cpu,
    })
}

/// Writes the stream the read phase reads: `events` events, 1,000 per transaction.
pub(crate) fn fill_read_stream(pg: &Postgres, events: u64) -> anyhow::Result<()> {
    let payload = payload::order_json(7);
    pg.psql(&format!(
        "SELECT write_messages('order-read-target', 'OrderPlaced', '{payload}'::jsonb, 1000) \
         FROM generate_series(1, {});",
        events.div_ceil(PAGE_EVENTS)
    ))
    .map(|_| ())
}

/// One client reading pages of 1,000: of the read stream, then of the whole log.
pub(crate) fn reads(
    pg: &Postgres,
    scripts: &Scripts,
    settings: &Settings,
    stream_events: u64,
) -> anyhow::Result<Vec<ReadResult>> {
    let read_settings = Settings {
        warmup: Duration::from_millis(500),
        measured: settings.read_time,
        ..settings.clone()
    };
    let stream = Run {
        pg,
        script: &scripts.read_stream,
        clients: 1,
        variables: vec![("events", stream_events.to_string())],
    };
    let (tally, _, window) = stream.execute(&read_settings, &scripts.logs, "read-stream")?;
    let mut results = vec![read_result(
        format!(
            "one stream of {} events, pages of {}, 1 client",
            format::int(stream_events),
            format::int(PAGE_EVENTS)
        ),
        tally,
        window,
    )];
    let last: u64 = pg
        .psql("SELECT max(global_position) FROM messages")?
        .parse()
        .context("the last global position")?;
    if last > PAGE_EVENTS {
        let scan = Run {
            pg,
            script: &scripts.scan,
            clients: 1,
            variables: vec![("last_start", (last - PAGE_EVENTS + 1).to_string())],
        };
        let (tally, _, window) = scan.execute(&read_settings, &scripts.logs, "scan")?;
        results.push(read_result(
            format!(
                "the whole log by global position ({} events), pages from random starts, 1 client",
                format::int(last)
            ),
            tally,
            window,
        ));
    }
    Ok(results)
}

fn read_result(what: String, tally: Tally, window: Duration) -> ReadResult {
    ReadResult {
        what,
        events: tally.ops * PAGE_EVENTS,
        elapsed: window,
        note: format!("{} queries", tally.ops),
        page_latencies: tally.latencies,
    }
}

/// `postgres --version`, e.g. "postgres (PostgreSQL) 15.14".
pub(crate) fn version(bin_dir: &Path) -> String {
    super::process::version_of(&bin_dir.join("postgres"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transactions_inside_the_window_count() {
        let dir = std::env::temp_dir().join(format!("runnel-bench-pglog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        // client, transaction, latency µs, script, finished at (s, µs).
        let log = "0 1 500 0 100 000100\n\
                   0 2 500 0 101 000000\n\
                   1 1 2000 0 101 500000\n\
                   1 2 500 0 103 000000\n";
        std::fs::write(dir.join("append-1-1.123"), log).expect("a log file");
        std::fs::write(dir.join("other.123"), log).expect("another phase's log");
        let tally = read_logs(&dir, "append-1-1", 100_500_000, 102_000_000).expect("readable logs");
        assert_eq!(
            tally.ops, 2,
            "the first starts before the window, the last ends after it"
        );
        assert_eq!(tally.failures, 0);
        // The histogram keeps three significant digits.
        let slowest = tally.latencies.quantile(1.0).as_micros();
        assert!((1_998..=2_002).contains(&slowest), "{slowest} µs");
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
