//! `runnel keys`: create, list and revoke API keys (an admin key is needed).

use futures::TryStreamExt;
use runnel_client::{KeyRule, NewKey};

use super::CommandResult;
use super::client_args::{ClientArgs, EXIT_CODES_HELP, Failure, exit_code};
use super::output::{Table, json_line, timestamp};

#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create a key and print it; it is shown only this once.
    #[command(after_help = EXIT_CODES_HELP)]
    Create(CreateArgs),
    /// List the active keys (never their secrets).
    #[command(after_help = EXIT_CODES_HELP)]
    List(ListArgs),
    /// Revoke a key: the server refuses it from now on.
    #[command(after_help = EXIT_CODES_HELP)]
    Revoke(RevokeArgs),
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// What the key is for, for people (e.g. "order service").
    #[arg(long)]
    name: String,

    /// What the key may do.
    #[arg(long, value_parser = ["admin", "operator", "producer", "consumer", "reader"])]
    role: String,

    /// Limit the key to streams of this type (exact, or a prefix ending in `*`); repeatable.
    #[arg(long = "stream-type", value_name = "TYPE")]
    stream_types: Vec<String>,

    /// Limit the key to events of this type (exact, or a prefix ending in `*`); repeatable.
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, clap::Args)]
struct RevokeArgs {
    /// The key's id (the part after `rnl_`, as `runnel keys list` shows it).
    id: String,

    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) async fn run(args: KeysArgs) -> CommandResult {
    let outcome = match args.command {
        KeysCommand::Create(args) => create(args).await,
        KeysCommand::List(args) => list(args).await,
        KeysCommand::Revoke(args) => revoke(args).await,
    };
    Ok(exit_code(outcome))
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    let mut key = NewKey::new(args.name, args.role);
    if !args.stream_types.is_empty() || !args.event_types.is_empty() {
        key = key.with_rule(KeyRule {
            stream_types: args.stream_types,
            event_types: args.event_types,
        });
    }
    let created = client.create_key(&key).await?;
    let mut out = std::io::stdout();
    if args.client.json {
        json_line(&mut out, &created)?;
        return Ok(());
    }
    use std::io::Write as _;
    writeln!(
        out,
        "Created key {} ({}, role {}, {}).\nIt is shown only now; store it:\n\n  {}\n",
        created.id,
        created.name,
        created.role,
        rules_summary(&created.rules),
        created.key
    )?;
    Ok(())
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    let mut keys = Box::pin(client.list_keys());
    let mut out = std::io::stdout();
    let mut table = Table::new(vec![
        "ID",
        "NAME",
        "ROLE",
        "RULES",
        "CREATED_AT",
        "CREATED_BY",
    ]);
    while let Some(key) = keys.try_next().await? {
        if args.client.json {
            json_line(&mut out, &key)?;
            continue;
        }
        table.row(
            &mut out,
            vec![
                key.id,
                key.name,
                key.role,
                rules_summary(&key.rules),
                timestamp(&key.created_at),
                key.created_by.key_name,
            ],
        )?;
    }
    if !args.client.json {
        table.flush(&mut out)?;
    }
    Ok(())
}

async fn revoke(args: RevokeArgs) -> Result<(), Failure> {
    let client = args.client.client()?;
    client.revoke_key(&args.id).await?;
    if !args.client.json {
        println!("Revoked key {}.", args.id);
    }
    Ok(())
}

/// `stream_types=order event_types=Order*`, rules separated by ` | `, or `none`.
fn rules_summary(rules: &[KeyRule]) -> String {
    if rules.is_empty() {
        return "none".to_owned();
    }
    rules
        .iter()
        .map(|rule| {
            let mut parts = Vec::new();
            if !rule.stream_types.is_empty() {
                parts.push(format!("stream_types={}", rule.stream_types.join(",")));
            }
            if !rule.event_types.is_empty() {
                parts.push(format!("event_types={}", rule.event_types.join(",")));
            }
            if parts.is_empty() {
                "any".to_owned()
            } else {
                parts.join(" ")
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_one_line() {
        assert_eq!(rules_summary(&[]), "none");
        let rule = KeyRule {
            stream_types: vec!["order".into()],
            event_types: vec!["Order*".into(), "Paid".into()],
        };
        assert_eq!(
            rules_summary(&[rule, KeyRule::default()]),
            "stream_types=order event_types=Order*,Paid | any"
        );
    }
}
