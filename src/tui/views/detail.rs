//! The model detail: what the model is, its endpoints (policy, weight,
//! health and the traffic share each actually gets), its rules (live
//! used/limit, reset, throttled) and sparklines of requests and throttles.

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::domain::{Change, EndpointState, Model, Policy, Rule, RuleTarget, RuleUnit};
use crate::tui::action::{Action, Op};
use crate::tui::component::{Effect, View};
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::forms;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b};
use crate::tui::popups::Overlay;
use crate::tui::widgets::spark;
use crate::tui::widgets::table::{self, Cells, Column, ListState, col, num};

use super::list::step_of;
use super::model_ops;
use super::weights::{self, Pending};

/// Which table of the model detail has the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pane {
    #[default]
    Endpoints,
    Rules,
}

/// The detail of one model, pushed over the model list by `enter`.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub model: String,
    pub pane: Pane,
    pub endpoint: usize,
    pub rule: usize,
    /// Weights nudged with `←`/`→` and not saved yet.
    pub pending: Option<Pending>,
}

/// The detail of `model`, on its first endpoint.
pub fn new(model: &str) -> Box<dyn View> {
    Box::new(Detail {
        model: model.to_string(),
        ..Default::default()
    })
}

const KEYS: &[Binding] = &[
    b(
        &[(KeyCode::Tab, N)],
        "tab",
        Action::SwitchPane,
        "pane",
        true,
    ),
    b(&[(KeyCode::Char('e'), N)], "e", Action::Edit, "edit", true),
    b(
        &[(KeyCode::Char('t'), N)],
        "t",
        Action::Toggle,
        "toggle",
        true,
    ),
    b(
        &[(KeyCode::Char('a'), N)],
        "a",
        Action::AddRule,
        "rule",
        true,
    ),
    b(
        &[(KeyCode::Enter, N)],
        "enter",
        Action::Open,
        "endpoint / edit rule",
        false,
    ),
    b(
        &[(KeyCode::Char('d'), N)],
        "d",
        Action::Delete,
        "del rule",
        true,
    ),
    b(
        &[(KeyCode::Char('x'), N)],
        "x",
        Action::ToggleEndpoint,
        "ep on/off",
        true,
    ),
    b(
        &[(KeyCode::Right, N)],
        "→",
        Action::Weight(5),
        "weight +5 (weighted; the others follow)",
        false,
    ),
    b(
        &[(KeyCode::Left, N)],
        "←",
        Action::Weight(-5),
        "weight -5 (weighted; the others follow)",
        false,
    ),
    b(
        &[(KeyCode::Char('L'), N)],
        "L",
        Action::Weight(1),
        "weight +1",
        false,
    ),
    b(
        &[(KeyCode::Char('H'), N)],
        "H",
        Action::Weight(-1),
        "weight -1",
        false,
    ),
    b(
        &[(KeyCode::Esc, N)],
        "esc",
        Action::Back,
        "discard nudged weights, else back",
        false,
    ),
];

/// The footer while weights are nudged and not saved.
const PENDING_HINT: &[(&str, &str)] = &[
    ("enter", "save"),
    ("esc", "discard"),
    ("←/→", "±5"),
    ("H/L", "±1"),
];

