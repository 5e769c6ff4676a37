//! Output for people (aligned tables, dates) and for scripts (JSON).

use serde::Serialize;

use super::{CliError, CliResult};

/// Print `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> CliResult {
    let s = serde_json::to_string_pretty(value).map_err(|e| CliError(e.to_string()))?;
    print_out(&s)
}

/// Write `text` to stdout, ending it with a newline. A reader that went away
/// (`maasctl model list | head -1`) is not an error: the output was wanted
/// no further.
pub fn print_out(text: &str) -> CliResult {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let nl = if text.ends_with('\n') { "" } else { "\n" };
    match write!(out, "{text}{nl}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::field("output", e)),
        _ => Ok(()),
    }
}

/// A table with a header row and aligned columns (two spaces apart; the last
/// column is not padded, so long descriptions do not drag trailing blanks).
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// A table whose columns are known at run time.
    pub fn with_header(header: Vec<String>) -> Self {
        Self {
            header,
            rows: Vec::new(),
        }
    }

    /// A row of a [`with_header`](Self::with_header) table (as many cells).
    pub fn push(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        debug_assert_eq!(N, self.header.len());
        self.rows.push(cells.into());
    }

    pub fn render(&self) -> String {
        let width = |i: usize| {
            std::iter::once(&self.header)
                .chain(&self.rows)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.header.len()).map(width).collect();
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let last = r.len() - 1;
            for (i, cell) in r.iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    let pad = widths[i] - cell.chars().count() + 2;
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
            out.push('\n');
        }
        out
    }
}

/// `-` for an empty cell.
pub fn or_dash(s: impl Into<String>) -> String {
    let s = s.into();
    if s.is_empty() { "-".into() } else { s }
}

/// Unix seconds as `2026-05-01 12:34Z` (UTC; no time zone database needed).
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(["NAME", "STATUS"]);
        t.row(["a".into(), "enabled".into()]);
        t.row(["longer-name".into(), "off".into()]);
        assert_eq!(
            t.render(),
            "NAME         STATUS\na            enabled\nlonger-name  off\n"
        );
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00Z");
        assert_eq!(utc(1_767_225_599), "2025-12-31 23:59Z");
    }
}
