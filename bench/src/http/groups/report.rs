//! The consumer-group report: pull drains beside JetStream's, webhook delivery, the targets.

use std::fmt::Write as _;
use std::path::Path;

use super::super::load::Drain;
use super::super::report::shorten;
use super::{GroupsArgs, GroupsRun, JetStreamRun};
use crate::format::{self, Table};
use crate::{cpu, disk, payload};

const RUNNEL: &str = "Runnel (HTTP)";
const JETSTREAM: &str = "NATS JetStream";

pub(super) fn write(
    args: &GroupsArgs,
    command_line: &str,
    work: &Path,
    runnel: &GroupsRun,
    jetstream: &Result<JetStreamRun, String>,
) -> String {
    let mut out = String::new();
    header(&mut out, args, command_line, work, runnel, jetstream);
    pulls(&mut out, args, runnel, jetstream);
    webhooks(&mut out, runnel);
    commits(&mut out, runnel);
    targets(&mut out, runnel, jetstream);
    out
}

fn header(
    out: &mut String,
    args: &GroupsArgs,
    command_line: &str,
    work: &Path,
    runnel: &GroupsRun,
    jetstream: &Result<JetStreamRun, String>,
) {
    let version = match jetstream {
        Ok(run) => run.version.clone(),
        Err(why) => format!("not measured: {why}"),
    };
    let _ = writeln!(out, "## Consumer groups and their peer\n");
    let _ = writeln!(out, "Command: `{command_line}`\n");
    let _ = writeln!(
        out,
        "- Date: {}; {} cores; data on {}; load average at the end: {}\n\
         - Runnel: `{}` (release), embedded engine, `--webhook-allow-private`; every lease and \
         every ack is a record in the group's `$group` stream, answered once durable (fdatasync)\n\
         - NATS: {}, JetStream on file storage with `sync_interval: always`, one stream, one \
         durable pull consumer per row (`AckPolicy::Explicit`, `DeliverPolicy::All`, \
         `max_ack_pending` 10,000), `async-nats`\n\
         - Backlog: {} events of {} bytes of JSON in {} streams, loaded before each system's \
         drains (Runnel: {} events/s in appends of 100; JetStream: published while it synced on \
         its own schedule, then restarted with `sync_interval: always` on the same store). Each \
         row drains the whole backlog again with a new group (Runnel, `\"start\": \
         \"beginning\"`) or a new durable consumer (JetStream), stopping after {} s.\n\
         - Load generator, consumers and the webhook receiver share the two cores with the \
         server (CPU columns, in cores: server · load generator and receiver · everything else).\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, usize::from),
        disk::filesystem_of(work),
        cpu::load_average(),
        runnel.banner,
        version,
        format::int(args.backlog),
        payload::PAYLOAD_BYTES,
        format::int(args.streams),
        format::rate(runnel.fill_rate),
        args.drain_secs,
    );
}

fn drain_row(table: &mut Table, system: &str, drain: &Drain) {
    let cores = |i: usize| drain.cpu.cores.get(i).copied().unwrap_or(0.0);
    table.row(vec![
        system.to_owned(),
        drain.consumers.to_string(),
        format::int(drain.tally.events),
        format!(
            "{:.2}{}",
            drain.elapsed.as_secs_f64(),
            if drain.drained { "" } else { " (limit)" }
        ),
        format::rate(drain.events_per_second()),
        format::ms(drain.tally.latencies.quantile(0.50)),
        format::ms(drain.tally.latencies.quantile(0.99)),
        format::int(drain.redelivered),
        format!(
            "{:.2} · {:.2} · {:.2}",
            cores(0),
            cores(1),
            drain.cpu.others_cores
        ),
        match &drain.tally.first_failure {
            Some(first) => format!("{} (first: `{}`)", drain.tally.failures, shorten(first)),
            None => "0".to_owned(),
        },
    ]);
}

fn jetstream_pull(jetstream: &Result<JetStreamRun, String>, consumers: usize) -> Option<&Drain> {
    jetstream
        .as_ref()
        .ok()?
        .pulls
        .iter()
        .find(|d| d.consumers == consumers)
}

