//! A consumer group's name (API.md "Consumer groups": 1–128 of `[A-Za-z0-9_.-]`).

use std::fmt;

use runnel_core::{StreamId, StreamName, StreamType};

/// The longest group name, in characters (all of them ASCII).
pub const MAX_GROUP_NAME_LEN: usize = 128;

/// The system stream type that holds every group's state, one stream per group.
pub const GROUP_STREAM_TYPE: &str = "$group";

/// A validated group name. It is also the id of the group's state stream, `$group/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupName(String);

/// A name that breaks the rule; `Display` is written for a 400's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid subscription name {value:?}: must be 1 to {MAX_GROUP_NAME_LEN} characters of A-Z, a-z, 0-9, '_', '.' and '-'"
)]
pub struct GroupNameError {
    /// The offending name, cut to a screenful.
    pub value: String,
}

impl GroupName {
    /// Checks `raw` against the rule.
    pub fn parse(raw: &str) -> Result<Self, GroupNameError> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_GROUP_NAME_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(GroupNameError {
                value: raw.chars().take(64).collect(),
            })
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `$group/{name}`: the stream this group's state is recorded in.
    pub fn state_stream(&self) -> StreamName {
        StreamName::new(group_stream_type(), StreamId::from_stored(&self.0))
    }

    /// The name of a state stream's id, when it is one (listing `$group` streams).
    pub fn from_stream_id(id: &StreamId) -> Option<Self> {
        Self::parse(id.as_str()).ok()
    }
}

/// `$group`, the type of every state stream.
pub fn group_stream_type() -> StreamType {
    // A constant that follows the naming rules (checked by a test below).
    StreamType::from_stored(GROUP_STREAM_TYPE)
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_alphabet() {
        for ok in ["orders", "a", "billing.v2_x-1", &"x".repeat(128)] {
            assert!(GroupName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "$x", &"x".repeat(129)] {
            assert!(GroupName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_state_stream_is_a_valid_system_stream() {
        let name = GroupName::parse("orders.v1").expect("valid");
        let stream = name.state_stream();
        let parsed = StreamName::parse(&stream.to_string()).expect("valid stream name");
        assert_eq!(parsed, stream);
        assert!(stream.stream_type().is_system());
        assert_eq!(
            GroupName::from_stream_id(stream.stream_id()).expect("a group"),
            name
        );
    }
}
