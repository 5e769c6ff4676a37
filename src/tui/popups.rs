//! What sits over the views and takes keys before them: an open form, and
//! above it at most one overlay (a question, a message, a created key's
//! secret, the help, a text to read). A new overlay replaces the one shown.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::client::CreatedKey;

use super::action::Op;
use super::forms::Form;
use super::theme::Theme;
use super::widgets::popup;

/// What `y` does in a confirmation.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    /// Send the call; say the text once it is done.
    Op(Op, String),
    DiscardForm,
    /// The open form's subject changed elsewhere: open it again with the
    /// current values (what was typed is dropped).
    ReloadForm,
    /// … or save what was typed anyway.
    OverwriteForm,
    Quit,
}

/// A popup over everything, taking all keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Confirm {
        title: String,
        text: String,
        on_yes: Confirmed,
    },
    /// A question with a text of several lines (a rollback's plan).
    ConfirmLines {
        title: String,
        lines: Vec<String>,
        on_yes: Confirmed,
    },
    /// The open form's subject changed elsewhere since it opened: reload
    /// or overwrite (esc goes back to the form).
    Changed {
        text: String,
    },
    Message {
        title: String,
        lines: Vec<String>,
    },
    /// A created key's secret, shown this once.
    Secret(CreatedKey),
    /// Every key of what is under it (drawn by the chrome, which knows
    /// what that is).
    Help,
    /// One endpoint of a model, drawn live by the chrome from the same
    /// numbers as the endpoints table (never a copy taken when opened).
    Endpoint {
        model: String,
        index: usize,
    },
    /// Text to read (a whole log line).
    Text {
        title: String,
        lines: Vec<String>,
    },
    /// Text that may be longer than the screen (an audit entry's diff):
    /// wrapped, scrolled with the move keys from row `top`.
    Scroll {
        title: String,
        lines: Vec<String>,
        top: usize,
    },
}

/// What a key did to an overlay.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Still open (a stray key on a question or a secret).
    Keep,
    Close,
    /// `y` to a question: it closes and this is done.
    Yes(Confirmed),
    /// Scroll a [`Overlay::Scroll`] by this many rows.
    Scroll(isize),
    /// `y` on a secret: copy this text (the overlay stays), saying what it is.
    Copy {
        text: String,
        what: String,
    },
}

impl Overlay {
    pub fn on_key(&self, key: &KeyEvent) -> Answer {
        match self {
            Overlay::Confirm { on_yes, .. } | Overlay::ConfirmLines { on_yes, .. } => {
                match key.code {
                    KeyCode::Char('y') | KeyCode::Char('Y') => Answer::Yes(on_yes.clone()),
                    KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => Answer::Close,
                    // Only y, n and esc answer a question.
                    _ => Answer::Keep,
                }
            }
            Overlay::Changed { .. } => match key.code {
                KeyCode::Char('r') | KeyCode::Char('R') => Answer::Yes(Confirmed::ReloadForm),
                KeyCode::Char('o') | KeyCode::Char('O') => Answer::Yes(Confirmed::OverwriteForm),
                KeyCode::Esc => Answer::Close,
                _ => Answer::Keep,
            },
            Overlay::Scroll { .. } => match key.code {
                KeyCode::Up | KeyCode::Char('k') => Answer::Scroll(-1),
                KeyCode::Down | KeyCode::Char('j') => Answer::Scroll(1),
                KeyCode::PageUp => Answer::Scroll(-10),
                KeyCode::PageDown => Answer::Scroll(10),
                KeyCode::Home | KeyCode::Char('g') => Answer::Scroll(isize::MIN / 2),
                KeyCode::End | KeyCode::Char('G') => Answer::Scroll(isize::MAX / 2),
                KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q') => Answer::Close,
                _ => Answer::Keep,
            },
            // Shown once and never again: a stray key must not lose it.
            Overlay::Secret(k) => match key.code {
                KeyCode::Enter | KeyCode::Esc => Answer::Close,
                KeyCode::Char('y') => Answer::Copy {
                    text: k.secret.clone(),
                    what: format!("the secret of key {}", k.id),
                },
                _ => Answer::Keep,
            },
            // Messages, help and text close on any key.
            Overlay::Message { .. }
            | Overlay::Help
            | Overlay::Endpoint { .. }
            | Overlay::Text { .. } => Answer::Close,
        }
    }

