//! `runnel-bench engine`: the embedded engine in-process, measured against the machine's own
//! limits in the same run. Every write phase runs for a fixed time after a short warm-up, and
//! reports the engine's group-commit counters for exactly its measured window, so that a figure
//! can be traced to how many fsyncs it took.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runnel_core::{
    AllFilter, AppendRequest, Direction, EventType, ExpectedRevision, JsonText, Position,
    ProposedEvent, Revision, Store, StreamName,
};
use runnel_embedded::{EmbeddedStore, EngineConfig, FSYNC_BUCKETS_MICROS, StatsSnapshot};

use crate::cpu::{self, CpuSample, CpuUse};
use crate::disk::{self, SequentialWrite, SyncFile, SyncProbe};
use crate::format::{self, Table};
use crate::latency::Latencies;
use crate::payload;

/// The largest page a read returns ([`runnel_core::MAX_PAGE_LIMIT`]).
const PAGE_EVENTS: usize = 1_000;
/// Distinct payloads cycled through, so that consecutive events do not carry identical bytes.
const DISTINCT_PAYLOADS: u64 = 256;
/// The most 256-byte fdatasync writes a probe does (it stops earlier at its time limit).
const MAX_SYNC_PROBE_OPS: u64 = 100_000;
/// The most passes over the read stream, however fast they go.
const MAX_STREAM_READ_PASSES: u64 = 1_000;

#[derive(Debug, clap::Args)]
pub(crate) struct EngineArgs {
    /// A directory on the disk to measure (not a tmpfs). The benchmark works in a fresh
    /// subdirectory of it and removes that at the end.
    #[arg(long)]
    dir: PathBuf,
    /// Measured seconds of each write phase, after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    phase_secs: f64,
    /// Unmeasured warm-up of each write phase, in milliseconds.
    #[arg(long, default_value_t = 500)]
    warmup_ms: u64,
    /// The numbers of concurrent single-event writers, one phase each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    writers: Vec<usize>,
    /// Streams the writers append to, chosen at random for each append.
    #[arg(long, default_value_t = 10_000)]
    streams: u64,
    /// Concurrent writers of the batched phase.
    #[arg(long, default_value_t = 16)]
    batch_writers: usize,
    /// Events per append in the batched phase.
    #[arg(long, default_value_t = 100)]
    batch_events: usize,
    /// The length of the stream the stream-read phase reads.
    #[arg(long, default_value_t = 10_000)]
    read_stream_events: u64,
    /// Seconds of each fdatasync probe.
    #[arg(long, default_value_t = 3.0)]
    sync_probe_secs: f64,
    /// The most MiB the sequential-write probe writes (it also stops after 10 s).
    #[arg(long, default_value_t = 1024)]
    sequential_mib: u64,
    /// Seconds of stream reading; the `$all` scan stops after `2 ×` this if it has not finished.
    #[arg(long, default_value_t = 3.0)]
    read_secs: f64,
    /// Keep the engine's data directory instead of removing it.
    #[arg(long)]
    keep: bool,
}

impl EngineArgs {
    fn check(&self) -> anyhow::Result<()> {
        let secs_ok = |secs: f64| secs > 0.0 && secs <= 600.0;
        ensure!(
            secs_ok(self.phase_secs) && secs_ok(self.sync_probe_secs) && secs_ok(self.read_secs),
            "durations must be in (0, 600] seconds"
        );
        ensure!(self.warmup_ms <= 60_000, "--warmup-ms is at most 60000");
        ensure!(
            !self.writers.is_empty() && self.writers.iter().all(|&w| (1..=4_096).contains(&w)),
            "--writers takes 1..=4096 each"
        );
        ensure!(
            (1..=4_096).contains(&self.batch_writers),
            "--batch-writers takes 1..=4096"
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
            (1..=1_000_000).contains(&self.read_stream_events),
            "--read-stream-events takes 1..=1000000"
        );
        ensure!(
            (1..=16_384).contains(&self.sequential_mib),
            "--sequential-mib takes 1..=16384"
        );
        Ok(())
    }
}

