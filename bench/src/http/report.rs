//! The HTTP report: each system's figures, then Runnel's ratios to its peers and the targets.

use std::fmt::Write as _;
use std::path::Path;

use super::load::{LoadResult, ReadResult};
use super::{HttpArgs, Peer, PeerRun, RunnelRun};
use crate::format::{self, Table};
use crate::{cpu, disk, payload};

const RUNNEL: &str = "Runnel (HTTP)";
const POSTGRES: &str = "PostgreSQL (pgbench)";
const JETSTREAM: &str = "NATS JetStream";

pub(super) fn write(
    args: &HttpArgs,
    command_line: &str,
    work: &Path,
    runnel: &RunnelRun,
    postgres: &Peer,
    nats: &Peer,
) -> String {
    let mut out = String::new();
    header(&mut out, args, command_line, work, runnel, postgres, nats);
    singles(&mut out, runnel, postgres, nats);
    batched(&mut out, args, runnel, postgres);
    reads(&mut out, runnel, postgres);
    sse(&mut out, runnel);
    targets(&mut out, runnel, postgres, nats);
    out
}

fn header(
    out: &mut String,
    args: &HttpArgs,
    command_line: &str,
    work: &Path,
    runnel: &RunnelRun,
    postgres: &Peer,
    nats: &Peer,
) {
    let version = |peer: &Peer| match peer {
        Ok(run) => run.version.clone(),
        Err(why) => format!("not measured: {why}"),
    };
    let _ = writeln!(out, "## HTTP server and its peers\n");
    let _ = writeln!(out, "Command: `{command_line}`\n");
    let _ = writeln!(
        out,
        "- Date: {}; {} cores; data on {}; load average at the end: {}\n\
         - Runnel: `{}` (release), `runnel serve` on 127.0.0.1, acknowledged after fdatasync (group commit)\n\
         - PostgreSQL: {}, a throwaway cluster with `fsync=on`, `synchronous_commit=on`; a Message \
         DB-style table (unique `(stream_name, position)`, unique `id`) written by a PL/pgSQL \
         function that takes a per-stream advisory lock and checks the expected version \
         (`bench/sql/`); pgbench with prepared statements\n\
         - NATS: {}, JetStream on file storage with `sync_interval: always`, one stream, publish \
         with ack (`async-nats`), one connection per publisher\n\
         - Every system gets the same {}-byte JSON payload, appends go to a random one of {} \
         streams (expected revision \"any\"), one connection per client. {} s measured per phase \
         after a {} ms warm-up. One system runs at a time; the load generator shares the two \
         cores with the server (CPU columns, in cores: server · load generator · everything else).\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, usize::from),
        disk::filesystem_of(work),
        cpu::load_average(),
        runnel.banner,
        version(postgres),
        version(nats),
        payload::PAYLOAD_BYTES,
        format::int(args.streams),
        args.phase_secs,
        args.warmup_ms,
    );
}

pub(super) fn load_row(table: &mut Table, system: &str, result: &LoadResult) {
    let cores = |i: usize| result.cpu.cores.get(i).copied().unwrap_or(0.0);
    table.row(vec![
        system.to_owned(),
        result.clients.to_string(),
        format::rate(result.events_per_second()),
        format::ms(result.tally.latencies.quantile(0.50)),
        format::ms(result.tally.latencies.quantile(0.99)),
        format::ms(result.tally.latencies.quantile(0.999)),
        format!(
            "{:.2} · {:.2} · {:.2}",
            cores(0),
            cores(1),
            result.cpu.others_cores
        ),
        failures(result),
    ]);
}

pub(super) fn failures(result: &LoadResult) -> String {
    match &result.tally.first_failure {
        Some(first) => format!("{} (first: `{}`)", result.tally.failures, shorten(first)),
        None => "0".to_owned(),
    }
}

