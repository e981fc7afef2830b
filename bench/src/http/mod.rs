//! `runnel-bench http`: a release `runnel serve` over HTTP on 127.0.0.1, and in the same run its
//! peers with the same payload, the same number of clients and the same durability: PostgreSQL
//! used as an event store (driven by pgbench) and NATS JetStream (publish with ack). One system
//! runs at a time, each on a fresh data directory, so that none competes with another for the
//! two cores; the load generator shares them with the server, as the tables' CPU columns show.

mod client;
pub(crate) mod groups;
mod load;
mod nats;
mod postgres;
mod process;
mod receiver;
mod report;
mod runnel;
pub(crate) mod scaling;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

use load::{LoadResult, ReadResult};
use runnel::SseResult;

pub(crate) use groups::GroupsArgs;
pub(crate) use scaling::PostgresArgs;

/// Events in the stream the read phases read.
const READ_STREAM_EVENTS: u64 = 10_000;

/// What every benchmark that starts `runnel serve` needs.
#[derive(Debug, clap::Args)]
pub(crate) struct Common {
    /// The `runnel` binary to serve (build it with `cargo build --release -p runnel-cli`).
    #[arg(long)]
    pub(crate) runnel_bin: PathBuf,
    /// One more argument for `runnel serve` (repeat for several), e.g. `--serve-arg=--insecure`.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub(crate) serve_args: Vec<String>,
    /// A directory on the disk to measure (not a tmpfs); the benchmark works in a fresh
    /// subdirectory of it and removes that at the end.
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// Keep the scratch directory (data, logs) instead of removing it.
    #[arg(long)]
    pub(crate) keep: bool,
}

impl Common {
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if !self.runnel_bin.is_file() {
            bail!(
                "{} is not a file: build it with `cargo build --release -p runnel-cli`",
                self.runnel_bin.display()
            );
        }
        Ok(())
    }

    /// The command name of the `runnel` process (its binary's name, as the kernel cuts it).
    pub(crate) fn server_comm(&self) -> String {
        self.runnel_bin
            .file_name()
            .map(|name| name.to_string_lossy().chars().take(15).collect())
            .unwrap_or_default()
    }

    /// Runs `body` in a fresh scratch directory `runnel-bench-{label}-{pid}` under `--dir`,
    /// removed afterwards unless `--keep`.
    pub(crate) fn in_scratch<T>(
        &self,
        label: &str,
        body: impl FnOnce(&Path) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let work = self
            .dir
            .join(format!("runnel-bench-{label}-{}", std::process::id()));
        if work.exists() {
            bail!(
                "{} exists already; remove it or choose another --dir",
                work.display()
            );
        }
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let work = work.canonicalize()?;
        let outcome = body(&work);
        if !self.keep
            && let Err(error) = std::fs::remove_dir_all(&work)
        {
            eprintln!("could not remove {}: {error}", work.display());
        }
        outcome
    }
}

/// A multi-threaded tokio runtime for the load generators and the clients of the peers.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

#[derive(Debug, clap::Args)]
pub(crate) struct HttpArgs {
    #[command(flatten)]
    common: Common,
    /// PostgreSQL's bin directory (initdb, pg_ctl, psql, pgbench); without it PostgreSQL is
    /// not measured.
    #[arg(long)]
    pg_bin_dir: Option<PathBuf>,
    /// A nats-server binary that supports `sync_interval: always` (2.10 or later); without it
    /// JetStream is not measured.
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// The numbers of concurrent clients (connections) of the single-event append phases.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    clients: Vec<usize>,
    /// Measured seconds of each load phase, after the warm-up.
    #[arg(long, default_value_t = 8.0)]
    phase_secs: f64,
    /// Unmeasured warm-up of each load phase, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    warmup_ms: u64,
    /// Concurrent clients of the batched phase.
    #[arg(long, default_value_t = 16)]
    batch_clients: usize,
    /// Events per append (per transaction for PostgreSQL) in the batched phase.
    #[arg(long, default_value_t = 100)]
    batch_events: usize,
    /// Streams the appends go to, one chosen at random for each append.
    #[arg(long, default_value_t = 10_000)]
    streams: u64,
    /// Seconds of each read phase (a `$all` scan stops after twice this).
    #[arg(long, default_value_t = 3.0)]
    read_secs: f64,
    /// The steady append rate of the SSE latency phase, events per second.
    #[arg(long, default_value_t = 5_000)]
    sse_rate: u64,
    /// Measured seconds of the SSE latency phase.
    #[arg(long, default_value_t = 10.0)]
    sse_secs: f64,
}

