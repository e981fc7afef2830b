//! `runnel subs`: consumer groups — create (or update), list, show and delete them, receive and
//! acknowledge their messages, list and replay parked events.

use std::io::Write as _;
use std::time::Duration;

use futures::TryStreamExt;
use runnel_client::{ReceivedMessage, SubscriptionInfo, SubscriptionSpec};
use serde_json::Value;

use super::CommandResult;
use super::client_args::{ClientArgs, EXIT_CODES_HELP, Failure, exit_code};
use super::output::{Table, data_summary, json_line, timestamp};

#[derive(Debug, clap::Args)]
pub(crate) struct SubsArgs {
    #[command(subcommand)]
    command: SubsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SubsCommand {
    /// Create a subscription, or update it when it exists (`--start` counts only at creation).
    #[command(after_help = EXIT_CODES_HELP)]
    Create(CreateArgs),
    /// List the subscriptions with their lag, in-flight and parked counts.
    #[command(after_help = EXIT_CODES_HELP)]
    List(ListArgs),
    /// Show one subscription's configuration and status.
    #[command(after_help = EXIT_CODES_HELP)]
    Show(NameArgs),
    /// Delete a subscription, with its leases and parked events.
    #[command(after_help = EXIT_CODES_HELP)]
    Delete(NameArgs),
    /// Receive messages, print them, and acknowledge them once printed.
    #[command(after_help = EXIT_CODES_HELP)]
    Receive(ReceiveArgs),
    /// List parked events with their last error and delivery count.
    #[command(after_help = EXIT_CODES_HELP)]
    Parked(NameArgs),
    /// Put parked events back in line: all of them, or those at --position.
    #[command(after_help = EXIT_CODES_HELP)]
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// 1–128 of A-Z, a-z, 0-9, '_', '.' and '-'.
    name: String,

    /// Only events of streams of this type (repeatable: any of them).
    #[arg(long = "stream-type", value_name = "TYPE")]
    stream_types: Vec<String>,

    /// Only events of this type (repeatable: any of them).
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,

    /// Only events matching this EventBridge pattern over the Event JSON, e.g.
    /// '{"data": {"total": [{"numeric": [">", 100]}]}}'.
    #[arg(long, value_name = "JSON", value_parser = parse_value)]
    pattern: Option<Value>,

    /// Where a new subscription starts: `beginning`, `end` (only new events), or a position.
    #[arg(long, value_name = "beginning|end|POSITION", value_parser = parse_start)]
    start: Option<Value>,

    /// `per_stream`: one event of a stream in flight at a time, in revision order.
    #[arg(long, value_parser = ["none", "per_stream"])]
    ordering: Option<String>,

    /// How long a delivery is leased before it is delivered again [server default: 30000].
    #[arg(long, value_name = "MS")]
    ack_timeout_ms: Option<u64>,

    /// Deliveries before an event that keeps failing is parked [server default: 10].
    #[arg(long, value_name = "N")]
    max_deliveries: Option<u32>,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Args)]
struct NameArgs {
    /// The subscription's name.
    name: String,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Args)]
struct ReceiveArgs {
    /// The subscription's name.
    name: String,

    /// Messages per receive (1–1000).
    #[arg(long, default_value_t = 10, value_name = "N")]
    max: u32,

    /// How long a receive waits when nothing is ready (0–30000).
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    wait_ms: u64,

    /// Keep receiving until interrupted (Ctrl-C), instead of once.
    #[arg(long)]
    follow: bool,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The subscription's name.
    name: String,

    /// Replay only the parked event at this position (repeatable); none: all of them.
    #[arg(long = "position", value_name = "POSITION")]
    positions: Vec<u64>,

    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: SubsArgs) -> CommandResult {
    let outcome = match args.command {
        SubsCommand::Create(args) => create(args).await,
        SubsCommand::List(args) => list(args).await,
        SubsCommand::Show(args) => show(args).await,
        SubsCommand::Delete(args) => delete(args).await,
        SubsCommand::Receive(args) => {
            tokio::select! {
                biased;
                // Interrupting `--follow` is how people end it. Anything printed was acked
                // or will be delivered again.
                _ = tokio::signal::ctrl_c() => Ok(()),
                outcome = receive(&args) => outcome,
            }
        }
        SubsCommand::Parked(args) => parked(args).await,
        SubsCommand::Replay(args) => replay(args).await,
    };
    Ok(exit_code(outcome))
}

