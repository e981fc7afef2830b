//! `runnel`: the server (`serve`), the PostgreSQL schema (`migrate`), an offline checker
//! (`verify`), and a command-line client.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod config;

/// The server allocates and frees small buffers on every request from several threads at once;
/// under 64 concurrent clients glibc's malloc took about a fifth of the server's CPU (its arena
/// locks, frees and consolidation, in a perf profile), which mimalloc's per-thread free lists
/// avoid.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "runnel",
    version,
    about = "An event store and event broker in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (embedded engine by default).
    Serve(Box<commands::serve::ServeArgs>),
    /// Create or upgrade Runnel's tables in PostgreSQL (before `serve --postgres`).
    Migrate(commands::migrate::MigrateArgs),
    /// Check a data directory offline: every checksum, every frame, every index entry.
    Verify(commands::verify::VerifyArgs),
    /// Append events to a stream.
    Append(commands::append::AppendArgs),
    /// Read a stream's events.
    Read(commands::read::ReadArgs),
    /// List stream types, or the streams of one type.
    Streams(commands::streams::StreamsArgs),
    /// Follow `$all` live (optionally filtered).
    Tail(commands::tail::TailArgs),
    /// Create, list and revoke API keys (needs an admin key).
    Keys(commands::keys::KeysArgs),
    /// Consumer groups: create, list, show, delete; receive and ack; parked events.
    Subs(commands::subs::SubsArgs),
    /// Make a certificate authority, and server and client certificates signed by it.
    Gencert(commands::gencert::GencertArgs),
}

fn main() -> ExitCode {
    // Before anything can open a TLS connection: one crypto provider for the whole process.
    runnel_server::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => commands::serve::run(*args).await,
            Command::Verify(args) => commands::verify::run(args).await,
            Command::Migrate(args) => commands::migrate::run(args).await,
            Command::Append(args) => commands::append::run(args).await,
            Command::Read(args) => commands::read::run(args).await,
            Command::Streams(args) => commands::streams::run(args).await,
            Command::Tail(args) => commands::tail::run(args).await,
            Command::Gencert(args) => commands::gencert::run(args).await,
            Command::Keys(args) => commands::keys::run(args).await,
            Command::Subs(args) => commands::subs::run(args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
