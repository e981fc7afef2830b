//! Why a pattern does not compile, and where.

use std::fmt;

/// A pattern that does not compile: what is wrong ([`PatternErrorKind`]) and where, as a JSON
/// pointer (RFC 6901) into the pattern. Its `Display` is written for a 400 response's `detail`:
/// `the pattern at /data/total/0/numeric/1 must be a number`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct PatternError {
    pointer: String,
    kind: PatternErrorKind,
}

impl PatternError {
    pub(super) fn new(pointer: String, kind: PatternErrorKind) -> Self {
        Self { pointer, kind }
    }

    /// The JSON pointer of the offending part, relative to the pattern's root (`""` for the
    /// whole pattern).
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// What is wrong.
    pub fn kind(&self) -> &PatternErrorKind {
        &self.kind
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "the pattern {}", self.kind)
        } else {
            write!(f, "the pattern at {} {}", self.pointer, self.kind)
        }
    }
}

/// What is wrong with a pattern. Each message reads as a predicate of the offending part.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatternErrorKind {
    /// The text is not JSON (only from [`Pattern::parse`](super::Pattern::parse)).
    #[error("is not valid JSON: {0}")]
    InvalidJson(String),
    /// The pattern is over [`MAX_PATTERN_BYTES`](super::MAX_PATTERN_BYTES).
    #[error("is longer than {max_bytes} bytes")]
    TooLarge {
        /// The limit.
        max_bytes: usize,
    },
    /// The pattern nests deeper than [`MAX_PATTERN_DEPTH`](super::MAX_PATTERN_DEPTH).
    #[error("nests objects more than {max_depth} levels deep")]
    TooDeep {
        /// The limit.
        max_depth: usize,
    },
    /// This matcher is one more than [`MAX_PATTERN_MATCHERS`](super::MAX_PATTERN_MATCHERS).
    #[error("brings the pattern over {max_matchers} matchers")]
    TooManyMatchers {
        /// The limit.
        max_matchers: usize,
    },
    /// This object's `$or` branches, multiplied out with those around them, make more than
    /// [`MAX_PATTERN_ALTERNATIVES`](super::MAX_PATTERN_ALTERNATIVES) combinations.
    #[error("combines $or branches in more than {max_alternatives} ways")]
    TooManyAlternatives {
        /// The limit.
        max_alternatives: usize,
    },
    /// The pattern, or an `$or` branch, is not an object.
    #[error("must be a JSON object")]
    NotAnObject,
    /// An object with no fields, which EventBridge also refuses.
    #[error("is an empty object; name at least one field")]
    EmptyObject,
    /// A field's pattern is a scalar, where an object or a list of matchers belongs.
    #[error("must be an object (to match nested fields) or an array of matchers")]
    NotObjectOrArray,
    /// A field's list of matchers is empty (it could never match).
    #[error("is an empty array; give at least one matcher")]
    EmptyMatcherList,
    /// An array inside a list of matchers.
    #[error("must be a string, number, boolean, null or operator object, not an array")]
    NestedArray,
    /// `$or` is not an array of at least two objects.
    #[error("must be an array of at least two pattern objects")]
    InvalidOr,
    /// An operator object without exactly one key.
    #[error("must hold exactly one operator, but has {found} keys")]
    OperatorKeyCount {
        /// How many keys the object has.
        found: usize,
    },
    /// A key of an operator object that names no operator.
    #[error(
        "is not an operator (expected prefix, suffix, equals-ignore-case, wildcard, \
         anything-but, numeric, exists or cidr)"
    )]
    UnknownOperator,
    /// An operator's operand has the wrong shape.
    #[error("must be {expected}")]
    InvalidOperand {
        /// What the operand should be.
        expected: &'static str,
    },
    /// An operand that must not be empty is (an `anything-but` prefix, suffix or list).
    #[error("must not be empty")]
    EmptyOperand,
    /// An `anything-but` list mixing strings and numbers.
    #[error("must hold only strings or only numbers")]
    MixedAnythingButList,
    /// A term of a `numeric` expression that should be an operator is not a valid one.
    #[error("must be one of \"=\", \"<\", \"<=\", \">\", \">=\"{after}")]
    InvalidNumericOperator {
        /// A note on which operators fit in this position, or `""`.
        after: &'static str,
    },
    /// A term of a `numeric` expression that should be a number is not.
    #[error("must be a number")]
    NumericOperandNotNumber,
    /// A `numeric` expression of the wrong length or order.
    #[error("must be [op, number] or [\">\" or \">=\", number, \"<\" or \"<=\", number]")]
    InvalidNumericShape,
    /// A `numeric` range no number lies in.
    #[error("describes an empty range (the lower bound is not below the upper bound)")]
    EmptyNumericRange,
    /// A wildcard with `**`.
    #[error("has two consecutive wildcards (\"**\")")]
    ConsecutiveWildcards,
    /// A wildcard with a backslash before something other than `*` or `\`.
    #[error("escapes something other than '*' or '\\' with a backslash")]
    InvalidWildcardEscape,
    /// A wildcard over [`MAX_WILDCARD_BYTES`](super::MAX_WILDCARD_BYTES).
    #[error("is longer than {max_bytes} bytes")]
    WildcardTooLong {
        /// The limit.
        max_bytes: usize,
    },
    /// A `cidr` operand that is not an address, a slash and a prefix length.
    #[error("is not a CIDR block such as \"10.0.0.0/24\" or \"2001:db8::/32\"")]
    InvalidCidr,
}
