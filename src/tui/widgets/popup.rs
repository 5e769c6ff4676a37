//! Popups drawn over the view: confirmations, messages, the created-key
//! secret, help.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use crate::tui::theme::Theme;

/// A `width`×`height` rectangle centred in `area` (clamped to it).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Lines needed to show `lines` wrapped at `width` (a close upper bound).
fn wrapped_height(lines: &[Line], width: u16) -> u16 {
    let w = usize::from(width.max(1));
    lines
        .iter()
        .map(|l| l.width().max(1).div_ceil(w) as u16)
        .sum()
}

/// A bordered box with `lines` wrapped, sized to fit, and a hint line.
pub fn dialog(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    title: &str,
    border: Style,
    mut lines: Vec<Line<'static>>,
    hint: &str,
) {
    let width = 64.min(area.width.saturating_sub(2)).max(20);
    lines.push(Line::default());
    lines.push(Line::from(Span::styled(hint.to_string(), theme.dim())));
    let height = wrapped_height(&lines, width - 4) + 2;
    let rect = centered(area, width, height);
    f.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Span::styled(format!(" {title} "), theme.title()));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block.padding(ratatui::widgets::Padding::horizontal(1))),
        rect,
    );
}
