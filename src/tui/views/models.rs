//! The model list: name, model ID, tags, status, access path, gateway
//! status, live req/s and throttled/s.

use crossterm::event::KeyCode;
use ratatui::text::{Line, Span};

use crate::domain::{Change, Registry};
use crate::tui::action::Action;
use crate::tui::clipboard;
use crate::tui::component::Effect;
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::forms;
use crate::tui::ids::{Sort, SortBy, ViewId};
use crate::tui::keymap::{Binding, N, b, sort};
use crate::tui::widgets::table::{Cells, Column, ListState, col, num};

use super::list::Table;
use super::safe;
use super::sort::{by_key, by_name, by_rate, status_rank};
use super::{detail, model_ops};

pub struct Models;

const KEYS: &[Binding] = &[
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
    b(
        &[(KeyCode::Char('l'), N)],
        "l",
        Action::Tail,
        "live tail",
        true,
    ),
    b(
        &[(KeyCode::Char('y'), N)],
        "y",
        Action::Copy,
        "copy a curl call",
        true,
    ),
    b(
        &[(KeyCode::Char('Y'), N)],
        "Y",
        Action::CopyPath,
        "copy the access path",
        false,
    ),
    sort(
        &[(KeyCode::Char('N'), N)],
        "N",
        SortBy::Name,
        "sort by name",
    ),
    sort(
        &[(KeyCode::Char('I'), N)],
        "I",
        SortBy::ModelId,
        "sort by model ID",
    ),
    sort(
        &[(KeyCode::Char('S'), N)],
        "S",
        SortBy::Status,
        "sort by status",
    ),
    sort(
        &[(KeyCode::Char('R'), N)],
        "R",
        SortBy::Requests,
        "sort by req/s",
    ),
    sort(
        &[(KeyCode::Char('T'), N)],
        "T",
        SortBy::Throttled,
        "sort by thr/s",
    ),
];

impl Table for Models {
    const ID: ViewId = ViewId::Models;
    const NOUN: &'static str = "model";
    const COLUMNS: &'static [Column] = COLUMNS;
    const KEYS: &'static [Binding] = KEYS;

    fn ids(reg: &Registry) -> Vec<String> {
        reg.models.keys().cloned().collect()
    }

    fn total(reg: &Registry) -> usize {
        reg.models.len()
    }

    fn haystack(data: &Data, id: &str) -> String {
        data.registry()
            .models
            .get(id)
            .map_or_else(String::new, |m| {
                format!(
                    "{} {} {} {}",
                    m.spec.name,
                    m.spec.model_id,
                    m.spec.tags.join(" "),
                    m.spec.cluster
                )
            })
    }

    fn cells(data: &Data, id: &str) -> Cells {
        cells(data, id)
    }

    fn sort_column(by: SortBy) -> Option<&'static str> {
        Some(match by {
            SortBy::Name => "NAME",
            SortBy::ModelId => "MODEL ID",
            SortBy::Status => "STATUS",
            SortBy::Requests => "REQ/S",
            SortBy::Throttled => "THR/S",
            _ => return None,
        })
    }

    fn sort(data: &Data, order: Sort, ids: Vec<String>) -> Vec<String> {
        let reg = data.registry();
        let rates = &data.live.models;
        match order.by {
            SortBy::Requests => by_rate(ids, rates, |r| r.req, order.desc),
            SortBy::Throttled => by_rate(ids, rates, |r| r.thr, order.desc),
            SortBy::ModelId => by_key(ids, order.desc, |id| {
                reg.models.get(id).map(|m| m.spec.model_id.to_lowercase())
            }),
            SortBy::Status => by_key(ids, order.desc, |id| {
                let m = reg.models.get(id)?;
                Some((!m.enabled, status_rank(data.status(id))))
            }),
            _ => by_name(order, ids),
        }
    }

    fn act(action: Action, list: &ListState, data: &Data) -> Effect {
        let reg = data.registry();
        let selected = list.selected_id().and_then(|n| reg.models.get(n));
        match (action, selected) {
            (Action::Create, _) => Effect::Form(forms::model::create(reg, None)),
            (Action::Open, Some(m)) => Effect::Push(detail::new(&m.spec.name)),
            (Action::Tail, Some(m)) => Effect::Jump(ViewId::Tail, Some(m.spec.name.clone())),
            (Action::Copy | Action::CopyPath, Some(m)) => copy(action, m, reg),
            (Action::Delete, Some(m)) => {
                // Say what else it does: 404s, its traffic, its rules.
                let name = m.spec.name.clone();
                let also = safe::model_consequences(data, &name);
                let change = Change::DeleteModel { name: name.clone() };
                safe::delete(data, "model", &name, change, &also)
            }
            (action, Some(m)) => model_ops::act(action, m, data).unwrap_or(Effect::None),
            (_, None) => Effect::None,
        }
    }

    fn selection_line(data: &Data, id: Option<&str>) -> Option<Line<'static>> {
        selection_line(data, id)
    }
}

