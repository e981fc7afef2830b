//! `runnel streams`.

use super::CommandResult;

#[derive(Debug, clap::Args)]
pub(crate) struct StreamsArgs {}

pub(crate) async fn run(_args: StreamsArgs) -> CommandResult {
    anyhow::bail!("`runnel streams` is being built")
}
