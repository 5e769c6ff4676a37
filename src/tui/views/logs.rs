//! The log lines of this run (the same lines go to the log file).
//!
//! A cursor picks a line (`enter` shows it whole); with no cursor the view
//! follows the newest line. The cursor and the first line shown are kept
//! as line numbers, not positions, so new lines arriving (or old ones
//! leaving the ring) never move what the operator is reading. Long lines
//! are cut with `…`, or wrapped (`w`).

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use tracing::Level;
use unicode_width::UnicodeWidthChar;

use crate::logging::LogLine;
use crate::tui::action::Action;
use crate::tui::component::{Effect, View};
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b};
use crate::tui::popups::Overlay;
use crate::tui::theme::Theme;

use super::list::step_of;

const KEYS: &[Binding] = &[
    b(
        &[(KeyCode::Enter, N)],
        "enter",
        Action::Open,
        "whole line",
        true,
    ),
    b(&[(KeyCode::Char('w'), N)], "w", Action::Wrap, "wrap", true),
    b(
        &[(KeyCode::Char('f'), N)],
        "f",
        Action::Follow,
        "follow",
        true,
    ),
];

/// The logs view: the kept lines matching its filter, taken from the ring
/// when lines arrive (or the filter changes), and where it is in them.
#[derive(Default)]
pub struct Logs {
    pub state: LogsState,
    filter: String,
    lines: Vec<(u64, LogLine)>,
    /// The ring's newest line number (none: no ring) and the filter
    /// `lines` were taken for.
    taken: Option<(Option<u64>, String)>,
}

/// The logs view, for the view table.
pub fn new() -> Box<dyn View> {
    Box::new(Logs::default())
}

/// Where the logs view is.
#[derive(Debug, Clone, Default)]
pub struct LogsState {
    /// The line number under the cursor; `None` follows the newest line.
    pub cursor: Option<u64>,
    /// The line number shown first (kept between frames so the view only
    /// scrolls when the cursor leaves it).
    pub top: u64,
    /// Long lines wrap instead of being cut.
    pub wrap: bool,
}

/// The kept lines matching `filter` (case-insensitive, on target and
/// message), oldest first, with their line numbers.
pub fn lines(data: &Data, filter: &str) -> Vec<(u64, LogLine)> {
    let Some(ring) = &data.logs else {
        return Vec::new();
    };
    let (mut lines, _) = ring.after(0, usize::MAX);
    if !filter.is_empty() {
        let needle = filter.to_lowercase();
        lines.retain(|(_, l)| {
            l.target.to_lowercase().contains(&needle) || l.message.to_lowercase().contains(&needle)
        });
    }
    lines
}

impl LogsState {
    /// Move the cursor `delta` lines over `lines` (negative: older). Moving
    /// onto the newest line follows it again.
    pub fn step(&mut self, lines: &[(u64, LogLine)], delta: isize) {
        let Some(last) = lines.len().checked_sub(1) else {
            self.cursor = None;
            return;
        };
        let at = self.index(lines).unwrap_or(last);
        let to = at.saturating_add_signed(delta).min(last);
        self.cursor = (to != last).then(|| lines[to].0);
    }

    /// The index of the cursor's line in `lines` (the newest when
    /// following; the nearest older one if the cursor's line was filtered
    /// out or dropped).
    pub fn index(&self, lines: &[(u64, LogLine)]) -> Option<usize> {
        let last = lines.len().checked_sub(1)?;
        Some(match self.cursor {
            None => last,
            Some(n) => match lines.binary_search_by_key(&n, |(k, _)| *k) {
                Ok(i) => i,
                Err(i) => i.saturating_sub(1),
            },
        })
    }
}

/// The text of a line: time, level, target, message.
fn spans(t: &Theme, l: &LogLine) -> Vec<Span<'static>> {
    let style = match l.level {
        Level::ERROR => t.bad(),
        Level::WARN => t.warn(),
        Level::INFO => t.base(),
        _ => t.dim(),
    };
    vec![
        Span::styled(format!("{} ", format::clock(l.at_ms)), t.dim()),
        Span::styled(format!("{:5} ", l.level.as_str()), style),
        Span::styled(format!("{}: ", l.target), t.dim()),
        Span::raw(l.message.clone()),
    ]
}

/// The whole of a line, for the popup `enter` opens.
pub fn full_text(l: &LogLine) -> Vec<String> {
    vec![
        format!(
            "{} UTC  {}  {}",
            format::clock(l.at_ms),
            l.level.as_str(),
            l.target
        ),
        String::new(),
        l.message.clone(),
    ]
}

