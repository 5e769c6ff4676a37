//! `:usage`: what the keys used of the models (issue 12), from the usage
//! ledger the gateways write every 10 s (`docs/usage.md`): a chart of
//! tokens over time and a table of requests, outcomes, tokens and cost per
//! group, most tokens first, with a totals row (`docs/console.md`,
//! "Usage").
//!
//! Range: whole UTC days up to the end of today (`t` today, `w` the last
//! 7 days, `m` the last 30, `tab` the next); grouping (`g`): workspace →
//! key → model → workspace×model. The report comes from the client
//! (`Client::usage`: the store, or `GET /admin/v1/usage`) through the app's
//! background calls: asked when the view is shown, on `r` or a change of
//! range or grouping, and every [`REFRESH_MS`] while it is shown (one call
//! at a time). The table shows compact numbers (`12.3k`, `4.57M`); `enter`
//! shows a row's exact figures and its group's values whole.

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Modifier;
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, Block, Borders, Cell, Paragraph, Row, Table, Wrap};

use crate::domain::usage::{DAY_MS, Dim, Usage, UsageGroup, UsageQuery, UsageReport};
use crate::tui::action::Action;
use crate::tui::component::{Effect, View};
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b};
use crate::tui::popups::Overlay;
use crate::tui::theme::Theme;
use crate::tui::widgets::table::{self, Column, ListState, col, num};

use super::list::step_of;

/// How often the view asks for its report again while it is shown: the
/// gateways' ledger flush interval (`GatewayConfig::usage_flush`).
pub const REFRESH_MS: i64 = 10_000;

const KEYS: &[Binding] = &[
    b(
        &[(KeyCode::Tab, N)],
        "tab",
        Action::NextRange,
        "range",
        true,
    ),
    b(
        &[(KeyCode::Char('g'), N)],
        "g",
        Action::Group,
        "group",
        true,
    ),
    b(
        &[(KeyCode::Char('r'), N)],
        "r",
        Action::Refresh,
        "refresh",
        true,
    ),
    b(
        &[(KeyCode::Enter, N)],
        "enter",
        Action::Open,
        "figures",
        true,
    ),
    b(
        &[(KeyCode::Char('t'), N)],
        "t",
        Action::Days(1),
        "today (UTC)",
        false,
    ),
    b(
        &[(KeyCode::Char('w'), N)],
        "w",
        Action::Days(7),
        "last 7 days",
        false,
    ),
    b(
        &[(KeyCode::Char('m'), N)],
        "m",
        Action::Days(30),
        "last 30 days",
        false,
    ),
];

/// The ranges, in `tab` order: whole UTC days ending with today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Today,
    Week,
    Month,
}

impl Range {
    pub fn days(self) -> i64 {
        match self {
            Range::Today => 1,
            Range::Week => 7,
            Range::Month => 30,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Range::Today => "today",
            Range::Week => "7 days",
            Range::Month => "30 days",
        }
    }

    /// How the empty state names it.
    fn phrase(self) -> &'static str {
        match self {
            Range::Today => "today (UTC)",
            Range::Week => "in the last 7 days",
            Range::Month => "in the last 30 days",
        }
    }

    fn next(self) -> Self {
        match self {
            Range::Today => Range::Week,
            Range::Week => Range::Month,
            Range::Month => Range::Today,
        }
    }

    fn of_days(days: u16) -> Self {
        match days {
            0 | 1 => Range::Today,
            2..=7 => Range::Week,
            _ => Range::Month,
        }
    }
}

/// The groupings, in `g` order.
pub const GROUPINGS: [&[Dim]; 4] = [
    &[Dim::Workspace],
    &[Dim::Key],
    &[Dim::Model],
    &[Dim::Workspace, Dim::Model],
];

