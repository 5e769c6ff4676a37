//! One module per view: the list views give their rows, columns and cells
//! (the shared table draws them); the detail, traffic and logs views draw
//! their panes. `chrome` draws the header, footer, prompt and popups.

pub mod chrome;
pub mod clusters;
pub mod detail;
pub mod keys;
pub mod logs;
pub mod market;
pub mod models;
pub mod traffic;
pub mod workspaces;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::app::App;
use super::data::Data;
use super::widgets::table::{self, Cells, Column};

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
}

impl ViewId {
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

/// Views with a `/` filter.
pub fn filterable(v: ViewId) -> bool {
    !matches!(v, ViewId::Detail | ViewId::Traffic)
}

/// The ids a list view shows for `filter` (case-insensitive substring of
/// the row's searchable text), in order.
pub fn rows(data: &Data, view: ViewId, filter: &str) -> Vec<String> {
    let reg = data.registry();
    let ids: Vec<String> = match view {
        ViewId::Models => reg.models.keys().cloned().collect(),
        ViewId::Keys => keys::ids(reg),
        ViewId::Workspaces => reg.workspaces.keys().cloned().collect(),
        ViewId::Clusters => reg.clusters.keys().cloned().collect(),
        ViewId::Market => reg.market.keys().cloned().collect(),
        ViewId::Detail | ViewId::Traffic | ViewId::Logs => return Vec::new(),
    };
    if filter.is_empty() {
        return ids;
    }
    let needle = filter.to_lowercase();
    ids.into_iter()
        .filter(|id| haystack(data, view, id).to_lowercase().contains(&needle))
        .collect()
}

fn haystack(data: &Data, view: ViewId, id: &str) -> String {
    let reg = data.registry();
    match view {
        ViewId::Models => reg.models.get(id).map_or_else(String::new, |m| {
            format!(
                "{} {} {} {}",
                m.spec.name,
                m.spec.model_id,
                m.spec.tags.join(" "),
                m.spec.cluster
            )
        }),
        ViewId::Keys => reg.keys.get(id).map_or_else(String::new, |k| {
            format!("{} {} {}", k.id, k.workspace, k.name)
        }),
        ViewId::Market => reg.market.get(id).map_or_else(String::new, |e| {
            format!("{} {} {}", e.name, e.provider, e.tags.join(" "))
        }),
        _ => id.to_string(),
    }
}

/// Draw the current view's body.
pub fn render_body(app: &mut App, f: &mut Frame, area: Rect) {
    match app.current() {
        ViewId::Detail => detail::render(app, f, area),
        ViewId::Traffic => traffic::render(&app.data, f, area),
        ViewId::Logs => logs::render(app, f, area),
        v => render_list(app, f, area, v),
    }
}

/// Builds one row's cells of a list view.
type RowFn = fn(&Data, &str) -> Cells;

fn render_list(app: &mut App, f: &mut Frame, area: Rect, view: ViewId) {
    app.list(view);
    let mut state = app.lists.remove(&view).unwrap_or_default();
    let data = &app.data;
    let total = match view {
        ViewId::Models => data.registry().models.len(),
        ViewId::Keys => data.registry().keys.len(),
        ViewId::Workspaces => data.registry().workspaces.len(),
        ViewId::Clusters => data.registry().clusters.len(),
        _ => data.registry().market.len(),
    };
    let mut title = vec![
        Span::styled(format!(" {} ", view.name()), data.theme.title()),
        Span::raw(format!("[{}/{}] ", state.rows.len(), total)),
    ];
    if !state.filter.is_empty() {
        title.push(Span::styled(
            format!("/{} ", state.filter),
            data.theme.key(),
        ));
    }
    let (cols, cells): (&[Column], RowFn) = match view {
        ViewId::Models => (models::COLUMNS, models::cells),
        ViewId::Keys => (keys::COLUMNS, keys::cells),
        ViewId::Workspaces => (workspaces::COLUMNS, workspaces::cells),
        ViewId::Clusters => (clusters::COLUMNS, clusters::cells),
        _ => (market::COLUMNS, market::cells),
    };
    let spec = table::Spec {
        title: Line::from(title),
        cols,
        focused: true,
    };
    table::render(f, area, &data.theme, spec, &mut state, |id| cells(data, id));
    if view == ViewId::Models
        && let Some(line) = models::selection_line(data, state.selected_id())
    {
        let y = area.y + area.height.saturating_sub(1);
        let w = (line.width() as u16).min(area.width.saturating_sub(4));
        f.render_widget(
            ratatui::widgets::Paragraph::new(line),
            Rect::new(area.x + 2, y, w, 1),
        );
    }
    app.lists.insert(view, state);
}

/// A "no data yet" line for empty panes.
pub fn placeholder(data: &Data, text: &str) -> Line<'static> {
    Line::from(Span::styled(text.to_string(), data.theme.dim()))
}
