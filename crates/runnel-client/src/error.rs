//! What can go wrong talking to a Runnel server, as values a caller can match on.
//!
//! The server answers every error with a problem+json body carrying a stable `code` (API.md,
//! "Conventions"). The codes a program is likely to branch on get their own variant; every other
//! answer is a [`ClientError::Problem`] that keeps the whole problem for display.

use serde::Deserialize;

/// The codes that have their own variant. Kept in one place so the mapping and its tests agree.
pub(crate) mod codes {
    pub(crate) const WRONG_EXPECTED_REVISION: &str = "wrong_expected_revision";
    pub(crate) const DUPLICATE_EVENT_ID: &str = "duplicate_event_id";
    pub(crate) const STREAM_NOT_FOUND: &str = "stream_not_found";
    /// Given to answers that are not problem+json (a proxy's HTML page, an empty 502).
    pub(crate) const UNEXPECTED_RESPONSE: &str = "unexpected_response";
}

/// An RFC 9457 problem as the server sends it, reduced to what a client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    /// The stable machine-readable code, e.g. `wrong_expected_revision`.
    pub code: String,
    pub title: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The append's `expected_revision` did not hold; nothing was written. `current` is the
    /// stream's last revision, or `None` when the stream does not exist.
    #[error("wrong expected revision: {detail}")]
    WrongExpectedRevision {
        current: Option<u64>,
        detail: String,
    },

    /// An event id of the append already exists elsewhere in the store.
    #[error("duplicate event id: {detail}")]
    DuplicateEventId { detail: String },

    /// The stream has no events.
    #[error("stream not found: {detail}")]
    StreamNotFound { detail: String },

    /// Any other error answer of the server.
    #[error("{} ({}): {}", problem.title, problem.status, problem.detail)]
    Problem { problem: Problem },

    /// The server could not be reached, or the connection failed mid-way.
    #[error("cannot reach the server: {message}")]
    Transport {
        message: String,
        #[source]
        source: Option<reqwest::Error>,
    },

    /// The server answered, but not with what the API promises.
    #[error("cannot decode the server's answer: {0}")]
    Decode(String),

    /// The caller passed something the client cannot send (a base URL that is no URL).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl ClientError {
    /// The problem `code` for errors the server reported, `None` for transport and decode errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::WrongExpectedRevision { .. } => Some(codes::WRONG_EXPECTED_REVISION),
            Self::DuplicateEventId { .. } => Some(codes::DUPLICATE_EVENT_ID),
            Self::StreamNotFound { .. } => Some(codes::STREAM_NOT_FOUND),
            Self::Problem { problem } => Some(&problem.code),
            Self::Transport { .. } | Self::Decode(_) | Self::InvalidArgument(_) => None,
        }
    }

    /// The human-readable explanation: the problem's `detail`, or the error message.
    pub fn detail(&self) -> String {
        match self {
            Self::WrongExpectedRevision { detail, .. }
            | Self::DuplicateEventId { detail }
            | Self::StreamNotFound { detail } => detail.clone(),
            Self::Problem { problem } => problem.detail.clone(),
            other => other.to_string(),
        }
    }

    /// Whether the server answered with an error (as opposed to not being reachable).
    pub fn is_api_error(&self) -> bool {
        self.code().is_some()
    }

    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Transport { .. })
    }

    pub(crate) fn transport(message: impl Into<String>, source: reqwest::Error) -> Self {
        Self::Transport {
            message: format!("{}: {}", message.into(), error_chain(&source)),
            source: Some(source),
        }
    }

    /// Maps an error answer (status and body) to the variant a caller matches on.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct ProblemBody {
            code: Option<String>,
            title: Option<String>,
            detail: Option<String>,
            /// Sent with `wrong_expected_revision`; `null` when the stream does not exist.
            current_revision: Option<u64>,
        }

        let Ok(body_json) = serde_json::from_slice::<ProblemBody>(body) else {
            return Self::Problem {
                problem: Problem {
                    status,
                    code: codes::UNEXPECTED_RESPONSE.to_owned(),
                    title: "Unexpected response".to_owned(),
                    detail: format!(
                        "the server answered {status} without a problem body: {}",
                        snippet(body)
                    ),
                },
            };
        };
        let code = body_json
            .code
            .unwrap_or_else(|| codes::UNEXPECTED_RESPONSE.to_owned());
        let detail = body_json.detail.unwrap_or_default();
        match code.as_str() {
            codes::WRONG_EXPECTED_REVISION => Self::WrongExpectedRevision {
                current: body_json.current_revision,
                detail,
            },
            codes::DUPLICATE_EVENT_ID => Self::DuplicateEventId { detail },
            codes::STREAM_NOT_FOUND => Self::StreamNotFound { detail },
            _ => Self::Problem {
                problem: Problem {
                    status,
                    code,
                    title: body_json.title.unwrap_or_default(),
                    detail,
                },
            },
        }
    }
}