/// The query for `range` grouped `by` at `now_ms`: from 00:00 UTC of the
/// range's first day to 00:00 UTC tomorrow (the ledger has nothing later;
/// the chart then shows whole days: 24 hours today, one bar a day beyond).
pub fn query_for(range: Range, by: &[Dim], now_ms: i64) -> UsageQuery {
    let tomorrow = crate::domain::usage::floor(now_ms, DAY_MS) + DAY_MS;
    UsageQuery {
        since_ms: tomorrow - range.days() * DAY_MS,
        until_ms: tomorrow,
        by: by.to_vec(),
    }
}

/// The usage view's state: range, grouping, filter and selection; what it
/// shows comes from [`Data::usage`](crate::tui::data::Data).
pub struct UsageView {
    pub range: Range,
    /// Index into [`GROUPINGS`].
    pub grouping: usize,
    /// Row ids are the groups' values joined by tabs ([`row_id`]): the
    /// selection stays on its group when a refresh reorders them.
    pub state: ListState,
    /// The sum of the rows shown (the report's total when not filtered).
    pub total: Usage,
    /// What the rows were built for: report generation, filter, range,
    /// grouping, registry revision (key labels).
    built: Option<(u64, String, Range, usize, u64)>,
}

impl Default for UsageView {
    fn default() -> Self {
        Self {
            range: Range::Week,
            grouping: 3,
            state: ListState::default(),
            total: Usage::default(),
            built: None,
        }
    }
}

/// The usage view, for the view table.
pub fn new() -> Box<dyn View> {
    Box::new(UsageView::default())
}

/// A count in at most 7 columns: `9999`, `12.3k`, `4.57M`, `1.20G`.
pub fn compact(n: u64) -> String {
    let f = n as f64;
    if n < 10_000 {
        n.to_string()
    } else if f < 999_950.0 {
        format!("{:.1}k", f / 1e3)
    } else if f < 999_995_000.0 {
        format!("{:.2}M", f / 1e6)
    } else {
        format!("{:.2}G", f / 1e9)
    }
}