impl HttpArgs {
    fn check(&self) -> anyhow::Result<()> {
        let secs_ok = |secs: f64| (1.0..=600.0).contains(&secs);
        ensure!(
            secs_ok(self.phase_secs) && secs_ok(self.read_secs) && secs_ok(self.sse_secs),
            "durations must be in [1, 600] seconds"
        );
        ensure!(self.warmup_ms <= 60_000, "--warmup-ms is at most 60000");
        ensure!(
            !self.clients.is_empty() && self.clients.iter().all(|&c| (1..=1_024).contains(&c)),
            "--clients takes 1..=1024 each"
        );
        ensure!(
            (1..=1_024).contains(&self.batch_clients),
            "--batch-clients takes 1..=1024"
        );
        ensure!(
            (1..=1_000).contains(&self.batch_events),
            "--batch-events takes 1..=1000"
        );
        ensure!(
            (1..=1_000_000).contains(&self.streams),
            "--streams takes 1..=1000000"
        );
        ensure!(
            (1..=100_000).contains(&self.sse_rate),
            "--sse-rate takes 1..=100000"
        );
        self.common.check()
    }

    fn settings(&self) -> Settings {
        Settings {
            warmup: Duration::from_millis(self.warmup_ms),
            measured: Duration::from_secs_f64(self.phase_secs),
            streams: self.streams,
            read_time: Duration::from_secs_f64(self.read_secs),
            server_comms: vec![self.common.server_comm()],
        }
    }
}

/// What every load phase shares.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) warmup: Duration,
    pub(crate) measured: Duration,
    pub(crate) streams: u64,
    pub(crate) read_time: Duration,
    /// The command names of the server's processes (for `runnel`, its binary's name as the
    /// kernel cuts it; with the PostgreSQL engine, `postgres` too), for CPU accounting.
    pub(crate) server_comms: Vec<String>,
}

