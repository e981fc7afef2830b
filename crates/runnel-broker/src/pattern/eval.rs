//! The compiled pattern tree and how it walks an event.

use serde_json::{Map, Value};

use super::matcher::Matcher;

/// A pattern object: every field must match, and, when there is an `$or`, one of its branches.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ObjectPattern {
    pub(super) fields: Vec<(String, FieldPattern)>,
    pub(super) any_of: Vec<ObjectPattern>,
}

/// What a pattern field asks of the event field of the same name.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum FieldPattern {
    /// Descend into the event's object (or into each object of an event array).
    Nested(ObjectPattern),
    /// Match the event's leaf values: any matcher accepting any leaf value.
    Leaf(Vec<Matcher>),
}

impl ObjectPattern {
    /// Matches against an event object; `None` stands for an object with no fields (a missing
    /// parent, or a parent that is not an object), where only `{"exists": false}` can hold.
    pub(super) fn matches(&self, object: Option<&Map<String, Value>>) -> bool {
        self.fields
            .iter()
            .all(|(name, field)| field.matches(object.and_then(|o| o.get(name))))
            && (self.any_of.is_empty() || self.any_of.iter().any(|branch| branch.matches(object)))
    }
}

impl FieldPattern {
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Self::Leaf(matchers) => leaf_matches(matchers, value),
            Self::Nested(pattern) => nested_matches(pattern, value),
        }
    }
}

fn leaf_matches(matchers: &[Matcher], value: Option<&Value>) -> bool {
    let mut any_leaf = false;
    let hit = flattened(value)
        .filter(|element| !element.is_object())
        .any(|leaf| {
            any_leaf = true;
            matchers.iter().any(|m| m.matches_value(leaf))
        });
    hit || (!any_leaf && matchers.iter().any(Matcher::matches_absent))
}

fn nested_matches(pattern: &ObjectPattern, value: Option<&Value>) -> bool {
    let mut any_object = false;
    let hit = flattened(value).filter_map(Value::as_object).any(|object| {
        any_object = true;
        pattern.matches(Some(object))
    });
    // With no object to descend into, every nested field is absent.
    hit || (!any_object && pattern.matches(None))
}

/// The elements of an event value with arrays flattened (at any depth): the value itself when
/// it is not an array, nothing when it is missing.
fn flattened(value: Option<&Value>) -> Flattened<'_> {
    match value {
        Some(Value::Array(elements)) => Flattened {
            first: None,
            stack: vec![elements.iter()],
        },
        other => Flattened {
            first: other,
            stack: Vec::new(),
        },
    }
}

/// An explicit stack rather than recursion, so that a deeply nested event array cannot
/// overflow the matching thread's stack.
struct Flattened<'a> {
    first: Option<&'a Value>,
    stack: Vec<std::slice::Iter<'a, Value>>,
}

impl<'a> Iterator for Flattened<'a> {
    type Item = &'a Value;

    fn next(&mut self) -> Option<&'a Value> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            let top = self.stack.last_mut()?;
            match top.next() {
                Some(Value::Array(inner)) => self.stack.push(inner.iter()),
                Some(element) => return Some(element),
                None => {
                    self.stack.pop();
                }
            }
        }
    }
}