impl Detail {
    fn model<'d>(&self, data: &'d Data) -> Option<&'d Model> {
        data.registry().models.get(&self.model)
    }

    /// The rule selected in the rules pane.
    fn selected_rule<'d>(&self, data: &'d Data) -> Option<(&'d Model, &'d Rule)> {
        if self.pane != Pane::Rules {
            return None;
        }
        let m = self.model(data)?;
        Some((m, m.rules.get(self.rule)?))
    }

    fn step(&mut self, delta: isize, data: &Data) {
        let (n_eps, n_rules) = self
            .model(data)
            .map_or((0, 0), |m| (m.spec.endpoints.len(), m.rules.len()));
        let (sel, n) = match self.pane {
            Pane::Endpoints => (&mut self.endpoint, n_eps),
            Pane::Rules => (&mut self.rule, n_rules),
        };
        *sel = sel.saturating_add_signed(delta).min(n.saturating_sub(1));
    }

    /// `←`/`→`, `H`/`L`: nudge the selected endpoint's weight by `step`;
    /// the others follow (see [`weights`]). Nothing is sent.
    fn nudge(&mut self, step: i8, data: &Data) -> Effect {
        let Some(m) = self.model(data) else {
            return Effect::None;
        };
        if m.spec.policy != Policy::Weighted {
            return Effect::error("weights apply to the weighted policy only (e: edit)");
        }
        if self.pane != Pane::Endpoints {
            return Effect::error("select an endpoint first (tab switches panes)");
        }
        let endpoint = self.endpoint;
        let p = self
            .pending
            .get_or_insert_with(|| Pending::start(m, data.registry()));
        if p.saving {
            return Effect::error("saving the weights: wait for the answer, or esc discards");
        }
        p.weights = weights::nudge(&p.weights, endpoint, step.into());
        if p.weights == p.before() {
            self.pending = None;
        }
        Effect::None
    }

    /// `enter` with nudged weights: save them through the guarded save the
    /// model form uses (nothing is overwritten if the model changed).
    fn save_weights(&mut self, data: &Data) -> Effect {
        let Some(p) = self.pending.as_mut() else {
            return Effect::None;
        };
        if p.saving {
            return Effect::None;
        }
        if !p.guard.holds(data.registry()) {
            return Effect::error(format!(
                "not saved: model {} changed elsewhere since the first nudge (nothing overwritten; esc discards)",
                self.model
            ));
        }
        p.saving = true;
        Effect::Send {
            op: Op::Guarded {
                guard: p.guard.clone(),
                changes: vec![p.change()],
            },
            done: format!("weights of {} saved: {}", self.model, p.summary()),
        }
    }

    /// `enter`: edit the selected rule, or show the selected endpoint whole.
    fn open(&self, data: &Data) -> Effect {
        match self.pane {
            Pane::Rules => match self.selected_rule(data) {
                Some((m, r)) => Effect::Form(forms::rule::edit(data.registry(), &m.spec.name, r)),
                None => Effect::error("no rule to edit: a adds one"),
            },
            // Drawn live: the popup and the table show the same numbers.
            Pane::Endpoints => match self.model(data) {
                Some(m) if self.endpoint < m.spec.endpoints.len() => {
                    Effect::Overlay(Overlay::Endpoint {
                        model: m.spec.name.clone(),
                        index: self.endpoint,
                    })
                }
                _ => Effect::None,
            },
        }
    }

    fn toggle_endpoint(&self, data: &Data) -> Effect {
        if self.pane != Pane::Endpoints {
            return Effect::error("select an endpoint first (tab switches panes)");
        }
        let Some(m) = self.model(data) else {
            return Effect::None;
        };
        let Some(ep) = m.spec.endpoints.get(self.endpoint) else {
            return Effect::None;
        };
        let disabled = !ep.disabled;
        let done = format!(
            "endpoint {} {}",
            ep.url,
            if disabled {
                "taken out of rotation"
            } else {
                "back in rotation"
            }
        );
        Effect::Send {
            op: Op::Apply(vec![Change::SetEndpointDisabled {
                model: m.spec.name.clone(),
                index: self.endpoint,
                disabled,
            }]),
            done,
        }
    }

    fn delete_rule(&self, data: &Data) -> Effect {
        let Some((m, r)) = self.selected_rule(data) else {
            return Effect::error("select a rule first (tab switches to the rules)");
        };
        Effect::confirm(
            "Delete rule?",
            format!(
                "Delete {} of {}? y to delete, n to keep.",
                r.describe(),
                m.spec.name
            ),
            Op::Apply(vec![Change::DeleteRule {
                model: m.spec.name.clone(),
                id: r.id,
            }]),
            format!("rule #{} deleted", r.id),
        )
    }
}

impl View for Detail {
    fn id(&self) -> ViewId {
        ViewId::Detail
    }

    fn crumbs(&self) -> String {
        format!("models › {}", self.model)
    }