/// Cut `spans` into rows of `width` columns (continuation rows indented
/// two columns), keeping each piece's style. Rows break after a space when
/// the next word does not fit; a word longer than a row is cut where the
/// row ends.
fn wrap(spans: Vec<Span<'static>>, width: usize) -> Vec<Line<'static>> {
    const INDENT: usize = 2;
    let width = width.max(INDENT + 1);
    // Words: runs of characters up to and including the spaces after them.
    let mut words: Vec<Vec<(char, Style, usize)>> = vec![Vec::new()];
    for span in &spans {
        for c in span.content.chars() {
            let last = words.last_mut().expect("a word");
            if c != ' ' && last.last().is_some_and(|&(p, _, _)| p == ' ') {
                words.push(Vec::new());
            }
            let w = c.width().unwrap_or(0);
            words.last_mut().expect("a word").push((c, span.style, w));
        }
    }
    let mut rows: Vec<Vec<(char, Style, usize)>> = vec![Vec::new()];
    let mut used = 0;
    for word in words {
        // Spaces at the end of a row may hang past it: they show nothing.
        let visible_w: usize = word
            .iter()
            .rev()
            .skip_while(|&&(c, _, _)| c == ' ')
            .map(|&(_, _, w)| w)
            .sum();
        if used > INDENT && used + visible_w > width && INDENT + visible_w <= width {
            rows.push(Vec::new());
            used = INDENT;
        }
        for (c, style, w) in word {
            if c != ' ' && used + w > width {
                rows.push(Vec::new());
                used = INDENT;
            }
            rows.last_mut().expect("a row").push((c, style, w));
            used += w;
        }
    }
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            let mut out: Vec<Span<'static>> = Vec::new();
            if i > 0 {
                out.push(Span::raw(" ".repeat(INDENT)));
            }
            let mut piece = String::new();
            let mut style = None;
            for (c, st, _) in row {
                if style.is_some_and(|s| s != st) {
                    out.push(Span::styled(
                        std::mem::take(&mut piece),
                        style.expect("set"),
                    ));
                }
                style = Some(st);
                piece.push(c);
            }
            if let Some(st) = style {
                out.push(Span::styled(piece, st));
            }
            Line::from(out)
        })
        .collect()
}

/// Rows a line takes at `width`.
fn height(t: &Theme, l: &LogLine, width: usize, wrap_on: bool) -> usize {
    if wrap_on {
        wrap(spans(t, l), width).len()
    } else {
        1
    }
}

impl Logs {
    /// The index of the first line shown in `area`: the one shown first
    /// last frame, unless the cursor left the pane (then the cursor's line
    /// is the last row), and no blank rows under the newest line while
    /// older ones are hidden.
    fn top(&self, t: &Theme, area: Rect) -> usize {
        let (lines, state) = (&self.lines, &self.state);
        let block_h = usize::from(area.height.saturating_sub(2));
        let width = usize::from(area.width.saturating_sub(2));
        let rows_of = |i: usize| height(t, &lines[i].1, width, state.wrap);
        // Rows lines `range` take, counted only up to just past the pane (the
        // cost of a frame stays that of one screen of lines).
        let rows_in = |range: std::ops::Range<usize>| {
            let mut sum = 0;
            for i in range {
                sum += rows_of(i);
                if sum > block_h {
                    break;
                }
            }
            sum
        };
        let mut top = match lines.binary_search_by_key(&state.top, |(n, _)| *n) {
            Ok(i) => i,
            Err(i) => i.min(lines.len().saturating_sub(1)),
        };
        if let Some(c) = state.index(lines) {
            if c < top || state.cursor.is_none() || rows_in(top..c + 1) > block_h.max(1) {
                // Put the cursor on the last row: walk up while lines fit.
                top = c;
                let mut used = rows_of(c);
                while top > 0 && used + rows_of(top - 1) <= block_h {
                    top -= 1;
                    used += rows_of(top);
                }
            }
            let mut below = rows_in(top..lines.len());
            while top > 0 && below + rows_of(top - 1) <= block_h {
                top -= 1;
                below += rows_of(top);
            }
        }
        top
    }
}

impl View for Logs {
    fn id(&self) -> ViewId {
        ViewId::Logs
    }

