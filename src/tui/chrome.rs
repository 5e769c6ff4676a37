//! The frame around the views: header (gateway address, state, total
//! req/s), the prompt/message line, the footer of keys, and the popups.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::client::GatewayState;
use crate::tui::action::Action;
use crate::tui::app::{App, PromptKind};
use crate::tui::format;
use crate::tui::forms::SELECT_HELP;
use crate::tui::ids::{COMMANDS, Command};
use crate::tui::keymap::{self, GLOBAL};
use crate::tui::live;
use crate::tui::popups::{Overlay, Popup};
use crate::tui::theme::Theme;
use crate::tui::views::detail;
use crate::tui::widgets::{frame_areas, popup};

/// Draw everything. Only reads: what is shown was derived when the data
/// arrived, and scroll positions were fitted by [`App::layout`].
pub fn render(app: &App, f: &mut Frame) {
    let [header, body, line, footer] = frame_areas(f.area());
    render_header(app, f, header);
    app.view().render(&app.data, f, body);
    render_line(app, f, line);
    render_footer(app, f, footer);
    for p in app.popups() {
        match p {
            Popup::Form(form) => form.render(f, body, &app.data.theme),
            Popup::Overlay(Overlay::Help) => render_help(app, f, body),
            Popup::Overlay(Overlay::Endpoint { model, index }) => {
                render_endpoint(app, f, body, model, *index)
            }
            Popup::Overlay(o) => o.render(&app.data.theme, f, body),
        }
    }
}

fn render_header(app: &App, f: &mut Frame, area: Rect) {
    let d = &app.data;
    let t = &d.theme;
    let crumbs = app.view().crumbs();
    let crumbs = [
        Span::styled("  ‹", t.dim()),
        Span::styled(crumbs, t.key()),
        Span::styled("›", t.dim()),
    ];
    let width = |s: &[Span]| s.iter().map(Span::width).sum::<usize>();
    // A remote server that does not answer: where its gateway is, is not
    // known either (a restart may move it), and the reason needs the room.
    let lost = d.attached.is_some() && matches!(d.gateway.state, GatewayState::Failed(_));
    let mut spans = header_spans(app, !lost);
    // Attached remotely, the server's address comes first; on a narrow
    // terminal the gateway's address goes before the rates do (the list's
    // footer shows the access path anyway).
    if !lost && d.attached.is_some() && width(&spans) + width(&crumbs) > usize::from(area.width) {
        spans = header_spans(app, false);
    }
    let rev = [
        Span::styled("  rev ", t.dim()),
        Span::raw(d.registry().revision.to_string()),
    ];
    // The revision is the first to go on a narrow terminal; what is left
    // is cut with `…` (a long model name in the breadcrumbs).
    if width(&spans) + width(&rev) + width(&crumbs) <= usize::from(area.width) {
        spans.extend(rev);
    }
    spans.extend(crumbs);
    let line = format::fit_line(Line::from(spans), usize::from(area.width));
    f.render_widget(Paragraph::new(line), area);
}

/// The header's left part: who and where, the gateway's state, the rates.
fn header_spans(app: &App, with_gw: bool) -> Vec<Span<'static>> {
    let d = &app.data;
    let t = &d.theme;
    let (state, style) = match &d.gateway.state {
        GatewayState::Running => ("running".to_string(), t.good()),
        GatewayState::Off => ("off".to_string(), t.dim()),
        GatewayState::Failed(e) => (format!("failed: {e}"), t.bad()),
    };
    let addr = d.gateway.listen.clone().unwrap_or_else(|| "—".into());
    let r = d.live.gateway;
    let mut spans = vec![Span::styled(" maasctl ", t.title())];
    if d.read_only {
        // First after the name: it must survive the narrowest terminal.
        spans.push(Span::styled("read-only ", t.warn()));
    }
    if let Some(server) = &d.attached {
        spans.push(Span::styled("remote ", t.warn()));
        spans.push(Span::raw(format!("{} ", host_of(server))));
    }
    let mut parts: Vec<Vec<Span>> = Vec::new();
    if with_gw {
        parts.push(vec![Span::styled("gw ", t.dim()), Span::raw(addr)]);
    }
    // Stale data before the state (a long failure reason cannot push it
    // off): its age, and no rates.
    if let Some(age) = d.live.stale_age_ms(d.now_ms) {
        parts.push(vec![Span::styled(
            format!("stale {}", live::age_text(age)),
            t.bad(),
        )]);
    }
    parts.push(vec![Span::styled(state, style)]);
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(" "));
        }
        spans.extend(part);
    }
    if d.live.rates_known() {
        spans.extend([
            Span::styled("  req/s ", t.dim()),
            Span::raw(format::rate(r.req)),
            Span::styled("  thr/s ", t.dim()),
            Span::styled(format::rate(r.thr), t.alarm(r.thr > 0.0)),
        ]);
    } else if d.live.received_ms.is_some() {
        spans.extend([
            Span::styled("  req/s ", t.dim()),
            Span::styled("—", t.dim()),
        ]);
    }
    spans
}