    fn keys(&self) -> &'static [Binding] {
        KEYS
    }

    fn handle(&mut self, action: Action, data: &Data) -> Effect {
        if let Some(delta) = step_of(action) {
            self.step(delta, data);
            return Effect::None;
        }
        match action {
            Action::SwitchPane => {
                self.pane = match self.pane {
                    Pane::Endpoints => Pane::Rules,
                    Pane::Rules => Pane::Endpoints,
                };
                Effect::None
            }
            Action::Weight(step) => self.nudge(step, data),
            Action::Open if self.pending.is_some() => self.save_weights(data),
            Action::Open => self.open(data),
            Action::ToggleEndpoint => self.toggle_endpoint(data),
            Action::Delete => self.delete_rule(data),
            other => self
                .model(data)
                .and_then(|m| model_ops::act(other, m, data))
                .unwrap_or(Effect::None),
        }
    }

    fn gone(&self, data: &Data) -> bool {
        self.model(data).is_none()
    }

    /// The registry moved: nudged weights it now holds were saved (or
    /// set elsewhere to the same), nothing is pending any more.
    fn refresh(&mut self, data: &Data) {
        let stored = self.model(data).map(|m| weights::stored(&m.spec));
        if let Some(p) = &self.pending
            && stored.as_ref() == Some(&p.weights)
        {
            self.pending = None;
        }
    }

    fn back(&mut self) -> Option<Effect> {
        let p = self.pending.take()?;
        Some(Effect::Flash {
            text: format!("weights {} discarded", p.summary()),
            error: false,
        })
    }

    fn footer_hint(&self) -> Option<&'static [(&'static str, &'static str)]> {
        self.pending.as_ref().map(|_| PENDING_HINT)
    }

    fn render(&self, data: &Data, f: &mut Frame, area: Rect) {
        render(self, data, f, area)
    }
}

/// ERR/S counts failed tries of the endpoint (a refused try that failed
/// over to another endpoint included), so it can be non-zero while the
/// model's err/s (requests that ended in an error) is zero. P99 is the
/// endpoint's latency over the last minute.
const ENDPOINT_COLUMNS: &[Column] = &[
    num("#", 2),
    col("URL", 17, 1),
    col("KEY", 9, 0).drop(5),
    num("WEIGHT", 6).drop(2),
    num("SHARE", 5).drop(3),
    num("REQ/S", 6),
    num("ERR/S", 6),
    num("P99", 6),
    col("STATE", 9, 0),
    col("REASON", 14, 3).drop(4),
];

const RULE_COLUMNS: &[Column] = &[
    num("ID", 4),
    col("TARGET", 9, 0),
    col("SUBJECT", 12, 1),
    num("USED/LIMIT", 11),
    num("WINDOW", 6).drop(1),
    num("RESET", 6).drop(2),
    num("THROTTLED", 9),
];

/// A "no data yet" line for empty panes.
fn placeholder(data: &Data, text: &str) -> Line<'static> {
    Line::from(Span::styled(text.to_string(), data.theme.dim()))
}

