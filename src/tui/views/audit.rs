//! `:audit`: the audit trail, newest first: when, who, through what
//! channel, which revision, which entities, what. `enter` shows an entry's
//! changes field by field (secrets masked, as the store records them); `R`
//! rolls the registry back to the revision the entry made, after a dry
//! run shows what that changes.
//!
//! The entries come from the client (`Client::audit`, the store or the
//! admin API's `GET /audit`): the app asks for the newest
//! [`crate::tui::app::AUDIT_LIMIT`] when the view is shown and again
//! whenever the registry revision moves while it is. With the first row
//! selected the selection follows the newest entry; elsewhere it stays on
//! its entry as new ones arrive above it.

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::domain::audit::{self, AuditEntry, EntityChange, FieldChange};
use crate::ops::rollback::RollbackReport;
use crate::tui::action::Action;
use crate::tui::component::{Effect, View};
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b};
use crate::tui::popups::Overlay;
use crate::tui::widgets::table::{self, Cells, Column, ListState, col, num};

use super::list::step_of;

const KEYS: &[Binding] = &[
    b(&[(KeyCode::Enter, N)], "enter", Action::Open, "diff", true),
    b(
        &[(KeyCode::Char('R'), N)],
        "R",
        Action::Rollback,
        "roll back to here",
        true,
    ),
];

const COLUMNS: &[Column] = &[
    col("WHEN (UTC)", 16, 0),
    col("WHO", 8, 1),
    col("CHANNEL", 9, 0).drop(1),
    num("REV", 4),
    col("ENTITY", 14, 2).drop(2),
    col("SUMMARY", 10, 3),
];

/// The audit view: rows are entry ids, newest first.
#[derive(Default)]
pub struct Audit {
    pub state: ListState,
    /// The entries' generation and the filter the rows were built for.
    built: Option<(u64, String)>,
}

/// The audit view, for the view table.
pub fn new() -> Box<dyn View> {
    Box::new(Audit::default())
}

fn entry<'a>(data: &'a Data, id: &str) -> Option<&'a AuditEntry> {
    let id: u64 = id.parse().ok()?;
    let all = &data.audit;
    all.binary_search_by_key(&id, |e| e.id)
        .ok()
        .map(|i| &all[i])
        .or_else(|| all.iter().find(|e| e.id == id))
}

/// `model/DeepSeek-V3`, or `model/DeepSeek-V3 +2` when it changed more,
/// in `width` columns: a long name is cut before the count, which stays.
fn entities(e: &AuditEntry, width: usize) -> String {
    match e.changes.as_slice() {
        [] => String::new(),
        [one] => one.entity.clone(),
        [first, rest @ ..] => {
            let more = format!(" +{}", rest.len());
            let room = width.saturating_sub(more.len()).max(1);
            format!("{}{more}", format::fit(&first.entity, room))
        }
    }
}

fn revision(e: &AuditEntry) -> String {
    e.revision.map_or_else(|| "—".into(), |r| r.to_string())
}

fn haystack(e: &AuditEntry) -> String {
    let mut s = format!("{} {} {} {}", e.actor, e.channel, revision(e), e.summary);
    for c in &e.changes {
        s.push(' ');
        s.push_str(&c.entity);
    }
    s.to_lowercase()
}

fn cells(data: &Data, id: &str, entity_w: usize) -> Cells {
    let t = &data.theme;
    let Some(e) = entry(data, id) else {
        return Vec::new();
    };
    vec![
        Span::styled(format::date_time(e.at_ms / 1000), t.dim()),
        Span::raw(e.actor.to_string()),
        Span::raw(e.channel.to_string()),
        Span::raw(revision(e)),
        Span::styled(entities(e, entity_w), t.key()),
        Span::raw(e.summary.clone()),
    ]
}

/// A value in a diff: absent as `—`.
fn value(v: &Option<serde_json::Value>) -> String {
    v.as_ref().map_or_else(|| "—".into(), audit::show)
}

fn field_line(f: &FieldChange) -> String {
    format!("  {}: {} → {}", f.field, value(&f.before), value(&f.after))
}

fn change_lines(c: &EntityChange, out: &mut Vec<String>) {
    out.push(format!("{} {}", c.entity, c.action.as_str()));
    out.extend(c.fields.iter().map(field_line));
}

/// An entry's diff, field by field (values as the trail holds them:
/// secrets masked).
pub fn diff_lines(e: &AuditEntry) -> Vec<String> {
    let mut out = vec![
        format!(
            "{} UTC by {} through {}",
            format::date_time(e.at_ms / 1000),
            e.actor,
            e.channel
        ),
        e.summary.clone(),
    ];
    for c in &e.changes {
        out.push(String::new());
        change_lines(c, &mut out);
    }
    out
}

/// Most change lines a rollback's question lists before `… and N more`.
const PLAN_LINES: usize = 8;

