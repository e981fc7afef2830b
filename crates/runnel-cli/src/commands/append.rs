//! `runnel append`: one event from the command line, or many as JSON lines from stdin.

use std::io::{BufRead, IsTerminal, Read, Write};

use base64::Engine as _;
use runnel_client::{AppendResult, Client, ExpectedRevision, NewEvent, Revision, StreamName};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::CommandResult;
use super::client_args::{
    ClientArgs, EXIT_CODES_HELP, Failure, exit_code, parse_expected, parse_json, parse_stream,
};
use super::output::json_line;

/// Without `--batch`, everything on stdin goes into one append; past this many events the
/// command asks for `--batch` rather than building an append no server would take.
const MAX_UNBATCHED_EVENTS: usize = 10_000;
/// The longest line read from stdin (an event is at most 15 MiB; base64 makes it longer).
const MAX_LINE_BYTES: usize = 32 * 1024 * 1024;
/// Parsed lines waiting for an append: the reader stays at most this far ahead.
const MAX_QUEUED_LINES: usize = 1_000;

const AFTER_HELP: &str = "\
Examples:
  runnel append order/o-1 OrderPlaced '{\"total\":1}' --expect no_stream
  printf '%s\\n' '{\"type\":\"A\",\"data\":{}}' '{\"type\":\"B\",\"data\":[1]}' | runnel append order/o-1

Each stdin line is {\"type\", \"data\", \"metadata\"?, \"id\"?} (or \"data_base64\" with
\"content_type\" instead of \"data\"). Blank lines are skipped.";

#[derive(Debug, clap::Args)]
#[command(after_help = format!("{AFTER_HELP}\n\n{EXIT_CODES_HELP}"))]
pub(crate) struct AppendArgs {
    /// The stream, as TYPE/ID (e.g. order/o-1).
    #[arg(value_parser = parse_stream)]
    stream: StreamName,

    /// The event type (e.g. OrderPlaced). Leave out EVENT_TYPE and DATA to read events as JSON
    /// lines from stdin.
    event_type: Option<String>,

    /// The event's data, as JSON.
    #[arg(value_parser = parse_json)]
    data: Option<Box<RawValue>>,

    /// The check the append must pass: any, no_stream, exists, or the stream's exact last
    /// revision. With --batch it applies to the first batch; each later batch then expects
    /// the revision the previous one ended at (unless this is `any`).
    #[arg(long, default_value = "any", value_parser = parse_expected)]
    expect: ExpectedRevision,

    /// The event's metadata, as JSON (for the event given on the command line).
    #[arg(long, value_parser = parse_json)]
    metadata: Option<Box<RawValue>>,

    /// The event's id (default: the server assigns a UUIDv7). Re-sending an append with the
    /// same id is answered with the original result and writes nothing.
    #[arg(long)]
    id: Option<Uuid>,

    /// Reading stdin: send this many events per append, as they arrive (default: all of
    /// stdin in one atomic append). Each batch is atomic; when one fails, the batches before
    /// it stay written and their results have been printed.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    batch: Option<u32>,

    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: AppendArgs) -> CommandResult {
    Ok(exit_code(append(args).await))
}

async fn append(args: AppendArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    let mut out = std::io::stdout();
    match (args.event_type.clone(), args.data.clone()) {
        (Some(event_type), Some(data)) => {
            if args.batch.is_some() {
                return Err(Failure::Usage(
                    "--batch applies to events read from stdin".to_owned(),
                ));
            }
            let mut event = NewEvent::raw_json(event_type, data);
            event.id = args.id;
            event.metadata = args.metadata.clone();
            let written = client.append(&args.stream, args.expect, &[event]).await?;
            report(&mut out, &args, &written)?;
            Ok(())
        }
        (None, None) => {
            if args.id.is_some() || args.metadata.is_some() {
                return Err(Failure::Usage(
                    "--id and --metadata apply to the event given on the command line; \
                     on stdin, put \"id\" and \"metadata\" in each line"
                        .to_owned(),
                ));
            }
            append_from_stdin(&client, &args, &mut out).await
        }
        _ => Err(Failure::Usage(
            "give both EVENT_TYPE and DATA, or neither to read JSON lines from stdin".to_owned(),
        )),
    }
}

async fn append_from_stdin(
    client: &Client,
    args: &AppendArgs,
    out: &mut impl Write,
) -> Result<(), Failure> {
    if std::io::stdin().is_terminal() {
        eprintln!("reading events from stdin, one JSON object per line; end with Ctrl-D");
    }
    let mut lines = spawn_stdin_reader();
    let mut expected = args.expect;
    let mut batch = Vec::new();
    let mut any_written = false;
    loop {
        let next = lines.recv().await;
        let at_end = next.is_none();
        if let Some(line) = next {
            batch.push(line?);
            if args.batch.is_none() && batch.len() > MAX_UNBATCHED_EVENTS {
                return Err(Failure::Usage(format!(
                    "more than {MAX_UNBATCHED_EVENTS} events on stdin: \
                     use --batch N to send them in several appends"
                )));
            }
        }
        let full = args.batch.is_some_and(|size| batch.len() >= size as usize);
        if !batch.is_empty() && (full || at_end) {
            let written = client
                .append(&args.stream, expected, &std::mem::take(&mut batch))
                .await?;
            report(out, args, &written)?;
            any_written = true;
            if expected != ExpectedRevision::Any {
                expected = ExpectedRevision::Exact(Revision(written.last_revision));
            }
        }
        if at_end {
            break;
        }
    }
    if !any_written {
        return Err(Failure::Usage("no events on stdin".to_owned()));
    }
    Ok(())
}

/// One line of stdin.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputEvent {
    #[serde(rename = "type")]
    event_type: String,
    /// Present means present, also when it is `null`.
    #[serde(default, deserialize_with = "present")]
    data: Option<Box<RawValue>>,
    data_base64: Option<String>,
    content_type: Option<String>,
    metadata: Option<Box<RawValue>>,
    id: Option<Uuid>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

fn parse_line(number: usize, line: &str) -> Result<NewEvent, Failure> {
    let bad = |why: String| Failure::Usage(format!("stdin line {number}: {why}"));
    let input: InputEvent = serde_json::from_str(line).map_err(|error| bad(error.to_string()))?;
    let mut event = match (input.data, input.data_base64, input.content_type) {
        (Some(data), None, None) => NewEvent::raw_json(input.event_type, data),
        (None, Some(encoded), Some(content_type)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|error| bad(format!("data_base64: {error}")))?;
            NewEvent::binary(input.event_type, bytes, content_type)
        }
        _ => {
            return Err(bad(
                "needs \"data\", or \"data_base64\" with \"content_type\"".to_owned(),
            ));
        }
    };
    event.id = input.id;
    event.metadata = input.metadata;
    Ok(event)
}