    fn keys(&self) -> &'static [Binding] {
        KEYS
    }

    fn handle(&mut self, action: Action, _data: &Data) -> Effect {
        if let Some(delta) = step_of(action) {
            self.state.step(&self.lines, delta);
            return Effect::None;
        }
        match action {
            Action::Follow => self.state.cursor = None,
            Action::Wrap => self.state.wrap = !self.state.wrap,
            Action::Open => {
                let lines = &self.lines;
                if let Some((n, l)) = self.state.index(lines).map(|i| &lines[i]) {
                    return Effect::Overlay(Overlay::Text {
                        title: format!("log line {n}"),
                        lines: full_text(l),
                    });
                }
            }
            _ => {}
        }
        Effect::None
    }

    fn refresh(&mut self, data: &Data) {
        let newest = data.logs.as_ref().map(|r| r.after(u64::MAX, 0).1);
        if self
            .taken
            .as_ref()
            .is_some_and(|(n, f)| *n == newest && *f == self.filter)
        {
            return;
        }
        self.lines = lines(data, &self.filter);
        self.taken = Some((newest, self.filter.clone()));
    }

    fn layout(&mut self, data: &Data, area: Rect) {
        let top = self.top(&data.theme, area);
        if let Some((n, _)) = self.lines.get(top) {
            self.state.top = *n;
        }
    }

    fn render(&self, data: &Data, f: &mut Frame, area: Rect) {
        let (lines, state, filter) = (&self.lines, &self.state, &self.filter);
        let t = &data.theme;
        let block_h = usize::from(area.height.saturating_sub(2));
        let width = usize::from(area.width.saturating_sub(2));
        let cursor = state.index(lines);
        let top = self.top(t, area);
        let mut text: Vec<Line> = Vec::with_capacity(block_h);
        for (i, (_, l)) in lines.iter().enumerate().skip(top) {
            if text.len() >= block_h {
                break;
            }
            let mut rows = if state.wrap {
                wrap(spans(t, l), width)
            } else {
                vec![format::fit_line(Line::from(spans(t, l)), width)]
            };
            if Some(i) == cursor {
                rows = rows.into_iter().map(|r| r.style(t.selected())).collect();
            }
            text.extend(rows);
        }
        text.truncate(block_h);

        let mode = if state.cursor.is_none() {
            "following"
        } else {
            "scrolled: f follows"
        };
        let wrap = if state.wrap { " · wrapped" } else { "" };
        let mut title = vec![
            Span::styled(" logs ", t.title()),
            Span::raw(format!("[{}] {mode}{wrap} ", lines.len())),
        ];
        if !filter.is_empty() {
            title.push(Span::styled(format!("/{filter} "), t.key()));
        }
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.border_focus())
            .title(Line::from(title));
        f.render_widget(Paragraph::new(text).block(block), area);
    }

    fn filter(&self) -> Option<&str> {
        Some(&self.filter)
    }

    fn set_filter(&mut self, text: &str, _typed: bool, data: &Data) {
        self.filter = text.to_string();
        self.refresh(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u64) -> (u64, LogLine) {
        (
            n,
            LogLine {
                at_ms: 0,
                level: Level::INFO,
                target: "t".into(),
                message: format!("line {n}"),
            },
        )
    }

    #[test]
    fn the_cursor_is_a_line_number_and_the_newest_line_follows() {
        let lines: Vec<_> = (10..20).map(line).collect();
        let mut s = LogsState::default();
        assert_eq!(s.index(&lines), Some(9), "following: the newest");
        s.step(&lines, -3);
        assert_eq!(s.cursor, Some(16));
        // New lines arrive, old ones leave: the cursor stays on line 16.
        let moved: Vec<_> = (12..30).map(line).collect();
        assert_eq!(s.index(&moved), Some(4));
        s.step(&moved, 100);
        assert_eq!(s.cursor, None, "reaching the newest line follows again");
        s.step(&moved, -1000);
        assert_eq!(s.cursor, Some(12));
    }

    #[test]
    fn wrapping_keeps_every_character_and_style() {
        let t = Theme::colored();
        let rows = wrap(vec![Span::styled("abcdef", t.dim()), Span::raw("ghij")], 4);
        let text: Vec<String> = rows.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["abcd", "  ef", "  gh", "  ij"]);
        assert_eq!(rows[1].spans[1].style, t.dim());
        // Rows break at spaces; a word longer than a row is cut.
        let rows = wrap(vec![Span::raw("endpoint 1 answered HTTP 503 again")], 12);
        let text: Vec<String> = rows.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            text,
            ["endpoint 1 ", "  answered ", "  HTTP 503 ", "  again"]
        );
        let rows = wrap(vec![Span::raw("a https://very-long.example/v1 b")], 10);
        let text: Vec<String> = rows.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["a https://", "  very-lon", "  g.exampl", "  e/v1 b"]);
        // Wide characters are not split across rows.
        let rows = wrap(vec![Span::raw("模型名称")], 5);
        let text: Vec<String> = rows.iter().map(|l| l.to_string()).collect();
        assert_eq!(text, ["模型", "  名", "  称"]);
    }
}