fn parse_value(raw: &str) -> Result<Value, String> {
    serde_json::from_str(raw).map_err(|error| format!("not valid JSON: {error}"))
}

fn parse_start(raw: &str) -> Result<Value, String> {
    match raw {
        "beginning" | "end" => Ok(Value::from(raw)),
        number => number
            .parse::<u64>()
            .map(|position| serde_json::json!({"position": position}))
            .map_err(|_| "expected beginning, end, or a position".to_owned()),
    }
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    let mut spec = SubscriptionSpec::new();
    for stream_type in args.stream_types {
        spec = spec.stream_type(stream_type);
    }
    for event_type in args.event_types {
        spec = spec.event_type(event_type);
    }
    if let Some(pattern) = args.pattern {
        spec = spec.pattern(pattern);
    }
    spec.start = args.start;
    spec.ordering = args.ordering;
    spec.ack_timeout_ms = args.ack_timeout_ms;
    spec.max_deliveries = args.max_deliveries;
    let (subscription, created) = client.put_subscription(&args.name, &spec).await?;
    let mut out = std::io::stdout();
    if args.client.json {
        json_line(&mut out, &subscription)?;
    } else {
        let verb = if created { "created" } else { "updated" };
        writeln!(out, "subscription {} {verb}", subscription.name)?;
        describe(&mut out, &subscription)?;
    }
    Ok(())
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    let mut subscriptions = client.list_subscriptions();
    let mut out = std::io::stdout();
    let mut table = Table::new(vec![
        "NAME",
        "DELIVERY",
        "ORDERING",
        "LAG",
        "IN_FLIGHT",
        "PARKED",
        "DELIVERED",
        "PAUSED",
    ]);
    while let Some(subscription) = subscriptions.try_next().await? {
        if args.client.json {
            json_line(&mut out, &subscription)?;
            continue;
        }
        let status = &subscription.status;
        table.row(
            &mut out,
            vec![
                subscription.name.clone(),
                mode(&subscription),
                subscription.ordering.clone(),
                status.lag.to_string(),
                status.in_flight.to_string(),
                status.parked.to_string(),
                status.delivered.to_string(),
                if status.paused { "yes" } else { "no" }.to_owned(),
            ],
        )?;
    }
    if !args.client.json {
        table.flush(&mut out)?;
    }
    Ok(())
}

async fn show(args: NameArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    let subscription = client.get_subscription(&args.name).await?;
    let mut out = std::io::stdout();
    if args.client.json {
        json_line(&mut out, &subscription)?;
    } else {
        describe(&mut out, &subscription)?;
    }
    Ok(())
}

async fn delete(args: NameArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    client.delete_subscription(&args.name).await?;
    if !args.client.json {
        writeln!(std::io::stdout(), "subscription {} deleted", args.name)?;
    }
    Ok(())
}

async fn receive(args: &ReceiveArgs) -> Result<(), Failure> {
    let wait = Duration::from_millis(args.wait_ms);
    let client = args.client.client()?;
    let mut out = std::io::stdout();
    if !args.client.json {
        writeln!(
            out,
            "{:>10}  {:<32}  {:>8}  {:<24}  {:>8}  DATA",
            "POSITION", "STREAM", "REVISION", "TYPE", "DELIVERY"
        )?;
    }
    loop {
        let messages = client.receive(&args.name, args.max, wait).await?;
        for message in &messages {
            print_message(&mut out, message, args.client.json)?;
        }
        out.flush()?;
        if !messages.is_empty() {
            // Acknowledged only once printed: a failure before this means they come again.
            let receipts: Vec<String> = messages.iter().map(|m| m.receipt.clone()).collect();
            client.ack(&args.name, &receipts).await?;
        }
        if !args.follow {
            return Ok(());
        }
    }
}