/// Runs every phase and returns the report as Markdown.
pub(crate) fn run(args: &EngineArgs, command_line: &str) -> anyhow::Result<String> {
    args.check()?;
    let work = args
        .dir
        .join(format!("runnel-bench-{}", std::process::id()));
    if work.exists() {
        bail!(
            "{} exists already; remove it or choose another --dir",
            work.display()
        );
    }
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let outcome = run_in(args, command_line, &work);
    if !args.keep
        && let Err(error) = std::fs::remove_dir_all(&work)
    {
        eprintln!("could not remove {}: {error}", work.display());
    }
    outcome
}

fn run_in(args: &EngineArgs, command_line: &str, work: &Path) -> anyhow::Result<String> {
    let mut report = String::new();
    header(&mut report, command_line, work);

    eprintln!(
        "machine: fdatasync probes and sequential write in {}",
        work.display()
    );
    let limits = MachineLimits::measure(args, work)?;
    limits.write_to(&mut report);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let engine_dir = work.join("engine");
    let engine = runtime.block_on(engine_phases(args, &engine_dir))?;
    engine.write_to(&mut report, &limits, args);
    Ok(report)
}

fn header(report: &mut String, command_line: &str, work: &Path) {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let build = if cfg!(debug_assertions) {
        "**debug build: these figures mean nothing, use --release**"
    } else {
        "release"
    };
    let _ = writeln!(report, "## Embedded engine, in-process\n");
    let _ = writeln!(report, "Command: `{command_line}`\n");
    let _ = writeln!(
        report,
        "- Date: {}\n- Machine: {cores} cores, Linux {kernel}; data directory on {}\n\
         - Load average at the start: {}\n- Build: {build}; engine: `EngineConfig::default()`\n\
         - Payload: {}-byte JSON order events, type `{}`\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        disk::filesystem_of(work),
        cpu::load_average(),
        payload::PAYLOAD_BYTES,
        payload::EVENT_TYPE,
    );
}

/// What the data directory's disk can do, measured before the engine runs.
#[derive(Debug)]
struct MachineLimits {
    preallocated: SyncProbe,
    appending: SyncProbe,
    sequential: SequentialWrite,
}

impl MachineLimits {
    fn measure(args: &EngineArgs, dir: &Path) -> anyhow::Result<Self> {
        let probe_time = Duration::from_secs_f64(args.sync_probe_secs);
        let preallocated =
            disk::fdatasync_probe(dir, SyncFile::Preallocated, probe_time, MAX_SYNC_PROBE_OPS)
                .context("the fdatasync probe (preallocated file)")?;
        let appending =
            disk::fdatasync_probe(dir, SyncFile::Appending, probe_time, MAX_SYNC_PROBE_OPS)
                .context("the fdatasync probe (appending file)")?;
        let sequential = disk::sequential_write(
            dir,
            args.sequential_mib * 1024 * 1024,
            Duration::from_secs(10),
        )
        .context("the sequential write probe")?;
        Ok(Self {
            preallocated,
            appending,
            sequential,
        })
    }

    /// The one-fsync-per-event ceiling: what a store that synced every event alone would get.
    fn sync_ceiling(&self) -> f64 {
        self.preallocated.ops_per_second()
    }

    fn sync_p50(&self) -> Duration {
        self.preallocated.latencies.quantile(0.50)
    }

    /// The most events per second `writers` closed-loop writers of single events can get: each
    /// waits at least one fdatasync for every append.
    fn closed_loop_bound(&self, writers: usize) -> f64 {
        writers as f64 / self.sync_p50().as_secs_f64().max(1e-9)
    }

    fn write_to(&self, report: &mut String) {
        let _ = writeln!(report, "### The machine's limits for this directory\n");
        let mut table = Table::new(&["what", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "samples"]);
        for (what, probe) in [
            (
                "write 256 B + fdatasync, one writer, preallocated zero-filled file",
                &self.preallocated,
            ),
            (
                "write 256 B + fdatasync, one writer, appending (file grows)",
                &self.appending,
            ),
        ] {
            table.row(vec![
                what.to_owned(),
                format::rate(probe.ops_per_second()),
                format::ms(probe.latencies.quantile(0.50)),
                format::ms(probe.latencies.quantile(0.99)),
                format::ms(probe.latencies.quantile(0.999)),
                format::int(probe.ops),
            ]);
        }
        let _ = writeln!(report, "{table}");
        let seq = &self.sequential;
        let _ = writeln!(
            report,
            "Sequential buffered write of {} MiB in 1 MiB writes, then one fsync: **{} MB/s** \
             ({:.2} s writing into the page cache, {:.2} s in the fsync).\n",
            seq.bytes / (1024 * 1024),
            format::mb_per_s(seq.bytes, seq.total()),
            seq.write.as_secs_f64(),
            seq.sync.as_secs_f64(),
        );
    }
}

