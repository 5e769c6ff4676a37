//! Workspaces: their keys, the rules naming them, live rates.

use std::collections::HashMap;

use crossterm::event::KeyCode;
use ratatui::text::Span;

use crate::domain::{Change, Registry};
use crate::tui::action::Action;
use crate::tui::component::Effect;
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::forms;
use crate::tui::ids::{Sort, SortBy, ViewId};
use crate::tui::keymap::{Binding, N, b, sort};
use crate::tui::widgets::table::{Cells, Column, ListState, col, num};

use super::list::Table;
use super::sort::{by_key, by_name, by_rate};

pub struct Workspaces;

const KEYS: &[Binding] = &[
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
    b(
        &[(KeyCode::Char('l'), N)],
        "l",
        Action::Tail,
        "live tail",
        true,
    ),
    sort(
        &[(KeyCode::Char('N'), N)],
        "N",
        SortBy::Name,
        "sort by name",
    ),
    sort(
        &[(KeyCode::Char('K'), N)],
        "K",
        SortBy::Keys,
        "sort by keys",
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

impl Table for Workspaces {
    const ID: ViewId = ViewId::Workspaces;
    const NOUN: &'static str = "workspace";
    const COLUMNS: &'static [Column] = COLUMNS;
    const KEYS: &'static [Binding] = KEYS;

    fn ids(reg: &Registry) -> Vec<String> {
        reg.workspaces.keys().cloned().collect()
    }

    fn total(reg: &Registry) -> usize {
        reg.workspaces.len()
    }

    fn cells(data: &Data, id: &str) -> Cells {
        cells(data, id)
    }

    fn sort_column(by: SortBy) -> Option<&'static str> {
        Some(match by {
            SortBy::Name => "NAME",
            SortBy::Keys => "KEYS",
            SortBy::Requests => "REQ/S",
            SortBy::Throttled => "THR/S",
            _ => return None,
        })
    }

    fn sort(data: &Data, order: Sort, ids: Vec<String>) -> Vec<String> {
        let rates = &data.live.workspaces;
        match order.by {
            SortBy::Requests => by_rate(ids, rates, |r| r.req, order.desc),
            SortBy::Throttled => by_rate(ids, rates, |r| r.thr, order.desc),
            SortBy::Keys => {
                let mut active: HashMap<&str, usize> = HashMap::new();
                for k in data.registry().keys.values().filter(|k| !k.is_revoked()) {
                    *active.entry(k.workspace.as_str()).or_default() += 1;
                }
                by_key(ids, order.desc, |id| {
                    Some(active.get(id).copied().unwrap_or(0))
                })
            }
            _ => by_name(order, ids),
        }
    }

    fn act(action: Action, list: &ListState, data: &Data) -> Effect {
        let reg = data.registry();
        match (action, list.selected_id()) {
            (Action::Create, _) => Effect::Form(forms::simple::workspace(reg)),
            (Action::Open, Some(ws)) => Effect::Jump(ViewId::Keys, Some(ws.to_string())),
            // Its keys' lines: their labels are `workspace/name`.
            (Action::Tail, Some(ws)) => Effect::Jump(ViewId::Tail, Some(format!("{ws}/"))),
            (Action::Delete, Some(name)) => super::safe::delete(
                data,
                "workspace",
                name,
                Change::DeleteWorkspace { name: name.into() },
                &super::safe::workspace_consequences(data, name),
            ),
            _ => Effect::None,
        }
    }
}

pub const COLUMNS: &[Column] = &[
    col("NAME", 14, 1),
    col("DESCRIPTION", 12, 2).drop(1),
    num("KEYS", 5),
    num("RULES", 5),
    num("REQ/S", 7),
    num("THR/S", 7),
];

pub fn cells(data: &Data, id: &str) -> Cells {
    let reg = data.registry();
    let Some(w) = reg.workspaces.get(id) else {
        return Vec::new();
    };
    let keys = reg
        .keys
        .values()
        .filter(|k| k.workspace == w.name && !k.is_revoked())
        .count();
    let rules = reg.rules_using_workspace(&w.name).len();
    let rate = data.live.workspace(id);
    vec![
        Span::raw(w.name.clone()),
        Span::styled(w.description.clone(), data.theme.dim()),
        Span::raw(keys.to_string()),
        Span::raw(rules.to_string()),
        Span::raw(format::rate(rate.req)),
        Span::styled(format::rate(rate.thr), data.theme.alarm(rate.thr > 0.0)),
    ]
}
