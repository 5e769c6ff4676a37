//! The marketplace: entries, whether published, whether registered as a model.

use crossterm::event::KeyCode;
use ratatui::text::Span;

use crate::domain::{Change, Registry};
use crate::tui::action::{Action, Op};
use crate::tui::component::Effect;
use crate::tui::data::Data;
use crate::tui::forms;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b};
use crate::tui::widgets::table::{Cells, Column, ListState, col};

use super::list::{self, Table};

pub struct Market;

const KEYS: &[Binding] = &[
    b(
        &[(KeyCode::Char('p'), N)],
        "p",
        Action::Publish,
        "publish",
        true,
    ),
    b(
        &[(KeyCode::Char('m'), N)],
        "m",
        Action::Register,
        "register",
        true,
    ),
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

impl Table for Market {
    const ID: ViewId = ViewId::Market;
    const NOUN: &'static str = "marketplace entry";
    const COLUMNS: &'static [Column] = COLUMNS;
    const KEYS: &'static [Binding] = KEYS;

    fn ids(reg: &Registry) -> Vec<String> {
        reg.market.keys().cloned().collect()
    }

    fn total(reg: &Registry) -> usize {
        reg.market.len()
    }

    fn haystack(data: &Data, id: &str) -> String {
        data.registry()
            .market
            .get(id)
            .map_or_else(String::new, |e| {
                format!("{} {} {}", e.name, e.provider, e.tags.join(" "))
            })
    }

    fn cells(data: &Data, id: &str) -> Cells {
        cells(data, id)
    }

    fn act(action: Action, list: &ListState, data: &Data) -> Effect {
        let reg = data.registry();
        let selected = list.selected_id().and_then(|n| reg.market.get(n));
        match (action, selected) {
            (Action::Create, _) => Effect::Form(forms::simple::market(reg, None)),
            (Action::Edit, Some(e)) => Effect::Form(forms::simple::market(reg, Some(e))),
            (Action::Register, Some(e)) => Effect::Form(forms::model::create(reg, Some(&e.name))),
            (Action::Publish, Some(e)) => {
                let published = !e.published;
                let done = format!(
                    "{} {}",
                    e.name,
                    if published {
                        "published"
                    } else {
                        "unpublished"
                    }
                );
                Effect::Send {
                    op: Op::Apply(vec![Change::SetPublished {
                        name: e.name.clone(),
                        published,
                    }]),
                    done,
                }
            }
            (Action::Delete, Some(e)) => list::delete(
                "marketplace entry",
                &e.name,
                Change::DeleteMarket {
                    name: e.name.clone(),
                },
                "",
            ),
            _ => Effect::None,
        }
    }
}

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