/// The engine's counters over one measured window.
#[derive(Debug, Clone, Default)]
struct CommitStats {
    batches: u64,
    events: u64,
    bytes: u64,
    fsync_micros: u64,
    fsync_buckets: Vec<u64>,
}

impl CommitStats {
    fn between(before: &StatsSnapshot, after: &StatsSnapshot) -> Self {
        Self {
            batches: after.batches.saturating_sub(before.batches),
            events: after.events_written.saturating_sub(before.events_written),
            bytes: after.bytes_written.saturating_sub(before.bytes_written),
            fsync_micros: after
                .fsync_micros_total
                .saturating_sub(before.fsync_micros_total),
            fsync_buckets: after
                .fsync_buckets
                .iter()
                .zip(&before.fsync_buckets)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
        }
    }

    fn events_per_batch(&self) -> f64 {
        self.events as f64 / (self.batches.max(1)) as f64
    }

    fn mean_fsync(&self) -> Duration {
        Duration::from_micros(self.fsync_micros / self.batches.max(1))
    }

    /// `≤200µs 1,234 · ≤300µs 56 · >250ms 1`, the non-empty buckets only.
    fn fsync_distribution(&self) -> String {
        let parts: Vec<String> = self
            .fsync_buckets
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(i, count)| {
                let bound = match FSYNC_BUCKETS_MICROS.get(i) {
                    Some(micros) => format!("≤{}", micros_label(*micros)),
                    None => format!(
                        ">{}",
                        micros_label(FSYNC_BUCKETS_MICROS.last().copied().unwrap_or(0))
                    ),
                };
                format!("{bound} {}", format::int(*count))
            })
            .collect();
        if parts.is_empty() {
            "–".to_owned()
        } else {
            parts.join(" · ")
        }
    }
}

fn micros_label(micros: u64) -> String {
    if micros >= 1_000 {
        format!("{}ms", micros / 1_000)
    } else {
        format!("{micros}µs")
    }
}

/// What the writers of one phase do.
#[derive(Debug, Clone)]
struct WriteLoad {
    label: String,
    writers: usize,
    events_per_append: usize,
    warmup: Duration,
    measured: Duration,
}

#[derive(Debug)]
struct WriteResult {
    load: WriteLoad,
    appends: u64,
    events: u64,
    event_bytes: u64,
    latencies: Latencies,
    failures: u64,
    first_failure: Option<String>,
    commits: CommitStats,
    cpu: CpuUse,
}

impl WriteResult {
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.load.measured.as_secs_f64()
    }

    /// CPU time of the whole process per event written, in microseconds.
    fn cpu_micros_per_event(&self) -> f64 {
        self.cpu.process_cores * self.load.measured.as_secs_f64() * 1e6 / self.events.max(1) as f64
    }
}

fn cpu_cell(cpu: &CpuUse) -> String {
    format!("{:.2} ({:.2})", cpu.process_cores, cpu.writer_cores)
}

/// The streams and payloads every phase draws from, built once so that building a request
/// costs clones only.
#[derive(Debug)]
struct Fixtures {
    streams: Vec<StreamName>,
    payloads: Vec<JsonText>,
    event_type: EventType,
}

impl Fixtures {
    fn new(streams: u64) -> anyhow::Result<Self> {
        let streams = (0..streams)
            .map(|n| StreamName::parse(&format!("order/o-{n}")))
            .collect::<Result<Vec<_>, _>>()?;
        let payloads = (0..DISTINCT_PAYLOADS)
            .map(|n| JsonText::parse(payload::order_json(n)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            streams,
            payloads,
            event_type: EventType::parse(payload::EVENT_TYPE)?,
        })
    }

