//! Clusters: entry address, access path, models entered there.

use ratatui::text::Span;

use crate::tui::data::Data;
use crate::tui::widgets::table::{Cells, Column, col, num};

pub const COLUMNS: &[Column] = &[
    col("NAME", 12, 1),
    col("ENTRY ADDRESS", 24, 2),
    col("ACCESS PATH", 24, 2).drop(1),
    num("MODELS", 6),
];

pub fn cells(data: &Data, id: &str) -> Cells {
    let reg = data.registry();
    let Some(c) = reg.clusters.get(id) else {
        return Vec::new();
    };
    vec![
        Span::raw(c.name.clone()),
        Span::raw(c.entry_address.clone()),
        Span::styled(c.access_path(), data.theme.dim()),
        Span::raw(reg.models_in_cluster(&c.name).len().to_string()),
    ]
}
