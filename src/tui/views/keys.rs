//! API keys: id, workspace, name, masked secret, state, created, live rates.

use crossterm::event::KeyCode;
use ratatui::text::Span;

use crate::domain::{Change, Registry};
use crate::tui::action::{Action, Op};
use crate::tui::component::Effect;
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::forms;
use crate::tui::ids::{Sort, SortBy, ViewId};
use crate::tui::keymap::{Binding, N, b, sort};
use crate::tui::widgets::table::{Cells, Column, ListState, col, num};

use super::list::Table;
use super::safe;
use super::sort::{by_key, by_name, by_rate};

pub struct Keys;

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
    b(
        &[(KeyCode::Char('l'), N)],
        "l",
        Action::Tail,
        "live tail",
        true,
    ),
    sort(
        &[(KeyCode::Char('W'), N)],
        "W",
        SortBy::Workspace,
        "sort by workspace",
    ),
    sort(
        &[(KeyCode::Char('N'), N)],
        "N",
        SortBy::Name,
        "sort by name",
    ),
    sort(
        &[(KeyCode::Char('S'), N)],
        "S",
        SortBy::State,
        "sort by state",
    ),
    sort(
        &[(KeyCode::Char('C'), N)],
        "C",
        SortBy::Created,
        "sort by created",
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

impl Table for Keys {
    const ID: ViewId = ViewId::Keys;
    const NOUN: &'static str = "key";
    const COLUMNS: &'static [Column] = COLUMNS;
    const KEYS: &'static [Binding] = KEYS;
    const DEFAULT_SORT: SortBy = SortBy::Workspace;

    fn ids(reg: &Registry) -> Vec<String> {
        ids(reg)
    }

    fn total(reg: &Registry) -> usize {
        reg.keys.len()
    }

    fn haystack(data: &Data, id: &str) -> String {
        data.registry().keys.get(id).map_or_else(String::new, |k| {
            format!("{} {} {}", k.id, k.workspace, k.name)
        })
    }

    fn cells(data: &Data, id: &str) -> Cells {
        cells(data, id)
    }

    fn sort_column(by: SortBy) -> Option<&'static str> {
        Some(match by {
            SortBy::Name => "NAME",
            SortBy::State => "STATE",
            SortBy::Workspace => "WORKSPACE",
            SortBy::Created => "CREATED (UTC)",
            SortBy::Requests => "REQ/S",
            SortBy::Throttled => "THR/S",
            _ => return None,
        })
    }

    fn sort(data: &Data, order: Sort, ids: Vec<String>) -> Vec<String> {
        let reg = data.registry();
        let rates = &data.live.keys;
        let desc = order.desc;
        match order.by {
            SortBy::Requests => by_rate(ids, rates, |r| r.req, desc),
            SortBy::Throttled => by_rate(ids, rates, |r| r.thr, desc),
            SortBy::Workspace => by_key(ids, desc, |id| {
                reg.keys
                    .get(id)
                    .map(|k| (k.workspace.clone(), k.name.clone()))
            }),
            SortBy::Name => by_key(ids, desc, |id| {
                reg.keys
                    .get(id)
                    .map(|k| (k.name.clone(), k.workspace.clone()))
            }),
            SortBy::State => by_key(ids, desc, |id| {
                reg.keys
                    .get(id)
                    .map(|k| (k.is_revoked(), k.workspace.clone(), k.name.clone()))
            }),
            SortBy::Created => by_key(ids, desc, |id| {
                reg.keys.get(id).map(|k| (k.created, k.id.clone()))
            }),
            _ => by_name(order, ids),
        }
    }

    fn act(action: Action, list: &ListState, data: &Data) -> Effect {
        let reg = data.registry();
        let selected = list.selected_id().map(str::to_string);
        match (action, selected) {
            (Action::Tail, Some(id)) => Effect::Jump(ViewId::Tail, Some(id)),
            (Action::Create, _) => {
                // Opened from a workspace (its keys shown): that one.
                let ws = reg
                    .workspaces
                    .contains_key(&list.filter)
                    .then_some(&list.filter);
                Effect::Form(forms::simple::key(reg, ws.map(String::as_str)))
            }
            (Action::Revoke, Some(id)) if reg.keys.get(&id).is_some_and(|k| k.is_revoked()) => {
                Effect::error(format!("key {id} is already revoked"))
            }
            (Action::Revoke, Some(id)) => Effect::confirm(
                "Revoke key?",
                format!(
                    "Revoke {}? Calls with it get 401 at once{}. y to revoke, n to keep.",
                    data.key_label(&id),
                    traffic(data, &id)
                ),
                Op::Apply(vec![Change::RevokeKey { id: id.clone() }]),
                format!("key {id} revoked"),
            ),
            (Action::Delete, Some(id)) => {
                let active = reg.keys.get(&id).is_some_and(|k| !k.is_revoked());
                let also: Vec<String> = active
                    .then(|| {
                        format!(
                            "It is active: calls with it get 401 at once{}.",
                            traffic(data, &id)
                        )
                    })
                    .into_iter()
                    .collect();
                safe::delete(
                    data,
                    "key",
                    &id,
                    Change::DeleteKey { id: id.clone() },
                    &also,
                )
            }
            _ => Effect::None,
        }
    }
}

pub const COLUMNS: &[Column] = &[
    col("ID", 12, 0),
    col("WORKSPACE", 10, 1),
    col("NAME", 10, 1),
    col("SECRET", 9, 0),
    col("STATE", 7, 0),
    col("CREATED (UTC)", 16, 0).drop(1),
    num("REQ/S", 7),
    num("THR/S", 7),
];

/// `; it has traffic now (N req/s)` when it has.
fn traffic(data: &Data, id: &str) -> String {
    let r = data.live.key(id);
    if r.req > 0.0 {
        format!("; it has traffic now ({:.1} req/s)", r.req)
    } else {
        String::new()
    }
}

/// Keys by workspace, then name.
pub fn ids(reg: &Registry) -> Vec<String> {
    let mut keys: Vec<_> = reg.keys.values().collect();
    keys.sort_by(|a, b| (&a.workspace, &a.name).cmp(&(&b.workspace, &b.name)));
    keys.into_iter().map(|k| k.id.clone()).collect()
}

pub fn cells(data: &Data, id: &str) -> Cells {
    let t = &data.theme;
    let Some(k) = data.registry().keys.get(id) else {
        return Vec::new();
    };
    let rate = data.live.key(id);
    let state = if k.is_revoked() {
        Span::styled("revoked", t.bad())
    } else {
        Span::styled("active", t.good())
    };
    vec![
        Span::raw(k.id.clone()),
        Span::raw(k.workspace.clone()),
        Span::raw(k.name.clone()),
        Span::styled(k.masked(), t.dim()),
        state,
        Span::raw(format::date_time(k.created)),
        Span::raw(format::rate(rate.req)),
        Span::styled(format::rate(rate.thr), t.alarm(rate.thr > 0.0)),
    ]
}