fn render(detail: &Detail, data: &Data, f: &mut Frame, area: Rect) {
    let Some(m) = data.registry().models.get(&detail.model) else {
        f.render_widget(Paragraph::new(placeholder(data, "model not found")), area);
        return;
    };
    let heights = panes(area.height, m.spec.endpoints.len(), m.rules.len());
    let [info, eps, rules, sparks] = Layout::vertical(heights.map(Constraint::Length)).areas(area);
    render_info(data, m, f, info);

    let ep_state = ListState {
        rows: (0..m.spec.endpoints.len()).map(|i| i.to_string()).collect(),
        selected: detail.endpoint,
        ..Default::default()
    };
    let mut title = vec![
        Span::styled(" endpoints ", data.theme.title()),
        Span::raw(format!("policy {} ", m.spec.policy)),
    ];
    if let Some(p) = &detail.pending {
        title.push(if p.guard.holds(data.registry()) {
            Span::styled(
                "· weights not saved: enter save, esc discard ",
                data.theme.warn(),
            )
        } else {
            Span::styled(
                "· changed elsewhere: esc discards the nudged weights ",
                data.theme.bad(),
            )
        });
    }
    let title = Line::from(title);
    table::render(
        f,
        eps,
        &data.theme,
        table::Spec {
            title,
            cols: ENDPOINT_COLUMNS,
            focused: detail.pane == Pane::Endpoints,
            sorted: None,
        },
        &ep_state,
        |i| endpoint_cells(data, m, i.parse().unwrap_or(0), detail.pending.as_ref()),
    );

    let rule_state = ListState {
        rows: (0..m.rules.len()).map(|i| i.to_string()).collect(),
        selected: detail.rule,
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
            focused: detail.pane == Pane::Rules,
            sorted: None,
        },
        &rule_state,
        |i| rule_cells(data, m, i.parse().unwrap_or(0)),
    );
    if m.rules.is_empty() && rules.height > 3 {
        f.render_widget(
            Paragraph::new(placeholder(data, "no rules: press a to add one")),
            Rect::new(rules.x + 2, rules.y + 2, rules.width.saturating_sub(4), 1),
        );
    }

    if sparks.height == 0 {
        return;
    }
    let [left, right] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(sparks);
    let hist = data.live.model_history.get(&m.spec.name);
    let rate = data.live.model(&m.spec.name);
    spark::render(
        f,
        left,
        &data.theme,
        &format!("requests/s {}", format::rate(rate.req)),
        hist.map(|h| &h.requests),
        data.theme.good(),
    );
    spark::render(
        f,
        right,
        &data.theme,
        &format!("throttled/s {}", format::rate(rate.thr)),
        hist.map(|h| &h.throttled),
        data.theme.bad(),
    );
}

/// A table's least height: borders, header and one row (the selected one:
/// the table scrolls to it).
const TABLE_MIN: u16 = 4;
/// The info box whole (borders and four lines).
const INFO_FULL: u16 = 6;
/// The sparklines' least height (borders and one row of bars).
const SPARKS_MIN: u16 = 3;
/// Rows of a long table shown before the sparklines get any room (a table
/// longer than this scrolls beside them).
const TABLE_BEFORE_SPARKS: u16 = 20;

/// Heights of the info box, the endpoints, the rules and the sparklines
/// for a body `height` rows tall (the rule, in docs/console.md "Model
/// detail layout"):
///
/// 1. both tables get [`TABLE_MIN`] (their selected row stays visible);
/// 2. the info box gets its six rows if that still leaves (1), else one
///    line without a border, else nothing;
/// 3. the sparklines are shown only when both tables can show all their
///    rows (at most [`TABLE_BEFORE_SPARKS`] of a long one) beside them:
///    they are the first to go on a short terminal;
/// 4. the tables share what is left: each whole if it fits, else the
///    endpoints up to half and the rules the rest (and the other way round
///    when the rules are the shorter);
/// 5. what the tables cannot fill (they show every row) goes to the
///    sparklines, or, without them, to the rules table: no blank rows
///    under the panes.
pub fn panes(height: u16, endpoints: usize, rules: usize) -> [u16; 4] {
    let whole = |rows: usize| {
        u16::try_from(rows)
            .unwrap_or(u16::MAX)
            .max(1)
            .saturating_add(3)
    };
    let (eps, rls) = (whole(endpoints), whole(rules));
    let info = if height >= 2 * TABLE_MIN + INFO_FULL {
        INFO_FULL
    } else if height > 2 * TABLE_MIN {
        1
    } else {
        0
    };
    let rest = height - info;
    let cap = TABLE_BEFORE_SPARKS + 3;
    let before_sparks = eps.min(cap) + rls.min(cap);
    let sparks = if rest >= before_sparks + SPARKS_MIN {
        SPARKS_MIN
    } else {
        0
    };
    let room = rest - sparks;
    let (e, r) = if eps + rls <= room {
        (eps, rls)
    } else if rls <= room / 2 {
        (room - rls, rls)
    } else {
        let e = eps.min(room - room / 2);
        (e, room - e)
    };
    let left = room - e - r;
    if sparks > 0 {
        [info, e, r, sparks + left]
    } else {
        [info, e, r + left, 0]
    }
}