    /// Draw it over `area` (all but the help and an endpoint, which the
    /// chrome draws: it has the data).
    pub fn render(&self, t: &Theme, f: &mut Frame, area: Rect) {
        match self {
            Overlay::Confirm { title, text, .. } => popup::dialog(
                f,
                area,
                t,
                title,
                t.border_focus(),
                vec![Line::from(text.clone())],
                "y yes · n no",
            ),
            Overlay::ConfirmLines { title, lines, .. } => popup::dialog(
                f,
                area,
                t,
                title,
                t.border_focus(),
                lines.iter().map(|l| Line::from(l.clone())).collect(),
                "y yes · n no",
            ),
            Overlay::Changed { text } => popup::dialog(
                f,
                area,
                t,
                "Changed elsewhere",
                t.warn(),
                vec![
                    Line::from(Span::styled(text.clone(), t.warn())),
                    Line::default(),
                    Line::from(vec![
                        Span::styled("r ", t.key()),
                        Span::raw("reload: discard my edits, reopen with the current values"),
                    ]),
                    Line::from(vec![
                        Span::styled("o ", t.key()),
                        Span::raw("overwrite: save mine anyway"),
                    ]),
                ],
                "r reload · o overwrite · esc back to the form",
            ),
            Overlay::Message { title, lines } => popup::dialog(
                f,
                area,
                t,
                title,
                t.bad(),
                lines
                    .iter()
                    .map(|l| Line::from(Span::styled(l.clone(), t.error_text())))
                    .collect(),
                "any key closes",
            ),
            Overlay::Secret(k) => popup::dialog(
                f,
                area,
                t,
                "API key created",
                t.border_focus(),
                vec![
                    Line::from(format!(
                        "{} in workspace {} ({})",
                        k.id, k.workspace, k.name
                    )),
                    Line::default(),
                    Line::from(Span::styled(k.secret.clone(), t.key())),
                    Line::default(),
                    Line::from(
                        "Copy the secret now: it is shown this once and cannot be recovered.",
                    ),
                ],
                "y copies it to your clipboard · enter or esc closes",
            ),
            Overlay::Help | Overlay::Endpoint { .. } => {}
            Overlay::Scroll { title, lines, top } => render_scroll(t, f, area, title, lines, *top),
            Overlay::Text { title, lines } => popup::dialog(
                f,
                area,
                t,
                title,
                t.border_focus(),
                lines.iter().map(|l| Line::from(l.clone())).collect(),
                "any key closes",
            ),
        }
    }
}

/// Widest a scrolled text is drawn.
const SCROLL_WIDTH: u16 = 100;

/// Where a scrolled text of `lines` goes in `area`: its box, its rows
/// (the lines wrapped to the box), and how many of them show at once.
fn scroll_geometry(area: Rect, lines: &[String]) -> (Rect, Vec<String>, usize) {
    let width = SCROLL_WIDTH.min(area.width.saturating_sub(2)).max(20);
    let inner = usize::from(width.saturating_sub(4)).max(1);
    let rows: Vec<String> = lines.iter().flat_map(|l| wrap(l, inner)).collect();
    // Borders, and a blank row and the hint under the text.
    let chrome = 4;
    let fits = usize::from(area.height).saturating_sub(chrome).max(1);
    let shown = rows.len().min(fits).max(1);
    let rect = popup::centered(area, width, (shown + chrome) as u16);
    (rect, rows, shown)
}

/// The first row a scrolled text can start at in `area`.
pub fn scroll_max(area: Rect, lines: &[String]) -> usize {
    let (_, rows, shown) = scroll_geometry(area, lines);
    rows.len().saturating_sub(shown)
}

/// `line` cut into rows of at most `width` columns (wide characters whole).
fn wrap(line: &str, width: usize) -> Vec<String> {
    use unicode_width::UnicodeWidthChar;
    let mut out = Vec::new();
    let (mut row, mut w) = (String::new(), 0);
    for c in line.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw > width && !row.is_empty() {
            out.push(std::mem::take(&mut row));
            w = 0;
        }
        row.push(c);
        w += cw;
    }
    out.push(row);
    out
}

fn render_scroll(t: &Theme, f: &mut Frame, area: Rect, title: &str, lines: &[String], top: usize) {
    let (rect, rows, shown) = scroll_geometry(area, lines);
    let top = top.min(rows.len().saturating_sub(shown));
    let mut text: Vec<Line> = rows[top..top + shown.min(rows.len() - top)]
        .iter()
        .map(|r| Line::from(r.clone()))
        .collect();
    let hint = if rows.len() > shown {
        format!(
            "rows {}–{} of {} · ↑/↓ pgup/pgdn scroll · esc closes",
            top + 1,
            top + shown,
            rows.len()
        )
    } else {
        "esc closes".to_string()
    };
    text.push(Line::default());
    text.push(Line::from(Span::styled(hint, t.dim())));
    f.render_widget(ratatui::widgets::Clear, rect);
    let block = ratatui::widgets::Block::default()
        .borders(ratatui::widgets::Borders::ALL)
        .border_style(t.border_focus())
        .title(Span::styled(format!(" {title} "), t.title()))
        .padding(ratatui::widgets::Padding::horizontal(1));
    f.render_widget(ratatui::widgets::Paragraph::new(text).block(block), rect);
}

/// One layer of the popup stack.
#[derive(Debug, Clone)]
pub enum Popup {
    Form(Box<Form>),
    Overlay(Overlay),
}
