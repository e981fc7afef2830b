//! From a pattern's JSON to the compiled tree, checking every part and every limit, and
//! pointing at the first offending part.

use std::io;

use serde_json::{Map, Value};

use super::cidr::Cidr;
use super::error::{PatternError, PatternErrorKind};
use super::eval::{FieldPattern, ObjectPattern};
use super::limits::{
    MAX_PATTERN_ALTERNATIVES, MAX_PATTERN_BYTES, MAX_PATTERN_DEPTH, MAX_PATTERN_MATCHERS,
};
use super::matcher::{Affix, Matcher, fold};
use super::numeric::NumericRange;
use super::wildcard::Wildcard;

const AFFIX_OPERAND: &str = "a string or {\"equals-ignore-case\": string}";
const STRING_OPERAND: &str = "a string";
const ANYTHING_BUT_OPERAND: &str = "a string, a number, an array of only strings or only \
     numbers, or an object with prefix, suffix, wildcard or equals-ignore-case";

/// Compiles `source`, returning the tree and its number of matchers.
pub(super) fn compile(source: &Value) -> Result<(ObjectPattern, usize), PatternError> {
    check_size(source)?;
    let Value::Object(root) = source else {
        return Err(PatternError::new(
            String::new(),
            PatternErrorKind::NotAnObject,
        ));
    };
    let mut compiler = Compiler {
        pointer: String::new(),
        matchers: 0,
    };
    let tree = compiler.object(root, 1)?;
    Ok((tree, compiler.matchers))
}

