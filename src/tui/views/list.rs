//! The list views (models, keys, workspaces, clusters, market): one
//! [`Table`] per resource says what its rows are, how they look, sort and
//! what its own keys do; [`List`] makes any of them a [`View`] with the
//! selection, `/` filter, sort keys and the shared table.
//!
//! Rows are derived when data arrives, not when drawn: the filtered ids are
//! rebuilt when the registry or the filter moves, their order when that or
//! what the sort reads (rates, statuses) moves. A frame builds only the
//! cells of the visible rows.

use std::marker::PhantomData;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::domain::{Change, Registry};
use crate::tui::action::{Action, Op};
use crate::tui::component::{Effect, View};
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::ids::{Sort, SortBy, ViewId};
use crate::tui::keymap::Binding;
use crate::tui::widgets::table::{self, Cells, Column, ListState};

use super::sort;

/// One kind of row: everything that differs between the list views.
pub trait Table: 'static {
    const ID: ViewId;
    /// What a row is, for "no … selected".
    const NOUN: &'static str;
    const COLUMNS: &'static [Column];
    /// The view's own keys (the global ones follow).
    const KEYS: &'static [Binding];
    /// What the list is sorted by until a sort key is pressed.
    const DEFAULT_SORT: SortBy = SortBy::Name;

    /// Every row's id, in base order (by name).
    fn ids(reg: &Registry) -> Vec<String>;
    /// How many there are, filtered or not (the title's `[shown/total]`).
    fn total(reg: &Registry) -> usize;
    /// The text `/` matches (case-insensitive substring).
    fn haystack(_data: &Data, id: &str) -> String {
        id.to_string()
    }
    /// One row's cells, one per column.
    fn cells(data: &Data, id: &str) -> Cells;
    /// The title of the column `by` sorts (it gets the arrow).
    fn sort_column(_by: SortBy) -> Option<&'static str> {
        None
    }
    /// Put `ids` (base order) in `order`. Ties keep the base order.
    fn sort(_data: &Data, order: Sort, ids: Vec<String>) -> Vec<String> {
        sort::by_name(order, ids)
    }
    /// What an action of [`Table::KEYS`] does; actions on a row only come
    /// when one is selected.
    fn act(action: Action, list: &ListState, data: &Data) -> Effect;
    /// A line drawn over the table's bottom border for the selected row.
    fn selection_line(_data: &Data, _id: Option<&str>) -> Option<Line<'static>> {
        None
    }
}

/// A list view over the rows `T` describes.
pub struct List<T> {
    state: ListState,
    rows: PhantomData<fn() -> T>,
}

/// The list view of `T`, for the view table.
pub fn new<T: Table>() -> Box<dyn View> {
    Box::new(List::<T> {
        state: ListState::default(),
        rows: PhantomData,
    })
}

/// Actions on the selected row of a list.
fn needs_selection(action: Action) -> bool {
    matches!(
        action,
        Action::Open
            | Action::Edit
            | Action::Delete
            | Action::Toggle
            | Action::Revoke
            | Action::Publish
            | Action::Register
            | Action::AddRule
    )
}

/// Ask before deleting `id` (a `what`); `also` says what else it does.
pub fn delete(what: &str, id: &str, change: Change, also: &str) -> Effect {
    Effect::confirm(
        &format!("Delete {what}?"),
        format!("Delete {what} {id}?{also} y to delete, n to keep."),
        Op::Apply(vec![change]),
        format!("{what} {id} deleted"),
    )
}

/// How a move key moves the selection.
pub fn step_of(action: Action) -> Option<isize> {
    Some(match action {
        Action::Up => -1,
        Action::Down => 1,
        Action::PageUp => -20,
        Action::PageDown => 20,
        Action::Top => isize::MIN / 2,
        Action::Bottom => isize::MAX / 2,
        _ => return None,
    })
}

impl<T: Table> List<T> {
    fn order(&self) -> Sort {
        self.state
            .sort
            .unwrap_or_else(|| Sort::new(T::DEFAULT_SORT))
    }

    /// The ids matching the filter, in base order.
    fn filtered(&self, data: &Data) -> Vec<String> {
        let ids = T::ids(data.registry());
        if self.state.filter.is_empty() {
            return ids;
        }
        let needle = self.state.filter.to_lowercase();
        ids.into_iter()
            .filter(|id| T::haystack(data, id).to_lowercase().contains(&needle))
            .collect()
    }

