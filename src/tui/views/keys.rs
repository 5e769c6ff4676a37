//! API keys: id, workspace, name, masked secret, state, created, live rates.

use ratatui::text::Span;

use crate::domain::Registry;
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::widgets::table::{Cells, Column, col, num};

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
