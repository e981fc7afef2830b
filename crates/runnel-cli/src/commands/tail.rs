//! `runnel tail`: follow `$all` live, optionally filtered, over the server's event stream.

use futures::TryStreamExt;
use runnel_client::{EventFilter, ReconnectPolicy, StreamName, SubscribeFrom};

use super::CommandResult;
use super::client_args::{
    ClientArgs, EXIT_CODES_HELP, Failure, exit_code, parse_from, parse_stream,
};
use super::output::{data_summary, json_line, timestamp};

const AFTER_HELP: &str = "\
Runs until interrupted (Ctrl-C, exit code 0) or until --count events were printed. A dropped
connection is resumed where it stopped, without losing or repeating events.";

#[derive(Debug, clap::Args)]
#[command(after_help = format!("{AFTER_HELP}\n\n{EXIT_CODES_HELP}"))]
pub(crate) struct TailArgs {
    /// Only events of streams of this type (repeatable: any of them).
    #[arg(long = "stream-type", value_name = "TYPE")]
    stream_types: Vec<String>,

    /// Only events of this type (repeatable: any of them).
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,

    /// Only events of this stream, as TYPE/ID (repeatable: any of them).
    #[arg(long = "stream", value_name = "STREAM", value_parser = parse_stream)]
    streams: Vec<StreamName>,

    /// Where to start: a position in `$all` (0 for everything stored), or `end` for only
    /// events committed from now on.
    #[arg(long, default_value = "end", value_name = "POSITION|end", value_parser = parse_from)]
    from: SubscribeFrom,

    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: TailArgs) -> CommandResult {
    let outcome = tokio::select! {
        // Polled first, so the handler is in place before anything is printed.
        biased;
        // Interrupting a tail is how people end it: not an error.
        _ = tokio::signal::ctrl_c() => Ok(()),
        outcome = tail(&args) => outcome,
    };
    Ok(exit_code(outcome))
}

async fn tail(args: &TailArgs) -> Result<(), Failure> {
    // Reconnect after a drop (a restarted server), but report a wrong URL at once.
    let policy = ReconnectPolicy {
        retry_first_connection: false,
        ..ReconnectPolicy::default()
    };
    let client = args
        .client
        .client_with(|builder| builder.reconnect_policy(policy))?;
    let filter = EventFilter {
        stream_types: args.stream_types.clone(),
        event_types: args.event_types.clone(),
        streams: args.streams.clone(),
    };
    let mut subscription = client.subscribe(args.from, filter);
    let mut out = std::io::stdout();
    let mut printed: u64 = 0;
    if !args.client.json {
        use std::io::Write;
        writeln!(
            out,
            "{:>10}  {:<32}  {:>8}  {:<24}  {:<24}  DATA",
            "POSITION", "STREAM", "REVISION", "TYPE", "RECORDED_AT"
        )?;
    }
    while args.count.is_none_or(|count| printed < count) {
        let Some(event) = subscription.try_next().await? else {
            break;
        };
        if args.client.json {
            json_line(&mut out, &event)?;
        } else {
            use std::io::Write;
            writeln!(
                out,
                "{:>10}  {:<32}  {:>8}  {:<24}  {:<24}  {}",
                event.position,
                event.stream(),
                event.revision,
                event.event_type,
                timestamp(&event.recorded_at),
                data_summary(&event)
            )?;
        }
        printed += 1;
    }
    Ok(())
}
