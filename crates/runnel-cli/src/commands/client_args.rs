//! What every client command shares: where the server is, how to print, how failures become
//! exit codes, and the parsers of the values people type.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use runnel_client::{
    Client, ClientBuilder, ClientError, ExpectedRevision, Revision, StreamName, SubscribeFrom,
};
use serde_json::value::RawValue;

/// Appended to each client command's `--help`, so scripts can rely on it.
pub(crate) const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  the server answered with an error; stderr says `error[<code>]: <detail>`,
     with the problem's stable code (e.g. wrong_expected_revision, stream_not_found)
  2  bad usage or input, or an unexpected failure
  3  the server could not be reached (connection refused, timeout, dropped connection)";

/// `--url` and `--json`, flattened into each client command.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientArgs {
    /// The server's base URL (http:// or https://).
    #[arg(long, env = "RUNNEL_URL", default_value = "http://127.0.0.1:2113")]
    pub(crate) url: String,

    /// Trust this CA certificate (PEM) for https:// URLs, besides the system's roots: for a
    /// server whose certificate `runnel gencert` made.
    #[arg(long, env = "RUNNEL_CA_CERT", value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,

    /// Present this client certificate (PEM) to a server that requires one (mutual TLS).
    #[arg(
        long,
        env = "RUNNEL_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub(crate) client_cert: Option<PathBuf>,

    /// The private key (PEM) of --client-cert.
    #[arg(
        long,
        env = "RUNNEL_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub(crate) client_key: Option<PathBuf>,

    /// The API key to send as `Authorization: Bearer <key>`. Prefer the variable: a flag's
    /// value shows in the process list.
    #[arg(
        long,
        env = "RUNNEL_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub(crate) api_key: Option<String>,

    /// Print one JSON document per line (for scripts) instead of a table (for people).
    #[arg(long)]
    pub(crate) json: bool,
}

impl ClientArgs {
    pub(crate) fn client(&self) -> Result<Client, Failure> {
        self.client_with(|builder| builder)
    }

    /// A client with settings of the command's own.
    pub(crate) fn client_with(
        &self,
        configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    ) -> Result<Client, Failure> {
        let mut builder = Client::builder(&self.url);
        if let Some(key) = self
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            builder = builder.with_bearer_token(key);
        }
        if let Some(path) = &self.ca_cert {
            builder = builder.with_ca_certificate_pem(read_pem(path, "--ca-cert")?);
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            builder = builder.with_client_certificate_pem(
                read_pem(cert, "--client-cert")?,
                read_pem(key, "--client-key")?,
            );
        }
        configure(builder).build().map_err(|error| match error {
            ClientError::InvalidArgument(message) if message.starts_with("base URL") => {
                Failure::Usage(format!("--url: {message}"))
            }
            ClientError::InvalidArgument(message) => Failure::Usage(message),
            other => Failure::Usage(format!("cannot set up the client: {other}")),
        })
    }
}

fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|error| Failure::Usage(format!("{flag} {}: {error}", path.display())))
}

/// Why a client command stopped early. Each maps to one documented exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server answered with an error, or could not be reached.
    Client(ClientError),
    /// The command line or the input was wrong.
    Usage(String),
    /// Writing the output failed (a closed pipe is not a failure: see [`Failure::exit`]).
    Output(std::io::Error),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Self::Client(error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self::Output(error)
    }
}

impl Failure {
    /// Reports the failure on stderr and returns the documented exit code.
    pub(crate) fn exit(self) -> ExitCode {
        match self {
            Self::Client(error) => match error.code() {
                Some(code) => {
                    eprintln!("error[{code}]: {}", one_line(&error.detail()));
                    if code == "unauthenticated" {
                        eprintln!(
                            "hint: set RUNNEL_API_KEY (or pass --api-key) to a valid API key"
                        );
                    }
                    ExitCode::from(1)
                }
                None if error.is_transport() => {
                    eprintln!("error: {error}");
                    ExitCode::from(3)
                }
                None => {
                    eprintln!("error: {error}");
                    ExitCode::from(2)
                }
            },
            Self::Usage(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
            // `runnel read ... | head` closes the pipe early; the reader got what it wanted.
            Self::Output(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                ExitCode::SUCCESS
            }
            Self::Output(error) => {
                eprintln!("error: cannot write the output: {error}");
                ExitCode::from(2)
            }
        }
    }
}

/// The outcome of a command body, as an exit code.
pub(crate) fn exit_code(outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

/// Scripts read stderr line by line: a detail with newlines would look like several errors.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn parse_stream(raw: &str) -> Result<StreamName, String> {
    StreamName::parse(raw).map_err(|error| error.to_string())
}

pub(crate) fn parse_json(raw: &str) -> Result<Box<RawValue>, String> {
    serde_json::from_str::<Box<RawValue>>(raw).map_err(|error| format!("not valid JSON: {error}"))
}

/// `any`, `no_stream`, `exists`, or a revision.
pub(crate) fn parse_expected(raw: &str) -> Result<ExpectedRevision, String> {
    match raw {
        "any" => Ok(ExpectedRevision::Any),
        "no_stream" => Ok(ExpectedRevision::NoStream),
        "exists" => Ok(ExpectedRevision::Exists),
        number => number
            .parse()
            .map(|revision| ExpectedRevision::Exact(Revision(revision)))
            .map_err(|_| "expected any, no_stream, exists, or a revision number".to_owned()),
    }
}

/// A position, or `end`.
pub(crate) fn parse_from(raw: &str) -> Result<SubscribeFrom, String> {
    match raw {
        "end" => Ok(SubscribeFrom::End),
        number => number
            .parse()
            .map(SubscribeFrom::Position)
            .map_err(|_| "expected a position number or `end`".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse_from_the_documented_words_and_numbers() {
        assert_eq!(parse_expected("any"), Ok(ExpectedRevision::Any));
        assert_eq!(parse_expected("no_stream"), Ok(ExpectedRevision::NoStream));
        assert_eq!(parse_expected("exists"), Ok(ExpectedRevision::Exists));
        assert_eq!(
            parse_expected("12"),
            Ok(ExpectedRevision::Exact(Revision(12)))
        );
        assert!(parse_expected("-1").is_err());
        assert!(parse_expected("latest").is_err());
    }

    #[test]
    fn starting_points_are_a_position_or_end() {
        assert_eq!(parse_from("end"), Ok(SubscribeFrom::End));
        assert_eq!(parse_from("0"), Ok(SubscribeFrom::Position(0)));
        assert!(parse_from("start").is_err());
    }

    #[test]
    fn details_are_printed_on_one_line() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }
}
