//! The numbers that order events, kept apart by type so that a revision is never used as a
//! position by mistake.

use std::fmt;

/// An event's number within its stream: 0 for the first, then +1, without gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision(pub u64);

/// An event's number in the store-wide log (`$all`): strictly increasing in commit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub u64);

impl Revision {
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl Position {
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The optimistic-concurrency check of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectedRevision {
    /// No check.
    #[default]
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    Exists,
    /// The stream's last revision must be exactly this one.
    Exact(Revision),
}

impl ExpectedRevision {
    /// Whether a stream whose last revision is `current` (`None`: no events) satisfies this.
    pub fn is_satisfied_by(self, current: Option<Revision>) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => current.is_none(),
            Self::Exists => current.is_some(),
            Self::Exact(expected) => current == Some(expected),
        }
    }
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no_stream"),
            Self::Exists => f.write_str("exists"),
            Self::Exact(revision) => revision.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_match_the_documented_table() {
        let none = None;
        let at_3 = Some(Revision(3));
        assert!(ExpectedRevision::Any.is_satisfied_by(none));
        assert!(ExpectedRevision::Any.is_satisfied_by(at_3));
        assert!(ExpectedRevision::NoStream.is_satisfied_by(none));
        assert!(!ExpectedRevision::NoStream.is_satisfied_by(at_3));
        assert!(!ExpectedRevision::Exists.is_satisfied_by(none));
        assert!(ExpectedRevision::Exists.is_satisfied_by(at_3));
        assert!(ExpectedRevision::Exact(Revision(3)).is_satisfied_by(at_3));
        assert!(!ExpectedRevision::Exact(Revision(2)).is_satisfied_by(at_3));
        assert!(!ExpectedRevision::Exact(Revision(0)).is_satisfied_by(none));
    }
}
