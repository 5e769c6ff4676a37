//! `:budgets` (docs/usage.md "Budgets"): every budget with its subject,
//! amount per UTC day or month, what was spent this period and what is
//! left (with a bar), and when it resets. `a` adds one (a form), `d`
//! removes one after asking. Changing an amount is the CLI's (`maasctl
//! budget edit`) or a file's (`apply -f`).
//!
//! The rows are the registry's budgets (so a budget added or removed
//! anywhere shows at once); the spending comes from the client
//! (`Client::budgets`: the store's ledger, or `GET /admin/v1/budgets`),
//! asked for when the view is shown and every couple of seconds while it
//! is (`tui/run.rs`). Until the first answer the spending shows `…`.

use crossterm::event::KeyCode;
use ratatui::text::{Line, Span};

use crate::domain::budget::{self, Budget, BudgetStatus, BudgetUnit};
use crate::domain::{Change, Registry, RuleTarget};
use crate::tui::action::Action;
use crate::tui::component::Effect;
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b};
use crate::tui::widgets::table::{Cells, Column, ListState, col, num};

use super::list::Table;

pub struct Budgets;

const KEYS: &[Binding] = &[
    b(
        &[(KeyCode::Char('a'), N), (KeyCode::Char('c'), N)],
        "a",
        Action::Create,
        "add",
        true,
    ),
    b(
        &[(KeyCode::Char('d'), N)],
        "d",
        Action::Delete,
        "remove",
        true,
    ),
];

/// Cells of the USED bar.
const BAR: usize = 8;

pub const COLUMNS: &[Column] = &[
    col("ID", 4, 0),
    col("TARGET", 9, 0).drop(2),
    col("SUBJECT", 10, 2),
    col("PER", 5, 0),
    num("AMOUNT", 8),
    num("SPENT", 8),
    num("LEFT", 8),
    col("USED", BAR as u16 + 5, 0),
    col("RESETS (UTC)", 12, 0).drop(1),
];

impl Table for Budgets {
    const ID: ViewId = ViewId::Budgets;
    const NOUN: &'static str = "budget";
    const COLUMNS: &'static [Column] = COLUMNS;
    const KEYS: &'static [Binding] = KEYS;

    /// In id order (`b2` before `b10`).
    fn ids(reg: &Registry) -> Vec<String> {
        let mut ids: Vec<String> = reg.budgets.keys().cloned().collect();
        ids.sort_by_key(|id| budget::id_number(id));
        ids
    }

    fn total(reg: &Registry) -> usize {
        reg.budgets.len()
    }

    fn haystack(data: &Data, id: &str) -> String {
        data.registry().budgets.get(id).map_or_else(
            || id.to_string(),
            |b| format!("{id} {} {}", b.spec.target, subject(data, b)),
        )
    }

    fn cells(data: &Data, id: &str) -> Cells {
        let Some(b) = data.registry().budgets.get(id) else {
            return Vec::new();
        };
        cells(data, b, data.budgets.get(id))
    }

    fn act(action: Action, list: &ListState, data: &Data) -> Effect {
        let reg = data.registry();
        let selected = list.selected_id().and_then(|id| reg.budgets.get(id));
        match (action, selected) {
            (Action::Create, _) => Effect::Form(crate::tui::forms::budget::create(reg)),
            (Action::Delete, Some(b)) => super::safe::delete(
                data,
                "budget",
                &b.id,
                Change::DeleteBudget { id: b.id.clone() },
                &[format!(
                    "{} is no longer held to {}.",
                    subject(data, b),
                    b.spec.describe()
                )],
            ),
            _ => Effect::None,
        }
    }

    fn selection_line(data: &Data, id: Option<&str>) -> Option<Line<'static>> {
        let b = data.registry().budgets.get(id?)?;
        let s = data.budgets.get(&b.id)?;
        let text = if s.exhausted() {
            format!(
                " spent: requests get 429 insufficient_quota until {} ",
                budget::rfc3339(s.resets_at_ms)
            )
        } else {
            format!(" {} left this {} ", s.unit.show(s.left), s.period)
        };
        let style = if s.exhausted() {
            data.theme.bad()
        } else {
            data.theme.dim()
        };
        Some(Line::from(Span::styled(text, style)))
    }
}

/// `acme`, or a key as `acme/ci`.
fn subject(data: &Data, b: &Budget) -> String {
    match b.spec.target {
        RuleTarget::Workspace => b.spec.subject.clone(),
        RuleTarget::ApiKey => data.key_label(&b.spec.subject),
    }
}

/// `1000`, `12.5k`, `$12.50` (cut to fit; the footer and `maasctl budget
/// list` give the exact figure).
fn figure(unit: BudgetUnit, n: u64) -> String {
    match unit {
        BudgetUnit::Tokens => format::count(n),
        BudgetUnit::Usd => format::money(n),
    }
}

/// `06-16 00:00` (UTC; the year is the current one or the next).
fn resets(ms: i64) -> String {
    let full = format::date_time(ms / 1000);
    full.get(5..).unwrap_or(&full).to_string()
}

/// `█████░░░  62%`.
fn bar(pct: u64) -> String {
    let full = (pct as usize * BAR).div_ceil(100).min(BAR);
    format!("{}{} {pct:>3}%", "█".repeat(full), "░".repeat(BAR - full))
}

fn cells(data: &Data, b: &Budget, s: Option<&BudgetStatus>) -> Cells {
    let t = &data.theme;
    let spec = &b.spec;
    let mut out = vec![
        Span::raw(b.id.clone()),
        Span::styled(spec.target.as_str().to_string(), t.dim()),
        Span::styled(subject(data, b), t.key()),
        Span::raw(spec.period.to_string()),
        Span::raw(figure(spec.unit, spec.amount)),
    ];
    match s {
        Some(s) => {
            let style = match s.percent() {
                _ if s.exhausted() => t.bad(),
                p if p >= 80 => t.warn(),
                _ => t.good(),
            };
            out.extend([
                Span::raw(figure(spec.unit, s.spent)),
                Span::styled(figure(spec.unit, s.left), style),
                Span::styled(bar(s.percent()), style),
                Span::styled(resets(s.resets_at_ms), t.dim()),
            ]);
        }
        None => {
            let (_, end) = spec.period.bounds(data.now_ms);
            out.extend([
                Span::styled("…", t.dim()),
                Span::styled("…", t.dim()),
                Span::styled("…", t.dim()),
                Span::styled(resets(end), t.dim()),
            ]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bar_fills_by_share() {
        assert_eq!(super::bar(0), "░░░░░░░░   0%");
        assert_eq!(super::bar(50), "████░░░░  50%");
        assert_eq!(super::bar(100), "████████ 100%");
    }
}
