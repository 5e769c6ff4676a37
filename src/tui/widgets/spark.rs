//! A titled sparkline of per-second samples, newest at the right edge (it
//! scrolls left as time passes, like htop's meters), with the peak of what
//! is shown in the title so bar heights can be read. Drawn with block
//! elements (▁▂▃▄▅▆▇█), which every terminal font has, never braille.

use std::collections::VecDeque;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Sparkline};

use crate::tui::format;
use crate::tui::theme::Theme;

/// Draw the newest samples that fit in `area`, with `title` and the peak
/// on the border.
pub fn render(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    title: &str,
    samples: Option<&VecDeque<u64>>,
    style: Style,
) {
    let inner = Block::default().borders(Borders::ALL).inner(area);
    let n = usize::from(inner.width);
    let data: Vec<u64> = samples.map_or_else(Vec::new, |s| {
        s.iter().skip(s.len().saturating_sub(n)).copied().collect()
    });
    // The peak only when it fits whole on the border.
    let room = usize::from(area.width.saturating_sub(2));
    let mut spans = vec![Span::raw(format!(" {title} "))];
    if let Some(peak) = data.iter().max().filter(|p| **p > 0) {
        let peak = Span::styled(format!("peak {peak}/s "), theme.dim());
        if spans[0].width() + peak.width() <= room {
            spans.push(peak);
        }
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(format::fit_line(Line::from(spans), room));
    f.render_widget(block, area);
    // Right-aligned: the newest sample is always at the right edge.
    let w = data.len() as u16;
    let right = Rect {
        x: inner.x + inner.width - w,
        width: w,
        ..inner
    };
    f.render_widget(
        Sparkline::default()
            .data(&data)
            .bar_set(symbols::bar::NINE_LEVELS)
            .style(style),
        right,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn draw(width: u16, samples: &[u64]) -> Vec<String> {
        let mut term = Terminal::new(TestBackend::new(width, 3)).unwrap();
        let samples: VecDeque<u64> = samples.iter().copied().collect();
        term.draw(|f| {
            render(
                f,
                f.area(),
                &Theme::colored(),
                "req/s 8.0",
                Some(&samples),
                Style::new(),
            )
        })
        .unwrap();
        format!("{}", term.backend())
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn newest_sample_at_the_right_edge_and_the_peak_in_the_title() {
        let s = draw(30, &[0, 4, 8]);
        assert_eq!(s[0], "\"┌ req/s 8.0 peak 8/s ────────┐\"");
        assert_eq!(s[1], "\"│                          ▄█│\"");
        // Too narrow for the peak: the title alone.
        let s = draw(16, &[0, 4, 8]);
        assert_eq!(s[0], "\"┌ req/s 8.0 ───┐\"");
    }
}