    fn request(&self, stream: StreamName, events: usize, seed: usize) -> AppendRequest {
        let events = (0..events)
            .map(|i| {
                let data = self.payloads[(seed + i) % self.payloads.len()].clone();
                ProposedEvent::json(self.event_type.clone(), data)
            })
            .collect();
        AppendRequest {
            stream,
            expected: ExpectedRevision::Any,
            events,
        }
    }
}

#[derive(Debug, Default)]
struct WriterTally {
    appends: u64,
    events: u64,
    event_bytes: u64,
    latencies: Latencies,
    failures: u64,
    first_failure: Option<String>,
}

/// Runs `load` against the store: each writer appends to random streams until the deadline;
/// only appends that start after the warm-up and finish before the deadline count.
async fn run_writes(
    store: &Arc<EmbeddedStore>,
    fixtures: &Arc<Fixtures>,
    load: WriteLoad,
) -> WriteResult {
    let measure_start = Instant::now() + load.warmup;
    let deadline = measure_start + load.measured;
    let mut tasks = Vec::with_capacity(load.writers);
    for writer in 0..load.writers {
        let store: Arc<dyn Store> = store.clone();
        let fixtures = Arc::clone(fixtures);
        let events_per_append = load.events_per_append;
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(writer as u64 + 1);
            let mut tally = WriterTally::default();
            while Instant::now() < deadline {
                let stream = fixtures.streams[rng.usize(..fixtures.streams.len())].clone();
                let request = fixtures.request(stream, events_per_append, rng.usize(..));
                let bytes: u64 = request.events.iter().map(|e| e.size_bytes() as u64).sum();
                let began = Instant::now();
                let outcome = store.append(request).await;
                let ended = Instant::now();
                if began < measure_start || ended > deadline {
                    continue;
                }
                match outcome {
                    Ok(_) => {
                        tally.latencies.record(ended - began);
                        tally.appends += 1;
                        tally.events += events_per_append as u64;
                        tally.event_bytes += bytes;
                    }
                    Err(error) => {
                        tally.failures += 1;
                        tally.first_failure.get_or_insert_with(|| error.to_string());
                    }
                }
            }
            tally
        }));
    }
    tokio::time::sleep_until(measure_start.into()).await;
    let (stats_before, cpu_before) = (store.stats(), CpuSample::now());
    tokio::time::sleep_until(deadline.into()).await;
    let (stats_after, cpu_after) = (store.stats(), CpuSample::now());
    let mut total = WriterTally::default();
    for task in tasks {
        match task.await {
            Ok(tally) => {
                total.appends += tally.appends;
                total.events += tally.events;
                total.event_bytes += tally.event_bytes;
                total.latencies.merge(&tally.latencies);
                total.failures += tally.failures;
                if total.first_failure.is_none() {
                    total.first_failure = tally.first_failure;
                }
            }
            Err(error) => {
                total.failures += 1;
                total
                    .first_failure
                    .get_or_insert_with(|| format!("writer task: {error}"));
            }
        }
    }
    WriteResult {
        load,
        appends: total.appends,
        events: total.events,
        event_bytes: total.event_bytes,
        latencies: total.latencies,
        failures: total.failures,
        first_failure: total.first_failure,
        commits: CommitStats::between(&stats_before, &stats_after),
        cpu: cpu_before.until(&cpu_after),
    }
}

#[derive(Debug)]
struct ReadResult {
    what: String,
    events: u64,
    pages: u64,
    elapsed: Duration,
    page_latencies: Latencies,
    note: String,
}

