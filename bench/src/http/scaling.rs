//! `runnel-bench postgres`: Runnel's PostgreSQL engine over HTTP, one `runnel serve --postgres`
//! node and several over one database, beside the embedded engine under the same HTTP load and
//! the plain PostgreSQL event table driven by pgbench, all in one run on one private
//! PostgreSQL cluster (`fsync=on`, `synchronous_commit=on`: an acknowledged append is on disk,
//! as with the embedded engine's fdatasync).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

use super::load::{LoadResult, ReadResult};
use super::process::{self, Guard, Postgres};
use super::report::{LOAD_HEADERS, load_row, read_rows, shorten};
use super::runnel::{Commits, StoreCounters};
use super::{Common, Settings, postgres, runnel};
use crate::format::{self, Table};
use crate::{cpu, disk, payload};

/// Events in the stream pgbench's read script reads (its fill is needed for its scan too).
const READ_STREAM_EVENTS: u64 = 10_000;
/// The database Runnel's nodes share in the private cluster.
const DATABASE: &str = "runnel";

#[derive(Debug, clap::Args)]
pub(crate) struct PostgresArgs {
    #[command(flatten)]
    common: Common,
    /// PostgreSQL's bin directory (initdb, pg_ctl, psql, pgbench).
    #[arg(long)]
    pg_bin_dir: PathBuf,
    /// Concurrent clients (connections) of the single-event phases.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Runnel nodes on one database in the multi-node phases.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Measured seconds of each load phase, after the warm-up.
    #[arg(long, default_value_t = 8.0)]
    phase_secs: f64,
    /// Unmeasured warm-up of each load phase, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    warmup_ms: u64,
    /// Concurrent clients of the batched phase.
    #[arg(long, default_value_t = 16)]
    batch_clients: usize,
    /// Events per append (per transaction for pgbench) in the batched phase.
    #[arg(long, default_value_t = 100)]
    batch_events: usize,
    /// Streams the appends go to, one chosen at random for each append.
    #[arg(long, default_value_t = 10_000)]
    streams: u64,
    /// Seconds of each read phase (a `$all` scan stops after twice this).
    #[arg(long, default_value_t = 3.0)]
    read_secs: f64,
}

impl PostgresArgs {
    fn check(&self) -> anyhow::Result<()> {
        let secs_ok = |secs: f64| (1.0..=600.0).contains(&secs);
        ensure!(
            secs_ok(self.phase_secs) && secs_ok(self.read_secs),
            "durations must be in [1, 600] seconds"
        );
        ensure!(self.warmup_ms <= 60_000, "--warmup-ms is at most 60000");
        ensure!(
            (1..=1_024).contains(&self.clients),
            "--clients takes 1..=1024"
        );
        ensure!((2..=8).contains(&self.nodes), "--nodes takes 2..=8");
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
        if !self.pg_bin_dir.join("pgbench").is_file() {
            bail!("{} has no pgbench", self.pg_bin_dir.display());
        }
        self.common.check()
    }

    fn settings(&self, server_comms: Vec<String>) -> Settings {
        Settings {
            warmup: Duration::from_millis(self.warmup_ms),
            measured: Duration::from_secs_f64(self.phase_secs),
            streams: self.streams,
            read_time: Duration::from_secs_f64(self.read_secs),
            server_comms,
        }
    }
}

/// One system's figures.
#[derive(Debug)]
struct SystemRun {
    name: String,
    nodes: usize,
    singles: LoadResult,
    batched: LoadResult,
    scan: Option<ReadResult>,
    /// The store's counters over the single-event and the batched phase (Runnel only).
    commits: Option<[Commits; 2]>,
}

