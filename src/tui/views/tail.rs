//! The live request tail (`:tail`; `l` on a model, key or workspace opens
//! it filtered on it): one line per request the gateway finished, newest
//! at the bottom, from the gateway's own per-request events
//! (`Client::tail`; `docs/console.md`, "Live request tail").
//!
//! It follows the newest line until the operator moves up (`G` follows
//! again). `space` pauses: the lines shown stay as they are while new ones
//! are counted in the title, and appear on resume. `/` filters on every
//! field shown (and the key's id). The console keeps the newest
//! [`KEEP`](crate::tui::requests::KEEP) lines.

use crossterm::event::KeyCode;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::gateway::RequestEvent;
use crate::tui::action::Action;
use crate::tui::component::{Effect, View};
use crate::tui::data::Data;
use crate::tui::format;
use crate::tui::ids::ViewId;
use crate::tui::keymap::{Binding, N, b};
use crate::tui::theme::Theme;
use crate::tui::widgets::table::{self, Cells, Column, ListState, col, num};

use super::list::step_of;

const KEYS: &[Binding] = &[b(
    &[(KeyCode::Char(' '), N)],
    "space",
    Action::Pause,
    "pause / resume",
    true,
)];

pub const COLUMNS: &[Column] = &[
    col("TIME", 8, 0),
    num("STATUS", 6),
    col("MODEL", 10, 2),
    col("KEY", 10, 2).drop(3),
    num("LATENCY", 7),
    num("TOKENS", 9).drop(4),
    col("ENDPOINT", 12, 3).drop(2),
    num("HOPS", 4).drop(5),
    col("RULE", 6, 0).drop(1),
];

/// The tail view's state: what it shows is derived from
/// [`Data::requests`](crate::tui::data::Data) in `refresh`.
#[derive(Default)]
pub struct Tail {
    /// Row ids are the lines' `seq`.
    pub state: ListState,
    /// Paused at this `seq`: newer lines are counted, not shown.
    pub paused: Option<u64>,
    /// Not following the newest line (the operator moved up).
    pub held: bool,
    /// Lines matching the filter that arrived while paused.
    pub new_while_paused: usize,
    /// The requests generation and filter the rows were built for.
    built: Option<(u64, String, Option<u64>)>,
}

/// The tail view, for the view table.
pub fn new() -> Box<dyn View> {
    Box::new(Tail::default())
}

/// What `/` matches in a line (lower case): every field shown and the key id.
pub fn haystack(data: &Data, e: &RequestEvent) -> String {
    let mut s = format!(
        "{} {} {} {}",
        format::clock(e.at_ms),
        status_text(e.status),
        e.model.as_deref().unwrap_or(""),
        e.endpoint.as_deref().unwrap_or(""),
    );
    if let Some(k) = &e.key_id {
        s.push_str(&format!(" {k} {}", data.key_label(k)));
    }
    if let Some(r) = e.rule {
        s.push_str(&format!(" rule #{r}"));
    }
    s.to_lowercase()
}

fn status_text(status: u16) -> String {
    if status == 0 {
        "gone".into()
    } else {
        status.to_string()
    }
}

fn status_style(t: &Theme, status: u16) -> ratatui::style::Style {
    match status {
        200..=299 => t.good(),
        400..=499 => t.warn(),
        0 => t.dim(),
        _ => t.bad(),
    }
}

/// One line's cells.
pub fn cells(data: &Data, e: &RequestEvent) -> Cells {
    let t = &data.theme;
    let tokens = if e.prompt_tokens + e.completion_tokens == 0 {
        "-".to_string()
    } else {
        format!("{}/{}", e.prompt_tokens, e.completion_tokens)
    };
    vec![
        Span::raw(format::clock(e.at_ms)),
        Span::styled(status_text(e.status), status_style(t, e.status)),
        Span::raw(e.model.as_deref().unwrap_or("-").to_string()),
        Span::raw(
            e.key_id
                .as_deref()
                .map_or("-".into(), |k| data.key_label(k)),
        ),
        Span::raw(format::millis(e.latency_ms)),
        Span::raw(tokens),
        // The scheme says little in a narrow column: `#0 host:port/path`.
        Span::raw(e.endpoint.as_deref().map_or("-".into(), |ep| {
            ep.replacen("http://", "", 1).replacen("https://", "", 1)
        })),
        Span::styled(e.hops.to_string(), t.alarm(e.hops > 0)),
        Span::raw(e.rule.map_or(String::new(), |r| format!("#{r}"))),
    ]
}

