//! One module per subcommand. Each `run` returns the process exit code it wants; an `Err` is an
//! unexpected failure that `main` reports with exit code 2.

pub(crate) mod append;
mod client_args;
pub(crate) mod gencert;
pub(crate) mod keys;
pub(crate) mod migrate;
mod output;
pub(crate) mod read;
pub(crate) mod serve;
pub(crate) mod streams;
pub(crate) mod subs;
pub(crate) mod tail;
pub(crate) mod verify;

pub(crate) type CommandResult = anyhow::Result<std::process::ExitCode>;
