//! `{"numeric": [">", 0, "<=", 5]}`: a range over JSON numbers, compared as `f64`.

use serde_json::Value;

use super::error::PatternErrorKind;

/// One end of a range.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bound {
    value: f64,
    inclusive: bool,
}

/// A compiled numeric matcher: a lower bound, an upper bound, or both (`=` is both, inclusive).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NumericRange {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

/// A numeric expression that does not compile: the index of the offending element within the
/// expression array (`None` for the array as a whole) and what is wrong with it.
pub(super) type NumericError = (Option<usize>, PatternErrorKind);

impl NumericRange {
    /// Compiles the operand of `numeric`: `[op, n]`, or a lower bound followed by an upper one
    /// (`[">" | ">=", n, "<" | "<=", m]`), as EventBridge accepts them.
    pub(super) fn parse(terms: &[Value]) -> Result<Self, NumericError> {
        if terms.len() != 2 && terms.len() != 4 {
            return Err((None, PatternErrorKind::InvalidNumericShape));
        }
        let first = operator_at(terms, 0, "")?;
        let first_value = number_at(terms, 1)?;
        let bound = |inclusive| {
            Some(Bound {
                value: first_value,
                inclusive,
            })
        };
        let mut range = match first {
            "=" => Self {
                lower: bound(true),
                upper: bound(true),
            },
            ">" => Self {
                lower: bound(false),
                upper: None,
            },
            ">=" => Self {
                lower: bound(true),
                upper: None,
            },
            "<" => Self {
                lower: None,
                upper: bound(false),
            },
            _ => Self {
                lower: None,
                upper: bound(true),
            },
        };
        if terms.len() == 4 {
            if range.upper.is_some() {
                // Only a lower bound may be followed by another term.
                return Err((None, PatternErrorKind::InvalidNumericShape));
            }
            let second = operator_at(terms, 2, " (here \"<\" or \"<=\")")?;
            let inclusive = match second {
                "<" => false,
                "<=" => true,
                _ => {
                    return Err((
                        Some(2),
                        PatternErrorKind::InvalidNumericOperator {
                            after: " (here \"<\" or \"<=\")",
                        },
                    ));
                }
            };
            range.upper = Some(Bound {
                value: number_at(terms, 3)?,
                inclusive,
            });
            if range.is_empty() {
                return Err((None, PatternErrorKind::EmptyNumericRange));
            }
        }
        Ok(range)
    }

    pub(super) fn matches(&self, value: &Value) -> bool {
        let Some(number) = value.as_f64() else {
            return false;
        };
        let above = self
            .lower
            .is_none_or(|lower| number > lower.value || (lower.inclusive && number == lower.value));
        let below = self
            .upper
            .is_none_or(|upper| number < upper.value || (upper.inclusive && number == upper.value));
        above && below
    }

    fn is_empty(&self) -> bool {
        match (self.lower, self.upper) {
            (Some(lower), Some(upper)) => {
                lower.value > upper.value
                    || (lower.value == upper.value && !(lower.inclusive && upper.inclusive))
            }
            _ => false,
        }
    }
}

fn operator_at<'a>(
    terms: &'a [Value],
    index: usize,
    after: &'static str,
) -> Result<&'a str, NumericError> {
    match terms[index].as_str() {
        Some(op @ ("=" | "<" | "<=" | ">" | ">=")) => Ok(op),
        _ => Err((
            Some(index),
            PatternErrorKind::InvalidNumericOperator { after },
        )),
    }
}

fn number_at(terms: &[Value], index: usize) -> Result<f64, NumericError> {
    terms[index]
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or((Some(index), PatternErrorKind::NumericOperandNotNumber))
}
