//! Validated names. Every name that reaches an engine went through one of these constructors,
//! so the rules of API.md ("Names") are enforced in exactly one place.

use std::fmt;

use crate::error::NameError;

/// The longest stream type, in characters (all of them ASCII).
pub const MAX_STREAM_TYPE_LEN: usize = 128;
/// The longest stream id, in bytes of UTF-8.
pub const MAX_STREAM_ID_BYTES: usize = 256;
/// The longest event type, in characters (all of them ASCII).
pub const MAX_EVENT_TYPE_LEN: usize = 256;

/// The kind of entity a stream is about (`order`), the first half of a [`StreamName`].
///
/// 1–128 characters of `[A-Za-z0-9_.-]`, not starting with `.` or `-`. A leading `$` marks a
/// system type (`$audit`): such types can be named, and read, but only the server writes them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamType(String);

impl StreamType {
    /// A name an engine stored after validating it, read back under a checksum. Nothing from
    /// outside the process may come through here: use [`StreamType::parse`].
    pub fn from_stored(stored: &str) -> Self {
        Self(stored.to_owned())
    }

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let body = raw.strip_prefix('$').unwrap_or(raw);
        let invalid = |reason: &'static str| NameError::StreamType {
            value: truncate_for_message(raw),
            reason,
        };
        if body.is_empty() {
            return Err(invalid("must be 1 to 128 characters long"));
        }
        if raw.len() > MAX_STREAM_TYPE_LEN {
            return Err(invalid("must be 1 to 128 characters long"));
        }
        if body.starts_with('.') || body.starts_with('-') {
            return Err(invalid("must not start with '.' or '-'"));
        }
        if !body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(invalid("may contain only A-Z, a-z, 0-9, '_', '.' and '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// A system stream type such as `$audit`. `name` follows the ordinary rules.
    pub fn system(name: &str) -> Result<Self, NameError> {
        if name.starts_with('$') {
            return Self::parse(name);
        }
        Self::parse(&format!("${name}"))
    }

    /// System types (leading `$`) are written by the server only.
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The identity of one entity within its type (`o-1001`), the second half of a [`StreamName`].
///
/// 1–256 bytes of UTF-8 with no control characters and no `/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(String);

impl StreamId {
    /// A name an engine stored after validating it, read back under a checksum. Nothing from
    /// outside the process may come through here: use [`StreamId::parse`].
    pub fn from_stored(stored: &str) -> Self {
        Self(stored.to_owned())
    }

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let invalid = |reason: &'static str| NameError::StreamId {
            value: truncate_for_message(raw),
            reason,
        };
        if raw.is_empty() || raw.len() > MAX_STREAM_ID_BYTES {
            return Err(invalid("must be 1 to 256 bytes of UTF-8"));
        }
        if raw.contains('/') {
            return Err(invalid("must not contain '/' (percent-encode it in URLs)"));
        }
        if raw.chars().any(char::is_control) {
            return Err(invalid("must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stream's full name, `{type}/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamName {
    stream_type: StreamType,
    stream_id: StreamId,
}

impl StreamName {
    pub fn new(stream_type: StreamType, stream_id: StreamId) -> Self {
        Self {
            stream_type,
            stream_id,
        }
    }

    /// Parses `type/id`; the id is everything after the first `/` and may not hold another.
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let Some((stream_type, stream_id)) = raw.split_once('/') else {
            return Err(NameError::Stream {
                value: truncate_for_message(raw),
                reason: "must be written as {type}/{id}",
            });
        };
        Ok(Self::new(
            StreamType::parse(stream_type)?,
            StreamId::parse(stream_id)?,
        ))
    }

    pub fn stream_type(&self) -> &StreamType {
        &self.stream_type
    }

    pub fn stream_id(&self) -> &StreamId {
        &self.stream_id
    }
}

/// The kind of fact an event records (`OrderPlaced`, `com.acme.order.placed`).
///
/// 1–256 characters of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventType(String);

impl EventType {
    /// A name an engine stored after validating it, read back under a checksum. Nothing from
    /// outside the process may come through here: use [`EventType::parse`].
    pub fn from_stored(stored: &str) -> Self {
        Self(stored.to_owned())
    }

    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let invalid = |reason: &'static str| NameError::EventType {
            value: truncate_for_message(raw),
            reason,
        };
        if raw.is_empty() || raw.len() > MAX_EVENT_TYPE_LEN {
            return Err(invalid("must be 1 to 256 characters long"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        {
            return Err(invalid(
                "may contain only A-Z, a-z, 0-9, '_', '.', ':' and '-'",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! display_as_str {
    ($($name:ty),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    )*};
}
display_as_str!(StreamType, StreamId, EventType);

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream_type, self.stream_id)
    }
}

/// Error messages quote the offending value, but never more than a screenful of it.
fn truncate_for_message(raw: &str) -> String {
    const MAX_QUOTED_CHARS: usize = 64;
    if raw.chars().count() <= MAX_QUOTED_CHARS {
        return raw.to_owned();
    }
    let mut quoted: String = raw.chars().take(MAX_QUOTED_CHARS).collect();
    quoted.push('…');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stream_type_accepts_the_documented_alphabet() {
        for ok in [
            "order",
            "a",
            "Order_2.v-1",
            "x".repeat(128).as_str(),
            "$audit",
        ] {
            assert!(StreamType::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn stream_type_rejects_bad_names_with_a_reason() {
        for bad in [
            "",
            ".order",
            "-order",
            "or der",
            "order/x",
            "$",
            "é",
            &"x".repeat(129),
        ] {
            let err = StreamType::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("stream type"), "{err}");
        }
    }

    #[test]
    fn system_types_are_marked() {
        assert!(StreamType::system("audit").expect("valid").is_system());
        assert!(!StreamType::parse("audit").expect("valid").is_system());
    }

    #[test]
    fn stream_id_allows_utf8_but_not_slashes_or_controls() {
        assert!(StreamId::parse("o-1001").is_ok());
        assert!(StreamId::parse("Zürich 🚚").is_ok());
        assert!(StreamId::parse(&"é".repeat(128)).is_ok());
        assert!(StreamId::parse(&"é".repeat(129)).is_err());
        assert!(StreamId::parse("a/b").is_err());
        assert!(StreamId::parse("a\nb").is_err());
        assert!(StreamId::parse("").is_err());
    }

    #[test]
    fn stream_name_splits_at_the_first_slash() {
        let name = StreamName::parse("order/o-1").expect("valid");
        assert_eq!(name.stream_type().as_str(), "order");
        assert_eq!(name.stream_id().as_str(), "o-1");
        assert_eq!(name.to_string(), "order/o-1");
        assert!(StreamName::parse("order").is_err());
        assert!(StreamName::parse("order/a/b").is_err());
    }

    #[test]
    fn event_type_accepts_dotted_and_colon_names() {
        assert!(EventType::parse("com.acme.order:placed-v2").is_ok());
        assert!(EventType::parse("Order Placed").is_err());
        assert!(EventType::parse("").is_err());
    }

    #[test]
    fn long_values_are_truncated_in_messages() {
        let err = StreamId::parse(&"a".repeat(300)).expect_err("too long");
        assert!(err.to_string().len() < 200, "{err}");
    }

    proptest! {
        #[test]
        fn name_parsers_never_panic(raw in ".{0,300}") {
            let _ = StreamType::parse(&raw);
            let _ = StreamId::parse(&raw);
            let _ = EventType::parse(&raw);
            let _ = StreamName::parse(&raw);
        }

        #[test]
        fn valid_stream_names_round_trip(ty in "[a-z][a-z0-9_.-]{0,20}", id in "[^/\\p{Cc}]{1,40}") {
            let name = StreamName::parse(&format!("{ty}/{id}")).expect("valid by construction");
            prop_assert_eq!(StreamName::parse(&name.to_string()).expect("round trip"), name);
        }
    }
}
