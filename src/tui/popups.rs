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
}

/// What a key did to an overlay.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Still open (a stray key on a question or a secret).
    Keep,
    Close,
    /// `y` to a question: it closes and this is done.
    Yes(Confirmed),
}

impl Overlay {
    pub fn on_key(&self, key: &KeyEvent) -> Answer {
        match self {
            Overlay::Confirm { on_yes, .. } => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => Answer::Yes(on_yes.clone()),
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => Answer::Close,
                // Only y, n and esc answer a question.
                _ => Answer::Keep,
            },
            // Shown once and never again: a stray key must not lose it.
            Overlay::Secret(_) => match key.code {
                KeyCode::Enter | KeyCode::Esc => Answer::Close,
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
                "enter or esc closes, once copied",
            ),
            Overlay::Help | Overlay::Endpoint { .. } => {}
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

/// One layer of the popup stack.
#[derive(Debug, Clone)]
pub enum Popup {
    Form(Box<Form>),
    Overlay(Overlay),
}