/// An exact count with thousands separators: `1,234,567`.
pub fn exact(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Dollars for the table: `$0`, `$0.0012`, `$12.34`, `$12.3k`.
pub fn dollars(nanos: u64) -> String {
    let usd = nanos as f64 / 1e9;
    if nanos == 0 {
        "$0".into()
    } else if usd < 0.0001 {
        "<$0.0001".into()
    } else if usd < 1.0 {
        format!("${usd:.4}")
    } else if usd < 10_000.0 {
        format!("${usd:.2}")
    } else {
        format!("${:.1}k", usd / 1e3)
    }
}

/// Dollars exactly as the ledger holds them (nano-dollars): `$0.000123456`.
pub fn dollars_exact(nanos: u64) -> String {
    format!(
        "${}.{:09}",
        exact(nanos / 1_000_000_000),
        nanos % 1_000_000_000
    )
}

const fn group_col(d: Dim) -> Column {
    match d {
        Dim::Workspace => col("WORKSPACE", 10, 1),
        Dim::Key => col("KEY", 12, 1),
        Dim::Model => col("MODEL", 12, 2),
    }
}

/// The figures' columns; on a narrow terminal COMPL goes first, then
/// PROMPT, 2XX, ERR, 429 (TOKENS, REQS and COST stay).
const COUNTS: [Column; 8] = [
    num("REQS", 6),
    num("2XX", 6).drop(3),
    num("429", 6).drop(1),
    num("ERR", 6).drop(2),
    num("PROMPT", 7).drop(4),
    num("COMPL", 7).drop(5),
    num("TOKENS", 7),
    num("COST", 8),
];

fn columns(by: &[Dim]) -> Vec<Column> {
    by.iter().map(|d| group_col(*d)).chain(COUNTS).collect()
}

fn figures(u: &Usage) -> [String; 8] {
    [
        compact(u.requests),
        compact(u.ok),
        compact(u.throttled),
        compact(u.errors),
        compact(u.prompt_tokens),
        compact(u.completion_tokens),
        compact(u.tokens()),
        dollars(u.cost_nanos),
    ]
}

/// A group's value of `d` as shown: a key as `workspace/name` (its id if
/// the registry no longer has it).
fn shown(data: &Data, d: Dim, value: &str) -> String {
    match d {
        Dim::Key => data.key_label(value),
        _ => value.to_string(),
    }
}

/// A group's row id: its values joined by tabs.
pub fn row_id(g: &UsageGroup) -> String {
    g.keys.join("\t")
}

/// What `/` matches in a group (lower case): its values, keys also by label.
fn haystack(data: &Data, by: &[Dim], g: &UsageGroup) -> String {
    let mut s = String::new();
    for (d, v) in by.iter().zip(&g.keys) {
        s.push_str(v);
        s.push(' ');
        if *d == Dim::Key {
            s.push_str(&data.key_label(v));
            s.push(' ');
        }
    }
    s.to_lowercase()
}

/// `2025-06-15 14:00` → `06-15 14:00`; daily buckets `06-15`.
fn bucket_label(ms: i64, step_ms: i64) -> String {
    let full = format::date_time(ms.div_euclid(1000));
    if step_ms >= DAY_MS {
        full[5..10].to_string()
    } else {
        full[5..].to_string()
    }
}

impl UsageView {
    pub fn by(&self) -> &'static [Dim] {
        GROUPINGS[self.grouping % GROUPINGS.len()]
    }

    /// The query for what the view shows, at `now_ms`.
    pub fn query(&self, now_ms: i64) -> UsageQuery {
        query_for(self.range, self.by(), now_ms)
    }

    /// `workspace×model`.
    pub fn grouping_label(&self) -> String {
        let names: Vec<&str> = self.by().iter().map(|d| d.as_str()).collect();
        names.join("×")
    }

    /// The report held, if it answers what the view shows now (a change of
    /// range or grouping waits for its own).
    pub fn report<'a>(&self, data: &'a Data) -> Option<&'a UsageReport> {
        data.usage
            .report
            .as_deref()
            .filter(|r| r.by == self.by() && r.until_ms - r.since_ms == self.range.days() * DAY_MS)
    }

    fn rebuild(&mut self, data: &Data) {
        let key = (
            data.usage.generation,
            self.state.filter.clone(),
            self.range,
            self.grouping,
            data.registry().revision,
        );
        if self.built.as_ref() == Some(&key) {
            return;
        }
        self.built = Some(key);
        let needle = self.state.filter.to_lowercase();
        let mut total = Usage::default();
        let mut rows = Vec::new();
        if let Some(r) = self.report(data) {
            for g in &r.groups {
                if needle.is_empty() || haystack(data, &r.by, g).contains(&needle) {
                    total.add(&g.usage);
                    rows.push(row_id(g));
                }
            }
        }
        self.total = total;
        self.state.set_rows(rows);
    }

    /// The group of row `id`, in the report shown.
    pub fn group<'a>(&self, data: &'a Data, id: &str) -> Option<&'a UsageGroup> {
        self.report(data)?.groups.iter().find(|g| row_id(g) == id)
    }

    fn set_range(&mut self, range: Range) -> Effect {
        if self.range == range {
            return Effect::None;
        }
        self.range = range;
        self.state.selected = 0;
        self.state.offset = 0;
        Effect::Reload
    }

    /// `enter`: the row's exact figures and its group's values whole.
    fn details(&self, data: &Data, g: &UsageGroup, r: &UsageReport) -> Effect {
        let mut lines = Vec::new();
        for (d, v) in r.by.iter().zip(&g.keys) {
            match d {
                Dim::Key => {
                    lines.push(format!("key:       {v}"));
                    lines.push(format!("           {}", data.key_label(v)));
                }
                _ => lines.push(format!("{:<10} {v}", format!("{}:", d.as_str()))),
            }
        }
        lines.push(format!(
            "range:     {} → {} UTC",
            format::date_time(r.since_ms / 1000),
            format::date_time(r.until_ms / 1000)
        ));
        lines.push(String::new());
        let u = &g.usage;
        let share = if r.total.tokens() == 0 {
            "—".to_string()
        } else {
            format!(
                "{:.1}%",
                u.tokens() as f64 * 100.0 / r.total.tokens() as f64
            )
        };
        let rows = [
            ("requests", exact(u.requests)),
            ("  2xx", exact(u.ok)),
            ("  throttled (429)", exact(u.throttled)),
            ("  errors", exact(u.errors)),
            ("prompt tokens", exact(u.prompt_tokens)),
            ("completion tokens", exact(u.completion_tokens)),
            ("total tokens", exact(u.tokens())),
            ("cost (USD)", dollars_exact(u.cost_nanos)),
            ("share of tokens", share),
        ];
        lines.extend(rows.iter().map(|(k, v)| format!("{k:<18} {v:>16}")));
        let title = g
            .keys
            .iter()
            .zip(&r.by)
            .map(|(v, d)| shown(data, *d, v))
            .collect::<Vec<_>>()
            .join(" · ");
        Effect::Overlay(Overlay::Text {
            title: format!("usage {} · {}", self.range.label(), title),
            lines,
        })
    }

    fn title(&self, data: &Data) -> Line<'static> {
        let t = &data.theme;
        let mut spans = vec![
            Span::styled(" usage ", t.title()),
            Span::styled(format!("{} ", self.range.label()), t.key()),
            Span::raw(format!("by {} ", self.grouping_label())),
        ];
        if let Some(r) = self.report(data) {
            spans.push(Span::raw(format!(
                "[{}/{}] ",
                self.state.rows.len(),
                r.groups.len()
            )));
        }
        if !self.state.filter.is_empty() {
            spans.push(Span::styled(format!("/{} ", self.state.filter), t.key()));
        }
        if data.usage.loading {
            spans.push(Span::styled("loading… ", t.dim()));
        } else if self.report(data).is_some() {
            spans.push(Span::styled(
                format!("as of {} UTC ", format::clock(data.usage.at_ms)),
                t.dim(),
            ));
        }
        Line::from(spans)
    }
}

