//! `runnel verify`: check a data directory offline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use runnel_core::StoreError;

use super::CommandResult;

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// The data directory to check. Stop the server that uses it first.
    #[arg(value_name = "DATA_DIR")]
    data_dir: PathBuf,
}

/// Exit 0 when the directory is sound, 1 on corruption (with the file and offset), 2 when it
/// could not be checked at all.
pub(crate) async fn run(args: VerifyArgs) -> CommandResult {
    let dir = args.data_dir.clone();
    let outcome = tokio::task::spawn_blocking(move || runnel_embedded::verify(&dir))
        .await
        .context("the verify task failed")?;
    match outcome {
        Ok(report) => {
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Err(error @ StoreError::Corrupt { .. }) => {
            eprintln!("corrupt: {error}");
            Ok(ExitCode::from(1))
        }
        Err(error) => {
            Err(error).with_context(|| format!("cannot verify {}", args.data_dir.display()))
        }
    }
}