impl Tail {
    /// The rows again, if the lines, the filter or the pause moved.
    fn rebuild(&mut self, data: &Data) {
        let key = (
            data.requests.generation,
            self.state.filter.clone(),
            self.paused,
        );
        if self.built.as_ref() == Some(&key) {
            return;
        }
        self.built = Some(key);
        let needle = self.state.filter.to_lowercase();
        let matches = |e: &&RequestEvent| needle.is_empty() || haystack(data, e).contains(&needle);
        let shown = data.requests.lines.iter().filter(matches);
        let (rows, newer): (Vec<&RequestEvent>, Vec<&RequestEvent>) = match self.paused {
            Some(at) => shown.partition(|e| e.seq <= at),
            None => (shown.collect(), Vec::new()),
        };
        self.new_while_paused = newer.len();
        self.state
            .set_rows(rows.iter().map(|e| e.seq.to_string()).collect());
        if !self.held {
            self.state.selected = self.state.rows.len().saturating_sub(1);
        }
    }

    fn title(&self, data: &Data) -> Line<'static> {
        let t = &data.theme;
        let mut spans = vec![Span::styled(
            format!(" tail [{}] ", self.state.rows.len()),
            t.title(),
        )];
        if !self.state.filter.is_empty() {
            spans.push(Span::styled(format!("/{} ", self.state.filter), t.key()));
        }
        if self.paused.is_some() {
            spans.push(Span::styled(
                format!("PAUSED: {} new (space resumes) ", self.new_while_paused),
                t.warn(),
            ));
        } else if self.held {
            spans.push(Span::styled("not following (G follows) ", t.dim()));
        }
        if data.requests.dropped > 0 {
            spans.push(Span::styled(
                format!("gateway dropped {} ", data.requests.dropped),
                t.warn(),
            ));
        }
        Line::from(spans)
    }
}

impl View for Tail {
    fn id(&self) -> ViewId {
        ViewId::Tail
    }

    fn keys(&self) -> &'static [Binding] {
        KEYS
    }

    fn handle(&mut self, action: Action, data: &Data) -> Effect {
        if let Some(delta) = step_of(action) {
            self.state.step(delta);
            self.held = self.state.selected + 1 < self.state.rows.len();
            return Effect::None;
        }
        if action != Action::Pause {
            return Effect::None;
        }
        match self.paused.take() {
            None => {
                self.paused = Some(data.requests.lines.back().map_or(0, |e| e.seq));
                self.rebuild(data);
                Effect::Flash {
                    text: "tail paused: new lines are counted, space shows them".into(),
                    error: false,
                }
            }
            Some(_) => {
                let n = self.new_while_paused;
                self.rebuild(data);
                Effect::Flash {
                    text: format!("tail resumed: {n} new line(s)"),
                    error: false,
                }
            }
        }
    }

    fn refresh(&mut self, data: &Data) {
        self.rebuild(data);
    }

    fn layout(&mut self, _data: &Data, area: Rect) {
        self.state.scroll_to_selection(table::visible_rows(area));
    }

    fn render(&self, data: &Data, f: &mut Frame, area: Rect) {
        let spec = table::Spec {
            title: self.title(data),
            cols: COLUMNS,
            focused: true,
            sorted: None,
        };
        table::render(f, area, &data.theme, spec, &self.state, |id| {
            id.parse()
                .ok()
                .and_then(|seq| data.requests.get(seq))
                .map_or_else(Vec::new, |e| cells(data, e))
        });
    }

    fn filter(&self) -> Option<&str> {
        Some(&self.state.filter)
    }

    fn set_filter(&mut self, text: &str, _typed: bool, data: &Data) {
        self.state.filter = text.to_string();
        self.rebuild(data);
    }

    fn list(&self) -> Option<&ListState> {
        Some(&self.state)
    }
}