/// Runs every system and returns the report as Markdown.
pub(crate) fn run(args: &PostgresArgs, command_line: &str) -> anyhow::Result<String> {
    args.check()?;
    args.common.in_scratch("postgres", |work| {
        let runtime = super::runtime()?;
        eprintln!("postgres: initdb and start");
        let pg = Postgres::start(&args.pg_bin_dir, &work.join("postgres"))?;
        pg.psql(&format!("CREATE DATABASE {DATABASE}"))?;
        let url = format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", pg.port);
        migrate(&args.common.runnel_bin, &url)?;
        let runnel_comm = args.common.server_comm();
        let mut systems = Vec::new();

        eprintln!("embedded: single-event and batched appends, `$all` scan");
        let embedded = args.settings(vec![runnel_comm.clone()]);
        let nodes = start_nodes(args, work, "embedded", None, 1)?;
        systems.push(runtime.block_on(bench_runnel(
            "Runnel, embedded engine",
            args,
            &embedded,
            &nodes,
            true,
        ))?);
        drop(nodes);

        let on_postgres = args.settings(vec![runnel_comm, "postgres".to_owned()]);
        eprintln!("runnel --postgres, 1 node: appends, `$all` scan");
        pg.psql("CHECKPOINT")?;
        let nodes = start_nodes(args, work, "pg1", Some(&url), 1)?;
        systems.push(runtime.block_on(bench_runnel(
            "Runnel on PostgreSQL",
            args,
            &on_postgres,
            &nodes,
            true,
        ))?);
        drop(nodes);

        eprintln!("runnel --postgres, {} nodes: appends", args.nodes);
        pg.psql("CHECKPOINT")?;
        let nodes = start_nodes(args, work, "pgn", Some(&url), args.nodes)?;
        systems.push(runtime.block_on(bench_runnel(
            "Runnel on PostgreSQL",
            args,
            &on_postgres,
            &nodes,
            false,
        ))?);
        drop(nodes);

        eprintln!("postgres: the plain event table with pgbench");
        pg.psql("CHECKPOINT")?;
        systems.push(bench_table(args, &pg, work)?);
        let version = postgres::version(&args.pg_bin_dir);
        drop(pg);
        Ok(report(args, command_line, work, &version, &systems))
    })
}