/// The info box on a short terminal: one line, no border (the tables keep
/// the room): name, status, gateway status and the rates.
fn render_info_line(data: &Data, m: &Model, f: &mut Frame, area: Rect) {
    let t = &data.theme;
    let status = data.status(&m.spec.name);
    let rate = data.live.model(&m.spec.name);
    let shown = |r: f64| {
        if data.live.rates_known() {
            format::rate(r)
        } else {
            "—".into()
        }
    };
    let kv = |k: &str, v: Span<'static>| {
        vec![Span::styled(format!("{k} "), t.dim()), v, Span::raw("  ")]
    };
    // A short terminal: one line, no border (the tables keep the room).
    let line = Line::from(
        [
            vec![Span::styled(format!("{} ", m.spec.name), t.title())],
            vec![
                Span::styled(
                    if m.enabled { "enabled" } else { "disabled" },
                    t.enabled(m.enabled),
                ),
                Span::raw(" "),
            ],
            vec![
                Span::styled(status.as_str(), t.gateway(status)),
                Span::raw("  "),
            ],
            kv("req/s", Span::raw(shown(rate.req))),
            kv(
                "thr/s",
                Span::styled(shown(rate.thr), t.alarm(rate.thr > 0.0)),
            ),
            kv(
                "err/s",
                Span::styled(shown(rate.err), t.alarm(rate.err > 0.0)),
            ),
        ]
        .concat(),
    );
    let line = format::fit_line(line, usize::from(area.width));
    f.render_widget(Paragraph::new(line), area);
}

fn render_info(data: &Data, m: &Model, f: &mut Frame, area: Rect) {
    if area.height < INFO_FULL {
        return render_info_line(data, m, f, area);
    }
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
    // Rates that are not current (stale data) are not shown as numbers.
    let shown = |r: f64| {
        if data.live.rates_known() {
            format::rate(r)
        } else {
            "—".into()
        }
    };
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
                if m.spec.fallbacks.is_empty() {
                    Vec::new()
                } else {
                    kv("fallbacks", Span::raw(m.spec.fallbacks.join(" → ")))
                },
            ]
            .concat(),
        ),
        Line::from(
            [
                kv("req/s", Span::raw(shown(rate.req))),
                kv(
                    "thr/s",
                    Span::styled(shown(rate.thr), t.alarm(rate.thr > 0.0)),
                ),
                kv(
                    "err/s",
                    Span::styled(shown(rate.err), t.alarm(rate.err > 0.0)),
                ),
                kv("total", Span::raw(format::count(totals.requests))),
                kv("throttled", Span::raw(format::count(totals.throttled))),
            ]
            .concat(),
        ),
        Line::from(
            [
                kv("p50", Span::raw(latency(totals.latency_p50_ms))),
                kv("p99", Span::raw(latency(totals.latency_p99_ms))),
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
    let w = usize::from(block.inner(area).width);
    let lines: Vec<Line> = lines.into_iter().map(|l| format::fit_line(l, w)).collect();
    f.render_widget(Paragraph::new(lines).block(block), area);
}

/// A latency of the last minute; `—` when nothing was answered in it.
fn latency(ms: f64) -> String {
    if ms > 0.0 {
        format::millis(ms.round() as u64)
    } else {
        "—".into()
    }
}

/// What is known of an endpoint's health.
struct Health {
    state: EndpointState,
    reason: Option<String>,
    /// Unix ms when it left the rotation.
    since_ms: Option<i64>,
    /// Cooling: Unix ms when it is back (from the gateway reports).
    until_ms: Option<i64>,
}

impl Health {
    /// The state as the console names it: an endpoint the gateway took out
    /// of the rotation is `ejected` (`down` in reports and `model routes`).
    fn label(&self) -> &'static str {
        match self.state {
            EndpointState::Down => "ejected",
            s => s.as_str(),
        }
    }

    /// What the REASON column says: the cooling's end and how long it has
    /// left, a drain's requests in flight, then why.
    fn detail(&self, now_ms: i64, in_flight: u64) -> String {
        let mut parts = Vec::new();
        match self.state {
            EndpointState::Cooling => {
                if let Some(until) = self.until_ms {
                    let left = (until - now_ms).max(0) as u64;
                    parts.push(format!(
                        "for {}s, until {}",
                        left.div_ceil(1000),
                        format::clock(until)
                    ));
                }
            }
            EndpointState::Draining => parts.push(format!("{in_flight} in flight")),
            _ => {}
        }
        parts.extend(self.reason.clone());
        parts.join(": ")
    }
}

