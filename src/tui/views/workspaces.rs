//! Workspaces: their keys, the rules naming them, live rates.

use ratatui::text::Span;

use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::widgets::table::{Cells, Column, col, num};

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