impl ReadResult {
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Appends `events` to `stream` in appends of up to 1,000, one after another.
async fn fill_stream(
    store: &EmbeddedStore,
    fixtures: &Fixtures,
    stream: &StreamName,
    events: u64,
) -> anyhow::Result<()> {
    let mut written = 0u64;
    while written < events {
        let n = (events - written).min(PAGE_EVENTS as u64) as usize;
        store
            .append(fixtures.request(stream.clone(), n, written as usize))
            .await
            .with_context(|| format!("filling {stream}"))?;
        written += n as u64;
    }
    Ok(())
}

/// Reads `stream` from its start in pages of 1,000, pass after pass, for `duration`.
async fn read_stream(
    store: &EmbeddedStore,
    stream: &StreamName,
    expected_events: u64,
    duration: Duration,
) -> anyhow::Result<ReadResult> {
    let mut page_latencies = Latencies::new();
    let (mut events, mut pages, mut passes) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while passes < MAX_STREAM_READ_PASSES && (passes == 0 || start.elapsed() < duration) {
        let mut from = Some(Revision(0));
        let mut pass_events = 0u64;
        while let Some(revision) = from {
            let began = Instant::now();
            let slice = store
                .read_stream(stream, Some(revision), Direction::Forward, PAGE_EVENTS)
                .await
                .with_context(|| format!("reading {stream}"))?;
            page_latencies.record(began.elapsed());
            pages += 1;
            pass_events += slice.events.len() as u64;
            from = slice.next;
        }
        ensure!(
            pass_events == expected_events,
            "a pass over {stream} read {pass_events} events, expected {expected_events}"
        );
        events += pass_events;
        passes += 1;
    }
    Ok(ReadResult {
        what: format!(
            "one stream of {} events, pages of {PAGE_EVENTS}",
            format::int(expected_events)
        ),
        events,
        pages,
        elapsed: start.elapsed(),
        page_latencies,
        note: format!("{passes} passes"),
    })
}

/// Scans `$all` from the first position with an empty filter, until the head or `limit`.
async fn scan_all(store: &EmbeddedStore, limit: Duration) -> anyhow::Result<ReadResult> {
    let filter = AllFilter::default();
    let mut page_latencies = Latencies::new();
    let (mut events, mut pages) = (0u64, 0u64);
    let mut from = Some(Position(0));
    let start = Instant::now();
    while let Some(position) = from {
        if start.elapsed() >= limit {
            break;
        }
        let began = Instant::now();
        let slice = store
            .read_all(position, &filter, PAGE_EVENTS)
            .await
            .context("scanning $all")?;
        page_latencies.record(began.elapsed());
        pages += 1;
        events += slice.events.len() as u64;
        from = slice.next;
    }
    let note = if from.is_some() {
        format!("stopped at the time limit of {} s", limit.as_secs_f64())
    } else {
        "the whole log, one pass".to_owned()
    };
    Ok(ReadResult {
        what: format!("`$all` from position 0, empty filter, pages of {PAGE_EVENTS}"),
        events,
        pages,
        elapsed: start.elapsed(),
        page_latencies,
        note,
    })
}

#[derive(Debug)]
struct EngineResults {
    singles: Vec<WriteResult>,
    batched: WriteResult,
    reads: Vec<ReadResult>,
    total_events: u64,
}

async fn engine_phases(args: &EngineArgs, dir: &Path) -> anyhow::Result<EngineResults> {
    let opened = Instant::now();
    let store = Arc::new(
        EmbeddedStore::open(dir, EngineConfig::default())
            .with_context(|| format!("opening the engine in {}", dir.display()))?,
    );
    eprintln!(
        "engine: open in {:.1} ms",
        opened.elapsed().as_secs_f64() * 1e3
    );
    let fixtures = Arc::new(Fixtures::new(args.streams)?);
    let warmup = Duration::from_millis(args.warmup_ms);
    let measured = Duration::from_secs_f64(args.phase_secs);

    let mut singles = Vec::new();
    for &writers in &args.writers {
        eprintln!("engine: single-event appends, {writers} writers");
        let load = WriteLoad {
            label: format!("{writers}"),
            writers,
            events_per_append: 1,
            warmup,
            measured,
        };
        singles.push(run_writes(&store, &fixtures, load).await);
    }
    eprintln!(
        "engine: batched appends, {} writers × {} events",
        args.batch_writers, args.batch_events
    );
    let load = WriteLoad {
        label: format!(
            "{} writers × {} events",
            args.batch_writers, args.batch_events
        ),
        writers: args.batch_writers,
        events_per_append: args.batch_events,
        warmup,
        measured,
    };
    let batched = run_writes(&store, &fixtures, load).await;

    let read_target = StreamName::parse("order/read-target")?;
    fill_stream(&store, &fixtures, &read_target, args.read_stream_events).await?;
    let read_time = Duration::from_secs_f64(args.read_secs);
    eprintln!("engine: reading one stream");
    let stream = read_stream(&store, &read_target, args.read_stream_events, read_time).await?;
    let total_events = store.stats().events_written;
    eprintln!("engine: scanning $all ({total_events} events)");
    let all = scan_all(&store, read_time * 2).await?;
    store.close().await.context("closing the engine")?;
    Ok(EngineResults {
        singles,
        batched,
        reads: vec![stream, all],
        total_events,
    })
}

impl EngineResults {
    fn write_to(&self, report: &mut String, limits: &MachineLimits, args: &EngineArgs) {
        let ceiling = limits.sync_ceiling();
        let _ = writeln!(
            report,
            "### Single-event appends\n\n{} s measured per row after a {} ms warm-up, \
             `ExpectedRevision::Any`, a random stream of {} for each append. \"× ceiling\" is \
             events/s over the machine's one-fsync-per-event rate ({} /s, preallocated file). \
             \"Closed-loop bound\" is writers ÷ the fdatasync p50 ({} ms): each writer waits for \
             its append, and an append cannot be acknowledged sooner than one fdatasync, so no \
             engine can exceed it on this disk. CPU is in cores of the machine: this process \
             (its writer thread), and everything else running on it.\n",
            args.phase_secs,
            args.warmup_ms,
            format::int(args.streams),
            format::rate(ceiling),
            format::ms(limits.sync_p50()),
        );
        let mut table = Table::new(&[
            "writers",
            "events/s",
            "× ceiling",
            "closed-loop bound",
            "% of bound",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "events/commit",
            "CPU bench (writer thread)",
            "CPU µs/event",
            "CPU others",
            "failures",
        ]);
        for result in &self.singles {
            table.row(vec![
                result.load.label.clone(),
                format::rate(result.events_per_second()),
                format::times(result.events_per_second() / ceiling),
                format::rate(limits.closed_loop_bound(result.load.writers)),
                format!(
                    "{:.0}%",
                    100.0 * result.events_per_second()
                        / limits.closed_loop_bound(result.load.writers)
                ),
                format::ms(result.latencies.quantile(0.50)),
                format::ms(result.latencies.quantile(0.99)),
                format::ms(result.latencies.quantile(0.999)),
                format::ms(result.latencies.max()),
                format!("{:.1}", result.commits.events_per_batch()),
                cpu_cell(&result.cpu),
                format!("{:.1}", result.cpu_micros_per_event()),
                format!("{:.2}", result.cpu.others_cores),
                format::int(result.failures),
            ]);
        }
        let _ = writeln!(report, "{table}");

        let b = &self.batched;
        let _ = writeln!(report, "### Batched appends\n");
        let mut table = Table::new(&[
            "load",
            "events/s",
            "appends/s",
            "MB/s (event bytes)",
            "MB/s (log)",
            "× ceiling",
            "append p50 ms",
            "append p99 ms",
            "CPU bench (writer thread)",
            "CPU µs/event",
            "CPU others",
            "failures",
        ]);
        let window = b.load.measured;
        table.row(vec![
            b.load.label.clone(),
            format::rate(b.events_per_second()),
            format::rate(b.appends as f64 / window.as_secs_f64()),
            format::mb_per_s(b.event_bytes, window),
            format::mb_per_s(b.commits.bytes, window),
            format::times(b.events_per_second() / ceiling),
            format::ms(b.latencies.quantile(0.50)),
            format::ms(b.latencies.quantile(0.99)),
            cpu_cell(&b.cpu),
            format!("{:.1}", b.cpu_micros_per_event()),
            format!("{:.2}", b.cpu.others_cores),
            format::int(b.failures),
        ]);
        let _ = writeln!(report, "{table}");

        let _ = writeln!(
            report,
            "### Group commit: the engine's counters (`store.stats()`) over each measured window\n"
        );
        let mut table = Table::new(&[
            "phase",
            "commits",
            "commits/s",
            "events",
            "events/commit",
            "log MB/s",
            "fsync mean ms",
            "fsync latency buckets",
        ]);
        for result in self.singles.iter().chain(std::iter::once(&self.batched)) {
            let c = &result.commits;
            let window = result.load.measured;
            let phase = if result.load.events_per_append == 1 {
                format!("single, {} writers", result.load.writers)
            } else {
                format!("batched, {}", result.load.label)
            };
            table.row(vec![
                phase,
                format::int(c.batches),
                format::rate(c.batches as f64 / window.as_secs_f64()),
                format::int(c.events),
                format!("{:.1}", c.events_per_batch()),
                format::mb_per_s(c.bytes, window),
                format::ms(c.mean_fsync()),
                c.fsync_distribution(),
            ]);
        }
        let _ = writeln!(report, "{table}");

        let _ = writeln!(
            report,
            "### Reads\n\nThe log held {} events when the reads ran (all written above).\n",
            format::int(self.total_events)
        );
        let mut table = Table::new(&[
            "read",
            "events/s",
            "events",
            "page p50 ms",
            "page p99 ms",
            "note",
        ]);
        for read in &self.reads {
            table.row(vec![
                read.what.clone(),
                format::rate(read.events_per_second()),
                format::int(read.events),
                format::ms(read.page_latencies.quantile(0.50)),
                format::ms(read.page_latencies.quantile(0.99)),
                format!("{}; {} pages", read.note, format::int(read.pages)),
            ]);
        }
        let _ = writeln!(report, "{table}");
        for result in self.singles.iter().chain(std::iter::once(&self.batched)) {
            if let Some(failure) = &result.first_failure {
                let _ = writeln!(
                    report,
                    "**{} appends failed** in phase {}; the first: `{failure}`\n",
                    result.failures, result.load.label
                );
            }
        }
        self.write_targets(report, limits);
    }