/// Cooling end of endpoint `i` of `name` in the fresh gateway reports.
fn until_of(data: &Data, name: &str, i: usize) -> Option<i64> {
    data.view
        .reports
        .iter()
        .filter(|r| r.is_fresh(data.now_ms))
        .flat_map(|r| &r.endpoints)
        .filter(|e| e.model == name && e.index == i)
        .find_map(|e| e.until_ms)
}

/// Health of endpoint `i`: what the gateway counts, else what it reports,
/// else nothing known.
fn endpoint_health(data: &Data, m: &Model, i: usize) -> Option<Health> {
    let name = &m.spec.name;
    if let Some(e) = data
        .live
        .current
        .endpoints
        .iter()
        .find(|e| &e.model == name && e.index == i)
    {
        return Some(Health {
            state: e.state,
            reason: e.reason.clone(),
            since_ms: e.since_ms,
            until_ms: until_of(data, name, i),
        });
    }
    data.view
        .reports
        .iter()
        .filter(|r| r.is_fresh(data.now_ms))
        .flat_map(|r| &r.endpoints)
        .find(|e| &e.model == name && e.index == i)
        .map(|e| Health {
            state: e.state,
            reason: e.reason.clone(),
            since_ms: e.since_ms,
            until_ms: e.until_ms,
        })
}

/// Everything about endpoint `i` of `m`, for the popup `enter` opens (the
/// table cuts the URL and the reason on narrow terminals).
pub fn endpoint_text(data: &Data, m: &Model, i: usize) -> Vec<String> {
    let Some(ep) = m.spec.endpoints.get(i) else {
        return Vec::new();
    };
    let [rate, share, err, p99] = endpoint_numbers(data, m, i);
    let mut lines = vec![
        format!("URL      {}", ep.url),
        format!(
            "API key  {}",
            ep.api_key
                .as_ref()
                .map_or_else(|| "none".into(), |k| k.masked())
        ),
        format!(
            "traffic  {rate} req/s, share {share}{}",
            ep.weight
                .map_or_else(String::new, |w| format!(" (weight {w}%)"))
        ),
        format!("errors   {err} failed tries/s, p99 {p99} (last minute)"),
    ];
    match endpoint_health(data, m, i) {
        Some(h) => {
            let since = h.since_ms.map_or_else(String::new, |at| {
                format!(
                    " since {} UTC ({} ago)",
                    format::clock(at),
                    format::millis(data.now_ms.saturating_sub(at).max(0) as u64)
                )
            });
            lines.push(format!("state    {}{since}", h.label()));
            let detail = h.detail(data.now_ms, in_flight(data, m, i));
            if !detail.is_empty() {
                lines.push(format!("reason   {detail}"));
            }
        }
        None if ep.disabled => lines.push("state    taken out of rotation (x puts it back)".into()),
        None => lines.push("state    unknown: no gateway reports on it".into()),
    }
    lines
}

/// REQ/S, SHARE, ERR/S and P99 of endpoint `i`, as the table and the popup
/// both show them (one computation): rates are `—` while not current
/// (stale data, or a first snapshot), P99 `—` with no answer in the last
/// minute.
fn endpoint_numbers(data: &Data, m: &Model, i: usize) -> [String; 4] {
    let known = data.live.rates_known();
    let rate = data.live.endpoint(&m.spec.name, i);
    let shown = |r: f64| {
        if known { format::rate(r) } else { "—".into() }
    };
    let share = share(data, m, i).map_or_else(|| "—".into(), |s| format!("{:.0}%", s * 100.0));
    let p99 = data
        .live
        .current
        .endpoints
        .iter()
        .find(|e| e.model == m.spec.name && e.index == i)
        .map_or_else(|| "—".into(), |e| latency(e.totals.latency_p99_ms));
    [shown(rate.req), share, shown(rate.err), p99]
}

/// Requests in flight at endpoint `i` (what a drain waits for).
fn in_flight(data: &Data, m: &Model, i: usize) -> u64 {
    data.live
        .current
        .endpoints
        .iter()
        .find(|e| e.model == m.spec.name && e.index == i)
        .map_or(0, |e| e.totals.in_flight)
}