fn pulls(
    out: &mut String,
    args: &GroupsArgs,
    runnel: &GroupsRun,
    jetstream: &Result<JetStreamRun, String>,
) {
    let _ = writeln!(
        out,
        "### Pull consumers: receive up to {} and acknowledge them, until the backlog is done\n",
        args.batch
    );
    let _ = writeln!(
        out,
        "Runnel: `POST /subscriptions/{{name}}/receive` `{{\"max\": {}, \"wait_ms\": 0}}`, then \
         `POST …/ack` with those receipts, one kept-alive connection per consumer. JetStream: \
         `fetch` of up to {} messages, then an ack of each; the batch's last ack is a double ack \
         that waits for the server's reply (acks on one connection are applied in order, so the \
         reply covers the batch). JetStream has no multi-message explicit ack, and `AckAll` \
         would acknowledge other consumers' messages, so per-message acks confirmed once per \
         batch are the equivalent of Runnel's one ack request per batch. A cycle is one \
         receive (fetch) plus its ack.\n",
        args.batch, args.batch
    );
    let mut table = Table::new(&[
        "system",
        "consumers",
        "events acked",
        "seconds",
        "events/s",
        "cycle p50 ms",
        "cycle p99 ms",
        "redelivered",
        "CPU server · load gen · others",
        "failures",
    ]);
    for drain in &runnel.pulls {
        drain_row(&mut table, RUNNEL, drain);
    }
    match jetstream {
        Ok(run) => {
            for drain in &run.pulls {
                drain_row(&mut table, JETSTREAM, drain);
            }
        }
        Err(why) => {
            let mut row = vec![JETSTREAM.to_owned()];
            row.push(format!("not measured: {}", shorten(why)));
            row.extend(std::iter::repeat_n("–".to_owned(), 8));
            table.row(row);
        }
    }
    let _ = writeln!(out, "{table}");
    let mut ratios = Table::new(&["consumers", "Runnel ÷ JetStream"]);
    for drain in &runnel.pulls {
        ratios.row(vec![
            drain.consumers.to_string(),
            ratio(drain, jetstream_pull(jetstream, drain.consumers)),
        ]);
    }
    let _ = writeln!(out, "Ratios, same number of consumers:\n\n{ratios}");
}

fn ratio(ours: &Drain, theirs: Option<&Drain>) -> String {
    match theirs {
        Some(theirs) if theirs.events_per_second() > 0.0 => {
            format::times(ours.events_per_second() / theirs.events_per_second())
        }
        _ => "–".to_owned(),
    }
}

fn webhooks(out: &mut String, runnel: &GroupsRun) {
    let d = &runnel.webhook_drain;
    let _ = writeln!(out, "### Webhook delivery of the backlog\n");
    let _ = writeln!(
        out,
        "A webhook group from the beginning (`format: json`, `max_in_flight: {}`) POSTs every \
         event to a receiver in the load generator that answers 204 at once and counts distinct \
         `webhook-id`s. Each delivery is leased and acknowledged by the server itself, one ack \
         record per event.\n",
        d.max_in_flight
    );
    let mut table = Table::new(&[
        "backlog",
        "delivered (distinct)",
        "duplicates",
        "seconds",
        "events/s",
        "CPU server · load gen + receiver · others",
    ]);
    let cores = |i: usize| d.cpu.cores.get(i).copied().unwrap_or(0.0);
    table.row(vec![
        format::int(d.backlog),
        format::int(d.arrivals.unique),
        format::int(d.arrivals.duplicates),
        format!(
            "{:.2}{}",
            d.elapsed.as_secs_f64(),
            if d.drained { "" } else { " (limit)" }
        ),
        format::rate(d.events_per_second()),
        format!(
            "{:.2} · {:.2} · {:.2}",
            cores(0),
            cores(1),
            d.cpu.others_cores
        ),
    ]);
    let _ = writeln!(out, "{table}");

    let l = &runnel.webhook_latency;
    let _ = writeln!(out, "### Webhook end to end: append → webhook received\n");
    let _ = writeln!(
        out,
        "A webhook group from the end; single-event appends from 64 connections on a fixed \
         schedule, each stamped with the time it was sent (`sent_us` in the payload). The \
         latency runs from sending the append to the receiver having read the webhook's body; \
         the first second is not measured.\n"
    );
    let mut table = Table::new(&[
        "target rate",
        "achieved rate",
        "appends sent (all)",
        "acked (measured)",
        "received (measured)",
        "duplicates",
        "append p50 · p99 ms",
        "end-to-end p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "CPU server · load gen + receiver · others",
        "failures",
    ]);
    let cores = |i: usize| l.cpu.cores.get(i).copied().unwrap_or(0.0);
    table.row(vec![
        format!("{}/s", format::int(l.rate)),
        format!("{}/s", format::rate(l.achieved_rate)),
        format::int(l.sent),
        format::int(l.expected),
        format::int(l.arrivals.measured),
        format::int(l.arrivals.duplicates),
        format!(
            "{} · {}",
            format::ms(l.append_latencies.quantile(0.5)),
            format::ms(l.append_latencies.quantile(0.99))
        ),
        format::ms(l.arrivals.latencies.quantile(0.50)),
        format::ms(l.arrivals.latencies.quantile(0.99)),
        format::ms(l.arrivals.latencies.quantile(0.999)),
        format::ms(l.arrivals.latencies.max()),
        format!(
            "{:.2} · {:.2} · {:.2}",
            cores(0),
            cores(1),
            l.cpu.others_cores
        ),
        match &l.first_failure {
            Some(first) => format!("{} (first: `{}`)", l.failures, shorten(first)),
            None => "0".to_owned(),
        },
    ]);
    let _ = writeln!(out, "{table}");
}