/// Where the parts go: an error line (if any), the chart (when the body
/// has room for it and the table: it goes first), the table.
fn areas(area: Rect, error: bool) -> (Option<Rect>, Option<Rect>, Rect) {
    let error_h = u16::from(error);
    let rest = area.height.saturating_sub(error_h);
    let chart_h = if rest >= 18 && area.width >= 40 {
        (rest / 3).clamp(7, 14)
    } else {
        0
    };
    let [e, c, t] = Layout::vertical([
        Constraint::Length(error_h),
        Constraint::Length(chart_h),
        Constraint::Fill(1),
    ])
    .areas(area);
    ((error_h > 0).then_some(e), (chart_h > 0).then_some(c), t)
}

/// Tokens over time: one bar per step of the report (an hour today, a day
/// beyond), the peak in the title, the first and last step under the bars.
fn render_chart(f: &mut Frame, area: Rect, t: &Theme, r: &UsageReport) {
    let unit = if r.step_ms >= DAY_MS { "day" } else { "hour" };
    let peak = r.series.iter().max_by_key(|p| (p.tokens, -p.bucket_ms));
    let mut title = vec![Span::styled(
        format!(" tokens per {unit} (UTC) "),
        t.title(),
    )];
    match peak.filter(|p| p.tokens > 0) {
        Some(p) => title.push(Span::styled(
            format!(
                "· peak {} at {} ",
                compact(p.tokens),
                bucket_label(p.bucket_ms, r.step_ms)
            ),
            t.dim(),
        )),
        None => title.push(Span::styled("· none ", t.dim())),
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border())
        .title(format::fit_line(
            Line::from(title),
            usize::from(area.width.saturating_sub(2)),
        ));
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 2 || inner.width < 2 || r.series.is_empty() {
        return;
    }
    let w = usize::from(inner.width);
    let points = &r.series[r.series.len().saturating_sub(w)..];
    let per = (w / points.len()).max(1);
    let gap = usize::from(per >= 2);
    let bar_w = per - gap;
    let bars_h = inner.height - 1;
    let max = points.iter().map(|p| p.tokens).max().unwrap_or(0).max(1);
    // A step with any tokens shows at least an eighth of a row.
    let least = max.div_ceil(u64::from(bars_h) * 8);
    let bars: Vec<Bar> = points
        .iter()
        .map(|p| {
            let v = if p.tokens > 0 { p.tokens.max(least) } else { 0 };
            Bar::new(v).text_value("").style(t.good())
        })
        .collect();
    let bars_area = Rect {
        height: bars_h,
        ..inner
    };
    f.render_widget(
        BarChart::new(bars)
            .bar_width(bar_w as u16)
            .bar_gap(gap as u16)
            .bar_set(symbols::bar::NINE_LEVELS)
            .max(max),
        bars_area,
    );
    // Under the bars: the first step at the left, the last one ending
    // under the last bar.
    let first = bucket_label(points[0].bucket_ms, r.step_ms);
    let last = bucket_label(points[points.len() - 1].bucket_ms, r.step_ms);
    let used = points.len() * (bar_w + gap) - gap;
    let pad = used
        .saturating_sub(format::width(&first) + format::width(&last))
        .max(1);
    let line = Line::from(vec![
        Span::styled(first, t.dim()),
        Span::raw(" ".repeat(pad)),
        Span::styled(last, t.dim()),
    ]);
    let label_area = Rect {
        y: inner.y + bars_h,
        height: 1,
        ..inner
    };
    f.render_widget(Paragraph::new(format::fit_line(line, w)), label_area);
}

