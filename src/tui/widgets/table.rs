//! The list table: columns that give way on narrow terminals, and only the
//! visible rows built, so a frame costs the same for 10 rows or 10,000.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use crate::tui::format;
use crate::tui::ids::Sort;
use crate::tui::theme::Theme;

/// A column: its minimum width, how much spare width it takes, and how
/// early it is dropped when the terminal is too narrow.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub title: &'static str,
    pub min: u16,
    /// Share of the spare width (0 = fixed).
    pub grow: u16,
    /// Numbers are right-aligned.
    pub right: bool,
    /// 0 = always shown; otherwise dropped, highest first, when it does not fit.
    pub drop: u8,
}

pub const fn col(title: &'static str, min: u16, grow: u16) -> Column {
    Column {
        title,
        min,
        grow,
        right: false,
        drop: 0,
    }
}

pub const fn num(title: &'static str, min: u16) -> Column {
    Column {
        title,
        min,
        grow: 0,
        right: true,
        drop: 0,
    }
}

impl Column {
    pub const fn drop(mut self, order: u8) -> Self {
        self.drop = order;
        self
    }
}

/// Widths of the shown columns (`None` = dropped) for `width` cells.
pub fn layout(cols: &[Column], width: u16) -> Vec<Option<u16>> {
    let mut shown: Vec<bool> = vec![true; cols.len()];
    let need = |shown: &[bool]| -> u16 {
        let n = shown.iter().filter(|s| **s).count() as u16;
        cols.iter()
            .zip(shown)
            .filter(|(_, s)| **s)
            .map(|(c, _)| c.min)
            .sum::<u16>()
            + n.saturating_sub(1)
    };
    while need(&shown) > width {
        let victim = cols
            .iter()
            .enumerate()
            .filter(|(i, c)| shown[*i] && c.drop > 0)
            .max_by_key(|(i, c)| (c.drop, *i))
            .map(|(i, _)| i);
        match victim {
            Some(i) => shown[i] = false,
            None => break,
        }
    }
    let over = need(&shown).saturating_sub(width);
    if over > 0 {
        return squeezed(cols, &shown, over);
    }
    let spare = width.saturating_sub(need(&shown));
    let grow: u16 = cols
        .iter()
        .zip(&shown)
        .filter(|(_, s)| **s)
        .map(|(c, _)| c.grow)
        .sum();
    let mut given = 0u16;
    let last_grower = cols
        .iter()
        .enumerate()
        .rfind(|(i, c)| shown[*i] && c.grow > 0)
        .map(|(i, _)| i);
    cols.iter()
        .enumerate()
        .map(|(i, c)| {
            if !shown[i] {
                return None;
            }
            if grow == 0 || c.grow == 0 {
                return Some(c.min);
            }
            let extra = if Some(i) == last_grower {
                spare - given
            } else {
                (u32::from(spare) * u32::from(c.grow) / u32::from(grow)) as u16
            };
            given += extra;
            Some(c.min + extra)
        })
        .collect()
}

/// Narrower than the columns that are never dropped: the growing ones
/// (then the others), last first, give up `over` cells, down to 3 each,
/// so every cell is cut with `…` by the table rather than clipped by the
/// terminal.
fn squeezed(cols: &[Column], shown: &[bool], mut over: u16) -> Vec<Option<u16>> {
    let mut widths: Vec<Option<u16>> = cols
        .iter()
        .zip(shown)
        .map(|(c, s)| s.then_some(c.min))
        .collect();
    for growing in [true, false] {
        for (i, c) in cols.iter().enumerate().rev() {
            let Some(w) = widths[i].as_mut() else {
                continue;
            };
            if over == 0 || (c.grow > 0) != growing {
                continue;
            }
            let give = w.saturating_sub(3).min(over);
            *w -= give;
            over -= give;
        }
    }
    widths
}

/// Selection and scroll of a list, and the ids it shows (filtered, sorted).
#[derive(Debug, Clone, Default)]
pub struct ListState {
    pub selected: usize,
    pub offset: usize,
    pub filter: String,
    /// Ids of the shown rows, in order.
    pub rows: Vec<String>,
    /// The order chosen with the sort keys (`None`: the view's default).
    pub sort: Option<Sort>,
    /// The filtered rows in their base order (`rows` before sorting).
    pub base: Vec<String>,
    /// The registry revision and filter `base` was built for.
    pub built: Option<(u64, String)>,
    /// The order `rows` was sorted in, and the generation of what it read.
    pub ordered: Option<(Sort, u64)>,
}

