//! Key tables: a [`Binding`] says which keys do what and how the footer
//! and the `?` help name it. Each view has its own table (in its file);
//! [`GLOBAL`] holds the keys of every view. Key handling, the footer and
//! the help all read these same tables, so what is shown is what works.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::ids::SortBy;

/// One key (or several equivalent keys) and what it does.
#[derive(Debug, Clone, Copy)]
pub struct Binding<A = Action> {
    pub keys: &'static [(KeyCode, KeyModifiers)],
    /// How the key is written in the footer and help (`enter`, `↑/k`).
    pub label: &'static str,
    pub action: A,
    /// What it does, in a few words.
    pub help: &'static str,
    /// Shown in the footer (all bindings are shown by `?`).
    pub footer: bool,
}

pub const N: KeyModifiers = KeyModifiers::NONE;

/// A sort key: shift + the column's letter. The footer shows a view's
/// sort keys together as one hint, `?` one by one.
pub const fn sort(
    keys: &'static [(KeyCode, KeyModifiers)],
    label: &'static str,
    by: SortBy,
    help: &'static str,
) -> Binding {
    b(keys, label, Action::Sort(by), help, true)
}

pub const fn b<A: Copy>(
    keys: &'static [(KeyCode, KeyModifiers)],
    label: &'static str,
    action: A,
    help: &'static str,
    footer: bool,
) -> Binding<A> {
    Binding {
        keys,
        label,
        action,
        help,
        footer,
    }
}

/// Keys of every list view.
pub const GLOBAL: &[Binding] = &[
    b(
        &[(KeyCode::Char(':'), N)],
        ":",
        Action::Command,
        "views",
        true,
    ),
    b(
        &[(KeyCode::Char('/'), N)],
        "/",
        Action::Filter,
        "filter",
        true,
    ),
    b(&[(KeyCode::Char('?'), N)], "?", Action::Help, "help", true),
    b(
        &[(KeyCode::Char('u'), N)],
        "u",
        Action::Undo,
        "undo the last change (30 s)",
        false,
    ),
    b(
        &[(KeyCode::Esc, N)],
        "esc",
        Action::Back,
        "back / clear filter",
        false,
    ),
    b(
        &[
            (KeyCode::Char('q'), N),
            (KeyCode::Char('c'), KeyModifiers::CONTROL),
        ],
        "q",
        Action::Quit,
        "quit",
        true,
    ),
    b(
        &[(KeyCode::Up, N), (KeyCode::Char('k'), N)],
        "↑/k",
        Action::Up,
        "move up",
        false,
    ),
    b(
        &[(KeyCode::Down, N), (KeyCode::Char('j'), N)],
        "↓/j",
        Action::Down,
        "move down",
        false,
    ),
    b(
        &[(KeyCode::PageUp, N)],
        "pgup",
        Action::PageUp,
        "page up",
        false,
    ),
    b(
        &[(KeyCode::PageDown, N)],
        "pgdn",
        Action::PageDown,
        "page down",
        false,
    ),
    b(
        &[(KeyCode::Home, N), (KeyCode::Char('g'), N)],
        "g",
        Action::Top,
        "first row",
        false,
    ),
    b(
        &[(KeyCode::End, N), (KeyCode::Char('G'), N)],
        "G",
        Action::Bottom,
        "last row",
        false,
    ),
];

/// Whether `key` is one of `binding`'s keys.
pub fn matches<A>(binding: &Binding<A>, key: &KeyEvent) -> bool {
    // Shifted letters arrive as the upper-case char with SHIFT set.
    let mods = if matches!(key.code, KeyCode::Char(_)) {
        key.modifiers - KeyModifiers::SHIFT
    } else {
        key.modifiers
    };
    binding
        .keys
        .iter()
        .any(|(code, m)| *code == key.code && *m == mods)
}

/// The action of the first binding in `table` that `key` matches.
pub fn find<A: Copy>(table: &[Binding<A>], key: &KeyEvent) -> Option<A> {
    table.iter().find(|b| matches(b, key)).map(|b| b.action)
}
