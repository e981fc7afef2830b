//! `runnel tail`.

use super::CommandResult;

#[derive(Debug, clap::Args)]
pub(crate) struct TailArgs {}

pub(crate) async fn run(_args: TailArgs) -> CommandResult {
    anyhow::bail!("`runnel tail` is being built")
}
