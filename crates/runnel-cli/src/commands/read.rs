//! `runnel read`: a stream's events, oldest first (or newest first with `--backward`).

use futures::{StreamExt, TryStreamExt};
use runnel_client::{MAX_PAGE_SIZE, StreamName};

use super::CommandResult;
use super::client_args::{ClientArgs, EXIT_CODES_HELP, Failure, exit_code, parse_stream};
use super::output::{Table, data_summary, json_line, timestamp};

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub(crate) struct ReadArgs {
    /// The stream, as TYPE/ID (e.g. order/o-1).
    #[arg(value_parser = parse_stream)]
    stream: StreamName,

    /// Newest first.
    #[arg(long)]
    backward: bool,

    /// The revision to start at (default: the first, or the last with --backward).
    #[arg(long, value_name = "REVISION")]
    from: Option<u64>,

    /// Print at most this many events (default: all of them).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,

    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: ReadArgs) -> CommandResult {
    Ok(exit_code(read(args).await))
}

async fn read(args: ReadArgs) -> Result<(), Failure> {
    // A small --limit needs no more than one small page.
    let page_size = args
        .limit
        .map_or(MAX_PAGE_SIZE, |n| u32::try_from(n).unwrap_or(MAX_PAGE_SIZE));
    let client = args
        .client
        .client_with(|builder| builder.page_size(page_size))?;
    let events = if args.backward {
        client.read_stream_backward(&args.stream, args.from).boxed()
    } else {
        client.read_stream(&args.stream, args.from).boxed()
    };
    let limit = args
        .limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut events = events.take(limit);
    let mut out = std::io::stdout();
    let mut table = Table::new(vec!["REVISION", "POSITION", "TYPE", "RECORDED_AT", "DATA"]);
    while let Some(event) = events.try_next().await? {
        if args.client.json {
            json_line(&mut out, &event)?;
            continue;
        }
        table.row(
            &mut out,
            vec![
                event.revision.to_string(),
                event.position.to_string(),
                event.event_type.clone(),
                timestamp(&event.recorded_at),
                data_summary(&event),
            ],
        )?;
    }
    if !args.client.json {
        table.flush(&mut out)?;
    }
    Ok(())
}
