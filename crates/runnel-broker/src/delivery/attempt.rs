//! One delivery attempt: the request a webhook event makes, and what its answer means.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runnel_core::RecordedEvent;

use crate::cloudevents::{self, HttpMessage, JSON_CONTENT_TYPE};
use crate::event_json::EventDocument;
use crate::group::{WebhookDelivery, WebhookFormat};
use crate::retry::parse_retry_after;
use crate::webhook::standard_headers;

use super::guard;

/// The most bytes of an error answer's body kept in the event's last error.
const ERROR_BODY_CHARS: usize = 200;
/// The most bytes of an answer read at all (the rest is dropped with the connection).
const MAX_ANSWER_BYTES: usize = 4 * 1024;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx within the time limit.
    Delivered,
    /// 410 Gone: the endpoint asks for no more deliveries.
    Gone {
        /// What to record.
        error: String,
    },
    /// Anything else: retried later.
    Failed {
        /// What to record as the event's last error.
        error: String,
        /// What the endpoint asked for in `Retry-After`.
        retry_after: Option<Duration>,
        /// The metrics' outcome label.
        outcome: &'static str,
    },
}

/// The request body and headers of `event` in `format`, without the signature headers.
pub fn message(event: &RecordedEvent, format: WebhookFormat) -> HttpMessage {
    match format {
        WebhookFormat::Json => HttpMessage {
            headers: vec![("content-type", JSON_CONTENT_TYPE.to_owned())],
            body: EventDocument::new(event).to_bytes(),
        },
        WebhookFormat::CloudEventsStructured => cloudevents::structured(event),
        WebhookFormat::CloudEventsBinary => cloudevents::binary(event),
    }
}

/// POSTs `event` to the webhook's endpoint, signed for this attempt.
pub(super) async fn deliver(
    client: &reqwest::Client,
    webhook: &WebhookDelivery,
    event: &RecordedEvent,
    allow_private: bool,
) -> AttemptResult {
    let url = match url::Url::parse(&webhook.url) {
        Ok(url) => url,
        Err(error) => {
            return AttemptResult::Failed {
                error: format!("the URL does not parse: {error}"),
                retry_after: None,
                outcome: "refused",
            };
        }
    };
    if !allow_private && let Err(error) = guard::check_url(&url) {
        return AttemptResult::Failed {
            error: error.to_string(),
            retry_after: None,
            outcome: "refused",
        };
    }
    let message = message(event, webhook.format);
    // The timestamp of this attempt, signed with the body: the id stays, the rest is fresh.
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let id = event.id.to_string();
    let mut request = client
        .post(url)
        .timeout(Duration::from_millis(webhook.timeout_ms));
    for (name, value) in &message.headers {
        request = request.header(*name, value);
    }
    for (name, value) in standard_headers(&webhook.secret, &id, timestamp, &message.body) {
        request = request.header(name, value);
    }
    let response = match request.body(message.body).send().await {
        Ok(response) => response,
        Err(error) => return failure_of(&error),
    };
    let status = response.status();
    if status.is_success() {
        return AttemptResult::Delivered;
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()));
    let location = status
        .is_redirection()
        .then(|| {
            response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|value| value.to_str().ok())
                .map(|value| value.chars().take(ERROR_BODY_CHARS).collect::<String>())
        })
        .flatten();
    let excerpt = read_excerpt(response).await;
    let mut error = format!("HTTP {status}");
    if let Some(location) = location {
        error.push_str(&format!(
            " (redirects are not followed; Location: {location})"
        ));
    }
    if !excerpt.is_empty() {
        error.push_str(": ");
        error.push_str(&excerpt);
    }
    if status == reqwest::StatusCode::GONE {
        return AttemptResult::Gone { error };
    }
    AttemptResult::Failed {
        error,
        retry_after,
        outcome: "http_error",
    }
}

/// The start of an error answer's body, as text on one line; bounded both in what is read and
/// in what is kept.
async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(ERROR_BODY_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn failure_of(error: &reqwest::Error) -> AttemptResult {
    // The error's chain carries the cause (refused, reset, the guard's refusal, ...).
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    let mut refused = false;
    while let Some(cause) = source {
        if cause.downcast_ref::<guard::GuardError>().is_some() {
            refused = true;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    let outcome = if refused {
        "refused"
    } else if error.is_timeout() {
        "timeout"
    } else {
        "connect_error"
    };
    if error.is_timeout() {
        text = format!("timed out: {text}");
    }
    AttemptResult::Failed {
        error: text,
        retry_after: None,
        outcome,
    }
}
