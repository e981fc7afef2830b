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
        all_match(&[Part::of(self)], object)
    }

    /// How many `$or`-free patterns this one would be if every `$or` were multiplied out: the
    /// most combinations of branches [`all_match`] may try on one event. Saturates.
    pub(super) fn alternatives(&self) -> usize {
        let fields = self
            .fields
            .iter()
            .map(|(_, field)| match field {
                FieldPattern::Nested(pattern) => pattern.alternatives(),
                FieldPattern::Leaf(_) => 1,
            })
            .fold(1_usize, usize::saturating_mul);
        let branches = if self.any_of.is_empty() {
            1
        } else {
            self.any_of
                .iter()
                .map(Self::alternatives)
                .fold(0_usize, usize::saturating_add)
        };
        fields.saturating_mul(branches)
    }
}

/// One pattern object taking part in a match at one level of the event: its fields, and the
/// `$or` whose branch is still to be chosen.
///
/// An `$or` branch is matched as if its fields were written beside the fields around the `$or`
/// (EventBridge expands `$or` into one pattern per branch the same way). That matters when
/// both descend into the same array of objects: the field and the branch must then hold in one
/// and the same element. So the parts of a level are matched together, and the nested fields
/// of one name, from every part, descend together.
#[derive(Clone, Copy)]
struct Part<'p> {
    fields: &'p [(String, FieldPattern)],
    any_of: &'p [ObjectPattern],
}

impl<'p> Part<'p> {
    fn of(pattern: &'p ObjectPattern) -> Self {
        Self {
            fields: &pattern.fields,
            any_of: &pattern.any_of,
        }
    }
}

/// Whether `object` satisfies every part at once.
fn all_match(parts: &[Part<'_>], object: Option<&Map<String, Value>>) -> bool {
    if let Some(index) = parts.iter().position(|part| !part.any_of.is_empty()) {
        // Choose a branch of this `$or`; the branch joins the parts (its own `$or`, if any,
        // is chosen in turn).
        let mut chosen = parts.to_vec();
        chosen[index].any_of = &[];
        return parts[index].any_of.iter().any(|branch| {
            chosen.push(Part::of(branch));
            let hit = all_match(&chosen, object);
            chosen.pop();
            hit
        });
    }
    let field = |name: &str| object.and_then(|o| o.get(name));
    // Leaves first: they are cheap, and any failure settles the match.
    let leaves_hold = parts.iter().all(|part| {
        part.fields.iter().all(|(name, pattern)| match pattern {
            FieldPattern::Leaf(matchers) => leaf_matches(matchers, field(name)),
            FieldPattern::Nested(_) => true,
        })
    });
    if !leaves_hold {
        return false;
    }
    if let [part] = parts {
        // The usual case: one pattern object, whose field names are unique.
        return part.fields.iter().all(|(name, pattern)| match pattern {
            FieldPattern::Nested(nested) => nested_match(&[Part::of(nested)], field(name)),
            FieldPattern::Leaf(_) => true,
        });
    }
    parts.iter().enumerate().all(|(index, part)| {
        part.fields.iter().all(|(name, pattern)| {
            let FieldPattern::Nested(_) = pattern else {
                return true;
            };
            let seen_before = parts[..index]
                .iter()
                .any(|earlier| nested_of(earlier, name).next().is_some());
            if seen_before {
                return true;
            }
            let together: Vec<Part<'_>> = parts[index..]
                .iter()
                .flat_map(|later| nested_of(later, name))
                .map(Part::of)
                .collect();
            nested_match(&together, field(name))
        })
    })
}

/// The nested patterns `part` gives for the field `name`.
fn nested_of<'p>(part: &Part<'p>, name: &str) -> impl Iterator<Item = &'p ObjectPattern> {
    part.fields
        .iter()
        .filter(move |(field, _)| field == name)
        .filter_map(|(_, pattern)| match pattern {
            FieldPattern::Nested(nested) => Some(nested),
            FieldPattern::Leaf(_) => None,
        })
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

/// Whether one object of `value` (itself, or an element of it when it is an array) satisfies
/// every part.
fn nested_match(parts: &[Part<'_>], value: Option<&Value>) -> bool {
    let mut any_object = false;
    let hit = flattened(value).filter_map(Value::as_object).any(|object| {
        any_object = true;
        all_match(parts, Some(object))
    });
    // With no object to descend into, every nested field is absent.
    hit || (!any_object && all_match(parts, None))
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