pub(super) fn shorten(text: &str) -> String {
    let line = text
        .lines()
        .next()
        .unwrap_or("")
        .replace('|', "/")
        .replace('`', "'");
    line.chars().take(160).collect()
}

pub(super) const LOAD_HEADERS: [&str; 8] = [
    "system",
    "clients",
    "events/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "CPU server · load gen · others",
    "failures",
];

fn singles(out: &mut String, runnel: &RunnelRun, postgres: &Peer, nats: &Peer) {
    let _ = writeln!(
        out,
        "### Single-event appends (latency: one append, acknowledged durable)\n"
    );
    let mut table = Table::new(&LOAD_HEADERS);
    for result in &runnel.singles {
        load_row(&mut table, RUNNEL, result);
    }
    for (name, peer) in [(POSTGRES, postgres), (JETSTREAM, nats)] {
        match peer {
            Ok(run) => run
                .singles
                .iter()
                .for_each(|r| load_row(&mut table, name, r)),
            Err(why) => table.row(vec![
                name.to_owned(),
                "–".to_owned(),
                format!("not measured: {}", shorten(why)),
                "–".to_owned(),
                "–".to_owned(),
                "–".to_owned(),
                "–".to_owned(),
                "–".to_owned(),
            ]),
        }
    }
    let _ = writeln!(out, "{table}");
    let _ = writeln!(out, "Ratios, same number of clients:\n");
    let mut table = Table::new(&["clients", "Runnel ÷ PostgreSQL", "Runnel ÷ JetStream"]);
    for result in &runnel.singles {
        table.row(vec![
            result.clients.to_string(),
            ratio_to(result, peer_singles(postgres, result.clients)),
            ratio_to(result, peer_singles(nats, result.clients)),
        ]);
    }
    let _ = writeln!(out, "{table}");
}

fn peer_singles(peer: &Peer, clients: usize) -> Option<&LoadResult> {
    peer.as_ref()
        .ok()?
        .singles
        .iter()
        .find(|r| r.clients == clients)
}

fn ratio_to(ours: &LoadResult, theirs: Option<&LoadResult>) -> String {
    match theirs {
        Some(theirs) if theirs.events_per_second() > 0.0 => {
            format::times(ours.events_per_second() / theirs.events_per_second())
        }
        _ => "–".to_owned(),
    }
}

fn batched(out: &mut String, args: &HttpArgs, runnel: &RunnelRun, postgres: &Peer) {
    let _ = writeln!(
        out,
        "### Appends of {} events (one append, or one PostgreSQL transaction; latency per append)\n",
        args.batch_events
    );
    let mut table = Table::new(&LOAD_HEADERS);
    load_row(&mut table, RUNNEL, &runnel.batched);
    let pg_batched = postgres.as_ref().ok().and_then(|run| run.batched.as_ref());
    if let Some(result) = pg_batched {
        load_row(&mut table, POSTGRES, result);
    }
    let _ = writeln!(out, "{table}");
    let _ = writeln!(
        out,
        "Payload throughput: Runnel {} MB/s; Runnel ÷ PostgreSQL = {}. JetStream has no atomic \
         multi-message publish in this setup, so it has no row here.\n",
        format::mb_per_s(
            runnel.batched.tally.events * payload::PAYLOAD_BYTES as u64,
            runnel.batched.window
        ),
        ratio_to(&runnel.batched, pg_batched),
    );
}

pub(super) fn read_rows(table: &mut Table, system: &str, reads: &[ReadResult]) {
    for read in reads {
        table.row(vec![
            system.to_owned(),
            read.what.clone(),
            format::rate(read.events_per_second()),
            format::ms(read.page_latencies.quantile(0.50)),
            format::ms(read.page_latencies.quantile(0.99)),
            read.note.clone(),
        ]);
    }
}

