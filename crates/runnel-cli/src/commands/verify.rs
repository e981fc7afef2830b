//! `runnel verify`.

use super::CommandResult;

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {}

pub(crate) async fn run(_args: VerifyArgs) -> CommandResult {
    anyhow::bail!("`runnel verify` is being built")
}
