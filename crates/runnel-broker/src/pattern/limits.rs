//! The bounds on a pattern. Matching cost grows with the number of matchers times the size of
//! the event, so a pattern is bounded in size, depth and matchers when it is compiled, not
//! when an event arrives.

/// The longest pattern, in bytes of compact JSON.
pub const MAX_PATTERN_BYTES: usize = 8 * 1024;

/// The deepest nesting of objects in a pattern (the root object is level 1; each nested field
/// object and each `$or` branch adds one).
pub const MAX_PATTERN_DEPTH: usize = 16;

/// The most matchers (elements of leaf arrays, `$or` branches not included) in one pattern.
pub const MAX_PATTERN_MATCHERS: usize = 512;

/// The most combinations of `$or` branches in one pattern: the number of `$or`-free patterns
/// it would be with every `$or` multiplied out (`{"a": {"$or": [x, y]}, "b": {"$or": [u, v]}}`
/// has four). Matching one event may try each, so this bounds its cost along with the
/// matchers.
pub const MAX_PATTERN_ALTERNATIVES: usize = 256;

/// The longest `wildcard` operand, in bytes.
pub const MAX_WILDCARD_BYTES: usize = 256;
