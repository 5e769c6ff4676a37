//! The frame around the views: header (gateway address, state, total
//! req/s), the prompt/message line, the footer of keys, and the popups.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::client::GatewayState;
use crate::tui::action::Action;
use crate::tui::app::{App, Overlay, PromptKind};
use crate::tui::format;
use crate::tui::forms::SELECT_HELP;
use crate::tui::keymap::{self, GLOBAL};
use crate::tui::theme::Theme;
use crate::tui::views::{self, ViewId};
use crate::tui::widgets::popup;

/// Draw everything.
pub fn render(app: &mut App, f: &mut Frame) {
    let area = f.area();
    let [header, body, line, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(app, f, header);
    views::render_body(app, f, body);
    render_line(app, f, line);
    render_footer(app, f, footer);
    let theme = app.data.theme;
    if let Some(form) = app.form.as_mut() {
        form.render(f, body, &theme);
    }
    render_overlay(app, f, body);
}

fn render_header(app: &App, f: &mut Frame, area: Rect) {
    let d = &app.data;
    let t = &d.theme;
    let (state, style) = match &d.gateway.state {
        GatewayState::Running => ("running".to_string(), t.good()),
        GatewayState::Off => ("off".to_string(), t.dim()),
        GatewayState::Failed(e) => (format!("failed: {e}"), t.bad()),
    };
    let addr = d.gateway.listen.clone().unwrap_or_else(|| "—".into());
    let r = d.live.gateway;
    let crumbs = match app.current() {
        ViewId::Detail => format!("models › {}", app.detail.model),
        v => v.name().to_string(),
    };
    let line = Line::from(vec![
        Span::styled(" maasctl ", t.title()),
        Span::styled("gw ", t.dim()),
        Span::raw(addr),
        Span::raw(" "),
        Span::styled(state, style),
        Span::styled("  req/s ", t.dim()),
        Span::raw(format::rate(r.req)),
        Span::styled("  thr/s ", t.dim()),
        Span::styled(format::rate(r.thr), t.alarm(r.thr > 0.0)),
        Span::styled("  rev ", t.dim()),
        Span::raw(d.registry().revision.to_string()),
        Span::styled("  ‹", t.dim()),
        Span::styled(crumbs, t.key()),
        Span::styled("›", t.dim()),
    ]);
    f.render_widget(Paragraph::new(line), area);
}

/// The prompt being typed, else the last message, else the filter hint.
fn render_line(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.data.theme;
    if let Some(p) = &app.prompt {
        let (sigil, hint) = match p.kind {
            PromptKind::Command => {
                let typed = p.input.value();
                let cands: Vec<&str> = views::COMMANDS
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
        f.render_widget(
            Paragraph::new(Span::styled(format!("{mark}{}", m.text), style)),
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
    let pairs = |it: &mut dyn Iterator<Item = (&'static str, &'static str)>| it.collect::<Vec<_>>();
    let line = if let Some(form) = &app.form {
        let keys = pairs(
            &mut form
                .bindings()
                .into_iter()
                .filter(|b| b.footer)
                .map(|b| (b.label, b.help)),
        );
        hints(t, &keys, &[], area.width)
    } else {
        // The view's keys, then `:` and `/`; `?` and `q` always fit.
        let always = |b: &&keymap::Binding| matches!(b.action, Action::Help | Action::Quit);
        let mut keys = pairs(
            &mut keymap::view_bindings(app.current())
                .iter()
                .filter(|b| b.footer)
                .map(|b| (b.label, b.help)),
        );
        keys.extend(
            GLOBAL
                .iter()
                .filter(|b| b.footer && !always(b))
                .map(|b| (b.label, b.help)),
        );
        let fixed = pairs(
            &mut GLOBAL
                .iter()
                .filter(|b| b.footer && always(b))
                .map(|b| (b.label, b.help)),
        );
        hints(t, &keys, &fixed, area.width)
    };
    f.render_widget(Paragraph::new(line), area);
}

fn render_overlay(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.data.theme;
    let Some(o) = &app.overlay else { return };
    match o {
        Overlay::Confirm { title, text, .. } => popup::dialog(
            f,
            area,
            t,
            title,
            t.border_focus(),
            vec![Line::from(text.clone())],
            "y yes · n no",
        ),
        Overlay::Message { title, lines } => popup::dialog(
            f,
            area,
            t,
            title,
            t.bad(),
            lines
                .iter()
                .map(|l| Line::from(Span::styled(l.clone(), t.error_text())))
                .collect(),
            "any key closes",
        ),
        Overlay::Secret(k) => popup::dialog(
            f,
            area,
            t,
            "API key created",
            t.border_focus(),
            vec![
                Line::from(format!(
                    "{} in workspace {} ({})",
                    k.id, k.workspace, k.name
                )),
                Line::default(),
                Line::from(Span::styled(k.secret.clone(), t.key())),
                Line::default(),
                Line::from("Copy the secret now: it is shown this once and cannot be recovered."),
            ],
            "any key closes",
        ),
        Overlay::Help => render_help(app, f, area),
    }
}

/// `(key, help)` rows of the help popup.
type Pairs = Vec<(&'static str, &'static str)>;

/// Every key of the current view (or form), from the same tables the
/// footer and the key handling use: the view's keys on the left, the ones
/// that work everywhere on the right.
fn render_help(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.data.theme;
    let (title, left, right): (String, Pairs, Pairs) = match &app.form {
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
            format!("Keys: {}", app.current().name()),
            keymap::view_bindings(app.current())
                .iter()
                .map(|b| (b.label, b.help))
                .collect(),
            GLOBAL.iter().map(|b| (b.label, b.help)).collect(),
        ),
    };
    let cell = |k: &str, h: &str| {
        vec![
            Span::styled(format!("{k:>6} "), t.key()),
            Span::raw(format!("{:<20}", format::fit(h, 20))),
        ]
    };
    let mut lines: Vec<Line> = (0..left.len().max(right.len()))
        .map(|i| {
            let mut spans = left
                .get(i)
                .map_or_else(|| cell("", ""), |(k, h)| cell(k, h));
            if let Some((k, h)) = right.get(i) {
                spans.extend(cell(k, h));
            }
            Line::from(spans)
        })
        .collect();
    if app.form.is_none() {
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(
            ":models :keys :workspaces :clusters :market :traffic :logs",
            t.dim(),
        )));
    }
    popup::dialog(
        f,
        area,
        t,
        &title,
        t.border_focus(),
        lines,
        "any key closes",
    )
}