/// The CPU accounting groups of a phase: the server's processes, then the load generator's.
pub(crate) fn cpu_groups<'a>(server: &'a [&'a str], load: &'a [&'a str]) -> [&'a [&'a str]; 2] {
    [server, load]
}

/// Runnel's figures.
#[derive(Debug)]
pub(crate) struct RunnelRun {
    banner: String,
    sse: SseResult,
    singles: Vec<LoadResult>,
    batched: LoadResult,
    reads: Vec<ReadResult>,
}

/// A peer's figures, or why it was not measured.
#[derive(Debug)]
pub(crate) struct PeerRun {
    version: String,
    singles: Vec<LoadResult>,
    batched: Option<LoadResult>,
    reads: Vec<ReadResult>,
}

pub(crate) type Peer = Result<PeerRun, String>;

/// Runs every system and returns the report as Markdown.
pub(crate) fn run(args: &HttpArgs, command_line: &str) -> anyhow::Result<String> {
    args.check()?;
    args.common
        .in_scratch("http", |work| run_in(args, command_line, work))
}

fn run_in(args: &HttpArgs, command_line: &str, work: &Path) -> anyhow::Result<String> {
    let settings = args.settings();
    let runtime = runtime()?;
    let runnel = runtime.block_on(bench_runnel(args, &settings, work))?;
    let postgres = match &args.pg_bin_dir {
        Some(bin_dir) => {
            bench_postgres(args, &settings, bin_dir, work).map_err(|e| format!("{e:#}"))
        }
        None => Err("no --pg-bin-dir given".to_owned()),
    };
    let nats = match &args.nats_server {
        Some(binary) => runtime
            .block_on(bench_nats(args, &settings, binary, work))
            .map_err(|e| format!("{e:#}")),
        None => Err("no --nats-server given".to_owned()),
    };
    Ok(report::write(
        args,
        command_line,
        work,
        &runnel,
        &postgres,
        &nats,
    ))
}

async fn bench_runnel(
    args: &HttpArgs,
    settings: &Settings,
    work: &Path,
) -> anyhow::Result<RunnelRun> {
    let (server, addr, banner) = process::start_runnel(
        &args.common.runnel_bin,
        &work.join("runnel-data"),
        &args.common.serve_args,
        &work.join("runnel.log"),
    )?;
    eprintln!("runnel: {banner}");
    eprintln!(
        "runnel: SSE end-to-end latency at {} events/s",
        args.sse_rate
    );
    let sse = runnel::sse_latency(
        addr,
        args.sse_rate,
        settings.warmup,
        Duration::from_secs_f64(args.sse_secs),
    )
    .await?;
    let mut singles = Vec::new();
    for &clients in &args.clients {
        eprintln!("runnel: single-event appends, {clients} connections");
        singles.push(runnel::appends(&[addr], settings, clients, 1).await?);
    }
    eprintln!(
        "runnel: {}-event appends, {} connections",
        args.batch_events, args.batch_clients
    );
    let batched = runnel::appends(&[addr], settings, args.batch_clients, args.batch_events).await?;
    let reads = runnel_reads(addr, settings).await?;
    drop(server);
    Ok(RunnelRun {
        banner,
        sse,
        singles,
        batched,
        reads,
    })
}

async fn runnel_reads(addr: SocketAddr, settings: &Settings) -> anyhow::Result<Vec<ReadResult>> {
    eprintln!("runnel: reads");
    runnel::fill_read_stream(addr, READ_STREAM_EVENTS).await?;
    let stream = runnel::read_stream(addr, READ_STREAM_EVENTS, settings.read_time).await?;
    let all = runnel::scan_all(addr, settings.read_time * 2).await?;
    Ok(vec![stream, all])
}

fn bench_postgres(
    args: &HttpArgs,
    settings: &Settings,
    bin_dir: &Path,
    work: &Path,
) -> anyhow::Result<PeerRun> {
    eprintln!("postgres: initdb and start");
    let pg = process::Postgres::start(bin_dir, &work.join("postgres"))?;
    postgres::create_schema(&pg)?;
    let scripts = postgres::Scripts::write(&work.join("pgbench"))?;
    let mut singles = Vec::new();
    for &clients in &args.clients {
        eprintln!("postgres: single-event appends, {clients} clients");
        singles.push(postgres::appends(&pg, &scripts, settings, clients, 1)?);
    }
    eprintln!(
        "postgres: {}-event appends, {} clients",
        args.batch_events, args.batch_clients
    );
    let batched = postgres::appends(
        &pg,
        &scripts,
        settings,
        args.batch_clients,
        args.batch_events,
    )?;
    eprintln!("postgres: reads");
    postgres::fill_read_stream(&pg, READ_STREAM_EVENTS)?;
    let reads = postgres::reads(&pg, &scripts, settings, READ_STREAM_EVENTS)?;
    drop(pg);
    Ok(PeerRun {
        version: postgres::version(bin_dir),
        singles,
        batched: Some(batched),
        reads,
    })
}

async fn bench_nats(
    args: &HttpArgs,
    settings: &Settings,
    binary: &Path,
    work: &Path,
) -> anyhow::Result<PeerRun> {
    eprintln!("nats: start with JetStream, sync_interval: always");
    let (server, port) = process::start_nats(binary, &work.join("nats"))?;
    let url = format!("127.0.0.1:{port}");
    nats::create_stream(&url).await?;
    let mut singles = Vec::new();
    for &clients in &args.clients {
        eprintln!("nats: publish with ack, {clients} publishers");
        singles.push(nats::publishes(&url, settings, clients).await?);
    }
    drop(server);
    Ok(PeerRun {
        version: process::version_of(binary),
        singles,
        batched: None,
        reads: Vec::new(),
    })
}