/// Every column the spec names fits at 80 columns: the cluster by its
/// name (the selected model's whole access path is on the table's bottom
/// border); from 102 columns the access path gets its own column.
/// Narrower than 80, ACCESS PATH goes first, then TAGS, CLUSTER, MODEL ID.
pub const COLUMNS: &[Column] = &[
    col("NAME", 18, 3),
    col("MODEL ID", 10, 1).drop(2),
    col("TAGS", 7, 1).drop(4),
    col("STATUS", 8, 0),
    col("CLUSTER", 7, 0).drop(3),
    col("ACCESS PATH", 22, 2).drop(5),
    col("GATEWAY", 8, 0),
    // Rates are at most five characters (`99.9`, `9999`, `12.3k`); the
    // title takes a sort arrow.
    num("REQ/S", 6),
    num("THR/S", 6),
];

pub fn cells(data: &Data, id: &str) -> Cells {
    let t = &data.theme;
    let Some(m) = data.registry().models.get(id) else {
        return Vec::new();
    };
    let path = data
        .registry()
        .clusters
        .get(&m.spec.cluster)
        .map(|c| c.access_path())
        .unwrap_or_else(|| format!("(no cluster {})", m.spec.cluster));
    let status = data.status(id);
    let rate = data.live.model(id);
    // A model with fallbacks names them after its own name (`a → b,c`).
    let name = if m.spec.fallbacks.is_empty() {
        m.spec.name.clone()
    } else {
        format!("{} → {}", m.spec.name, m.spec.fallbacks.join(","))
    };
    vec![
        Span::raw(name),
        Span::raw(m.spec.model_id.clone()),
        Span::styled(m.spec.tags.join(","), t.dim()),
        Span::styled(
            if m.enabled { "enabled" } else { "disabled" },
            t.enabled(m.enabled),
        ),
        Span::raw(m.spec.cluster.clone()),
        Span::raw(path),
        Span::styled(status.as_str(), t.gateway(status)),
        Span::raw(format::rate(rate.req)),
        Span::styled(format::rate(rate.thr), t.alarm(rate.thr > 0.0)),
    ]
}

/// `y`: a curl call of `m` (its key left to `$MAASCTL_KEY`); `Y`: its
/// access path.
fn copy(action: Action, m: &crate::domain::Model, reg: &Registry) -> Effect {
    let Some(c) = reg.clusters.get(&m.spec.cluster) else {
        return Effect::error(format!(
            "model {} has no cluster {}",
            m.spec.name, m.spec.cluster
        ));
    };
    let path = c.access_path();
    if action == Action::CopyPath {
        return Effect::Copy {
            text: path,
            what: format!("the access path of {}", m.spec.name),
        };
    }
    Effect::Copy {
        text: clipboard::curl_snippet(&path, &m.spec.name),
        what: format!("a curl call of {} (key: $MAASCTL_KEY)", m.spec.name),
    }
}

/// The selected model's access path on the table's bottom border (it is
/// the first column dropped on narrow terminals).
pub fn selection_line(data: &Data, id: Option<&str>) -> Option<Line<'static>> {
    let m = data.registry().models.get(id?)?;
    let c = data.registry().clusters.get(&m.spec.cluster)?;
    Some(Line::from(vec![
        Span::raw(" "),
        Span::styled(c.access_path(), data.theme.key()),
        Span::raw(format!("  model \"{}\" ", m.spec.name)),
    ]))
}