    /// What an empty list shows: why, and what to press.
    fn empty_hint(&self) -> String {
        if !self.state.filter.is_empty() {
            format!(
                "no {} matches /{}: esc clears the filter",
                T::NOUN,
                self.state.filter
            )
        } else if T::KEYS.iter().any(|b| b.action == Action::Create) {
            format!("no {}s yet: c creates one, : switches views", T::NOUN)
        } else {
            format!("no {}s yet: : switches views", T::NOUN)
        }
    }

    /// "no model selected", with what to do about it.
    fn nothing_selected(&self) -> Effect {
        let hint = if !self.state.filter.is_empty() {
            " (the filter hides every row: esc clears it)"
        } else if T::KEYS.iter().any(|b| b.action == Action::Create) {
            " (c creates one)"
        } else {
            ""
        };
        Effect::error(format!("no {} selected{hint}", T::NOUN))
    }
}

impl<T: Table> View for List<T> {
    fn id(&self) -> ViewId {
        T::ID
    }

    fn keys(&self) -> &'static [Binding] {
        T::KEYS
    }

    fn handle(&mut self, action: Action, data: &Data) -> Effect {
        if needs_selection(action) && self.state.selected_id().is_none() {
            return self.nothing_selected();
        }
        if let Some(delta) = step_of(action) {
            self.state.step(delta);
            return Effect::None;
        }
        match action {
            Action::Sort(by) => {
                self.state.sort = Some(self.order().pressed(by));
                self.refresh(data);
                Effect::None
            }
            other => T::act(other, &self.state, data),
        }
    }

    fn refresh(&mut self, data: &Data) {
        let revision = data.registry().revision;
        let st = &self.state;
        if st
            .built
            .as_ref()
            .is_none_or(|(r, f)| *r != revision || *f != st.filter)
        {
            let base = self.filtered(data);
            let st = &mut self.state;
            st.base = base;
            st.built = Some((revision, st.filter.clone()));
            st.ordered = None;
        }
        let order = self.order();
        let key = (order, sort::depends_on(data, order));
        let st = &mut self.state;
        if st.ordered != Some(key) {
            st.set_rows(T::sort(data, order, st.base.clone()));
            st.ordered = Some(key);
        }
    }

    fn layout(&mut self, _data: &Data, area: Rect) {
        self.state.scroll_to_selection(table::visible_rows(area));
    }

    fn render(&self, data: &Data, f: &mut Frame, area: Rect) {
        let state = &self.state;
        let mut title = vec![
            Span::styled(format!(" {} ", T::ID.name()), data.theme.title()),
            Span::raw(format!(
                "[{}/{}] ",
                state.rows.len(),
                T::total(data.registry())
            )),
        ];
        if !state.filter.is_empty() {
            title.push(Span::styled(
                format!("/{} ", state.filter),
                data.theme.key(),
            ));
        }
        let order = self.order();
        // The title names a chosen order (its column may be dropped on a
        // narrow terminal); the column title always carries the arrow.
        if order != Sort::new(T::DEFAULT_SORT) {
            title.push(Span::styled(
                format!("by {}{} ", order.by.label(), order.arrow()),
                data.theme.dim(),
            ));
        }
        let spec = table::Spec {
            title: Line::from(title),
            cols: T::COLUMNS,
            focused: true,
            sorted: T::sort_column(order.by).map(|c| (c, order.arrow())),
        };
        table::render(f, area, &data.theme, spec, state, |id| T::cells(data, id));
        if state.rows.is_empty() && area.height > 3 && area.width > 4 {
            // An empty list says what to press.
            let hint = self.empty_hint();
            let line = format::fit_line(
                Line::from(Span::styled(hint, data.theme.dim())),
                usize::from(area.width - 4),
            );
            f.render_widget(
                Paragraph::new(line),
                Rect::new(area.x + 2, area.y + 2, area.width - 4, 1),
            );
        }
        if let Some(line) = T::selection_line(data, state.selected_id()) {
            let y = area.y + area.height.saturating_sub(1);
            let line = format::fit_line(line, usize::from(area.width.saturating_sub(4)));
            let w = line.width() as u16;
            f.render_widget(Paragraph::new(line), Rect::new(area.x + 2, y, w, 1));
        }
    }

    fn filter(&self) -> Option<&str> {
        Some(&self.state.filter)
    }

    fn set_filter(&mut self, text: &str, typed: bool, data: &Data) {
        self.state.set_filter(text, typed);
        self.refresh(data);
    }

    fn list(&self) -> Option<&ListState> {
        Some(&self.state)
    }

    fn select(&mut self, id: &str) -> bool {
        self.state.select_id(id)
    }
}