/// Serialises into a counter that gives up past the limit, so an oversized pattern costs no
/// more than the limit to measure.
fn check_size(source: &Value) -> Result<(), PatternError> {
    struct Counter(usize);
    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            if self.0 > MAX_PATTERN_BYTES {
                return Err(io::Error::other("pattern too large"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Counter(0), source).map_err(|_| {
        PatternError::new(
            String::new(),
            PatternErrorKind::TooLarge {
                max_bytes: MAX_PATTERN_BYTES,
            },
        )
    })
}

struct Compiler {
    /// The JSON pointer of the part being compiled.
    pointer: String,
    matchers: usize,
}

impl Compiler {
    fn fail<T>(&self, kind: PatternErrorKind) -> Result<T, PatternError> {
        Err(PatternError::new(self.pointer.clone(), kind))
    }

    /// Descends into `key`, returning the mark to [`Compiler::leave`] with.
    fn enter(&mut self, key: &str) -> usize {
        let mark = self.pointer.len();
        self.pointer.push('/');
        for c in key.chars() {
            match c {
                '~' => self.pointer.push_str("~0"),
                '/' => self.pointer.push_str("~1"),
                other => self.pointer.push(other),
            }
        }
        mark
    }

    fn enter_index(&mut self, index: usize) -> usize {
        let mark = self.pointer.len();
        self.pointer.push('/');
        self.pointer.push_str(&index.to_string());
        mark
    }

    fn leave(&mut self, mark: usize) {
        self.pointer.truncate(mark);
    }

    fn count_matchers(&mut self, count: usize) -> Result<(), PatternError> {
        self.matchers += count;
        if self.matchers > MAX_PATTERN_MATCHERS {
            return self.fail(PatternErrorKind::TooManyMatchers {
                max_matchers: MAX_PATTERN_MATCHERS,
            });
        }
        Ok(())
    }

    fn object(
        &mut self,
        object: &Map<String, Value>,
        depth: usize,
    ) -> Result<ObjectPattern, PatternError> {
        if depth > MAX_PATTERN_DEPTH {
            return self.fail(PatternErrorKind::TooDeep {
                max_depth: MAX_PATTERN_DEPTH,
            });
        }
        if object.is_empty() {
            return self.fail(PatternErrorKind::EmptyObject);
        }
        let mut pattern = ObjectPattern {
            fields: Vec::with_capacity(object.len()),
            any_of: Vec::new(),
        };
        for (key, value) in object {
            let mark = self.enter(key);
            if key == "$or" {
                pattern.any_of = self.any_of(value, depth)?;
            } else {
                let field = match value {
                    Value::Object(inner) => FieldPattern::Nested(self.object(inner, depth + 1)?),
                    Value::Array(elements) => FieldPattern::Leaf(self.leaf(elements)?),
                    _ => return self.fail(PatternErrorKind::NotObjectOrArray),
                };
                pattern.fields.push((key.clone(), field));
            }
            self.leave(mark);
        }
        // Checked at every level, so the error points at the smallest object over the limit.
        if pattern.alternatives() > MAX_PATTERN_ALTERNATIVES {
            return self.fail(PatternErrorKind::TooManyAlternatives {
                max_alternatives: MAX_PATTERN_ALTERNATIVES,
            });
        }
        Ok(pattern)
    }

    fn any_of(&mut self, value: &Value, depth: usize) -> Result<Vec<ObjectPattern>, PatternError> {
        let Value::Array(branches) = value else {
            return self.fail(PatternErrorKind::InvalidOr);
        };
        if branches.len() < 2 {
            return self.fail(PatternErrorKind::InvalidOr);
        }
        let mut compiled = Vec::with_capacity(branches.len());
        for (index, branch) in branches.iter().enumerate() {
            let mark = self.enter_index(index);
            let Value::Object(branch) = branch else {
                return self.fail(PatternErrorKind::NotAnObject);
            };
            compiled.push(self.object(branch, depth + 1)?);
            self.leave(mark);
        }
        Ok(compiled)
    }

    fn leaf(&mut self, elements: &[Value]) -> Result<Vec<Matcher>, PatternError> {
        if elements.is_empty() {
            return self.fail(PatternErrorKind::EmptyMatcherList);
        }
        let mut matchers = Vec::with_capacity(elements.len());
        for (index, element) in elements.iter().enumerate() {
            let mark = self.enter_index(index);
            self.count_matchers(1)?;
            matchers.push(match element {
                Value::Array(_) => return self.fail(PatternErrorKind::NestedArray),
                Value::Object(operator) => self.operator(operator)?,
                scalar => Matcher::Exact(scalar.clone()),
            });
            self.leave(mark);
        }
        Ok(matchers)
    }

    fn operator(&mut self, operator: &Map<String, Value>) -> Result<Matcher, PatternError> {
        let Some((name, operand)) = single_entry(operator) else {
            return self.fail(PatternErrorKind::OperatorKeyCount {
                found: operator.len(),
            });
        };
        let mark = self.enter(name);
        let matcher = match name.as_str() {
            "prefix" => Matcher::Prefix(self.affix(operand)?),
            "suffix" => Matcher::Suffix(self.affix(operand)?),
            "equals-ignore-case" => {
                Matcher::EqualsIgnoreCase(fold(self.string(operand)?).collect())
            }
            "wildcard" => Matcher::Wildcard(self.wildcard(operand)?),
            "anything-but" => Matcher::AnythingBut(self.anything_but(operand)?),
            "numeric" => Matcher::Numeric(self.numeric(operand)?),
            "exists" => match operand {
                Value::Bool(exists) => Matcher::Exists(*exists),
                _ => {
                    return self.fail(PatternErrorKind::InvalidOperand {
                        expected: "true or false",
                    });
                }
            },
            "cidr" => match Cidr::parse(self.string(operand)?) {
                Ok(cidr) => Matcher::Cidr(cidr),
                Err(kind) => return self.fail(kind),
            },
            _ => return self.fail(PatternErrorKind::UnknownOperator),
        };
        self.leave(mark);
        Ok(matcher)
    }

    fn string<'v>(&self, operand: &'v Value) -> Result<&'v str, PatternError> {
        match operand {
            Value::String(text) => Ok(text),
            _ => self.fail(PatternErrorKind::InvalidOperand {
                expected: STRING_OPERAND,
            }),
        }
    }

    fn non_empty_string<'v>(&self, operand: &'v Value) -> Result<&'v str, PatternError> {
        let text = self.string(operand)?;
        if text.is_empty() {
            return self.fail(PatternErrorKind::EmptyOperand);
        }
        Ok(text)
    }

    /// The operand of `prefix` or `suffix`: a string, or `{"equals-ignore-case": string}`.
    fn affix(&mut self, operand: &Value) -> Result<Affix, PatternError> {
        match operand {
            Value::String(text) => Ok(Affix::new(text, false)),
            Value::Object(inner) => match single_entry(inner) {
                Some((name, text)) if name == "equals-ignore-case" => {
                    let mark = self.enter(name);
                    let affix = Affix::new(self.string(text)?, true);
                    self.leave(mark);
                    Ok(affix)
                }
                _ => self.fail(PatternErrorKind::InvalidOperand {
                    expected: AFFIX_OPERAND,
                }),
            },
            _ => self.fail(PatternErrorKind::InvalidOperand {
                expected: AFFIX_OPERAND,
            }),
        }
    }

    fn wildcard(&self, operand: &Value) -> Result<Wildcard, PatternError> {
        Wildcard::parse(self.string(operand)?).or_else(|kind| self.fail(kind))
    }

    fn numeric(&mut self, operand: &Value) -> Result<NumericRange, PatternError> {
        let Value::Array(terms) = operand else {
            return self.fail(PatternErrorKind::InvalidNumericShape);
        };
        NumericRange::parse(terms).or_else(|(index, kind)| {
            if let Some(index) = index {
                self.enter_index(index);
            }
            self.fail(kind)
        })
    }

    /// The operand of `anything-but`, compiled into the matchers it excludes.
    fn anything_but(&mut self, operand: &Value) -> Result<Vec<Matcher>, PatternError> {
        match operand {
            Value::String(_) | Value::Number(_) => Ok(vec![Matcher::Exact(operand.clone())]),
            Value::Array(values) => self.anything_but_list(values),
            Value::Object(inner) => {
                let Some((name, value)) = single_entry(inner) else {
                    return self.fail(PatternErrorKind::OperatorKeyCount { found: inner.len() });
                };
                let mark = self.enter(name);
                let excluded = match name.as_str() {
                    "prefix" => Matcher::Prefix(Affix::new(self.non_empty_string(value)?, false)),
                    "suffix" => Matcher::Suffix(Affix::new(self.non_empty_string(value)?, false)),
                    "wildcard" => Matcher::Wildcard(self.wildcard(value)?),
                    "equals-ignore-case" => {
                        let excluded = self.ignore_case_list(value)?;
                        self.leave(mark);
                        return Ok(excluded);
                    }
                    _ => {
                        return self.fail(PatternErrorKind::InvalidOperand {
                            expected: "one of prefix, suffix, wildcard or equals-ignore-case \
                                       (under anything-but)",
                        });
                    }
                };
                self.leave(mark);
                Ok(vec![excluded])
            }
            _ => self.fail(PatternErrorKind::InvalidOperand {
                expected: ANYTHING_BUT_OPERAND,
            }),
        }
    }

    /// `{"anything-but": [...]}`: only strings or only numbers, as in EventBridge.
    fn anything_but_list(&mut self, values: &[Value]) -> Result<Vec<Matcher>, PatternError> {
        if values.is_empty() {
            return self.fail(PatternErrorKind::EmptyOperand);
        }
        // The first element counted as the matcher itself; the rest cost as much as matchers.
        self.count_matchers(values.len() - 1)?;
        let strings = values[0].is_string();
        let mut excluded = Vec::with_capacity(values.len());
        for (index, value) in values.iter().enumerate() {
            let mark = self.enter_index(index);
            match value {
                Value::String(_) | Value::Number(_) if value.is_string() == strings => {}
                Value::String(_) | Value::Number(_) => {
                    return self.fail(PatternErrorKind::MixedAnythingButList);
                }
                _ => {
                    return self.fail(PatternErrorKind::InvalidOperand {
                        expected: "a string or a number",
                    });
                }
            }
            excluded.push(Matcher::Exact(value.clone()));
            self.leave(mark);
        }
        Ok(excluded)
    }

    /// `{"anything-but": {"equals-ignore-case": "x" | ["x", "y"]}}`.
    fn ignore_case_list(&mut self, value: &Value) -> Result<Vec<Matcher>, PatternError> {
        let folded = |text: &str| Matcher::EqualsIgnoreCase(fold(text).collect());
        match value {
            Value::String(text) => Ok(vec![folded(text)]),
            Value::Array(values) if !values.is_empty() => {
                self.count_matchers(values.len() - 1)?;
                let mut excluded = Vec::with_capacity(values.len());
                for (index, value) in values.iter().enumerate() {
                    let mark = self.enter_index(index);
                    excluded.push(folded(self.string(value)?));
                    self.leave(mark);
                }
                Ok(excluded)
            }
            _ => self.fail(PatternErrorKind::InvalidOperand {
                expected: "a string or a non-empty array of strings",
            }),
        }
    }
}

fn single_entry(object: &Map<String, Value>) -> Option<(&String, &Value)> {
    let mut entries = object.iter();
    match (entries.next(), entries.next()) {
        (Some(entry), None) => Some(entry),
        _ => None,
    }
}
