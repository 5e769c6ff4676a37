//! Live traffic: gateway totals, the busiest models/keys/workspaces, and
//! the recent throttle and error events.

use std::collections::HashMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::gateway::EventKind;
use crate::tui::action::Action;
use crate::tui::component::{Effect, View};
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::ids::ViewId;
use crate::tui::keymap::Binding;
use crate::tui::live::Rate;
use crate::tui::widgets::spark;
use crate::tui::widgets::table::{self, Column, ListState, col, num};

/// The traffic view: everything it shows comes from the live counters, so
/// it keeps no state and has no keys of its own.
pub struct Traffic;

/// The traffic view, for the view table.
pub fn new() -> Box<dyn View> {
    Box::new(Traffic)
}

impl View for Traffic {
    fn id(&self) -> ViewId {
        ViewId::Traffic
    }

    fn keys(&self) -> &'static [Binding] {
        &[]
    }

    fn handle(&mut self, _action: Action, _data: &Data) -> Effect {
        Effect::None
    }

    fn render(&self, data: &Data, f: &mut Frame, area: Rect) {
        render(data, f, area)
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

fn render(data: &Data, f: &mut Frame, area: Rect) {
    let [totals, tops, events] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Fill(1),
    ])
    .areas(area);
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
    render_top(data, f, m, "top models", &data.live.models, &same);
    render_top(data, f, k, "top keys", &data.live.keys, &key);
    render_top(data, f, w, "top workspaces", &data.live.workspaces, &same);
    render_events(data, f, events);
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

fn render_top(
    data: &Data,
    f: &mut Frame,
    area: Rect,
    title: &str,
    rates: &HashMap<String, Rate>,
    label: &dyn Fn(&str) -> String,
) {
    let state = ListState {
        rows: top(rates),
        ..Default::default()
    };
    let title = Line::from(Span::styled(format!(" {title} "), data.theme.title()));
    table::render(
        f,
        area,
        &data.theme,
        table::Spec {
            title,
            cols: TOP_COLUMNS,
            focused: false,
            sorted: None,
        },
        &state,
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

fn render_events(data: &Data, f: &mut Frame, area: Rect) {
    let t = &data.theme;
    let events: Vec<_> = data
        .live
        .current
        .events
        .iter()
        .rev()
        .filter(|e| e.kind != EventKind::Reloaded)
        .collect();
    let state = ListState {
        rows: (0..events.len()).map(|i| i.to_string()).collect(),
        ..Default::default()
    };
    let title = Line::from(Span::styled(" recent throttles and errors ", t.title()));
    let spec = table::Spec {
        title,
        cols: EVENT_COLUMNS,
        focused: false,
        sorted: None,
    };
    table::render(f, area, t, spec, &state, |i| {
        let Some(e) = i.parse::<usize>().ok().and_then(|i| events.get(i)) else {
            return Vec::new();
        };
        let (kind, style) = match e.kind {
            EventKind::Throttled => ("throttled", t.warn()),
            EventKind::UpstreamError => ("error", t.bad()),
            EventKind::EndpointDown => ("ep down", t.bad()),
            EventKind::EndpointUp => ("ep up", t.good()),
            EventKind::Reloaded => ("reloaded", t.dim()),
        };
        vec![
            Span::raw(format::clock(e.at_ms)),
            Span::styled(kind, style),
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
