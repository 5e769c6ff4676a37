//! A titled sparkline of per-second samples. Drawn with block elements
//! (▁▂▃▄▅▆▇█), which every terminal font has, never braille.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Sparkline};

use crate::tui::theme::Theme;

/// Draw the newest samples that fit in `area`, with `title` on the border.
pub fn render(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    title: Line<'_>,
    samples: Option<&VecDeque<u64>>,
    style: Style,
) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(title);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(samples) = samples else {
        return;
    };
    let n = usize::from(inner.width);
    let data: Vec<u64> = samples
        .iter()
        .skip(samples.len().saturating_sub(n))
        .copied()
        .collect();
    f.render_widget(
        Sparkline::default()
            .data(&data)
            .bar_set(symbols::bar::NINE_LEVELS)
            .style(style),
        inner,
    );
}
