//! `runnel read`.

use super::CommandResult;

#[derive(Debug, clap::Args)]
pub(crate) struct ReadArgs {}

pub(crate) async fn run(_args: ReadArgs) -> CommandResult {
    anyhow::bail!("`runnel read` is being built")
}
