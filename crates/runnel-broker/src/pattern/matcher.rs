//! The matchers of a leaf: each tests one leaf value of the event (a string, number, boolean or
//! `null`), except `exists`, which tests whether there is any.

use serde_json::{Number, Value};

use super::cidr::Cidr;
use super::numeric::NumericRange;
use super::wildcard::Wildcard;

/// One compiled element of a leaf array.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Matcher {
    /// A scalar written in the pattern (`"x"`, `5`, `true`, `null`).
    Exact(Value),
    Prefix(Affix),
    Suffix(Affix),
    /// Holds the case-folded operand.
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    /// Matches every leaf value that none of the inner matchers matches.
    AnythingBut(Vec<Matcher>),
    Numeric(NumericRange),
    Exists(bool),
    Cidr(Cidr),
}

/// The operand of `prefix` or `suffix`, folded when the match ignores case.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Affix {
    pub(super) text: String,
    pub(super) ignore_case: bool,
}

impl Matcher {
    /// Whether this matcher accepts `leaf`, one scalar value of the event field.
    pub(super) fn matches_value(&self, leaf: &Value) -> bool {
        match self {
            Self::Exact(expected) => scalars_equal(expected, leaf),
            Self::Prefix(affix) => leaf.as_str().is_some_and(|s| affix.is_prefix_of(s)),
            Self::Suffix(affix) => leaf.as_str().is_some_and(|s| affix.is_suffix_of(s)),
            Self::EqualsIgnoreCase(folded) => {
                leaf.as_str().is_some_and(|s| fold(s).eq(folded.chars()))
            }
            Self::Wildcard(wildcard) => leaf.as_str().is_some_and(|s| wildcard.matches(s)),
            Self::AnythingBut(excluded) => !excluded.iter().any(|m| m.matches_value(leaf)),
            Self::Numeric(range) => range.matches(leaf),
            Self::Exists(exists) => *exists,
            Self::Cidr(cidr) => leaf.as_str().is_some_and(|s| cidr.contains(s)),
        }
    }

    /// Whether this matcher accepts a field with no leaf value at all (missing, an object, or
    /// an empty array). Only `{"exists": false}` does.
    pub(super) fn matches_absent(&self) -> bool {
        matches!(self, Self::Exists(false))
    }
}

impl Affix {
    pub(super) fn new(text: &str, ignore_case: bool) -> Self {
        let text = if ignore_case {
            fold(text).collect()
        } else {
            text.to_owned()
        };
        Self { text, ignore_case }
    }

    fn is_prefix_of(&self, value: &str) -> bool {
        if !self.ignore_case {
            return value.starts_with(self.text.as_str());
        }
        let mut folded = fold(value);
        self.text.chars().all(|c| folded.next() == Some(c))
    }

    fn is_suffix_of(&self, value: &str) -> bool {
        if !self.ignore_case {
            return value.ends_with(self.text.as_str());
        }
        let mut folded = value.chars().rev().flat_map(|c| c.to_lowercase().rev());
        self.text.chars().rev().all(|c| folded.next() == Some(c))
    }
}

/// Case folding for the `equals-ignore-case` forms: Unicode's simple lowercase mapping, applied
/// character by character to the pattern and the value alike, so both sides fold the same way.
pub(super) fn fold(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().flat_map(char::to_lowercase)
}

/// Equality of two JSON scalars without type conversion; numbers compare by value, exactly for
/// integers.
fn scalars_equal(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a == b;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}
