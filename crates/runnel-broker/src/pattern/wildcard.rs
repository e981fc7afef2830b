//! `{"wildcard": "a*b"}`: `*` stands for any run of characters (none included), `\*` for a
//! literal star and `\\` for a literal backslash.

use super::error::PatternErrorKind;
use super::limits::MAX_WILDCARD_BYTES;

/// A compiled wildcard: the literal pieces between its stars. With no star it is one piece and
/// must equal the value; otherwise the value must start with the first piece, end with the last,
/// and hold the middle pieces in order between them. Matching the middle pieces leftmost-first
/// is exact for a language whose only metacharacter is `*`, and takes time linear in the value
/// per piece: there is no backtracking to exploit.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Wildcard {
    pieces: Vec<String>,
}

impl Wildcard {
    pub(super) fn parse(text: &str) -> Result<Self, PatternErrorKind> {
        if text.len() > MAX_WILDCARD_BYTES {
            return Err(PatternErrorKind::WildcardTooLong {
                max_bytes: MAX_WILDCARD_BYTES,
            });
        }
        let mut pieces = vec![String::new()];
        let mut previous_was_star = false;
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '\\')) => push_char(&mut pieces, escaped),
                    _ => return Err(PatternErrorKind::InvalidWildcardEscape),
                },
                '*' if previous_was_star => return Err(PatternErrorKind::ConsecutiveWildcards),
                '*' => pieces.push(String::new()),
                other => push_char(&mut pieces, other),
            }
            previous_was_star = c == '*';
        }
        Ok(Self { pieces })
    }

    pub(super) fn matches(&self, value: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return value.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return value == first;
        };
        if value.len() < first.len() + last.len()
            || !value.starts_with(first.as_str())
            || !value.ends_with(last.as_str())
        {
            return false;
        }
        // The prefix and suffix may not overlap; the middle pieces must fit between them.
        let mut between = &value[first.len()..value.len() - last.len()];
        for piece in middle {
            match between.find(piece.as_str()) {
                Some(at) => between = &between[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

fn push_char(pieces: &mut [String], c: char) {
    if let Some(piece) = pieces.last_mut() {
        piece.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, value: &str) -> bool {
        Wildcard::parse(pattern).expect("valid").matches(value)
    }

    #[test]
    fn stars_match_any_run_including_none() {
        assert!(matches("Simple*Service", "SimpleQueueService"));
        assert!(matches("Simple*Service", "SimpleService"));
        assert!(!matches("Simple*Service", "SimpleQueueServices"));
        assert!(matches("*", ""));
        assert!(matches("*", "anything"));
        assert!(matches("a*b*c", "abc"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "acb"));
        assert!(matches("*/lib/*", "/usr/lib/x.so"));
        assert!(!matches("*/lib/*", "/usr/lib"));
    }

    #[test]
    fn prefix_and_suffix_pieces_never_overlap() {
        assert!(!matches("ab*ba", "aba"));
        assert!(matches("ab*ba", "abba"));
    }

    #[test]
    fn without_a_star_the_value_must_be_equal() {
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
    }

    #[test]
    fn escapes_make_stars_and_backslashes_literal() {
        assert!(matches(r"a\*b", "a*b"));
        assert!(!matches(r"a\*b", "aXb"));
        assert!(matches(r"a\\*", r"a\anything"));
        assert!(matches(r"\**", "*x"));
    }

    #[test]
    fn invalid_wildcards_are_rejected() {
        assert_eq!(
            Wildcard::parse("a**b"),
            Err(PatternErrorKind::ConsecutiveWildcards)
        );
        assert_eq!(
            Wildcard::parse(r"a\b"),
            Err(PatternErrorKind::InvalidWildcardEscape)
        );
        assert_eq!(
            Wildcard::parse("a\\"),
            Err(PatternErrorKind::InvalidWildcardEscape)
        );
        assert!(
            Wildcard::parse(r"\**").is_ok(),
            "an escaped star then a star"
        );
        assert_eq!(
            Wildcard::parse(&"a".repeat(MAX_WILDCARD_BYTES + 1)),
            Err(PatternErrorKind::WildcardTooLong {
                max_bytes: MAX_WILDCARD_BYTES
            })
        );
    }
}
