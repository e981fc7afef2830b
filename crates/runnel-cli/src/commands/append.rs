//! `runnel append`.

use super::CommandResult;

#[derive(Debug, clap::Args)]
pub(crate) struct AppendArgs {}

pub(crate) async fn run(_args: AppendArgs) -> CommandResult {
    anyhow::bail!("`runnel append` is being built")
}
