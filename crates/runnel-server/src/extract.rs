//! Extractors that replace axum's own (`Json`, `Query`, `Path`), whose rejections are plain
//! text: these answer every bad input with problem+json whose `detail` names the field, index or
//! parameter at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use runnel_core::{MAX_PAGE_LIMIT, StreamId, StreamName, StreamType};
use serde::de::DeserializeOwned;

use crate::problem::ApiError;
use crate::state::AppState;

/// The default page size of every listing (API.md "Conventions").
pub(crate) const DEFAULT_PAGE_LIMIT: usize = 100;

/// A JSON body, parsed with the path of any error (`events[2].type: invalid type …`).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_json_content_type(&request)?;
        let max = state.config().max_body_bytes;
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::BodyTooLarge { max }
                } else {
                    ApiError::InvalidBody(format!(
                        "the request body could not be read: {}",
                        rejection.body_text()
                    ))
                }
            })?;
        parse_json(&bytes).map(Self)
    }
}

/// JSON is accepted with no `Content-Type` (as `curl --data` users forget it) or with a JSON one;
/// anything else is most likely a mistake worth naming.
fn check_json_content_type(request: &Request) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or_default();
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            content_type: text.chars().take(100).collect(),
        })
    }
}

/// Parses one JSON document into `T`. Syntax errors are `malformed_json` with line and column;
/// shape errors are `invalid_body` with the path to the offending value.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                if path == "." {
                    ApiError::InvalidBody(format!("body: {inner}"))
                } else {
                    ApiError::InvalidBody(format!("{path}: {inner}"))
                }
            }
            _ => ApiError::MalformedJson(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::MalformedJson(format!("the body is not valid JSON: {error}")))?;
    Ok(value)
}

/// `{type}/{id}` from the path, percent-decoded and validated. An id holding `%2F` decodes to a
/// `/` and is refused by [`StreamId::parse`]: it never splits the path.
#[derive(Debug)]
pub(crate) struct StreamPath(pub(crate) StreamName);

impl<S: Send + Sync> FromRequestParts<S> for StreamPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((stream_type, stream_id)) =
            Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
        let stream_type = StreamType::parse(&stream_type)
            .map_err(|error| ApiError::invalid_name("path {type}", error))?;
        let stream_id = StreamId::parse(&stream_id)
            .map_err(|error| ApiError::invalid_name("path {id}", error))?;
        Ok(Self(StreamName::new(stream_type, stream_id)))
    }
}

/// `{type}` from the path.
#[derive(Debug)]
pub(crate) struct StreamTypePath(pub(crate) StreamType);

impl<S: Send + Sync> FromRequestParts<S> for StreamTypePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(stream_type) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
        StreamType::parse(&stream_type)
            .map(Self)
            .map_err(|error| ApiError::invalid_name("path {type}", error))
    }
}

/// The query string as name/value pairs, for parameters that may repeat (`stream_type=a&
/// stream_type=b`), which serde's urlencoded format cannot express. Unknown names are refused,
/// so a misspelt parameter is not silently ignored.
#[derive(Debug, Default)]
pub(crate) struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or_default()))
    }
}

impl QueryParams {
    pub(crate) fn parse(query: &str) -> Self {
        let pairs = form_urlencoded::parse(query.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Self { pairs }
    }

    /// Refuses any parameter not in `allowed`.
    pub(crate) fn allow_only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self
            .pairs
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            None => Ok(()),
            Some((name, _)) => Err(ApiError::InvalidQuery(format!(
                "unknown query parameter {:?}; this endpoint takes {}",
                truncate(name),
                allowed.join(", ")
            ))),
        }
    }

    /// A parameter that may appear at most once.
    pub(crate) fn single<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::InvalidQuery(format!(
                "query parameter {name} is given more than once"
            )));
        }
        Ok(first)
    }

    pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.single(name)?
            .map(|raw| {
                raw.parse::<u64>().map_err(|_| {
                    ApiError::InvalidQuery(format!(
                        "query parameter {name} must be a non-negative integer, not {:?}",
                        truncate(raw)
                    ))
                })
            })
            .transpose()
    }

    /// `limit`: 1 to 1000, default 100.
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        let Some(raw) = self.single("limit")? else {
            return Ok(DEFAULT_PAGE_LIMIT);
        };
        match raw.parse::<usize>() {
            Ok(limit) if (1..=MAX_PAGE_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(ApiError::InvalidQuery(format!(
                "query parameter limit must be an integer from 1 to {MAX_PAGE_LIMIT}, not {:?}",
                truncate(raw)
            ))),
        }
    }
}

/// Echoes of client input in messages stay short.
pub(crate) fn truncate(raw: &str) -> String {
    const MAX_ECHO_CHARS: usize = 64;
    let mut out: String = raw.chars().take(MAX_ECHO_CHARS).collect();
    if raw.chars().count() > MAX_ECHO_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        events: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(rename = "type")]
        event_type: String,
        data: Box<serde_json::value::RawValue>,
    }

    #[test]
    fn syntax_errors_are_malformed_json_with_a_position() {
        let error = parse_json::<Outer>(b"{\"events\": [").expect_err("truncated");
        assert!(
            matches!(error, ApiError::MalformedJson(ref m) if m.contains("line 1")),
            "{error}"
        );
        let error = parse_json::<Outer>(b"{\"events\": []} x").expect_err("trailing");
        assert!(matches!(error, ApiError::MalformedJson(_)), "{error}");
    }

    #[test]
    fn shape_errors_name_the_path_and_index() {
        let error = parse_json::<Outer>(
            br#"{"events": [{"type": "A", "data": 1}, {"type": 5, "data": 1}]}"#,
        )
        .expect_err("wrong type");
        assert!(
            matches!(error, ApiError::InvalidBody(ref m) if m.starts_with("events[1].type")),
            "{error}"
        );
        let error = parse_json::<Outer>(br#"{"events": [{"type": "A"}]}"#).expect_err("missing");
        assert!(
            matches!(error, ApiError::InvalidBody(ref m) if m.contains("events[0]") && m.contains("data")),
            "{error}"
        );
    }

    #[test]
    fn raw_values_survive_path_tracking_byte_for_byte() {
        let parsed = parse_json::<Outer>(br#"{"events": [{"type": "A", "data": { "b" : 1.50 }}]}"#)
            .expect("valid");
        assert_eq!(parsed.events[0].data.get(), r#"{ "b" : 1.50 }"#);
    }

    #[test]
    fn limit_is_bounded_and_defaults_to_100() {
        assert_eq!(QueryParams::parse("").limit().expect("default"), 100);
        assert_eq!(QueryParams::parse("limit=1000").limit().expect("max"), 1000);
        for bad in [
            "limit=1001",
            "limit=0",
            "limit=-1",
            "limit=x",
            "limit=1&limit=2",
        ] {
            let error = QueryParams::parse(bad).limit().expect_err(bad);
            assert!(error.to_string().contains("limit"), "{error}");
        }
    }

    #[test]
    fn repeated_parameters_are_kept_and_unknown_ones_refused() {
        let query = QueryParams::parse("stream_type=a&stream_type=b%2Fc");
        assert_eq!(query.all("stream_type").collect::<Vec<_>>(), ["a", "b/c"]);
        let error = QueryParams::parse("limt=5")
            .allow_only(&["limit"])
            .expect_err("typo");
        assert!(error.to_string().contains("limt"), "{error}");
    }
}
