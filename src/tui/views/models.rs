//! The model list: name, model ID, tags, status, access path, gateway
//! status, live req/s and throttled/s.

use ratatui::text::{Line, Span};

use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::widgets::table::{Cells, Column, col, num};

pub const COLUMNS: &[Column] = &[
    col("NAME", 18, 2),
    col("MODEL ID", 12, 1),
    col("TAGS", 10, 1).drop(2),
    col("STATUS", 8, 0),
    col("ACCESS PATH", 22, 2).drop(1),
    col("GATEWAY", 8, 0),
    num("REQ/S", 7),
    num("THR/S", 7),
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
    vec![
        Span::raw(m.spec.name.clone()),
        Span::raw(m.spec.model_id.clone()),
        Span::styled(m.spec.tags.join(","), t.dim()),
        Span::styled(
            if m.enabled { "enabled" } else { "disabled" },
            t.enabled(m.enabled),
        ),
        Span::raw(path),
        Span::styled(status.as_str(), t.gateway(status)),
        Span::raw(format::rate(rate.req)),
        Span::styled(format::rate(rate.thr), t.alarm(rate.thr > 0.0)),
    ]
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