impl ListState {
    /// Set the filter text; typing it moves back to the first row.
    pub fn set_filter(&mut self, text: &str, typed: bool) {
        self.filter = text.to_string();
        if typed {
            self.selected = 0;
            self.offset = 0;
        }
    }

    pub fn selected_id(&self) -> Option<&str> {
        self.rows.get(self.selected).map(String::as_str)
    }

    /// Move the selection by `delta` rows, clamped.
    pub fn step(&mut self, delta: isize) {
        if self.rows.is_empty() {
            self.selected = 0;
            return;
        }
        let max = self.rows.len() - 1;
        self.selected = self.selected.saturating_add_signed(delta).min(max);
    }

    pub fn select_id(&mut self, id: &str) -> bool {
        match self.rows.iter().position(|r| r == id) {
            Some(i) => {
                self.selected = i;
                true
            }
            None => false,
        }
    }

    /// Replace the rows, keeping the selection on the same id when it is
    /// still there.
    pub fn set_rows(&mut self, rows: Vec<String>) {
        let keep = self.selected_id().map(str::to_string);
        self.rows = rows;
        if !keep.is_some_and(|id| self.select_id(&id)) {
            self.selected = self.selected.min(self.rows.len().saturating_sub(1));
        }
    }

    /// Keep the selection within `height` visible rows (before a frame:
    /// the scroll then moves only when the selection leaves the rows shown).
    pub fn scroll_to_selection(&mut self, height: usize) {
        self.offset = self.offset_for(height);
    }

    /// The first row shown in `height` rows: `offset`, moved just enough
    /// to show the selection.
    fn offset_for(&self, height: usize) -> usize {
        if height == 0 {
            return self.offset;
        }
        let mut offset = self.offset;
        if self.selected < offset {
            offset = self.selected;
        } else if self.selected >= offset + height {
            offset = self.selected + 1 - height;
        }
        offset.min(self.rows.len().saturating_sub(height))
    }
}

/// `s` cut to `width` columns with `…` (untouched when it fits).
fn fit_span(s: Span<'static>, width: usize) -> Span<'static> {
    if s.width() <= width {
        s
    } else {
        Span::styled(format::fit(&s.content, width).into_owned(), s.style)
    }
}

/// A cell: text and style (numbers right-aligned by their column).
pub type Cells = Vec<Span<'static>>;

/// What a table shows besides its rows.
pub struct Spec<'a> {
    pub title: Line<'a>,
    pub cols: &'a [Column],
    /// Has the selection (highlighted border and row).
    pub focused: bool,
    /// The column the rows are sorted by (its title) and the arrow shown
    /// after that title.
    pub sorted: Option<(&'a str, &'a str)>,
}

/// The block around a table's rows.
fn block<'a>(theme: &Theme, title: Line<'a>, focused: bool) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused {
            theme.border_focus()
        } else {
            theme.border()
        })
        .title(title)
}

/// How many rows a table drawn in `area` shows (inside its border, under
/// its header).
pub fn visible_rows(area: Rect) -> usize {
    // The border takes a row above and one below, the header one.
    usize::from(area.height.saturating_sub(2).saturating_sub(1))
}

