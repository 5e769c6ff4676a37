//! The marketplace: entries, whether published, whether registered as a model.

use ratatui::text::Span;

use crate::tui::data::Data;
use crate::tui::widgets::table::{Cells, Column, col};

pub const COLUMNS: &[Column] = &[
    col("NAME", 20, 2),
    col("PROVIDER", 10, 1),
    col("TAGS", 10, 2).drop(2),
    col("PUBLISHED", 9, 0),
    col("MODEL", 8, 0),
    col("DESCRIPTION", 20, 3).drop(1),
];

pub fn cells(data: &Data, id: &str) -> Cells {
    let t = &data.theme;
    let reg = data.registry();
    let Some(e) = reg.market.get(id) else {
        return Vec::new();
    };
    let model = match reg.models.get(id) {
        Some(m) if m.enabled => Span::styled("enabled", t.good()),
        Some(_) => Span::styled("disabled", t.dim()),
        None => Span::styled("—", t.dim()),
    };
    vec![
        Span::raw(e.name.clone()),
        Span::raw(e.provider.clone()),
        Span::styled(e.tags.join(","), t.dim()),
        if e.published {
            Span::styled("yes", t.good())
        } else {
            Span::styled("no", t.warn())
        },
        model,
        Span::styled(e.description.clone(), t.dim()),
    ]
}
