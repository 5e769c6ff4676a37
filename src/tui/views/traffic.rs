//! Live traffic: gateway totals, the busiest models/keys/workspaces, and
//! the recent throttle and error events.

use std::collections::HashMap;

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::gateway::{Event, EventKind};
use crate::tui::action::Action;
use crate::tui::component::{Effect, View};
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b};
use crate::tui::live::Rate;
use crate::tui::popups::Overlay;
use crate::tui::widgets::spark;
use crate::tui::widgets::table::{self, Column, ListState, col, num};

use super::list::step_of;

/// Which table of the traffic view has the selection (`tab` moves on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    Models,
    Keys,
    Workspaces,
    Events,
}

impl Pane {
    fn next(self) -> Self {
        match self {
            Pane::Models => Pane::Keys,
            Pane::Keys => Pane::Workspaces,
            Pane::Workspaces => Pane::Events,
            Pane::Events => Pane::Models,
        }
    }
}

/// The traffic view: what it shows comes from the live counters; it keeps
/// the rows of its four tables (derived when counters arrive) and which
/// one has the selection.
#[derive(Debug, Default)]
pub struct Traffic {
    pub pane: Pane,
    pub models: ListState,
    pub keys: ListState,
    pub workspaces: ListState,
    /// Events newest first, by their sequence number.
    pub events: ListState,
}

/// The traffic view, for the view table.
pub fn new() -> Box<dyn View> {
    Box::new(Traffic::default())
}

const KEYS: &[Binding] = &[
    b(
        &[(KeyCode::Tab, N)],
        "tab",
        Action::SwitchPane,
        "next pane",
        true,
    ),
    b(
        &[(KeyCode::Enter, N)],
        "enter",
        Action::Open,
        "open the row whole",
        true,
    ),
];

impl Traffic {
    fn state(&mut self) -> &mut ListState {
        match self.pane {
            Pane::Models => &mut self.models,
            Pane::Keys => &mut self.keys,
            Pane::Workspaces => &mut self.workspaces,
            Pane::Events => &mut self.events,
        }
    }

    /// `enter`: the selected event whole, or where a top row leads.
    fn open(&self, data: &Data) -> Effect {
        match self.pane {
            Pane::Models => match self.models.selected_id() {
                Some(m) if data.registry().models.contains_key(m) => {
                    Effect::Push(super::detail::new(m))
                }
                Some(m) => Effect::error(format!("model {m} is no longer in the registry")),
                None => Effect::None,
            },
            Pane::Keys => match self.keys.selected_id() {
                Some(k) => Effect::Jump(ViewId::Keys, Some(k.to_string())),
                None => Effect::None,
            },
            Pane::Workspaces => match self.workspaces.selected_id() {
                Some(w) => Effect::Jump(ViewId::Workspaces, Some(w.to_string())),
                None => Effect::None,
            },
            Pane::Events => {
                let seq = self.events.selected_id().and_then(|s| s.parse().ok());
                match data.live.current.events.iter().find(|e| Some(e.seq) == seq) {
                    Some(e) => Effect::Overlay(Overlay::Text {
                        title: "event".into(),
                        lines: event_text(data, e),
                    }),
                    None => Effect::None,
                }
            }
        }
    }
}

/// An event whole, field by field (the table cuts the message).
pub fn event_text(data: &Data, e: &Event) -> Vec<String> {
    let mut lines = vec![
        format!("time     {} UTC", format::clock(e.at_ms)),
        format!("event    {}", kind(e.kind)),
    ];
    if let Some(m) = &e.model {
        lines.push(format!("model    {m}"));
    }
    if let Some(k) = &e.key_id {
        lines.push(format!("key      {} ({k})", data.key_label(k)));
    }
    lines.push(format!("message  {}", e.message));
    lines
}

impl View for Traffic {
    fn id(&self) -> ViewId {
        ViewId::Traffic
    }