/// Draw `state`'s rows in a bordered table, building only the visible ones
/// with `row`.
pub fn render(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    spec: Spec<'_>,
    state: &ListState,
    mut row: impl FnMut(&str) -> Cells,
) {
    let Spec {
        title,
        cols,
        focused,
        sorted,
    } = spec;
    let block = block(theme, title, focused);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let widths = layout(cols, inner.width);
    let height = inner.height.saturating_sub(1) as usize;
    let offset = state.offset_for(height);
    // A cell wider than its column is cut with `…`, so a cut is never
    // mistaken for the whole value.
    let align = |c: &Column, width: u16, s: Span<'static>| -> Cell<'static> {
        let s = fit_span(s, usize::from(width));
        if c.right {
            Cell::from(Line::from(s).alignment(Alignment::Right))
        } else {
            Cell::from(Line::from(s))
        }
    };
    let header = Row::new(
        cols.iter()
            .zip(&widths)
            .filter_map(|(c, w)| {
                let title = match sorted {
                    Some((col, arrow)) if col == c.title => format!("{}{arrow}", c.title),
                    _ => c.title.to_string(),
                };
                Some(align(c, (*w)?, Span::raw(title)))
            })
            .collect::<Vec<_>>(),
    )
    .style(theme.header());
    let end = (offset + height).min(state.rows.len());
    let rows: Vec<Row> = state.rows[offset..end]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let cells = row(id);
            let r = Row::new(
                cols.iter()
                    .zip(&widths)
                    .zip(cells)
                    .filter_map(|((c, w), s)| Some(align(c, (*w)?, s)))
                    .collect::<Vec<_>>(),
            );
            if focused && offset + i == state.selected {
                r.style(theme.selected())
            } else {
                r
            }
        })
        .collect();
    let constraints: Vec<Constraint> = widths
        .iter()
        .flatten()
        .map(|w| Constraint::Length(*w))
        .collect();
    f.render_widget(
        Table::new(rows, constraints)
            .header(header)
            .column_spacing(1),
        inner,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_terminals_drop_optional_columns_first() {
        let cols = [
            col("A", 10, 1),
            col("B", 10, 0).drop(2),
            col("C", 10, 1).drop(1),
        ];
        assert_eq!(layout(&cols, 40), vec![Some(14), Some(10), Some(14)]);
        assert_eq!(layout(&cols, 25), vec![Some(12), None, Some(12)]);
        assert_eq!(layout(&cols, 12), vec![Some(12), None, None]);
        // Narrower still: the growing column gives way (down to 3), never
        // more width than there is.
        assert_eq!(layout(&cols, 8), vec![Some(8), None, None]);
        let fixed = [col("A", 10, 1), num("N", 6)];
        assert_eq!(layout(&fixed, 12), vec![Some(5), Some(6)]);
        assert_eq!(layout(&fixed, 6), vec![Some(3), Some(3)]);
    }

    #[test]
    fn cells_wider_than_their_column_are_cut_with_a_marker() {
        use ratatui::Terminal;
        use ratatui::backend::TestBackend;
        let cols = [col("NAME", 8, 0), num("N", 3)];
        let state = ListState {
            rows: vec!["a".into(), "b".into(), "c".into()],
            ..Default::default()
        };
        let mut term = Terminal::new(TestBackend::new(14, 6)).unwrap();
        term.draw(|f| {
            let spec = Spec {
                title: Line::default(),
                cols: &cols,
                focused: false,
                sorted: Some(("N", "↓")),
            };
            render(f, f.area(), &Theme::colored(), spec, &state, |id| {
                let name = match id {
                    "a" => "Alibaba Cloud",
                    "b" => "模型名称很长",
                    _ => "fits",
                };
                vec![Span::raw(name), Span::raw("1234")]
            })
        })
        .unwrap();
        let screen = format!("{}", term.backend());
        let rows: Vec<&str> = screen.lines().skip(2).take(3).collect();
        assert_eq!(screen.lines().nth(1), Some("\"│NAME      N↓│\""));
        assert_eq!(rows[0], "\"│Alibaba… 12…│\"");
        // Wide characters: whole ones only (a half would not fit), then the
        // marker, within the column's 8 cells.
        assert!(rows[1].starts_with("\"│模型名…  12…│\""), "{}", rows[1]);
        assert_eq!(rows[2], "\"│fits     12…│\"");
    }

    #[test]
    fn selection_survives_a_refresh_and_scroll_follows_it() {
        let mut s = ListState {
            rows: (0..100).map(|i| format!("r{i:03}")).collect(),
            ..Default::default()
        };
        s.step(50);
        s.set_rows((0..100).rev().map(|i| format!("r{i:03}")).collect());
        assert_eq!(s.selected_id(), Some("r050"));
        s.scroll_to_selection(10);
        assert!(s.offset <= s.selected && s.selected < s.offset + 10);
        s.step(-1000);
        assert_eq!(s.selected, 0);
    }
}
