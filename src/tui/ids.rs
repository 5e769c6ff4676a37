//! The names the rest of the console shares: which view ([`ViewId`]), what
//! a `:` command does ([`Command`]), what a list is sorted by ([`SortBy`],
//! [`Sort`]). Plain data at the bottom of the module tree: it imports
//! nothing of the console, so keys, effects, views and the app can all
//! name a view or a sort without importing each other.

/// The views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewId {
    Models,
    Detail,
    Keys,
    Workspaces,
    Clusters,
    Market,
    Traffic,
    Logs,
    Audit,
    Tail,
    Budgets,
    Usage,
}

impl ViewId {
    /// Its name in the header, the help title and (for the views a `:`
    /// command reaches) the command bar.
    pub fn name(self) -> &'static str {
        match self {
            ViewId::Models => "models",
            ViewId::Detail => "detail",
            ViewId::Keys => "keys",
            ViewId::Workspaces => "workspaces",
            ViewId::Clusters => "clusters",
            ViewId::Market => "market",
            ViewId::Traffic => "traffic",
            ViewId::Logs => "logs",
            ViewId::Audit => "audit",
            ViewId::Tail => "tail",
            ViewId::Budgets => "budgets",
            ViewId::Usage => "usage",
        }
    }
}

/// What a `:` command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    View(ViewId),
    Quit,
}

/// The `:` commands, in completion order.
pub const COMMANDS: &[(&str, Command)] = &[
    ("models", Command::View(ViewId::Models)),
    ("keys", Command::View(ViewId::Keys)),
    ("workspaces", Command::View(ViewId::Workspaces)),
    ("clusters", Command::View(ViewId::Clusters)),
    ("market", Command::View(ViewId::Market)),
    ("traffic", Command::View(ViewId::Traffic)),
    ("logs", Command::View(ViewId::Logs)),
    ("audit", Command::View(ViewId::Audit)),
    ("tail", Command::View(ViewId::Tail)),
    ("budgets", Command::View(ViewId::Budgets)),
    ("usage", Command::View(ViewId::Usage)),
    ("quit", Command::Quit),
    ("q", Command::Quit),
];

/// The command `text` names: exactly, or as the prefix of only one.
pub fn command(text: &str) -> Option<Command> {
    if let Some((_, c)) = COMMANDS.iter().find(|(n, _)| *n == text) {
        return Some(*c);
    }
    let mut it = COMMANDS.iter().filter(|(n, _)| n.starts_with(text));
    match (it.next(), it.next()) {
        (Some((_, c)), None) => Some(*c),
        _ => None,
    }
}

/// Tab in the command bar: the one command starting with `typed`, or the
/// longest prefix the candidates share.
pub fn complete(typed: &str) -> String {
    let t = typed.trim_start_matches(':');
    let candidates: Vec<&str> = COMMANDS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n.starts_with(t))
        .collect();
    match candidates.as_slice() {
        [] => typed.to_string(),
        [one] => one.to_string(),
        many => {
            let first = many[0];
            let len = (0..first.len())
                .take_while(|i| {
                    many.iter()
                        .all(|c| c.as_bytes().get(*i) == first.as_bytes().get(*i))
                })
                .count();
            first[..len.max(t.len())].to_string()
        }
    }
}

/// What a list can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortBy {
    Name,
    ModelId,
    /// Enabled first, then the gateway status (problems first).
    Status,
    Requests,
    Throttled,
    Workspace,
    /// Active keys first.
    State,
    Created,
    /// Active keys of a workspace.
    Keys,
}

impl SortBy {
    /// How the sort is named in the list's title and the help.
    pub fn label(self) -> &'static str {
        match self {
            SortBy::Name => "name",
            SortBy::ModelId => "model ID",
            SortBy::Status => "status",
            SortBy::Requests => "req/s",
            SortBy::Throttled => "thr/s",
            SortBy::Workspace => "workspace",
            SortBy::State => "state",
            SortBy::Created => "created",
            SortBy::Keys => "keys",
        }
    }

    /// Numbers and dates start with the biggest/newest; words with A.
    fn starts_descending(self) -> bool {
        matches!(
            self,
            SortBy::Requests | SortBy::Throttled | SortBy::Created | SortBy::Keys
        )
    }
}

/// A list's order: a column and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sort {
    pub by: SortBy,
    pub desc: bool,
}

impl Sort {
    pub fn new(by: SortBy) -> Self {
        Self {
            by,
            desc: by.starts_descending(),
        }
    }

    /// The order after the sort key for `by` is pressed: that column in
    /// its natural direction, or the other direction if already on it.
    pub fn pressed(self, by: SortBy) -> Self {
        if self.by == by {
            Self {
                by,
                desc: !self.desc,
            }
        } else {
            Self::new(by)
        }
    }

    /// `↑` ascending, `↓` descending.
    pub fn arrow(self) -> &'static str {
        if self.desc { "↓" } else { "↑" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressing_the_same_key_again_reverses() {
        let s = Sort::new(SortBy::Name);
        assert!(!s.desc);
        let s = s.pressed(SortBy::Requests);
        assert_eq!((s.by, s.desc), (SortBy::Requests, true), "busiest first");
        let s = s.pressed(SortBy::Requests);
        assert_eq!((s.by, s.desc), (SortBy::Requests, false));
        let s = s.pressed(SortBy::Name);
        assert_eq!((s.by, s.desc), (SortBy::Name, false));
    }
}