    fn write_targets(&self, report: &mut String, limits: &MachineLimits) {
        let _ = writeln!(report, "### Targets (issue 2)\n");
        let mut table = Table::new(&["target", "measured", "verdict"]);
        let by_writers = |n: usize| self.singles.iter().find(|r| r.load.writers == n);
        match by_writers(64) {
            Some(r) => table.row(vec![
                "≥ 100,000 events/s, 64 concurrent single-event writers".to_owned(),
                format!(
                    "{} events/s ({} the one-fsync-per-event ceiling; the closed-loop bound of \
                     64 writers on this disk in this run: {} events/s)",
                    format::rate(r.events_per_second()),
                    format::times(r.events_per_second() / limits.sync_ceiling()),
                    format::rate(limits.closed_loop_bound(64)),
                ),
                format::met(r.events_per_second() >= 100_000.0).to_owned(),
            ]),
            None => table.row(vec![
                "≥ 100,000 events/s, 64 writers".to_owned(),
                "not run (no 64 in --writers)".to_owned(),
                "–".to_owned(),
            ]),
        }
        let b = self.batched.events_per_second();
        table.row(vec![
            "≥ 500,000 events/s batched (100 events per append)".to_owned(),
            format!("{} events/s ({})", format::rate(b), self.batched.load.label),
            format::met(b >= 500_000.0).to_owned(),
        ]);
        if let Some(scan) = self.reads.iter().find(|r| r.what.starts_with("`$all`")) {
            let rate = scan.events_per_second();
            table.row(vec![
                "`$all` scan ≥ 2,000,000 events/s".to_owned(),
                format!("{} events/s", format::rate(rate)),
                format::met(rate >= 2_000_000.0).to_owned(),
            ]);
        }
        match by_writers(1) {
            Some(r) => {
                let p99 = r.latencies.quantile(0.99);
                let sync_p99 = limits.preallocated.latencies.quantile(0.99);
                let ratio = p99.as_secs_f64() / sync_p99.as_secs_f64().max(1e-9);
                table.row(vec![
                    "p99 of a single append, one writer, ≤ 3× fdatasync p99".to_owned(),
                    format!(
                        "{} ms = {} the fdatasync p99 of {} ms",
                        format::ms(p99),
                        format::times(ratio),
                        format::ms(sync_p99)
                    ),
                    format::met(ratio <= 3.0).to_owned(),
                ]);
            }
            None => table.row(vec![
                "p99 of one writer ≤ 3× fdatasync p99".to_owned(),
                "not run (no 1 in --writers)".to_owned(),
                "–".to_owned(),
            ]),
        }
        let _ = writeln!(report, "{table}");
    }
}