/// reqwest's top-level message ("error sending request") hides the cause ("connection
/// refused"); people need both.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    // Bounded: error chains are short, but a cycle must not hang the client.
    for _ in 0..8 {
        let Some(cause) = source else { break };
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// At most a line's worth of an unexpected body, for error messages.
fn snippet(body: &[u8]) -> String {
    const MAX_SNIPPET_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut out: String = trimmed.chars().take(MAX_SNIPPET_CHARS).collect();
    if trimmed.chars().count() > MAX_SNIPPET_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_expected_revision_carries_the_current_revision() {
        let body = br#"{"type":"about:blank","status":409,"title":"Conflict","code":"wrong_expected_revision","detail":"expected 1, current 4","current_revision":4}"#;
        let error = ClientError::from_response(409, body);
        assert!(
            matches!(error, ClientError::WrongExpectedRevision { current: Some(4), ref detail } if detail == "expected 1, current 4"),
            "{error:?}"
        );
        assert_eq!(error.code(), Some("wrong_expected_revision"));
    }

    #[test]
    fn wrong_expected_revision_on_a_missing_stream_has_no_current_revision() {
        let body = br#"{"status":409,"title":"Conflict","code":"wrong_expected_revision","detail":"d","current_revision":null}"#;
        assert!(matches!(
            ClientError::from_response(409, body),
            ClientError::WrongExpectedRevision { current: None, .. }
        ));
    }

    #[test]
    fn duplicate_ids_and_missing_streams_have_their_own_variants() {
        let duplicate = br#"{"status":409,"title":"Conflict","code":"duplicate_event_id","detail":"id x exists"}"#;
        assert!(matches!(
            ClientError::from_response(409, duplicate),
            ClientError::DuplicateEventId { ref detail } if detail == "id x exists"
        ));
        let missing = br#"{"status":404,"title":"Not Found","code":"stream_not_found","detail":"no order/o-1"}"#;
        let error = ClientError::from_response(404, missing);
        assert!(matches!(error, ClientError::StreamNotFound { .. }));
        assert_eq!(error.detail(), "no order/o-1");
    }

    #[test]
    fn other_problems_keep_status_code_title_and_detail() {
        let body = br#"{"status":400,"title":"Bad Request","code":"invalid_stream_type","detail":"stream type \".x\" must not start with '.'","extra":[1]}"#;
        let error = ClientError::from_response(400, body);
        let ClientError::Problem { problem } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(problem.status, 400);
        assert_eq!(problem.code, "invalid_stream_type");
        assert_eq!(problem.title, "Bad Request");
        assert!(problem.detail.contains("must not start"));
        assert!(error.is_api_error());
        assert!(!error.is_transport());
    }

    #[test]
    fn a_body_that_is_not_a_problem_becomes_an_unexpected_response() {
        let error = ClientError::from_response(502, b"<html>Bad Gateway</html>");
        let ClientError::Problem { problem } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(problem.status, 502);
        assert_eq!(problem.code, "unexpected_response");
        assert!(problem.detail.contains("Bad Gateway"), "{}", problem.detail);

        let empty = ClientError::from_response(503, b"");
        assert!(empty.detail().contains("empty body"), "{}", empty.detail());
    }

    #[test]
    fn long_unexpected_bodies_are_cut_short() {
        let body = "x".repeat(10_000);
        let error = ClientError::from_response(500, body.as_bytes());
        assert!(error.detail().len() < 400, "{}", error.detail().len());
    }
}