fn print_message(
    out: &mut impl std::io::Write,
    message: &ReceivedMessage,
    json: bool,
) -> Result<(), Failure> {
    if json {
        json_line(out, message)?;
        return Ok(());
    }
    let event = &message.event;
    writeln!(
        out,
        "{:>10}  {:<32}  {:>8}  {:<24}  {:>8}  {}",
        event.position,
        event.stream(),
        event.revision,
        event.event_type,
        message.delivery,
        data_summary(event)
    )?;
    Ok(())
}

async fn parked(args: NameArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    let mut parked = client.parked(&args.name);
    let mut out = std::io::stdout();
    let mut table = Table::new(vec![
        "POSITION",
        "STREAM",
        "TYPE",
        "DELIVERIES",
        "PARKED_AT",
        "LAST_ERROR",
    ]);
    while let Some(entry) = parked.try_next().await? {
        if args.client.json {
            json_line(&mut out, &entry)?;
            continue;
        }
        table.row(
            &mut out,
            vec![
                entry.position.to_string(),
                format!("{}/{}", entry.stream_type, entry.stream_id),
                entry
                    .event
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |e| e.event_type.clone()),
                entry.deliveries.to_string(),
                timestamp(&entry.parked_at),
                entry
                    .last_error
                    .as_deref()
                    .unwrap_or("-")
                    .replace(['\n', '\r'], " "),
            ],
        )?;
    }
    if !args.client.json {
        table.flush(&mut out)?;
    }
    Ok(())
}

async fn replay(args: ReplayArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    let positions = (!args.positions.is_empty()).then_some(args.positions.as_slice());
    let outcome = client.replay_parked(&args.name, positions).await?;
    let mut out = std::io::stdout();
    if args.client.json {
        json_line(&mut out, &outcome)?;
    } else {
        writeln!(out, "replayed {} parked events", outcome.replayed)?;
        if !outcome.unknown.is_empty() {
            let unknown: Vec<String> = outcome.unknown.iter().map(u64::to_string).collect();
            writeln!(out, "not parked: {}", unknown.join(", "))?;
        }
    }
    Ok(())
}

fn mode(subscription: &SubscriptionInfo) -> String {
    subscription
        .delivery
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned()
}

fn describe(out: &mut impl std::io::Write, subscription: &SubscriptionInfo) -> std::io::Result<()> {
    let status = &subscription.status;
    let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let lines = [
        ("name", subscription.name.clone()),
        ("filter", subscription.filter.to_string()),
        ("start", subscription.start.to_string()),
        ("delivery", subscription.delivery.to_string()),
        ("ordering", subscription.ordering.clone()),
        ("ack_timeout_ms", subscription.ack_timeout_ms.to_string()),
        ("max_deliveries", subscription.max_deliveries.to_string()),
        ("created_at", timestamp(&subscription.created_at)),
        ("cursor", status.cursor.to_string()),
        (
            "head",
            status
                .head
                .map_or_else(|| "-".to_owned(), |h| h.to_string()),
        ),
        ("lag", status.lag.to_string()),
        ("in_flight", status.in_flight.to_string()),
        ("pending", status.pending.to_string()),
        ("parked", status.parked.to_string()),
        ("delivered", status.delivered.to_string()),
        ("paused", optional(&status.paused_reason)),
        ("last_error", optional(&status.last_error)),
    ];
    for (key, value) in lines {
        writeln!(out, "{key:<15} {value}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_takes_the_two_words_or_a_position() {
        assert_eq!(parse_start("beginning"), Ok(Value::from("beginning")));
        assert_eq!(parse_start("end"), Ok(Value::from("end")));
        assert_eq!(parse_start("42"), Ok(serde_json::json!({"position": 42})));
        assert!(parse_start("middle").is_err());
        assert!(parse_start("-1").is_err());
    }
}
