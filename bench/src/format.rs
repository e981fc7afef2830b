//! Number formatting and Markdown tables for the reports.

use std::fmt;
use std::time::Duration;

/// `1234567` → `1,234,567`.
pub(crate) fn int(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A rate, rounded to a whole number with thousands separators.
pub(crate) fn rate(value: f64) -> String {
    if !value.is_finite() || value < 0.0 {
        return "–".to_owned();
    }
    int(value.round() as u64)
}

/// Milliseconds with three decimals (microsecond resolution).
pub(crate) fn ms(latency: Duration) -> String {
    format!("{:.3}", latency.as_secs_f64() * 1e3)
}

/// A ratio such as `12.3×`.
pub(crate) fn times(ratio: f64) -> String {
    if !ratio.is_finite() {
        return "–".to_owned();
    }
    if ratio >= 10.0 {
        format!("{ratio:.0}×")
    } else {
        format!("{ratio:.2}×")
    }
}

/// Megabytes (10^6 bytes) per second, one decimal.
pub(crate) fn mb_per_s(bytes: u64, elapsed: Duration) -> String {
    format!(
        "{:.1}",
        bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
    )
}

pub(crate) fn met(yes: bool) -> &'static str {
    if yes { "**met**" } else { "**not met**" }
}

/// A Markdown table, built row by row.
#[derive(Debug)]
pub(crate) struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(
            cells.len(),
            self.headers.len(),
            "a row must fill every column"
        );
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| {} |", self.headers.join(" | "))?;
        let rule: Vec<&str> = self.headers.iter().map(|_| "---").collect();
        writeln!(f, "|{}|", rule.join("|"))?;
        for row in &self.rows {
            writeln!(f, "| {} |", row.join(" | "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_get_thousands_separators() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1_000), "1,000");
        assert_eq!(int(1_234_567), "1,234,567");
    }

    #[test]
    fn a_table_renders_as_markdown() {
        let mut table = Table::new(&["a", "b"]);
        table.row(vec!["1".to_owned(), "2".to_owned()]);
        assert_eq!(table.to_string(), "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }
}
