//! Number, time and text formatting shared by the views.

use std::borrow::Cow;

use ratatui::text::{Line, Span};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// A rate: `0`, `0.4`, `12.3`, `1.2k`.
pub fn rate(r: f64) -> String {
    if r <= 0.0 {
        "0".into()
    } else if r < 100.0 {
        format!("{r:.1}")
    } else if r < 10_000.0 {
        format!("{r:.0}")
    } else {
        format!("{:.1}k", r / 1000.0)
    }
}

/// A count: `987`, `9999`, `12.3k`, `4.5M`, `1.2G` (at most 6 characters
/// below 1000G).
pub fn count(n: u64) -> String {
    if n < 10_000 {
        n.to_string()
    } else if n < 999_950 {
        format!("{:.1}k", n as f64 / 1e3)
    } else if n < 999_950_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else {
        format!("{:.1}G", n as f64 / 1e9)
    }
}

/// US dollars from nano-dollars, to fit a table cell (at most 8
/// characters below $10M): `$0`, `$0.0024` (under a dollar: 4 decimals,
/// fractions of a cent show), `$49.99`, `$12.3k`. Cut toward zero, never
/// rounded up: a budget's `left` never reads more than there is.
pub fn money(nanos: u64) -> String {
    const USD: u64 = 1_000_000_000;
    if nanos == 0 {
        "$0".into()
    } else if nanos < USD {
        format!("${}.{:04}", 0, nanos / 100_000)
    } else if nanos < 10_000 * USD {
        format!("${}.{:02}", nanos / USD, nanos % USD / 10_000_000)
    } else {
        format!("${}", count(nanos / USD))
    }
}

/// Milliseconds as `850ms`, `3.2s`, `4m10s`.
pub fn millis(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Seconds as a window: `1s`, `60s`, `5m`, `2h`, `1d`.
pub fn window(secs: u32) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Unix seconds as `2025-01-31 14:05` UTC.
pub fn date_time(secs: i64) -> String {
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        s / 3600,
        (s % 3600) / 60
    )
}

/// Unix ms as `14:05:09` UTC.
pub fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// Display width of `s` in terminal columns (wide characters count two).
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Cut `s` to at most `width` terminal columns, marking the cut with `…`
/// (wide characters count two columns and are never split in half).
/// Unchanged when it fits, so it costs nothing on the common path.
pub fn fit(s: &str, width: usize) -> Cow<'_, str> {
    if self::width(s) <= width {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(cut(s, width))
    }
}

/// The start of `s` that fits in `width - 1` columns, then `…`.
fn cut(s: &str, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let mut out = String::with_capacity(width + 3);
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > width - 1 {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Cut a styled line to `width` columns: the span on the edge is cut with
/// `…` (keeping its style) and the spans after it are dropped.
pub fn fit_line(line: Line<'static>, width: usize) -> Line<'static> {
    // Trailing blanks (separators after the last item) are not content.
    let blanks: usize = line
        .spans
        .iter()
        .rev()
        .map(|s| (s.width(), self::width(s.content.trim_end())))
        .take_while(|(_, content)| *content == 0)
        .map(|(w, _)| w)
        .sum::<usize>()
        + line
            .spans
            .iter()
            .rev()
            .find(|s| !s.content.trim_end().is_empty())
            .map_or(0, |s| s.width() - self::width(s.content.trim_end()));
    if line.width() - blanks <= width {
        return line;
    }
    let Line {
        spans,
        style,
        alignment,
    } = line;
    let mut out = Vec::with_capacity(spans.len());
    let mut left = width;
    for span in spans {
        let w = span.width();
        if w < left {
            left -= w;
            out.push(span);
        } else {
            // The line is wider than `width`, so something follows the
            // edge: this span ends the line with the marker.
            out.push(Span::styled(cut(&span.content, left), span.style));
            break;
        }
    }
    Line {
        spans: out,
        style,
        alignment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(2.345), "2.3");
        assert_eq!(rate(12_345.0), "12.3k");
        assert_eq!(count(12_345), "12.3k");
        assert_eq!(count(9_999), "9999");
        assert_eq!(count(999_949), "999.9k");
        assert_eq!(count(999_950), "1.0M");
        assert_eq!(count(2_000_000), "2.0M");
        assert_eq!(count(4_500_000_000), "4.5G");
        assert_eq!(money(0), "$0");
        assert_eq!(money(2_453_424), "$0.0024");
        assert_eq!(money(49_997_534_240), "$49.99");
        assert_eq!(money(50_000_000_000), "$50.00");
        assert_eq!(money(12_345_000_000_000), "$12.3k");
        assert_eq!(millis(3200), "3.2s");
        assert_eq!(window(60), "1m");
        assert_eq!(window(90), "90s");
        assert_eq!(date_time(0), "1970-01-01 00:00");
        assert_eq!(date_time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(clock(3_723_000), "01:02:03");
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn fitting_counts_columns_not_bytes() {
        assert_eq!(fit("abc", 3), "abc");
        assert!(matches!(fit("abc", 3), Cow::Borrowed(_)));
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit("Llama-4-Maverick-17B-128E", 10), "Llama-4-M…");
        // Wide characters take two columns and are never split.
        assert_eq!(fit("模型名称", 5), "模型…");
        assert_eq!(width(&fit("模型名称", 6)), 5);
        assert_eq!(fit("模型名称", 8), "模型名称");
        assert_eq!(fit("é̃tude-longue", 6), "é̃tude…");
    }

    #[test]
    fn a_line_is_cut_at_the_edge_with_its_style() {
        use ratatui::style::Style;
        let bold = Style::new().bold();
        let line = || Line::from(vec![Span::raw("gw "), Span::styled("127.0.0.1:8080", bold)]);
        assert_eq!(fit_line(line(), 17).to_string(), "gw 127.0.0.1:8080");
        let cut = fit_line(line(), 10);
        assert_eq!(cut.to_string(), "gw 127.0.…");
        assert_eq!(cut.spans[1].style, bold);
        // A span ending exactly at the edge with more after it is cut too.
        assert_eq!(fit_line(line(), 3).to_string(), "gw…");
        assert_eq!(width(&fit_line(line(), 3).to_string()), 3);
        // Blanks after the last item are not cut.
        let spaced = Line::from(vec![Span::raw("req/s 1.0  "), Span::raw("  ")]);
        assert_eq!(fit_line(spaced.clone(), 9).to_string(), "req/s 1.0    ");
        assert_eq!(fit_line(spaced, 8).to_string(), "req/s 1…");
    }
}
