//! Event patterns: the content-filtering language of Amazon EventBridge, compiled once and then
//! matched against events as JSON values (API.md "Event (as returned)").
//!
//! # The language
//!
//! A pattern is a JSON object shaped like the events it selects:
//!
//! ```json
//! {"type": ["OrderPlaced"], "data": {"total": [{"numeric": [">", 100]}], "country": ["NL", "BE"]}}
//! ```
//!
//! - Every field named in the pattern must match (AND); a field whose pattern value is an
//!   object descends into the event's object of the same name; a field whose pattern value is an
//!   array is a *leaf* and matches when any of the array's matchers matches (OR).
//! - `"$or": [pattern, pattern, ...]` (at least two objects) may appear at any object level and
//!   matches when any branch matches, alongside the other fields of that object.
//! - When the event holds an array where the pattern expects a value, the field matches when any
//!   element matches; nested arrays are flattened. When the pattern descends (an object) into an
//!   event array of objects, one and the same element must satisfy the whole sub-pattern, so two
//!   fields are never matched in different elements of one array (EventBridge's
//!   "array-consistent" matching). This holds across `$or` too: a branch is matched as if its
//!   fields were written beside the fields around the `$or`, so a field and a branch that both
//!   descend into one array of objects must hold in the same element.
//! - Matchers: exact strings, numbers, booleans and `null`; `{"prefix": "..."}` and
//!   `{"suffix": "..."}` (each also as `{"prefix": {"equals-ignore-case": "..."}}`);
//!   `{"equals-ignore-case": "..."}`; `{"wildcard": "a*b"}` (`\*` is a literal star, `\\` a
//!   backslash, consecutive unescaped stars are refused); `{"anything-but": ...}` with a string,
//!   a number, a list of only strings or only numbers, or `{"prefix"|"suffix"|"wildcard"|
//!   "equals-ignore-case": ...}`; `{"numeric": [">", 0, "<=", 5]}` (`=`, `<`, `<=`, `>`, `>=`,
//!   a lower bound optionally followed by an upper one); `{"exists": true|false}`;
//!   `{"cidr": "10.0.0.0/24"}` (IPv4 and IPv6).
//!
//! # Semantics worth knowing
//!
//! - Only leaves are values: an event field holding an object (or an empty array) does not
//!   "exist" for `exists`, and no value matcher matches it. `null` is a value: `[null]` matches
//!   it and `{"exists": true}` accepts it. The Event JSON always carries `metadata` (as `null`
//!   when an event has none), so match missing metadata with `[null]`.
//! - `{"exists": false}` matches when the field has no leaf value, including when a parent
//!   object along the way is missing.
//! - Types are never converted: the string `"5"` does not equal the number `5`. Numbers compare
//!   by value (`300` equals `3.0e2`; integers compare exactly).
//! - Prefix, suffix, wildcard, equals-ignore-case and cidr match string values only; numeric
//!   matches numbers only.
//! - `anything-but` matches every *present* leaf value that its operand does not match (so a
//!   number passes `{"anything-but": "initializing"}`); it never matches a missing field.
//!
//! # Deviations from EventBridge
//!
//! - Numbers are compared as IEEE-754 doubles over their whole range. EventBridge limits
//!   numeric matching to ±5.0e9 with six digits after the decimal point; we accept any JSON
//!   number and compare exactly (integers beyond 2^53 lose precision in `numeric` ranges).
//! - `"$or"` is always the operator. EventBridge, for backward compatibility, treats a `"$or"`
//!   that is not an array of two or more objects as an ordinary field name; we reject it.
//! - Keys containing dots are matched literally (`{"a.b": [1]}` looks for a field named `a.b`);
//!   EventBridge joins paths with dots and conflates the two.
//! - Exact string matchers that look like IP addresses are plain strings here (EventBridge
//!   also matches them as single-address CIDR ranges).
//! - Case-insensitive matching uses Unicode's simple lowercase mapping, character by character.
//! - The limits below are ours (EventBridge's own quotas differ).

mod cidr;
mod compile;
mod error;
mod eval;
mod limits;
mod matcher;
mod numeric;
mod wildcard;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use error::{PatternError, PatternErrorKind};
pub use limits::{
    MAX_PATTERN_ALTERNATIVES, MAX_PATTERN_BYTES, MAX_PATTERN_DEPTH, MAX_PATTERN_MATCHERS,
    MAX_WILDCARD_BYTES,
};

/// A compiled event pattern. Compiling validates the whole pattern once, so matching cannot
/// fail.
#[derive(Clone)]
pub struct Pattern {
    /// The pattern as written, kept to serialise it back (a subscription's config is returned
    /// as it was given).
    source: Value,
    root: eval::ObjectPattern,
    matcher_count: usize,
}

impl Pattern {
    /// Compiles a pattern given as a JSON value.
    pub fn compile(source: &Value) -> Result<Self, PatternError> {
        let (root, matcher_count) = compile::compile(source)?;
        Ok(Self {
            source: source.clone(),
            root,
            matcher_count,
        })
    }

    /// Parses and compiles a pattern given as JSON text.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text.len() > MAX_PATTERN_BYTES {
            return Err(PatternError::new(
                String::new(),
                PatternErrorKind::TooLarge {
                    max_bytes: MAX_PATTERN_BYTES,
                },
            ));
        }
        let source: Value = serde_json::from_str(text).map_err(|error| {
            PatternError::new(
                String::new(),
                PatternErrorKind::InvalidJson(error.to_string()),
            )
        })?;
        Self::compile(&source)
    }

    /// Whether `event` (an Event JSON object) matches this pattern.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches(event.as_object())
    }

    /// The pattern as it was written.
    pub fn as_json(&self) -> &Value {
        &self.source
    }

    /// How many matchers the pattern holds (what [`MAX_PATTERN_MATCHERS`] bounds).
    pub fn matcher_count(&self) -> usize {
        self.matcher_count
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

/// Two patterns are equal when they were written the same way (as JSON values).
impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = Value::deserialize(deserializer)?;
        Self::compile(&source).map_err(serde::de::Error::custom)
    }
}