    fn keys(&self) -> &'static [Binding] {
        KEYS
    }

    fn handle(&mut self, action: Action, data: &Data) -> Effect {
        if let Some(delta) = step_of(action) {
            self.state().step(delta);
            return Effect::None;
        }
        match action {
            Action::SwitchPane => {
                self.pane = self.pane.next();
                Effect::None
            }
            Action::Open => self.open(data),
            _ => Effect::None,
        }
    }

    /// The rows, when counters arrive: the busiest first, events newest
    /// first (the selection stays on its row as they move).
    fn refresh(&mut self, data: &Data) {
        self.models.set_rows(top(&data.live.models));
        self.keys.set_rows(top(&data.live.keys));
        self.workspaces.set_rows(top(&data.live.workspaces));
        self.events.set_rows(
            data.live
                .current
                .events
                .iter()
                .rev()
                .filter(|e| e.kind != EventKind::Reloaded)
                .map(|e| e.seq.to_string())
                .collect(),
        );
    }

    fn layout(&mut self, _data: &Data, area: Rect) {
        let [_, tops, events] = areas(area);
        let rows = table::visible_rows(tops);
        self.models.scroll_to_selection(rows);
        self.keys.scroll_to_selection(rows);
        self.workspaces.scroll_to_selection(rows);
        self.events.scroll_to_selection(table::visible_rows(events));
    }

    fn render(&self, data: &Data, f: &mut Frame, area: Rect) {
        render(self, data, f, area)
    }
}

/// The totals, the top lists and the events.
fn areas(area: Rect) -> [Rect; 3] {
    Layout::vertical([
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Fill(1),
    ])
    .areas(area)
}

/// How the EVENT column names a kind.
fn kind(k: EventKind) -> &'static str {
    match k {
        EventKind::Throttled => "throttled",
        EventKind::UpstreamError => "error",
        EventKind::EndpointDown => "ep down",
        EventKind::EndpointUp => "ep up",
        EventKind::Reloaded => "reloaded",
    }
}

const TOP_COLUMNS: &[Column] = &[col("NAME", 8, 1), num("REQ/S", 5), num("THR/S", 5).drop(1)];

const EVENT_COLUMNS: &[Column] = &[
    col("TIME", 8, 0),
    col("EVENT", 9, 0),
    col("MODEL", 12, 1).drop(2),
    col("KEY", 12, 0).drop(1),
    col("MESSAGE", 20, 3),
];

fn render(view: &Traffic, data: &Data, f: &mut Frame, area: Rect) {
    let [totals, tops, events] = areas(area);
    let [text, sparks] =
        Layout::horizontal([Constraint::Fill(3), Constraint::Fill(1)]).areas(totals);
    render_totals(data, f, text);
    spark::render(
        f,
        sparks,
        &data.theme,
        &format!("requests/s {}", format::rate(data.live.gateway.req)),
        Some(&data.live.gateway_history.requests),
        data.theme.good(),
    );
    let [m, k, w] = Layout::horizontal([Constraint::Fill(1); 3]).areas(tops);
    let same = |id: &str| id.to_string();
    // Keys by workspace/name: their ids mean little to a reader.
    let key = |id: &str| data.key_label(id);
    let focus = |p: Pane| view.pane == p;
    let top = |title, state, focused| Top {
        title,
        state,
        focused,
    };
    render_top(
        data,
        f,
        m,
        top("top models", &view.models, focus(Pane::Models)),
        &data.live.models,
        &same,
    );
    render_top(
        data,
        f,
        k,
        top("top keys", &view.keys, focus(Pane::Keys)),
        &data.live.keys,
        &key,
    );
    render_top(
        data,
        f,
        w,
        top("top workspaces", &view.workspaces, focus(Pane::Workspaces)),
        &data.live.workspaces,
        &same,
    );
    render_events(data, f, events, &view.events, focus(Pane::Events));
}