/// The endpoint popup, from the live data on every frame.
fn render_endpoint(app: &App, f: &mut Frame, area: Rect, model: &str, index: usize) {
    let d = &app.data;
    let t = &d.theme;
    let lines = d
        .registry()
        .models
        .get(model)
        .map(|m| detail::endpoint_text(d, m, index))
        .unwrap_or_else(|| vec![format!("model {model} is gone")]);
    popup::dialog(
        f,
        area,
        t,
        &format!("{model} endpoint {}", index + 1),
        t.border_focus(),
        lines.into_iter().map(Line::from).collect(),
        "any key closes",
    );
}

/// `http://host:port` as `host:port` (the header is short of room).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.trim_end_matches('/')
}

/// The prompt being typed, else the last message, else the filter hint.
fn render_line(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.data.theme;
    if let Some(p) = &app.prompt {
        let (sigil, hint) = match p.kind {
            PromptKind::Command => {
                let typed = p.input.value();
                let cands: Vec<&str> = COMMANDS
                    .iter()
                    .map(|(n, _)| *n)
                    .filter(|n| n.starts_with(typed) && n.len() > 1)
                    .collect();
                (
                    ":",
                    format!("   {}  (tab completes, enter runs)", cands.join(" ")),
                )
            }
            PromptKind::Filter => ("/", "   (enter keeps, esc clears)".to_string()),
        };
        let w = usize::from(area.width.saturating_sub(2));
        let scroll = p.input.visual_scroll(w);
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(sigil, t.key()),
                Span::raw(p.input.value().to_string()),
                Span::styled(hint, t.dim()),
            ]))
            .scroll((0, scroll as u16)),
            area,
        );
        let x = (p.input.visual_cursor() - scroll) as u16 + 1;
        f.set_cursor_position((area.x + x, area.y));
    } else if let Some(m) = &app.flash {
        let style = if m.error { t.error_text() } else { t.good() };
        let mark = if m.error { "✗ " } else { "✓ " };
        let line = Line::from(Span::styled(format!("{mark}{}", m.text), style));
        f.render_widget(
            Paragraph::new(format::fit_line(line, usize::from(area.width))),
            area,
        );
    }
}

/// `key help` pairs, dropping the view's own from the end when too wide
/// (the global ones, `?` included, always stay).
fn hints(t: &Theme, view: &[(&str, &str)], global: &[(&str, &str)], width: u16) -> Line<'static> {
    let w = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(k, h)| k.chars().count() + h.chars().count() + 3)
            .sum::<usize>()
    };
    let mut view = view.to_vec();
    let mut cut = false;
    while !view.is_empty() && w(&view) + w(global) + 2 > usize::from(width) {
        view.pop();
        cut = true;
    }
    let mut spans = vec![Span::raw(" ")];
    for (k, h) in view.iter().chain(global) {
        spans.push(Span::styled(format!("<{k}>"), t.key()));
        spans.push(Span::raw(format!("{h} ")));
    }
    if cut {
        spans.push(Span::styled("…", t.dim()));
    }
    Line::from(spans)
}

fn render_footer(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.data.theme;
    let line = if let Some(form) = app.form() {
        let keys: Vec<(&str, &str)> = form
            .bindings()
            .into_iter()
            .filter(|b| b.footer)
            .map(|b| (b.label, b.help))
            .collect();
        hints(t, &keys, &[], area.width)
    } else if let Some(hint) = app.view().footer_hint() {
        let (_, fixed) = footer_keys(app);
        hints(t, hint, &fixed, area.width)
    } else {
        let (keys, fixed) = footer_keys(app);
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, h)| (k.as_str(), *h)).collect();
        hints(t, &keys, &fixed, area.width)
    };
    f.render_widget(Paragraph::new(line), area);
}

