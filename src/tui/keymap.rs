//! The key tables. Key handling, the footer hints and the `?` help all read
//! these same tables, so what is shown is what works.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::views::ViewId;

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

const MODELS: &[Binding] = &[
    b(
        &[(KeyCode::Enter, N)],
        "enter",
        Action::Open,
        "detail",
        true,
    ),
    b(
        &[(KeyCode::Char('c'), N)],
        "c",
        Action::Create,
        "create",
        true,
    ),
    b(&[(KeyCode::Char('e'), N)], "e", Action::Edit, "edit", true),
    b(
        &[(KeyCode::Char('t'), N)],
        "t",
        Action::Toggle,
        "toggle",
        true,
    ),
    b(
        &[(KeyCode::Char('a'), N)],
        "a",
        Action::AddRule,
        "rule",
        true,
    ),
    b(
        &[(KeyCode::Char('d'), N)],
        "d",
        Action::Delete,
        "delete",
        true,
    ),
];

const DETAIL: &[Binding] = &[
    b(
        &[(KeyCode::Tab, N)],
        "tab",
        Action::SwitchPane,
        "pane",
        true,
    ),
    b(&[(KeyCode::Char('e'), N)], "e", Action::Edit, "edit", true),
    b(
        &[(KeyCode::Char('t'), N)],
        "t",
        Action::Toggle,
        "toggle",
        true,
    ),
    b(
        &[(KeyCode::Char('a'), N)],
        "a",
        Action::AddRule,
        "rule",
        true,
    ),
    b(
        &[(KeyCode::Enter, N)],
        "enter",
        Action::Open,
        "edit rule",
        false,
    ),
    b(
        &[(KeyCode::Char('d'), N)],
        "d",
        Action::Delete,
        "del rule",
        true,
    ),
    b(
        &[(KeyCode::Char('x'), N)],
        "x",
        Action::ToggleEndpoint,
        "ep on/off",
        true,
    ),
];

const KEYS: &[Binding] = &[
    b(
        &[(KeyCode::Char('c'), N)],
        "c",
        Action::Create,
        "create",
        true,
    ),
    b(
        &[(KeyCode::Char('r'), N)],
        "r",
        Action::Revoke,
        "revoke",
        true,
    ),
    b(
        &[(KeyCode::Char('d'), N)],
        "d",
        Action::Delete,
        "delete",
        true,
    ),
];

const WORKSPACES: &[Binding] = &[
    b(&[(KeyCode::Enter, N)], "enter", Action::Open, "keys", true),
    b(
        &[(KeyCode::Char('c'), N)],
        "c",
        Action::Create,
        "create",
        true,
    ),
    b(
        &[(KeyCode::Char('d'), N)],
        "d",
        Action::Delete,
        "delete",
        true,
    ),
];

const CLUSTERS: &[Binding] = &[
    b(&[(KeyCode::Char('c'), N)], "c", Action::Create, "add", true),
    b(&[(KeyCode::Char('e'), N)], "e", Action::Edit, "edit", true),
    b(
        &[(KeyCode::Char('d'), N)],
        "d",
        Action::Delete,
        "delete",
        true,
    ),
];

const MARKET: &[Binding] = &[
    b(
        &[(KeyCode::Char('p'), N)],
        "p",
        Action::Publish,
        "publish",
        true,
    ),
    b(
        &[(KeyCode::Char('m'), N)],
        "m",
        Action::Register,
        "register",
        true,
    ),
    b(&[(KeyCode::Char('c'), N)], "c", Action::Create, "add", true),
    b(&[(KeyCode::Char('e'), N)], "e", Action::Edit, "edit", true),
    b(
        &[(KeyCode::Char('d'), N)],
        "d",
        Action::Delete,
        "delete",
        true,
    ),
];

const LOGS: &[Binding] = &[b(
    &[(KeyCode::Char('f'), N)],
    "f",
    Action::Follow,
    "follow",
    true,
)];

/// The bindings of `view`, before the global ones.
pub fn view_bindings(view: ViewId) -> &'static [Binding] {
    match view {
        ViewId::Models => MODELS,
        ViewId::Detail => DETAIL,
        ViewId::Keys => KEYS,
        ViewId::Workspaces => WORKSPACES,
        ViewId::Clusters => CLUSTERS,
        ViewId::Market => MARKET,
        ViewId::Traffic => &[],
        ViewId::Logs => LOGS,
    }
}

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

/// The action `key` triggers in `view`: the view's table first, then the
/// global one.
pub fn lookup(view: ViewId, key: &KeyEvent) -> Option<Action> {
    find(view_bindings(view), key).or_else(|| find(GLOBAL, key))
}

/// The action of the first binding in `table` that `key` matches.
pub fn find<A: Copy>(table: &[Binding<A>], key: &KeyEvent) -> Option<A> {
    table.iter().find(|b| matches(b, key)).map(|b| b.action)
}
