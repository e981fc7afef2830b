//! `runnel serve`.

use super::CommandResult;

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {}

pub(crate) async fn run(_args: ServeArgs) -> CommandResult {
    anyhow::bail!("`runnel serve` is being built")
}