/// A line in the table's place (empty, loading, failed).
fn render_note(f: &mut Frame, area: Rect, title: Line<'static>, t: &Theme, text: Line<'static>) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border_focus())
        .title(title);
    f.render_widget(
        Paragraph::new(text).wrap(Wrap { trim: true }).block(block),
        area,
    );
}

impl UsageView {
    /// The table: the groups shown (scrolled to the selection) and, on
    /// the last row always, their total.
    fn render_table(&self, data: &Data, f: &mut Frame, area: Rect, r: &UsageReport) {
        let t = &data.theme;
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(t.border_focus())
            .title(self.title(data));
        let inner = block.inner(area);
        f.render_widget(block, area);
        let cols = columns(&r.by);
        let widths = table::layout(&cols, inner.width);
        let cell = |c: &Column, w: u16, s: Span<'static>| -> Option<Cell<'static>> {
            let s = Span::styled(
                format::fit(&s.content, usize::from(w)).into_owned(),
                s.style,
            );
            let line = Line::from(s);
            Some(Cell::from(if c.right {
                line.alignment(Alignment::Right)
            } else {
                line
            }))
        };
        let make = |spans: Vec<Span<'static>>| -> Vec<Cell<'static>> {
            cols.iter()
                .zip(&widths)
                .zip(spans)
                .filter_map(|((c, w), s)| cell(c, (*w)?, s))
                .collect()
        };
        let header = Row::new(make(
            cols.iter()
                .map(|c| Span::raw(c.title.to_string()))
                .collect(),
        ))
        .style(t.header());
        let height = usize::from(inner.height.saturating_sub(2));
        let end = (self.state.offset + height).min(self.state.rows.len());
        let start = self.state.offset.min(end);
        let mut rows: Vec<Row> = self.state.rows[start..end]
            .iter()
            .enumerate()
            .filter_map(|(i, id)| {
                let g = self.group(data, id)?;
                let mut spans: Vec<Span<'static>> =
                    r.by.iter()
                        .zip(&g.keys)
                        .map(|(d, v)| Span::styled(shown(data, *d, v), t.key()))
                        .collect();
                spans.extend(figures(&g.usage).map(Span::raw));
                spans[r.by.len() + 2].style = t.alarm(g.usage.throttled > 0);
                spans[r.by.len() + 3].style = t.alarm(g.usage.errors > 0);
                let row = Row::new(make(spans));
                Some(if start + i == self.state.selected {
                    row.style(t.selected())
                } else {
                    row
                })
            })
            .collect();
        rows.extend(std::iter::repeat_n(
            Row::new(Vec::<Cell>::new()),
            height - rows.len(),
        ));
        let label = if self.state.filter.is_empty() {
            "TOTAL"
        } else {
            "TOTAL shown"
        };
        let mut spans = vec![Span::raw(label.to_string())];
        spans.extend(std::iter::repeat_n(Span::raw(""), r.by.len() - 1));
        spans.extend(figures(&self.total).map(Span::raw));
        rows.push(Row::new(make(spans)).style(t.header().add_modifier(Modifier::BOLD)));
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
}

impl View for UsageView {
    fn id(&self) -> ViewId {
        ViewId::Usage
    }

