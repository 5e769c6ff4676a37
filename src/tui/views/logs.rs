//! The log lines of this run (the same lines go to the log file).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use tracing::Level;

use crate::tui::app::App;
use crate::tui::format;
use crate::tui::views::ViewId;

pub fn render(app: &mut App, f: &mut Frame, area: Rect) {
    let filter = app.list(ViewId::Logs).filter.to_lowercase();
    let data = &app.data;
    let t = &data.theme;
    let (mut lines, _) = data
        .logs
        .as_ref()
        .map_or((Vec::new(), 0), |r| r.window(0, usize::MAX));
    if !filter.is_empty() {
        lines.retain(|l| {
            format!("{} {}", l.target, l.message)
                .to_lowercase()
                .contains(&filter)
        });
    }
    let h = usize::from(area.height.saturating_sub(2));
    let back = app.logs.back.min(lines.len().saturating_sub(h));
    let end = lines.len() - back;
    let start = end.saturating_sub(h);
    let text: Vec<Line> = lines[start..end]
        .iter()
        .map(|l| {
            let style = match l.level {
                Level::ERROR => t.bad(),
                Level::WARN => t.warn(),
                Level::INFO => t.base(),
                _ => t.dim(),
            };
            Line::from(vec![
                Span::styled(format!("{} ", format::clock(l.at_ms)), t.dim()),
                Span::styled(format!("{:5} ", l.level.as_str()), style),
                Span::styled(format!("{}: ", l.target), t.dim()),
                Span::raw(l.message.clone()),
            ])
        })
        .collect();
    let mode = if back == 0 {
        "following"
    } else {
        "scrolled: f follows"
    };
    let mut title = vec![
        Span::styled(" logs ", t.title()),
        Span::raw(format!("[{}] {mode} ", lines.len())),
    ];
    if !filter.is_empty() {
        title.push(Span::styled(format!("/{filter} "), t.key()));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border_focus())
        .title(Line::from(title));
    f.render_widget(Paragraph::new(text).block(block), area);
}
