//! `runnel migrate`: create or upgrade Runnel's tables in PostgreSQL.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use runnel_postgres::{MigrationReport, redact_url};

use super::CommandResult;

#[derive(Debug, clap::Args)]
pub(crate) struct MigrateArgs {
    /// The database, e.g. `postgres://runnel@db:5432/runnel`; a `search_path` in `options`
    /// (`?options=-c%20search_path%3Drunnel`) puts the tables in that schema.
    #[arg(long = "postgres", env = "RUNNEL_POSTGRES_URL", value_name = "URL")]
    postgres_url: String,

    /// The CA certificates (PEM) PostgreSQL's certificate must chain to (see `runnel serve
    /// --help`); without it the verifying `sslmode`s trust the system's roots.
    #[arg(long, env = "RUNNEL_POSTGRES_CA_CERT", value_name = "FILE")]
    postgres_ca_cert: Option<PathBuf>,
}

/// Applies every missing migration in one transaction; running it again, or from several
/// machines at once, finds the work done and changes nothing. Exit 0 when the schema is at
/// this version of Runnel, 2 when it could not be brought there.
pub(crate) async fn run(args: MigrateArgs) -> CommandResult {
    if let Some(path) = &args.postgres_ca_cert {
        crate::config::check_ca_cert(path).context("invalid configuration")?;
    }
    let config = runnel_postgres::PostgresConfig {
        ca_cert: args.postgres_ca_cert,
        ..runnel_postgres::PostgresConfig::new(args.postgres_url.as_str())
    };
    let report = runnel_postgres::migrate_with(&config)
        .await
        .context("the migration failed")?;
    println!("{}", describe(&report, &redact_url(&args.postgres_url)));
    Ok(ExitCode::SUCCESS)
}

fn describe(report: &MigrationReport, url: &str) -> String {
    let applied = if report.applied.is_empty() {
        "no migrations to apply, the schema was up to date".to_owned()
    } else {
        let versions: Vec<String> = report.applied.iter().map(ToString::to_string).collect();
        format!("applied migration(s) {}", versions.join(", "))
    };
    format!(
        "{url} (schema {}): {applied}; schema version {}",
        report.schema, report.version
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_applied_versions_and_the_current_one() {
        let report = MigrationReport {
            schema: "runnel".to_owned(),
            applied: vec![1, 2],
            version: 2,
        };
        assert_eq!(
            describe(&report, "postgres://db/runnel"),
            "postgres://db/runnel (schema runnel): applied migration(s) 1, 2; schema version 2"
        );
        let unchanged = MigrationReport {
            applied: Vec::new(),
            ..report
        };
        assert!(describe(&unchanged, "u").contains("up to date; schema version 2"));
    }
}
