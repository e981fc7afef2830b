//! `runnel-bench`: Runnel's benchmarks. Each subcommand prints a Markdown report, headed by the
//! command that reproduces it, on stdout (progress goes to stderr). Benchmarks measure and
//! report; they never pass or fail on a timing.

mod cpu;
mod disk;
mod engine;
mod format;
mod http;
mod latency;
mod payload;

/// The allocator the `runnel` binary ships with, so the in-process engine figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "runnel-bench",
    about = "Runnel's benchmarks, as Markdown reports"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The machine's disk limits and the embedded engine in-process: appends (1..256 writers,
    /// batched), stream reads and `$all` scans.
    Engine(engine::EngineArgs),
    /// A release `runnel serve` over HTTP against PostgreSQL (pgbench) and NATS JetStream, in
    /// the same run: appends, reads, and SSE end-to-end latency.
    Http(http::HttpArgs),
    /// Consumer groups over HTTP against NATS JetStream in the same run: pull consumers
    /// draining a backlog (receive + ack), webhook delivery throughput and end-to-end latency.
    Groups(http::GroupsArgs),
    /// The PostgreSQL engine over HTTP, one node and several on one database, beside the
    /// embedded engine and the plain PostgreSQL event table (pgbench) on the same cluster.
    Postgres(http::PostgresArgs),
}

/// The command line as typed, quoted where a shell would need it.
fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            let plain = arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@".contains(c));
            if plain && !arg.is_empty() {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match &cli.command {
        Command::Engine(args) => engine::run(args, &command_line())?,
        Command::Http(args) => http::run(args, &command_line())?,
        Command::Groups(args) => http::groups::run(args, &command_line())?,
        Command::Postgres(args) => http::scaling::run(args, &command_line())?,
    };
    print!("{report}");
    Ok(())
}
