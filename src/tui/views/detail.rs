//! The model detail: what the model is, its endpoints (policy, weight,
//! health and the traffic share each actually gets), its rules (live
//! used/limit, reset, throttled) and sparklines of requests and throttles.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::domain::{EndpointState, Model, RuleTarget};
use crate::tui::app::{App, Pane};
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::widgets::spark;
use crate::tui::widgets::table::{self, Cells, Column, ListState, col, num};

const ENDPOINT_COLUMNS: &[Column] = &[
    num("#", 2),
    col("URL", 24, 3),
    col("KEY", 9, 0).drop(3),
    num("WEIGHT", 6),
    num("SHARE", 6),
    num("REQ/S", 7),
    col("STATE", 8, 0),
    col("REASON", 12, 2).drop(1),
];

const RULE_COLUMNS: &[Column] = &[
    num("ID", 4),
    col("TARGET", 9, 0),
    col("SUBJECT", 12, 1),
    num("USED/LIMIT", 11),
    num("WINDOW", 6),
    num("RESET", 6),
    num("THROTTLED", 9),
];

pub fn render(app: &mut App, f: &mut Frame, area: Rect) {
    let data = &app.data;
    let Some(m) = data.registry().models.get(&app.detail.model) else {
        f.render_widget(
            Paragraph::new(crate::tui::views::placeholder(data, "model not found")),
            area,
        );
        return;
    };
    let [info, eps, rules, sparks] = Layout::vertical([
        Constraint::Length(6),
        Constraint::Fill(1),
        Constraint::Fill(1),
        Constraint::Length(3),
    ])
    .areas(area);
    render_info(data, m, f, info);

    let mut ep_state = ListState {
        rows: (0..m.spec.endpoints.len()).map(|i| i.to_string()).collect(),
        selected: app.detail.endpoint,
        ..Default::default()
    };
    let title = Line::from(vec![
        Span::styled(" endpoints ", data.theme.title()),
        Span::raw(format!("policy {} ", m.spec.policy)),
    ]);
    table::render(
        f,
        eps,
        &data.theme,
        table::Spec {
            title,
            cols: ENDPOINT_COLUMNS,
            focused: app.detail.pane == Pane::Endpoints,
        },
        &mut ep_state,
        |i| endpoint_cells(data, m, i.parse().unwrap_or(0)),
    );

    let mut rule_state = ListState {
        rows: (0..m.rules.len()).map(|i| i.to_string()).collect(),
        selected: app.detail.rule,
        ..Default::default()
    };
    let title = Line::from(vec![
        Span::styled(" rate-limit rules ", data.theme.title()),
        Span::raw(format!("[{}] ", m.rules.len())),
    ]);
    table::render(
        f,
        rules,
        &data.theme,
        table::Spec {
            title,
            cols: RULE_COLUMNS,
            focused: app.detail.pane == Pane::Rules,
        },
        &mut rule_state,
        |i| rule_cells(data, m, i.parse().unwrap_or(0)),
    );
    if m.rules.is_empty() && rules.height > 3 {
        f.render_widget(
            Paragraph::new(crate::tui::views::placeholder(
                data,
                "no rules: press a to add one",
            )),
            Rect::new(rules.x + 2, rules.y + 2, rules.width.saturating_sub(4), 1),
        );
    }

    let [left, right] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(sparks);
    let hist = data.live.model_history.get(&m.spec.name);
    let rate = data.live.model(&m.spec.name);
    spark::render(
        f,
        left,
        &data.theme,
        Line::from(format!(" requests/s {} ", format::rate(rate.req))),
        hist.map(|h| &h.requests),
        data.theme.good(),
    );
    spark::render(
        f,
        right,
        &data.theme,
        Line::from(format!(" throttled/s {} ", format::rate(rate.thr))),
        hist.map(|h| &h.throttled),
        data.theme.bad(),
    );
}

fn render_info(data: &Data, m: &Model, f: &mut Frame, area: Rect) {
    let t = &data.theme;
    let status = data.status(&m.spec.name);
    let totals = data
        .live
        .current
        .models
        .get(&m.spec.name)
        .copied()
        .unwrap_or_default();
    let rate = data.live.model(&m.spec.name);
    let path = data
        .registry()
        .clusters
        .get(&m.spec.cluster)
        .map(|c| c.access_path())
        .unwrap_or_default();
    let kv = |k: &str, v: Span<'static>| {
        vec![Span::styled(format!("{k} "), t.dim()), v, Span::raw("  ")]
    };
    let lines = vec![
        Line::from(
            [
                kv(
                    "status",
                    Span::styled(
                        if m.enabled { "enabled" } else { "disabled" },
                        t.enabled(m.enabled),
                    ),
                ),
                kv("gateway", Span::styled(status.as_str(), t.gateway(status))),
                kv("model ID", Span::raw(m.spec.model_id.clone())),
                kv("tags", Span::raw(m.spec.tags.join(","))),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv("cluster", Span::raw(m.spec.cluster.clone())),
                kv("access", Span::styled(path, t.key())),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv("req/s", Span::raw(format::rate(rate.req))),
                kv(
                    "thr/s",
                    Span::styled(format::rate(rate.thr), t.alarm(rate.thr > 0.0)),
                ),
                kv(
                    "err/s",
                    Span::styled(format::rate(rate.err), t.alarm(rate.err > 0.0)),
                ),
                kv("total", Span::raw(format::count(totals.requests))),
                kv("throttled", Span::raw(format::count(totals.throttled))),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv(
                    "p50",
                    Span::raw(format::millis(totals.latency_p50_ms as u64)),
                ),
                kv(
                    "p99",
                    Span::raw(format::millis(totals.latency_p99_ms as u64)),
                ),
                kv(
                    "tokens",
                    Span::raw(format!(
                        "{}/{}",
                        format::count(totals.prompt_tokens),
                        format::count(totals.completion_tokens)
                    )),
                ),
            ]
            .concat(),
        ),
    ];
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border())
        .title(Span::styled(format!(" {} ", m.spec.name), t.title()));
    f.render_widget(Paragraph::new(lines).block(block), area);
}