fn reads(out: &mut String, runnel: &RunnelRun, postgres: &Peer) {
    let _ = writeln!(out, "### Reads (one client, pages of 1,000)\n");
    let mut table = Table::new(&[
        "system",
        "read",
        "events/s",
        "page p50 ms",
        "page p99 ms",
        "note",
    ]);
    read_rows(&mut table, RUNNEL, &runnel.reads);
    if let Ok(PeerRun { reads, .. }) = postgres {
        read_rows(&mut table, POSTGRES, reads);
    }
    let _ = writeln!(out, "{table}");
    let _ = writeln!(
        out,
        "Runnel's reads return JSON over HTTP and the client parses it; pgbench receives rows over \
         PostgreSQL's protocol and discards them.\n"
    );
}

fn sse(out: &mut String, runnel: &RunnelRun) {
    let s = &runnel.sse;
    let _ = writeln!(out, "### Live subscription: append → delivered over SSE\n");
    let _ = writeln!(
        out,
        "One subscriber on `GET /subscribe` (live from the end); single-event appends from 64 \
         connections on a fixed schedule, each stamped with the time it was sent. The latency \
         runs from sending the append to the subscriber parsing the event.\n"
    );
    let mut table = Table::new(&[
        "target rate",
        "achieved rate",
        "appends sent (all)",
        "acked (measured)",
        "delivered (measured)",
        "append p50 · p99 ms",
        "end-to-end p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "failures",
    ]);
    table.row(vec![
        format!("{}/s", format::int(s.rate)),
        format!("{}/s", format::rate(s.achieved_rate)),
        format::int(s.sent),
        format::int(s.expected),
        format::int(s.delivered),
        format!(
            "{} · {}",
            format::ms(s.append_latencies.quantile(0.5)),
            format::ms(s.append_latencies.quantile(0.99))
        ),
        format::ms(s.latencies.quantile(0.50)),
        format::ms(s.latencies.quantile(0.99)),
        format::ms(s.latencies.quantile(0.999)),
        format::ms(s.latencies.max()),
        match &s.first_failure {
            Some(first) => format!("{} (first: `{}`)", s.failures, shorten(first)),
            None => "0".to_owned(),
        },
    ]);
    let _ = writeln!(out, "{table}");
}

fn targets(out: &mut String, runnel: &RunnelRun, postgres: &Peer, nats: &Peer) {
    let _ = writeln!(out, "### Targets (issue 3)\n");
    let mut table = Table::new(&["target", "measured", "verdict"]);
    let at_64 = runnel.singles.iter().find(|r| r.clients == 64);
    for (target, peer, factor) in [
        (
            "single-event appends at 64 clients ≥ 5× PostgreSQL",
            postgres,
            5.0,
        ),
        (
            "single-event appends at 64 clients ≥ JetStream's publish-ack rate",
            nats,
            1.0,
        ),
    ] {
        let theirs = peer_singles(peer, 64);
        match (at_64, theirs) {
            (Some(ours), Some(theirs)) => {
                let ratio = ours.events_per_second() / theirs.events_per_second().max(1e-9);
                table.row(vec![
                    target.to_owned(),
                    format!(
                        "{} vs {} events/s = {}",
                        format::rate(ours.events_per_second()),
                        format::rate(theirs.events_per_second()),
                        format::times(ratio)
                    ),
                    format::met(ratio >= factor).to_owned(),
                ]);
            }
            _ => table.row(vec![
                target.to_owned(),
                "not measured at 64 clients".to_owned(),
                "–".to_owned(),
            ]),
        }
    }
    let p99 = runnel.sse.latencies.quantile(0.99);
    table.row(vec![
        format!(
            "SSE end-to-end p99 ≤ 10 ms at {}/s",
            format::int(runnel.sse.rate)
        ),
        format!("{} ms", format::ms(p99)),
        format::met(runnel.sse.delivered > 0 && p99.as_secs_f64() <= 0.010).to_owned(),
    ]);
    let _ = writeln!(out, "{table}");
}