fn render_totals(data: &Data, f: &mut Frame, area: Rect) {
    let t = &data.theme;
    let g = &data.live.current.gateway;
    let r = data.live.gateway;
    let kv = |k: &str, v: String, s| {
        vec![
            Span::styled(format!("{k} "), t.dim()),
            Span::styled(v, s),
            Span::raw("  "),
        ]
    };
    let lines = vec![
        Line::from(
            [
                kv("req/s", format::rate(r.req), t.base()),
                kv("thr/s", format::rate(r.thr), t.alarm(r.thr > 0.0)),
                kv("err/s", format::rate(r.err), t.alarm(r.err > 0.0)),
                kv("in flight", g.in_flight.to_string(), t.base()),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv("p50", format::millis(g.latency_p50_ms as u64), t.base()),
                kv("p99", format::millis(g.latency_p99_ms as u64), t.base()),
                kv(
                    "tokens",
                    format!(
                        "{} in / {} out",
                        format::count(g.prompt_tokens),
                        format::count(g.completion_tokens)
                    ),
                    t.base(),
                ),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv("requests", format::count(g.requests), t.base()),
                kv("ok", format::count(g.success), t.good()),
                kv(
                    "throttled",
                    format::count(g.throttled),
                    t.alarm(g.throttled > 0),
                ),
                kv(
                    "upstream errors",
                    format::count(g.upstream_errors),
                    t.alarm(g.upstream_errors > 0),
                ),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv("401", format::count(g.unauthorized), t.base()),
                kv("404", format::count(g.not_found), t.base()),
                kv("400/413", format::count(g.bad_request), t.base()),
                kv("upstream 4xx", format::count(g.upstream_4xx), t.base()),
            ]
            .concat(),
        ),
    ];
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border())
        .title(Span::styled(" traffic ", t.title()));
    let w = usize::from(block.inner(area).width);
    let lines: Vec<Line> = lines.into_iter().map(|l| format::fit_line(l, w)).collect();
    f.render_widget(Paragraph::new(lines).block(block), area);
}

/// The busiest first (by req/s, then throttled/s), only those with traffic.
fn top(rates: &HashMap<String, Rate>) -> Vec<String> {
    let mut v: Vec<(&String, &Rate)> = rates.iter().collect();
    v.sort_by(|a, b| {
        b.1.req
            .total_cmp(&a.1.req)
            .then(b.1.thr.total_cmp(&a.1.thr))
            .then(a.0.cmp(b.0))
    });
    v.into_iter().map(|(k, _)| k.clone()).collect()
}

/// One top list as drawn: its title, rows and whether it has the
/// selection.
struct Top<'a> {
    title: &'a str,
    state: &'a ListState,
    focused: bool,
}

fn render_top(
    data: &Data,
    f: &mut Frame,
    area: Rect,
    top: Top<'_>,
    rates: &HashMap<String, Rate>,
    label: &dyn Fn(&str) -> String,
) {
    let title = Line::from(Span::styled(format!(" {} ", top.title), data.theme.title()));
    table::render(
        f,
        area,
        &data.theme,
        table::Spec {
            title,
            cols: TOP_COLUMNS,
            focused: top.focused,
            sorted: None,
        },
        top.state,
        |id| {
            let r = rates.get(id).copied().unwrap_or_default();
            vec![
                Span::raw(label(id)),
                Span::raw(format::rate(r.req)),
                Span::styled(format::rate(r.thr), data.theme.alarm(r.thr > 0.0)),
            ]
        },
    );
}

fn render_events(data: &Data, f: &mut Frame, area: Rect, state: &ListState, focused: bool) {
    let t = &data.theme;
    let events: HashMap<String, &Event> = data
        .live
        .current
        .events
        .iter()
        .map(|e| (e.seq.to_string(), e))
        .collect();
    let title = Line::from(vec![
        Span::styled(" recent throttles and errors ", t.title()),
        Span::styled(if focused { "enter: whole " } else { "" }, t.dim()),
    ]);
    let spec = table::Spec {
        title,
        cols: EVENT_COLUMNS,
        focused,
        sorted: None,
    };
    table::render(f, area, t, spec, state, |id| {
        let Some(e) = events.get(id) else {
            return Vec::new();
        };
        let style = match e.kind {
            EventKind::Throttled => t.warn(),
            EventKind::UpstreamError | EventKind::EndpointDown => t.bad(),
            EventKind::EndpointUp => t.good(),
            EventKind::Reloaded => t.dim(),
        };
        vec![
            Span::raw(format::clock(e.at_ms)),
            Span::styled(kind(e.kind), style),
            Span::raw(e.model.clone().unwrap_or_default()),
            Span::raw(
                e.key_id
                    .as_deref()
                    .map(|k| data.key_label(k))
                    .unwrap_or_default(),
            ),
            Span::raw(e.message.clone()),
        ]
    });
}