/// `runnel migrate --postgres URL`.
fn migrate(binary: &Path, url: &str) -> anyhow::Result<()> {
    let output = Command::new(binary)
        .args(["migrate", "--postgres", url])
        .stdin(Stdio::null())
        .output()
        .context("running runnel migrate")?;
    if !output.status.success() {
        bail!(
            "runnel migrate failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Running nodes; they stop when dropped.
struct Nodes {
    addrs: Vec<SocketAddr>,
    _guards: Vec<Guard>,
}

fn start_nodes(
    args: &PostgresArgs,
    work: &Path,
    label: &str,
    url: Option<&str>,
    count: usize,
) -> anyhow::Result<Nodes> {
    let mut serve_args = args.common.serve_args.clone();
    if let Some(url) = url {
        serve_args.extend(["--postgres".to_owned(), url.to_owned()]);
    }
    let (mut addrs, mut guards) = (Vec::new(), Vec::new());
    for node in 0..count {
        let (guard, addr, line) = process::start_runnel(
            &args.common.runnel_bin,
            &work.join(format!("{label}-{node}-data")),
            &serve_args,
            &work.join(format!("{label}-{node}.log")),
        )?;
        eprintln!("runnel: {line}");
        addrs.push(addr);
        guards.push(guard);
    }
    Ok(Nodes {
        addrs,
        _guards: guards,
    })
}

async fn bench_runnel(
    name: &str,
    args: &PostgresArgs,
    settings: &Settings,
    nodes: &Nodes,
    scan: bool,
) -> anyhow::Result<SystemRun> {
    let before = StoreCounters::read(&nodes.addrs).await?;
    let singles = runnel::appends(&nodes.addrs, settings, args.clients, 1).await?;
    let between = StoreCounters::read(&nodes.addrs).await?;
    let batched = runnel::appends(
        &nodes.addrs,
        settings,
        args.batch_clients,
        args.batch_events,
    )
    .await?;
    let after = StoreCounters::read(&nodes.addrs).await?;
    let scan = if scan {
        Some(runnel::scan_all(nodes.addrs[0], settings.read_time * 2).await?)
    } else {
        None
    };
    Ok(SystemRun {
        name: name.to_owned(),
        nodes: nodes.addrs.len(),
        singles,
        batched,
        scan,
        commits: Some([before.until(&between), between.until(&after)]),
    })
}

fn bench_table(args: &PostgresArgs, pg: &Postgres, work: &Path) -> anyhow::Result<SystemRun> {
    let settings = args.settings(vec!["postgres".to_owned()]);
    postgres::create_schema(pg)?;
    let scripts = postgres::Scripts::write(&work.join("pgbench"))?;
    let singles = postgres::appends(pg, &scripts, &settings, args.clients, 1)?;
    let batched = postgres::appends(
        pg,
        &scripts,
        &settings,
        args.batch_clients,
        args.batch_events,
    )?;
    postgres::fill_read_stream(pg, READ_STREAM_EVENTS)?;
    // The reads are the stream read, then the scan by global position: keep the scan.
    let scan = postgres::reads(pg, &scripts, &settings, READ_STREAM_EVENTS)?
        .into_iter()
        .nth(1);
    Ok(SystemRun {
        name: "PostgreSQL table (pgbench)".to_owned(),
        nodes: 1,
        singles,
        batched,
        scan,
        commits: None,
    })
}

fn label(system: &SystemRun) -> String {
    if system.nodes == 1 {
        system.name.clone()
    } else {
        format!("{}, {} nodes", system.name, system.nodes)
    }
}

fn report(
    args: &PostgresArgs,
    command_line: &str,
    work: &Path,
    version: &str,
    systems: &[SystemRun],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## The PostgreSQL engine and its baseline\n");
    let _ = writeln!(out, "Command: `{command_line}`\n");
    let _ = writeln!(
        out,
        "- Date: {}; {} cores; data on {}; load average at the end: {}\n\
         - One private PostgreSQL cluster ({version}, `fsync=on`, `synchronous_commit=on`, \
         checkpoint before each system): Runnel's nodes (`runnel serve --postgres`, after \
         `runnel migrate`) share the database `{DATABASE}`; the plain event table of the HTTP \
         part (Message DB pattern, `bench/sql/`) lives in `postgres` and is driven by pgbench \
         with prepared statements. The embedded engine serves from its own data directory on \
         the same disk.\n\
         - Every system gets the same {}-byte JSON payload, appends go to a random one of {} \
         streams (expected revision \"any\"), one connection per client; with several nodes, \
         client i talks to node i mod n. {} s measured per phase after a {} ms warm-up. One \
         system runs at a time; the load generator shares the two cores with the servers (CPU \
         columns, in cores: server processes — `runnel` and, on PostgreSQL, the `postgres` \
         backends — · load generator · everything else).\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, usize::from),
        disk::filesystem_of(work),
        cpu::load_average(),
        payload::PAYLOAD_BYTES,
        format::int(args.streams),
        args.phase_secs,
        args.warmup_ms,
    );
    let _ = writeln!(
        out,
        "### Single-event appends, {} clients (latency: one append, acknowledged durable)\n",
        args.clients
    );
    let mut table = Table::new(&LOAD_HEADERS);
    for system in systems {
        load_row(&mut table, &label(system), &system.singles);
    }
    let _ = writeln!(out, "{table}");
    let _ = writeln!(
        out,
        "### Appends of {} events, {} clients (one append, or one pgbench transaction)\n",
        args.batch_events, args.batch_clients
    );
    let mut table = Table::new(&LOAD_HEADERS);
    for system in systems {
        load_row(&mut table, &label(system), &system.batched);
    }
    let _ = writeln!(out, "{table}");
    commits(&mut out, args, systems);
    let _ = writeln!(out, "### `$all` reads (one client, pages of 1,000)\n");
    let mut table = Table::new(&[
        "system",
        "read",
        "events/s",
        "page p50 ms",
        "page p99 ms",
        "note",
    ]);
    for system in systems {
        if let Some(scan) = &system.scan {
            read_rows(&mut table, &label(system), std::slice::from_ref(scan));
        }
    }
    let _ = writeln!(out, "{table}");
    let _ = writeln!(
        out,
        "Runnel's reads return JSON over HTTP and the client parses it; pgbench receives rows \
         over PostgreSQL's protocol and discards them.\n"
    );
    targets(&mut out, args, systems);
    out
}

fn commits(out: &mut String, args: &PostgresArgs, systems: &[SystemRun]) {
    let _ = writeln!(
        out,
        "### Group commit: the store's counters (`/metrics`, summed over nodes) over each append \
         phase, warm-up included\n"
    );
    let _ = writeln!(
        out,
        "\"Durable write\" is the embedded engine's fdatasync, or on PostgreSQL the round trip \
         that writes a group commit (the streams' locks, inserts, upserts, COMMIT with its WAL \
         flush, and the notification after it); \"ms per commit, per node\" is the mean \
         interval between one node's commits: the embedded engine has one writer, while on \
         PostgreSQL a node's writer lanes commit side by side, so one commit may take longer \
         than this interval.\n"
    );
    let mut table = Table::new(&[
        "system",
        "phase",
        "commits/s",
        "events/commit",
        "durable write ms (mean)",
        "ms per commit, per node",
    ]);
    for system in systems {
        let Some(phases) = &system.commits else {
            continue;
        };
        let names = [
            format!("single events, {} clients", args.clients),
            format!(
                "{} events per append, {} clients",
                args.batch_events, args.batch_clients
            ),
        ];
        for (phase, name) in phases.iter().zip(names) {
            let per_node_ms = system.nodes as f64 * 1e3 / phase.per_second().max(1e-9);
            table.row(vec![
                label(system),
                name,
                format::rate(phase.per_second()),
                format!("{:.1}", phase.events_per_commit()),
                format::ms(phase.mean_sync()),
                format!("{per_node_ms:.2}"),
            ]);
        }
    }
    let _ = writeln!(out, "{table}");
}

fn targets(out: &mut String, args: &PostgresArgs, systems: &[SystemRun]) {
    let _ = writeln!(out, "### Targets (issue 6)\n");
    let find = |name_start: &str, nodes: usize| {
        systems
            .iter()
            .find(|s| s.name.starts_with(name_start) && s.nodes == nodes)
            .map(|s| s.singles.events_per_second())
    };
    let one = find("Runnel on PostgreSQL", 1);
    let many = find("Runnel on PostgreSQL", args.nodes);
    let table_rate = find("PostgreSQL table", 1);
    let mut table = Table::new(&["target", "measured", "verdict"]);
    let mut row = |target: String, ours: Option<f64>, theirs: Option<f64>, factor: f64| match (
        ours, theirs,
    ) {
        (Some(ours), Some(theirs)) => {
            let ratio = ours / theirs.max(1e-9);
            table.row(vec![
                target,
                format!(
                    "{} vs {} events/s = {}",
                    format::rate(ours),
                    format::rate(theirs),
                    format::times(ratio)
                ),
                format::met(ratio >= factor).to_owned(),
            ]);
        }
        _ => table.row(vec![target, "not measured".to_owned(), "–".to_owned()]),
    };
    row(
        format!(
            "one node on PostgreSQL ≥ 2× the plain table's single-event rate ({} clients)",
            args.clients
        ),
        one,
        table_rate,
        2.0,
    );
    row(
        format!("{} nodes ≥ one node ({} clients)", args.nodes, args.clients),
        many,
        one,
        1.0,
    );
    let _ = writeln!(out, "{table}");
    let failed: Vec<String> = systems
        .iter()
        .flat_map(|s| [&s.singles, &s.batched])
        .filter_map(|r| r.tally.first_failure.as_deref().map(shorten))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "Failures seen: {}\n", failed.join("; "));
    }
}