/// State and reason of endpoint `i`: what the gateway counts, else what
/// it reports, else nothing known.
fn endpoint_health(data: &Data, m: &Model, i: usize) -> Option<(EndpointState, Option<String>)> {
    let name = &m.spec.name;
    if let Some(e) = data
        .live
        .current
        .endpoints
        .iter()
        .find(|e| &e.model == name && e.index == i)
    {
        return Some((e.state, e.reason.clone()));
    }
    data.view
        .reports
        .iter()
        .filter(|r| r.is_fresh(data.now_ms))
        .flat_map(|r| &r.endpoints)
        .find(|e| &e.model == name && e.index == i)
        .map(|e| (e.state, e.reason.clone()))
}

/// The share of the model's traffic endpoint `i` gets: over the last
/// second if there is traffic, else since the gateway started.
fn share(data: &Data, m: &Model, i: usize) -> Option<f64> {
    let name = &m.spec.name;
    let rates: Vec<f64> = (0..m.spec.endpoints.len())
        .map(|j| {
            data.live
                .endpoints
                .get(&(name.clone(), j))
                .copied()
                .unwrap_or(0.0)
        })
        .collect();
    let sum: f64 = rates.iter().sum();
    if sum > 0.0 {
        return Some(rates[i] / sum);
    }
    let totals: Vec<u64> = (0..m.spec.endpoints.len())
        .map(|j| {
            data.live
                .current
                .endpoints
                .iter()
                .find(|e| &e.model == name && e.index == j)
                .map_or(0, |e| e.totals.requests)
        })
        .collect();
    let sum: u64 = totals.iter().sum();
    (sum > 0).then(|| totals[i] as f64 / sum as f64)
}

fn endpoint_cells(data: &Data, m: &Model, i: usize) -> Cells {
    let t = &data.theme;
    let Some(ep) = m.spec.endpoints.get(i) else {
        return Vec::new();
    };
    let (state, reason) = match endpoint_health(data, m, i) {
        Some((s, r)) => (
            Span::styled(s.as_str(), t.endpoint(s)),
            r.unwrap_or_default(),
        ),
        None if ep.disabled => (Span::styled("disabled", t.dim()), String::new()),
        None => (Span::styled("—", t.dim()), "no gateway report".to_string()),
    };
    let rate = data
        .live
        .endpoints
        .get(&(m.spec.name.clone(), i))
        .copied()
        .unwrap_or(0.0);
    let key = ep
        .api_key
        .as_ref()
        .map_or_else(|| "—".into(), |k| k.masked());
    vec![
        Span::raw((i + 1).to_string()),
        Span::raw(ep.url.clone()),
        Span::styled(key, t.dim()),
        Span::raw(ep.weight.map_or_else(|| "—".into(), |w| format!("{w}%"))),
        Span::raw(share(data, m, i).map_or_else(|| "—".into(), |s| format!("{:.0}%", s * 100.0))),
        Span::raw(format::rate(rate)),
        state,
        Span::styled(reason, t.dim()),
    ]
}

fn rule_cells(data: &Data, m: &Model, i: usize) -> Cells {
    let t = &data.theme;
    let Some(r) = m.rules.get(i) else {
        return Vec::new();
    };
    let subject = match r.spec.target {
        RuleTarget::ApiKey => r.spec.key_id.clone().unwrap_or_default(),
        RuleTarget::Workspace => r.spec.workspace.clone(),
    };
    let stats: Vec<_> = data
        .live
        .current
        .rules
        .iter()
        .filter(|s| s.rule_id == r.id)
        .collect();
    let used = stats.iter().map(|s| s.used).max();
    let reset = stats.iter().map(|s| s.reset_ms).max().unwrap_or(0);
    let throttled: u64 = stats.iter().map(|s| s.throttled).sum();
    let full = used.is_some_and(|u| u >= r.spec.limit);
    vec![
        Span::raw(format!("#{}", r.id)),
        Span::raw(r.spec.target.as_str()),
        Span::raw(subject),
        Span::styled(
            format!(
                "{}/{}",
                used.map_or_else(|| "—".into(), |u| u.to_string()),
                r.spec.limit
            ),
            t.alarm(full),
        ),
        Span::raw(format::window(r.spec.duration_secs)),
        Span::raw(if reset == 0 {
            "—".into()
        } else {
            format::millis(reset)
        }),
        Span::styled(format::count(throttled), t.alarm(throttled > 0)),
    ]
}