/// What a rollback will change, for the question before it: each entity
/// created or deleted, each field updated with its values (masked), and
/// what becomes of platform keys.
pub fn plan_lines(p: &RollbackReport) -> Vec<String> {
    let mut changes = Vec::new();
    for c in &p.changes {
        match c.action {
            audit::EntityAction::Updated => changes.extend(c.fields.iter().map(|f| {
                format!(
                    "  {} {}: {} → {}",
                    c.entity,
                    f.field,
                    value(&f.before),
                    value(&f.after)
                )
            })),
            other => changes.push(format!("  {} {}", c.entity, other.as_str())),
        }
    }
    let mut out = vec![format!(
        "The registry is at revision {}; a new revision will equal revision {}:",
        p.from, p.to
    )];
    let more = changes.len().saturating_sub(PLAN_LINES);
    out.extend(changes.into_iter().take(PLAN_LINES));
    if more > 0 {
        out.push(format!("  … and {more} more"));
    }
    let keys = [
        ("keys deleted (made since)", &p.keys.deleted),
        ("keys back, revoked", &p.keys.restored_revoked),
        ("keys staying revoked", &p.keys.kept_revoked),
    ];
    for (what, list) in keys {
        if !list.is_empty() {
            out.push(format!("  {what}: {}", list.join(", ")));
        }
    }
    out
}

impl Audit {
    fn rebuild(&mut self, data: &Data) {
        let needle = self.state.filter.to_lowercase();
        let rows = data
            .audit
            .iter()
            .rev()
            .filter(|e| needle.is_empty() || haystack(e).contains(&needle))
            .map(|e| e.id.to_string())
            .collect();
        // On the first row, the selection follows the newest entry as
        // entries arrive; elsewhere it stays on its entry.
        let follow = self.state.selected == 0;
        self.state.set_rows(rows);
        if follow {
            self.state.selected = 0;
        }
    }
}

impl View for Audit {
    fn id(&self) -> ViewId {
        ViewId::Audit
    }

    fn keys(&self) -> &'static [Binding] {
        KEYS
    }

    fn handle(&mut self, action: Action, data: &Data) -> Effect {
        if let Some(delta) = step_of(action) {
            self.state.step(delta);
            return Effect::None;
        }
        let selected = self.state.selected_id().and_then(|id| entry(data, id));
        let Some(e) = selected else {
            return match action {
                Action::Open | Action::Rollback => Effect::error(if self.state.filter.is_empty() {
                    "no audit entry selected"
                } else {
                    "no audit entry selected (the filter hides every row: esc clears it)"
                }),
                _ => Effect::None,
            };
        };
        match action {
            Action::Open => Effect::Overlay(Overlay::Scroll {
                title: format!("audit entry #{} · revision {}", e.id, revision(e)),
                lines: diff_lines(e),
                top: 0,
            }),
            Action::Rollback => match e.revision {
                Some(r) => Effect::Rollback(r),
                None => Effect::error(format!(
                    "entry #{} changed no registry revision (admin tokens are not rolled back)",
                    e.id
                )),
            },
            _ => Effect::None,
        }
    }

    fn refresh(&mut self, data: &Data) {
        let key = (data.audit_generation, self.state.filter.clone());
        if self.built.as_ref() == Some(&key) {
            return;
        }
        self.rebuild(data);
        self.built = Some(key);
    }

    fn layout(&mut self, _data: &Data, area: Rect) {
        self.state.scroll_to_selection(table::visible_rows(area));
    }

    fn render(&self, data: &Data, f: &mut Frame, area: Rect) {
        let t = &data.theme;
        let mut title = vec![
            Span::styled(" audit ", t.title()),
            Span::raw(format!("[{}/{}] ", self.state.rows.len(), data.audit.len())),
        ];
        if !self.state.filter.is_empty() {
            title.push(Span::styled(format!("/{} ", self.state.filter), t.key()));
        }
        title.push(Span::styled("newest first ", t.dim()));
        let spec = table::Spec {
            title: Line::from(title),
            cols: COLUMNS,
            focused: true,
            sorted: None,
        };
        let entity = COLUMNS.iter().position(|c| c.title == "ENTITY");
        let widths = table::layout(COLUMNS, area.width.saturating_sub(2));
        let entity_w = entity.and_then(|i| widths[i]).map_or(0, usize::from);
        table::render(f, area, t, spec, &self.state, |id| {
            cells(data, id, entity_w)
        });
    }

    fn filter(&self) -> Option<&str> {
        Some(&self.state.filter)
    }

    fn set_filter(&mut self, text: &str, typed: bool, data: &Data) {
        self.state.filter = text.to_string();
        if typed {
            self.state.selected = 0;
            self.state.offset = 0;
        }
        self.refresh(data);
    }

    fn list(&self) -> Option<&ListState> {
        Some(&self.state)
    }

    fn select(&mut self, id: &str) -> bool {
        self.state.select_id(id)
    }
}