fn commits(out: &mut String, runnel: &GroupsRun) {
    let _ = writeln!(
        out,
        "### Where the group's state goes: the store's counters (`/metrics`) over each phase\n"
    );
    let _ = writeln!(
        out,
        "Every lease (receive) and every acknowledgement is a record appended to the group's \
         `$group` stream under an exact expected revision, durable before the answer. \
         \"Records\" counts every event the store wrote in the phase (the webhook latency \
         phase's own appends included).\n"
    );
    let mut table = Table::new(&[
        "phase",
        "events acked / delivered",
        "commits",
        "commits/s",
        "records",
        "records/commit",
        "events acked per commit",
        "fdatasync ms (mean)",
    ]);
    for (phase, events, c) in &runnel.commits {
        table.row(vec![
            phase.clone(),
            format::int(*events),
            format::int(c.commits),
            format::rate(c.per_second()),
            format::int(c.events),
            format!("{:.1}", c.events_per_commit()),
            format!("{:.1}", *events as f64 / (c.commits as f64).max(1.0)),
            format::ms(c.mean_sync()),
        ]);
    }
    let _ = writeln!(out, "{table}");
}

fn targets(out: &mut String, runnel: &GroupsRun, jetstream: &Result<JetStreamRun, String>) {
    let _ = writeln!(out, "### Targets (issue 5)\n");
    let mut table = Table::new(&["target", "measured", "verdict"]);
    for drain in &runnel.pulls {
        let target = format!(
            "pull receive+ack with {} consumer(s) ≥ JetStream's",
            drain.consumers
        );
        match jetstream_pull(jetstream, drain.consumers) {
            Some(theirs) => {
                let ratio = drain.events_per_second() / theirs.events_per_second().max(1e-9);
                table.row(vec![
                    target,
                    format!(
                        "{} vs {} events/s = {}",
                        format::rate(drain.events_per_second()),
                        format::rate(theirs.events_per_second()),
                        format::times(ratio)
                    ),
                    format::met(ratio >= 1.0).to_owned(),
                ]);
            }
            None => table.row(vec![
                target,
                "JetStream not measured".to_owned(),
                "–".to_owned(),
            ]),
        }
    }
    let l = &runnel.webhook_latency;
    let p99 = l.arrivals.latencies.quantile(0.99);
    let complete = l.arrivals.measured >= l.expected && l.expected > 0;
    table.row(vec![
        format!(
            "webhook end-to-end p99 ≤ 50 ms at {}/s",
            format::int(l.rate)
        ),
        format!(
            "{} ms ({} of {} measured events received)",
            format::ms(p99),
            format::int(l.arrivals.measured),
            format::int(l.expected)
        ),
        format::met(complete && p99.as_secs_f64() <= 0.050).to_owned(),
    ]);
    let _ = writeln!(out, "{table}");
}