    fn keys(&self) -> &'static [Binding] {
        KEYS
    }

    fn handle(&mut self, action: Action, data: &Data) -> Effect {
        if let Some(delta) = step_of(action) {
            self.state.step(delta);
            return Effect::None;
        }
        let effect = match action {
            Action::Days(d) => self.set_range(Range::of_days(d)),
            Action::NextRange => self.set_range(self.range.next()),
            Action::Group => {
                self.grouping = (self.grouping + 1) % GROUPINGS.len();
                self.state.selected = 0;
                self.state.offset = 0;
                Effect::Reload
            }
            Action::Refresh => Effect::Reload,
            Action::Open => {
                let selected = self.state.selected_id().and_then(|id| self.group(data, id));
                match (selected, self.report(data)) {
                    (Some(g), Some(r)) => self.details(data, g, r),
                    _ => Effect::error("no usage row selected"),
                }
            }
            _ => Effect::None,
        };
        self.rebuild(data);
        effect
    }

    fn refresh(&mut self, data: &Data) {
        self.rebuild(data);
    }

    fn layout(&mut self, data: &Data, area: Rect) {
        let (_, _, table_area) = areas(area, data.usage.error.is_some());
        // Inside the border: the header and the totals row.
        let rows = usize::from(table_area.height.saturating_sub(4));
        self.state.scroll_to_selection(rows);
    }

    fn render(&self, data: &Data, f: &mut Frame, area: Rect) {
        let t = &data.theme;
        let error = data.usage.error.as_ref();
        let (error_area, chart_area, table_area) = areas(area, error.is_some());
        if let (Some(a), Some(e)) = (error_area, error) {
            let text = format!("cannot read usage: {e} (r tries again; asked every 10 s)");
            f.render_widget(
                Paragraph::new(format::fit_line(
                    Line::from(Span::styled(text, t.bad())),
                    usize::from(a.width),
                )),
                a,
            );
        }
        let Some(r) = self.report(data) else {
            let text = match error {
                Some(_) if !data.usage.loading => "no report: see the error above",
                _ => "loading the usage report…",
            };
            // No chart without a report: the note takes its place too.
            let rest = Rect {
                y: table_area.y.min(chart_area.map_or(table_area.y, |c| c.y)),
                height: table_area.height + chart_area.map_or(0, |c| c.height),
                ..table_area
            };
            render_note(f, rest, self.title(data), t, Line::from(text));
            return;
        };
        if let Some(c) = chart_area {
            render_chart(f, c, t, r);
        }
        if r.groups.is_empty() {
            let text = format!(
                "no usage recorded {} — the gateway writes the ledger every 10 s; press r to refresh",
                self.range.phrase()
            );
            render_note(f, table_area, self.title(data), t, Line::from(text));
        } else if self.state.rows.is_empty() {
            let text = format!(
                "no group matches /{} (esc clears the filter)",
                self.state.filter
            );
            render_note(f, table_area, self.title(data), t, Line::from(text));
        } else {
            self.render_table(data, f, table_area, r);
        }
    }

    fn filter(&self) -> Option<&str> {
        Some(&self.state.filter)
    }

    fn set_filter(&mut self, text: &str, typed: bool, data: &Data) {
        self.state.set_filter(text, typed);
        self.rebuild(data);
    }

    fn list(&self) -> Option<&ListState> {
        Some(&self.state)
    }

    fn select(&mut self, id: &str) -> bool {
        self.state.select_id(id)
    }
}