/// The footer of a view, from its key table and the global one: `esc`
/// first when it does something (what: clear the filter, else go back),
/// the view's keys, `:`, `/` where the view filters, and its sort keys as
/// one hint (`<N/R/T>sort`), dropped from the end on a narrow terminal;
/// `?` and `q` always fit.
fn footer_keys(app: &App) -> (Vec<(String, &'static str)>, Pairs) {
    let view = app.view();
    let filterable = view.filter().is_some();
    let filtered = view.filter().is_some_and(|f| !f.is_empty());
    let always = |b: &keymap::Binding| matches!(b.action, Action::Help | Action::Quit);
    let read_only = app.data.read_only;
    let table = view.keys();
    let is_sort = |b: &&keymap::Binding| matches!(b.action, Action::Sort(_));
    let mut keys: Vec<(String, &'static str)> = Vec::new();
    if let Some(esc) = GLOBAL.iter().find(|b| b.action == Action::Back) {
        if filtered {
            keys.push((esc.label.to_string(), "clear filter"));
        } else if app.depth() > 1 {
            keys.push((esc.label.to_string(), "back"));
        }
    }
    keys.extend(
        table
            .iter()
            .filter(|b| b.footer && !is_sort(b) && !(read_only && b.action.changes()))
            .map(|b| (b.label.to_string(), b.help)),
    );
    keys.extend(
        GLOBAL
            .iter()
            .filter(|b| b.footer && !always(b) && (b.action != Action::Filter || filterable))
            .map(|b| (b.label.to_string(), b.help)),
    );
    let sorts: Vec<&str> = table.iter().filter(is_sort).map(|b| b.label).collect();
    if !sorts.is_empty() {
        keys.push((sorts.join("/"), "sort"));
    }
    let fixed = GLOBAL
        .iter()
        .filter(|b| always(b))
        .map(|b| (b.label, b.help))
        .collect();
    (keys, fixed)
}

/// `(key, help)` rows of the help popup.
type Pairs = Vec<(&'static str, &'static str)>;

/// Every key of the current view (or form), from the same tables the
/// footer and the key handling use: the view's keys on the left, the ones
/// that work everywhere on the right. The columns are as wide as their
/// longest key; a help text that does not fit is cut with `…`.
fn render_help(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.data.theme;
    let view = app.view();
    let (title, left, right): (String, Pairs, Pairs) = match app.form() {
        Some(form) => {
            let mut keys: Vec<(&str, &str)> = form
                .bindings()
                .into_iter()
                .map(|b| (b.label, b.help))
                .collect();
            keys.push(SELECT_HELP);
            let half = keys.len().div_ceil(2);
            let right = keys.split_off(half);
            (format!("Keys: {}", form.title), keys, right)
        }
        None => (
            format!("Keys: {}", view.id().name()),
            view.keys()
                .iter()
                .filter(|b| !(app.data.read_only && b.action.changes()))
                .map(|b| (b.label, b.help))
                .collect(),
            GLOBAL
                .iter()
                .filter(|b| b.action != Action::Filter || view.filter().is_some())
                .map(|b| (b.label, b.help))
                .collect(),
        ),
    };
    let inner = usize::from(popup::HELP_WIDTH.min(area.width.saturating_sub(2))).saturating_sub(4);
    let key_w = |p: &Pairs| p.iter().map(|(k, _)| format::width(k)).max().unwrap_or(0);
    let help_w = |p: &Pairs| p.iter().map(|(_, h)| format::width(h)).max().unwrap_or(0);
    let (lk, rk) = (key_w(&left), key_w(&right));
    // Each column: key, a space, its help; two spaces between columns.
    let room = inner.saturating_sub(lk + rk + 4);
    let lh = help_w(&left).min(room.saturating_sub(help_w(&right).min(room / 2)));
    let rh = room.saturating_sub(lh);
    let cell = |k: &str, kw: usize, h: &str, hw: usize| {
        vec![
            Span::styled(format!("{k:>kw$} "), t.key()),
            Span::raw(format!("{:<hw$}", format::fit(h, hw))),
        ]
    };
    let mut lines: Vec<Line> = (0..left.len().max(right.len()))
        .map(|i| {
            let (k, h) = left.get(i).copied().unwrap_or(("", ""));
            let mut spans = cell(k, lk, h, lh);
            if let Some((k, h)) = right.get(i) {
                spans.push(Span::raw("  "));
                spans.extend(cell(k, rk, h, rh));
            }
            Line::from(spans)
        })
        .collect();
    if app.form().is_none() {
        let views: Vec<String> = COMMANDS
            .iter()
            .filter(|(_, c)| matches!(c, Command::View(_)))
            .map(|(n, _)| format!(":{n}"))
            .collect();
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(
            format!("{}  :q quits", views.join(" ")),
            t.dim(),
        )));
    }
    popup::dialog_width(
        f,
        area,
        t,
        (&title, t.border_focus()),
        lines,
        "any key closes",
        popup::HELP_WIDTH,
    )
}
