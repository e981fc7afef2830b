//! `runnel streams`: the stream types, or the streams of one type.

use futures::{StreamExt, TryStreamExt};

use super::CommandResult;
use super::client_args::{ClientArgs, EXIT_CODES_HELP, Failure, exit_code};
use super::output::{Table, json_line, timestamp};

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub(crate) struct StreamsArgs {
    /// List the streams of this type (in stream-id order) instead of the types.
    stream_type: Option<String>,

    /// Print at most this many entries (default: all of them).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,

    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: StreamsArgs) -> CommandResult {
    Ok(exit_code(list(args).await))
}

async fn list(args: StreamsArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    let limit = args
        .limit
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut out = std::io::stdout();
    let json = args.client.json;
    match &args.stream_type {
        None => {
            let mut types = client.list_stream_types().take(limit);
            let mut table = Table::new(vec!["STREAM_TYPE", "STREAMS"]);
            while let Some(info) = types.try_next().await? {
                if json {
                    json_line(&mut out, &info)?;
                } else {
                    table.row(&mut out, vec![info.stream_type, info.streams.to_string()])?;
                }
            }
            if !json {
                table.flush(&mut out)?;
            }
        }
        Some(stream_type) => {
            let mut streams = client.list_streams(stream_type).take(limit);
            let mut table = Table::new(vec!["STREAM", "REVISION", "CREATED_AT", "UPDATED_AT"]);
            while let Some(info) = streams.try_next().await? {
                if json {
                    json_line(&mut out, &info)?;
                    continue;
                }
                let time = |at: Option<_>| at.as_ref().map_or_else(|| "-".to_owned(), timestamp);
                table.row(
                    &mut out,
                    vec![
                        format!("{}/{}", info.stream_type, info.stream_id),
                        info.revision.to_string(),
                        time(info.created_at),
                        time(info.updated_at),
                    ],
                )?;
            }
            if !json {
                table.flush(&mut out)?;
            }
        }
    }
    Ok(())
}