/// Reads stdin on a blocking thread and hands parsed lines over a bounded channel, so a large
/// input is read only as fast as it is appended.
fn spawn_stdin_reader() -> mpsc::Receiver<Result<NewEvent, Failure>> {
    let (sender, receiver) = mpsc::channel(MAX_QUEUED_LINES);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut reader = stdin.lock();
        let mut buffer = Vec::new();
        for number in 1.. {
            buffer.clear();
            let limit = (MAX_LINE_BYTES + 1) as u64;
            let read = match reader.by_ref().take(limit).read_until(b'\n', &mut buffer) {
                Ok(0) => return,
                Ok(read) => read,
                Err(error) => {
                    let _ = sender
                        .blocking_send(Err(Failure::Usage(format!("cannot read stdin: {error}"))));
                    return;
                }
            };
            let item = if read > MAX_LINE_BYTES {
                Err(Failure::Usage(format!(
                    "stdin line {number} is longer than {MAX_LINE_BYTES} bytes"
                )))
            } else {
                match std::str::from_utf8(&buffer) {
                    Ok(line) if line.trim().is_empty() => continue,
                    Ok(line) => parse_line(number, line.trim()),
                    Err(_) => Err(Failure::Usage(format!("stdin line {number} is not UTF-8"))),
                }
            };
            let stop = item.is_err();
            // A closed channel means the append failed and the command is ending.
            if sender.blocking_send(item).is_err() || stop {
                return;
            }
        }
    });
    receiver
}

fn report(out: &mut impl Write, args: &AppendArgs, written: &AppendResult) -> Result<(), Failure> {
    if args.client.json {
        json_line(out, written)?;
        return Ok(());
    }
    let count = written.last_revision - written.first_revision + 1;
    let noun = if count == 1 { "event" } else { "events" };
    let (revisions, positions) = if count == 1 {
        (
            format!("revision {}", written.first_revision),
            format!("position {}", written.first_position),
        )
    } else {
        (
            format!(
                "revisions {}..={}",
                written.first_revision, written.last_revision
            ),
            format!(
                "positions {}..={}",
                written.first_position, written.last_position
            ),
        )
    };
    writeln!(
        out,
        "appended {count} {noun} to {} at {revisions} ({positions})",
        args.stream
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_client::NewPayload;

    #[test]
    fn a_stdin_line_becomes_an_event_with_its_id_and_metadata() {
        let event = parse_line(
            1,
            r#"{"type":"OrderPlaced","data":{"b":1,"a":2},"metadata":{"m":1},"id":"0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e"}"#,
        )
        .expect("valid line");
        assert_eq!(event.event_type, "OrderPlaced");
        assert!(matches!(&event.payload, NewPayload::Json(raw) if raw.get() == r#"{"b":1,"a":2}"#));
        assert_eq!(event.metadata.as_ref().map(|m| m.get()), Some(r#"{"m":1}"#));
        assert!(event.id.is_some());
    }

    #[test]
    fn a_binary_stdin_line_is_decoded() {
        let event = parse_line(
            1,
            r#"{"type":"Blob","data_base64":"AAE=","content_type":"application/octet-stream"}"#,
        )
        .expect("valid line");
        assert!(matches!(
            &event.payload,
            NewPayload::Binary { bytes, content_type }
                if bytes == &[0, 1] && content_type == "application/octet-stream"
        ));
    }

    #[test]
    fn bad_stdin_lines_name_their_line_number() {
        for (line, expected) in [
            (r#"{"type":"A"}"#, "needs \"data\""),
            (r#"{"data":1}"#, "missing field `type`"),
            (
                r#"{"type":"A","data":1,"extra":1}"#,
                "unknown field `extra`",
            ),
            ("not json", "expected"),
        ] {
            let Err(Failure::Usage(message)) = parse_line(7, line) else {
                panic!("{line} should be refused");
            };
            assert!(message.starts_with("stdin line 7: "), "{message}");
            assert!(message.contains(expected), "{message}");
        }
    }
}
