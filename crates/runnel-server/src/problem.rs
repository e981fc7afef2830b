//! The one place where errors become HTTP answers: every [`StoreError`] and every kind of bad
//! input maps to a status and a stable problem+json `code` (RFC 9457) here, and nowhere else.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use runnel_core::{NameError, StoreError};

use crate::auth::{AuthError, Denied};
use runnel_broker::group::{GroupError, GroupNameError};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answer (RFC 9457), with Runnel's stable `code` and, for some codes, extra fields.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: `code` is the machine-readable identity of the problem.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub problem_type: &'static str,
    /// The HTTP status phrase.
    #[schema(example = "Conflict")]
    pub title: String,
    #[schema(example = 409)]
    pub status: u16,
    /// What is wrong and where (field, index, parameter).
    pub detail: String,
    /// Stable, snake_case, for programs to branch on.
    #[schema(example = "wrong_expected_revision")]
    pub code: &'static str,
    /// `wrong_expected_revision`: the stream's last revision, `null` when it has no events.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>, nullable)]
    pub current_revision: Option<Option<u64>>,
    /// `duplicate_event_id`: the id that already exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<uuid::Uuid>,
    /// `limit_exceeded`, `body_too_large`, `too_many_subscriptions`, `overloaded`: the name of
    /// the configured limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "max_event_bytes")]
    pub limit: Option<&'static str>,
    /// The configured value of `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// What the request carried, for `limit_exceeded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<u64>,
    /// The offending event's index in the append, for per-event limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// `invalid_subscription`: the JSON pointer (RFC 6901) of the offending part of the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "/filter/stream_types/1")]
    pub pointer: Option<String>,
    /// Seconds to wait before retrying (also sent as the `Retry-After` header).
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
    /// Methods the route accepts, for 405 (also sent as the `Allow` header).
    #[serde(skip)]
    pub allow: Option<String>,
    /// The challenge of a 401 (sent as the `WWW-Authenticate` header).
    #[serde(skip)]
    pub www_authenticate: Option<&'static str>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            problem_type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            current_revision: None,
            event_id: None,
            limit: None,
            max: None,
            actual: None,
            index: None,
            pointer: None,
            retry_after_secs: None,
            allow: None,
            www_authenticate: None,
        }
    }

    fn with_limit(mut self, limit: &'static str, max: u64) -> Self {
        self.limit = Some(limit);
        self.max = Some(max);
        self
    }

    fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        // Serialising this struct cannot fail (no maps with non-string keys, no custom code).
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            headers.insert(header::ALLOW, allow);
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),

    /// A name that breaks API.md's rules; `location` says where it was (`path`, `events[2].type`).
    #[error("{location}: {source}")]
    InvalidName {
        location: String,
        #[source]
        source: NameError,
    },

    /// The body is not JSON at all.
    #[error("{0}")]
    MalformedJson(String),

    /// The body is JSON of the wrong shape: a wrong type, a missing or unknown field.
    #[error("{0}")]
    InvalidBody(String),

    #[error("{0}")]
    InvalidQuery(String),

    #[error("{0}")]
    InvalidPath(String),

    #[error("{0}")]
    InvalidHeader(String),

    #[error("the body must be JSON (Content-Type: application/json), not {content_type:?}")]
    UnsupportedMediaType { content_type: String },

    #[error("the request body is larger than max_body_bytes = {max}")]
    BodyTooLarge { max: usize },

    #[error("no route matches {path}")]
    RouteNotFound { path: String },

    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },

    #[error("too many live subscriptions are open (max_subscriptions = {max}); retry later")]
    TooManySubscriptions { max: usize },

    #[error(
        "this key holds too many live subscriptions (max_subscriptions_per_key = {max}); close one first"
    )]
    TooManySubscriptionsForKey { max: usize },

    #[error("the server is busy (max_concurrent_requests = {max}); retry later")]
    Busy { max: usize },

    #[error("too many connections are open (max_connections = {max}); retry later")]
    TooManyConnections { max: usize },

    #[error("the request line and headers take {actual} bytes, more than max_header_bytes = {max}")]
    HeadersTooLarge { max: usize, actual: usize },

    #[error("the request did not finish within request_timeout_ms = {ms}")]
    Timeout { ms: u64 },

    #[error("the server is shutting down")]
    ShuttingDown,

    #[error("the server is not ready: {0}")]
    NotReady(#[source] StoreError),

    /// No key, or not a valid one: what was wrong, never which keys exist.
    #[error("{0}")]
    Unauthenticated(String),

    /// A valid key without the right.
    #[error("{0}")]
    Forbidden(String),

    #[error(transparent)]
    Auth(#[from] AuthError),

    /// A consumer group's request failed.
    #[error(transparent)]
    Group(#[from] GroupError),

    #[error("path {{name}}: {0}")]
    InvalidSubscriptionName(#[source] GroupNameError),

    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid_name(location: impl Into<String>, source: NameError) -> Self {
        Self::InvalidName {
            location: location.into(),
            source,
        }
    }

    /// The problem+json answer for this error.
    pub fn to_problem(&self) -> Problem {
        let retry_after_secs = RETRY_AFTER_SECS;
        use StatusCode as S;
        let detail = self.to_string();
        match self {
            Self::Store(error) => store_problem(error, retry_after_secs),
            Self::InvalidName { source, .. } => {
                Problem::new(S::BAD_REQUEST, name_code(source), detail)
            }
            Self::MalformedJson(_) => Problem::new(S::BAD_REQUEST, "malformed_json", detail),
            Self::InvalidBody(_) => Problem::new(S::BAD_REQUEST, "invalid_body", detail),
            Self::InvalidQuery(_) => Problem::new(S::BAD_REQUEST, "invalid_query", detail),
            Self::InvalidPath(_) => Problem::new(S::BAD_REQUEST, "invalid_path", detail),
            Self::InvalidHeader(_) => Problem::new(S::BAD_REQUEST, "invalid_header", detail),
            Self::UnsupportedMediaType { .. } => {
                Problem::new(S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", detail)
            }
            Self::BodyTooLarge { max } => {
                Problem::new(S::PAYLOAD_TOO_LARGE, "body_too_large", detail)
                    .with_limit("max_body_bytes", *max as u64)
            }
            Self::RouteNotFound { .. } => Problem::new(S::NOT_FOUND, "route_not_found", detail),
            Self::MethodNotAllowed { .. } => {
                Problem::new(S::METHOD_NOT_ALLOWED, "method_not_allowed", detail)
            }
            Self::TooManySubscriptions { max } => {
                Problem::new(S::TOO_MANY_REQUESTS, "too_many_subscriptions", detail)
                    .with_limit("max_subscriptions", *max as u64)
                    .retry_after(retry_after_secs)
            }
            Self::TooManySubscriptionsForKey { max } => {
                Problem::new(S::TOO_MANY_REQUESTS, "too_many_subscriptions", detail)
                    .with_limit("max_subscriptions_per_key", *max as u64)
                    .retry_after(retry_after_secs)
            }
            Self::Busy { max } => Problem::new(S::SERVICE_UNAVAILABLE, "overloaded", detail)
                .with_limit("max_concurrent_requests", *max as u64)
                .retry_after(retry_after_secs),
            Self::TooManyConnections { max } => {
                Problem::new(S::SERVICE_UNAVAILABLE, "too_many_connections", detail)
                    .with_limit("max_connections", *max as u64)
                    .retry_after(retry_after_secs)
            }
            Self::HeadersTooLarge { max, actual } => {
                let mut problem = Problem::new(
                    S::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers_too_large",
                    detail,
                )
                .with_limit("max_header_bytes", *max as u64);
                problem.actual = Some(*actual as u64);
                problem
            }
            Self::Timeout { ms } => Problem::new(S::SERVICE_UNAVAILABLE, "request_timeout", detail)
                .with_limit("request_timeout_ms", *ms)
                .retry_after(retry_after_secs),
            Self::ShuttingDown => Problem::new(S::SERVICE_UNAVAILABLE, "shutting_down", detail)
                .retry_after(retry_after_secs),
            Self::NotReady(_) => Problem::new(S::SERVICE_UNAVAILABLE, "not_ready", detail)
                .retry_after(retry_after_secs),
            Self::Unauthenticated(_) => {
                let mut problem = Problem::new(S::UNAUTHORIZED, "unauthenticated", detail);
                problem.www_authenticate = Some(BEARER_CHALLENGE);
                problem
            }
            Self::Forbidden(_) => Problem::new(S::FORBIDDEN, "forbidden", detail),
            Self::Auth(error) => auth_problem(error, retry_after_secs),
            Self::Group(error) => group_problem(error, retry_after_secs),
            Self::InvalidSubscriptionName(_) => {
                Problem::new(S::BAD_REQUEST, "invalid_subscription_name", detail)
            }
            Self::Internal(_) => Problem::new(S::INTERNAL_SERVER_ERROR, "internal_error", detail),
        }
    }
}

/// The `WWW-Authenticate` challenge of every 401 (RFC 6750).
const BEARER_CHALLENGE: &str = "Bearer realm=\"runnel\"";

fn auth_problem(error: &AuthError, retry_after_secs: u64) -> Problem {
    use StatusCode as S;
    let detail = error.to_string();
    match error {
        AuthError::Store(error) => store_problem(error, retry_after_secs),
        AuthError::KeyNotFound { .. } => Problem::new(S::NOT_FOUND, "key_not_found", detail),
        AuthError::TooManyKeys { max } => {
            Problem::new(S::CONFLICT, "too_many_keys", detail).with_limit("max_keys", *max as u64)
        }
        AuthError::NotApplied => Problem::new(S::SERVICE_UNAVAILABLE, "keyring_busy", detail)
            .retry_after(retry_after_secs),
        // The keyring's own state is for the operator's log.
        AuthError::Keyring(_) | AuthError::InvalidConfig(_) => Problem::new(
            S::SERVICE_UNAVAILABLE,
            "keyring_unavailable",
            "the server cannot use its keyring; the server log has the cause",
        ),
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        Self::Forbidden(denied.to_string())
    }
}

/// The `Retry-After` of overload answers: long enough for a queue of appends to drain, short
/// enough that a client does not idle.
const RETRY_AFTER_SECS: u64 = 1;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        if problem.status >= 500 {
            tracing::error!(error = %self, code = problem.code, "request failed");
        }
        problem.into_response()
    }
}

fn group_problem(error: &GroupError, retry_after_secs: u64) -> Problem {
    use StatusCode as S;
    let detail = error.to_string();
    match error {
        GroupError::NotFound { .. } => Problem::new(S::NOT_FOUND, "subscription_not_found", detail),
        GroupError::InvalidConfig(invalid) => {
            let mut problem = Problem::new(S::BAD_REQUEST, "invalid_subscription", detail);
            problem.pointer = Some(invalid.pointer.clone());
            problem
        }
        GroupError::TooManyGroups { max } => {
            Problem::new(S::CONFLICT, "subscription_limit_reached", detail)
                .with_limit("max_groups", *max as u64)
        }
        GroupError::WrongDeliveryMode { .. } => {
            Problem::new(S::CONFLICT, "wrong_delivery_mode", detail)
        }
        GroupError::Contended { .. } => {
            Problem::new(S::SERVICE_UNAVAILABLE, "subscription_contended", detail)
                .retry_after(retry_after_secs)
        }
        GroupError::ShuttingDown => Problem::new(S::SERVICE_UNAVAILABLE, "shutting_down", detail)
            .retry_after(retry_after_secs),
        GroupError::Store(error) => store_problem(error, retry_after_secs),
        // The state stream's contents are for the operator's log.
        GroupError::Corrupt { .. } => Problem::new(
            S::INTERNAL_SERVER_ERROR,
            "subscription_unreadable",
            "the subscription's state cannot be read; the server log has the cause",
        ),
    }
}

fn name_code(error: &NameError) -> &'static str {
    match error {
        NameError::StreamType { .. } => "invalid_stream_type",
        NameError::StreamId { .. } => "invalid_stream_id",
        NameError::Stream { .. } => "invalid_stream",
        NameError::EventType { .. } => "invalid_event_type",
    }
}

fn store_problem(error: &StoreError, retry_after_secs: u64) -> Problem {
    use StatusCode as S;
    let detail = error.to_string();
    match error {
        StoreError::WrongExpectedRevision { current, .. } => {
            let mut problem = Problem::new(S::CONFLICT, "wrong_expected_revision", detail);
            problem.current_revision = Some(current.map(|r| r.0));
            problem
        }
        StoreError::DuplicateEventId { id } => {
            let mut problem = Problem::new(S::CONFLICT, "duplicate_event_id", detail);
            problem.event_id = Some(*id);
            problem
        }
        StoreError::StreamNotFound { .. } => Problem::new(S::NOT_FOUND, "stream_not_found", detail),
        StoreError::EmptyAppend => Problem::new(
            S::BAD_REQUEST,
            "empty_append",
            "events: an append needs at least one event",
        ),
        StoreError::SystemStream { .. } => Problem::new(S::FORBIDDEN, "system_stream", detail),
        StoreError::LimitExceeded {
            limit,
            max,
            actual,
            index,
        } => {
            let mut problem = Problem::new(S::PAYLOAD_TOO_LARGE, "limit_exceeded", detail)
                .with_limit(limit.name(), *max);
            problem.actual = Some(*actual);
            problem.index = *index;
            problem
        }
        StoreError::Overloaded { .. } => {
            Problem::new(S::SERVICE_UNAVAILABLE, "overloaded", detail).retry_after(retry_after_secs)
        }
        StoreError::ShuttingDown => Problem::new(S::SERVICE_UNAVAILABLE, "shutting_down", detail)
            .retry_after(retry_after_secs),
        StoreError::Poisoned { .. } => {
            Problem::new(S::SERVICE_UNAVAILABLE, "store_poisoned", detail)
        }
        StoreError::Unavailable { .. } => {
            Problem::new(S::SERVICE_UNAVAILABLE, "store_unavailable", detail)
                .retry_after(retry_after_secs)
        }
        // Files, offsets and index internals are for the operator's log, not for clients.
        StoreError::Corrupt { .. }
        | StoreError::Io { .. }
        | StoreError::Index { .. }
        | StoreError::InvalidConfig { .. }
        // Only the server writes system streams: this one would be its own bug.
        | StoreError::NotASystemStream { .. } => Problem::new(
            S::INTERNAL_SERVER_ERROR,
            "store_error",
            "the store failed to serve this request; the server log has the cause",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_core::{ExpectedRevision, LimitKind, StreamName};

    fn body(problem: &Problem) -> serde_json::Value {
        serde_json::to_value(problem).expect("serialises")
    }

    #[test]
    fn wrong_expected_revision_carries_current_revision_even_when_null() {
        let stream = StreamName::parse("order/o-1").expect("valid");
        let missing = ApiError::from(StoreError::WrongExpectedRevision {
            stream: stream.clone(),
            expected: ExpectedRevision::Exists,
            current: None,
        })
        .to_problem();
        assert_eq!(missing.status, 409);
        assert_eq!(body(&missing)["current_revision"], serde_json::Value::Null);
        assert!(
            body(&missing)
                .as_object()
                .expect("object")
                .contains_key("current_revision")
        );

        let at_3 = ApiError::from(StoreError::WrongExpectedRevision {
            stream,
            expected: ExpectedRevision::NoStream,
            current: Some(runnel_core::Revision(3)),
        })
        .to_problem();
        assert_eq!(body(&at_3)["current_revision"], 3);
        assert_eq!(body(&at_3)["code"], "wrong_expected_revision");
    }

    #[test]
    fn limits_name_the_limit_its_value_and_the_event() {
        let problem = ApiError::from(StoreError::LimitExceeded {
            limit: LimitKind::BytesPerEvent,
            max: 10,
            actual: 11,
            index: Some(2),
        })
        .to_problem();
        let json = body(&problem);
        assert_eq!(problem.status, 413);
        assert_eq!(json["limit"], "max_event_bytes");
        assert_eq!(json["max"], 10);
        assert_eq!(json["actual"], 11);
        assert_eq!(json["index"], 2);
        assert!(json["detail"].as_str().expect("detail").contains("event 2"));
    }

    #[test]
    fn overload_answers_carry_retry_after() {
        let problem = ApiError::from(StoreError::Overloaded { queued: 5 }).to_problem();
        assert_eq!(problem.status, 503);
        let response = problem.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn internal_store_errors_do_not_leak_file_paths() {
        let problem = ApiError::from(StoreError::Corrupt {
            file: "/secret/data/00000.log".into(),
            offset: 12,
            reason: "bad crc".into(),
        })
        .to_problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("/secret"));
    }

    #[test]
    fn every_problem_has_the_required_members() {
        let problem = ApiError::ShuttingDown.to_problem();
        let json = body(&problem);
        for member in ["type", "title", "status", "detail", "code"] {
            assert!(json.get(member).is_some(), "{member} missing in {json}");
        }
    }
}
