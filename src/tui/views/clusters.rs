//! Clusters: entry address, access path, models entered there.

use crossterm::event::KeyCode;
use ratatui::text::Span;

use crate::domain::{Change, Registry};
use crate::tui::action::Action;
use crate::tui::component::Effect;
use crate::tui::data::Data;
use crate::tui::forms;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b};
use crate::tui::widgets::table::{Cells, Column, ListState, col, num};

use super::list::Table;

pub struct Clusters;

const KEYS: &[Binding] = &[
    b(&[(KeyCode::Char('c'), N)], "c", Action::Create, "add", true),
    b(&[(KeyCode::Char('e'), N)], "e", Action::Edit, "edit", true),
    b(
        &[(KeyCode::Char('d'), N)],
        "d",
        Action::Delete,
        "delete",
        true,
    ),
];

impl Table for Clusters {
    const ID: ViewId = ViewId::Clusters;
    const NOUN: &'static str = "cluster";
    const COLUMNS: &'static [Column] = COLUMNS;
    const KEYS: &'static [Binding] = KEYS;

    fn ids(reg: &Registry) -> Vec<String> {
        reg.clusters.keys().cloned().collect()
    }

    fn total(reg: &Registry) -> usize {
        reg.clusters.len()
    }

    fn cells(data: &Data, id: &str) -> Cells {
        cells(data, id)
    }

    fn act(action: Action, list: &ListState, data: &Data) -> Effect {
        let reg = data.registry();
        let selected = list.selected_id().and_then(|n| reg.clusters.get(n));
        match (action, selected) {
            (Action::Create, _) => Effect::Form(forms::simple::cluster(reg, None)),
            (Action::Edit, Some(c)) => Effect::Form(forms::simple::cluster(reg, Some(c))),
            (Action::Delete, Some(c)) => super::safe::delete(
                data,
                "cluster",
                &c.name,
                Change::DeleteCluster {
                    name: c.name.clone(),
                },
                &[],
            ),
            _ => Effect::None,
        }
    }
}

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
