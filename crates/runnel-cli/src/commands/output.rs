//! Printing for the client commands: JSON lines for scripts, aligned tables for people.
//!
//! Tables are printed as rows arrive, so that reading a long stream needs no more memory than
//! a page. Column widths are fitted to the first rows; a longer cell further down widens its
//! own line only.

use std::io::{self, Write};

use chrono::{DateTime, Utc};
use runnel_client::Event;
use serde::Serialize;

/// Rows buffered to fit the column widths before the first line is printed.
const MAX_FITTED_ROWS: usize = 200;
/// People read payloads in a terminal: longer ones are cut (`--json` prints them whole).
const MAX_DATA_CHARS: usize = 100;

/// Writes one JSON document on its own line.
pub(crate) fn json_line(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// A table printed as it fills.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    widths: Vec<usize>,
    pending: Vec<Vec<String>>,
    started: bool,
}

impl Table {
    pub(crate) fn new(header: Vec<&'static str>) -> Self {
        Self {
            widths: header.iter().map(|h| h.chars().count()).collect(),
            header,
            pending: Vec::new(),
            started: false,
        }
    }

    pub(crate) fn row(&mut self, out: &mut impl Write, cells: Vec<String>) -> io::Result<()> {
        if self.started {
            return self.print_row(out, &cells);
        }
        for (width, cell) in self.widths.iter_mut().zip(&cells) {
            *width = (*width).max(cell.chars().count());
        }
        self.pending.push(cells);
        if self.pending.len() >= MAX_FITTED_ROWS {
            self.flush(out)?;
        }
        Ok(())
    }

    /// Prints what is buffered. Call at the end, and whenever rows should show up now.
    pub(crate) fn flush(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.started {
            self.started = true;
            let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
            self.print_row(out, &header)?;
        }
        for cells in std::mem::take(&mut self.pending) {
            self.print_row(out, &cells)?;
        }
        out.flush()
    }

    fn print_row(&self, out: &mut impl Write, cells: &[String]) -> io::Result<()> {
        let mut line = String::new();
        for (index, cell) in cells.iter().enumerate() {
            let last = index + 1 == cells.len();
            line.push_str(cell);
            if !last {
                let width = self.widths.get(index).copied().unwrap_or(0);
                let padding = width.saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', padding));
            }
        }
        writeln!(out, "{line}")
    }
}

/// `2026-11-23T10:15:30.123Z`: milliseconds are enough for people.
pub(crate) fn timestamp(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The payload as one short line: the JSON text as stored, or a note for binary payloads.
pub(crate) fn data_summary(event: &Event) -> String {
    let text = match (&event.data, &event.content_type) {
        (Some(raw), _) => raw.get().to_owned(),
        (None, content_type) => {
            let bytes = event.data_base64.as_deref().map_or(0, |b| b.len() / 4 * 3);
            format!(
                "<about {bytes} bytes of {}>",
                content_type.as_deref().unwrap_or("binary data")
            )
        }
    };
    let flat = text.replace(['\n', '\r'], " ");
    if flat.chars().count() <= MAX_DATA_CHARS {
        return flat;
    }
    let mut cut: String = flat.chars().take(MAX_DATA_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_aligned_to_the_widest_cell() {
        let mut out = Vec::new();
        let mut table = Table::new(vec!["A", "BB", "C"]);
        table
            .row(&mut out, vec!["1".into(), "x".into(), "last".into()])
            .expect("write");
        table
            .row(&mut out, vec!["1234".into(), "y".into(), "z".into()])
            .expect("write");
        table.flush(&mut out).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text, "A     BB  C\n1     x   last\n1234  y   z\n");
    }

    #[test]
    fn an_empty_table_prints_its_header() {
        let mut out = Vec::new();
        Table::new(vec!["STREAM_TYPE", "STREAMS"])
            .flush(&mut out)
            .expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "STREAM_TYPE  STREAMS\n"
        );
    }
}