/// The share of the model's traffic endpoint `i` gets: of the last
/// minute's tries the gateways report (`requests_1m`, what the weight is
/// held against), else over the last second of the live counters, else
/// since the gateway started.
fn share(data: &Data, m: &Model, i: usize) -> Option<f64> {
    let name = &m.spec.name;
    let minute = crate::domain::endpoint_routes(m, &data.view.reports, data.now_ms);
    if let Some(s) = minute.get(i).and_then(|r| r.share) {
        return Some(s);
    }
    let rates: Vec<f64> = (0..m.spec.endpoints.len())
        .map(|j| data.live.endpoint(name, j).req)
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

/// The WEIGHT cell: the stored weight, or `40→45` (highlighted) while a
/// nudged one is not saved.
fn weight_cell(data: &Data, stored: Option<u32>, nudged: Option<u32>) -> Span<'static> {
    match (stored, nudged) {
        (before, Some(after)) if before != Some(after) => Span::styled(
            format!("{}→{after}", before.unwrap_or(0)),
            data.theme.warn(),
        ),
        (Some(w), _) => Span::raw(format!("{w}%")),
        (None, _) => Span::raw("—"),
    }
}

fn endpoint_cells(data: &Data, m: &Model, i: usize, pending: Option<&Pending>) -> Cells {
    let t = &data.theme;
    let Some(ep) = m.spec.endpoints.get(i) else {
        return Vec::new();
    };
    let (state, reason) = match endpoint_health(data, m, i) {
        Some(h) => (
            Span::styled(h.label(), t.endpoint(h.state)),
            h.detail(data.now_ms, in_flight(data, m, i)),
        ),
        None if ep.disabled => (Span::styled("disabled", t.dim()), String::new()),
        None => (Span::styled("—", t.dim()), "no gateway report".to_string()),
    };
    let [rate, share, err, p99] = endpoint_numbers(data, m, i);
    let erring = data.live.endpoint(&m.spec.name, i).err > 0.0;
    let key = ep
        .api_key
        .as_ref()
        .map_or_else(|| "—".into(), |k| k.masked());
    vec![
        Span::raw((i + 1).to_string()),
        Span::raw(ep.url.clone()),
        Span::styled(key, t.dim()),
        weight_cell(
            data,
            ep.weight,
            pending.and_then(|p| p.weights.get(i).copied()),
        ),
        Span::raw(share),
        Span::raw(rate),
        Span::styled(err, t.alarm(erring)),
        Span::raw(p99),
        state,
        Span::styled(reason, t.dim()),
    ]
}

fn rule_cells(data: &Data, m: &Model, i: usize) -> Cells {
    let t = &data.theme;
    let Some(r) = m.rules.get(i) else {
        return Vec::new();
    };
    // A key by workspace/name, then its id (what the CLI and events use).
    let subject = match (&r.spec.target, &r.spec.key_id) {
        (RuleTarget::ApiKey, Some(id)) => format!("{} {id}", data.key_label(id)),
        _ => r.spec.workspace.clone(),
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
    // Token rules count in thousands: `12.3k/90.0k`, and their window says
    // what it counts (`tok/1m`); request rules stay exact (`9/10`, `1m`).
    let tokens = r.spec.unit == RuleUnit::Tokens;
    let show = |n: u64| {
        if tokens {
            format::count(n)
        } else {
            n.to_string()
        }
    };
    let window = format::window(r.spec.duration_secs);
    vec![
        Span::raw(format!("#{}", r.id)),
        Span::raw(r.spec.target.as_str()),
        Span::raw(subject),
        Span::styled(
            format!(
                "{}/{}",
                used.map_or_else(|| "—".into(), |u| show(u64::from(u))),
                show(u64::from(r.spec.limit))
            ),
            t.alarm(full),
        ),
        Span::raw(if tokens {
            format!("tok/{window}")
        } else {
            window
        }),
        Span::raw(if reset == 0 {
            "—".into()
        } else {
            format::millis(reset)
        }),
        Span::styled(format::count(throttled), t.alarm(throttled > 0)),
    ]
}
