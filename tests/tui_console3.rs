//! Console layouts at every size (issue 15): the model detail and list at
//! 60×15, 80×24 and 200×60, the traffic view's selection, and weights
//! nudged at the keyboard.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use maasctl::tui::app::App;
use maasctl::tui::chrome;
use maasctl::tui::ids::ViewId;
use maasctl::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

#[path = "support/tui_fixtures.rs"]
mod fixtures;

fn press(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.layout(Rect::new(0, 0, w, h));
    t.draw(|f| chrome::render(app, f)).unwrap();
    format!("{}", t.backend())
}

fn open(app: &mut App, model: &str) {
    app.jump(ViewId::Models);
    assert!(app.select(ViewId::Models, model));
    press(app, KeyCode::Enter);
    assert_eq!(app.current(), ViewId::Detail);
}

/// The row of the screen that contains `needle`.
fn row<'s>(s: &'s str, needle: &str) -> &'s str {
    s.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{s}"))
}

const SIZES: [(u16, u16); 3] = [(60, 15), (80, 24), (200, 60)];

#[test]
fn detail_layout_rule_keeps_both_tables_and_drops_the_charts_first() {
    use maasctl::tui::views::detail::panes;
    // 60x15: a 12-row body. One info line, both tables whole.
    assert_eq!(panes(12, 2, 2), [1, 5, 6, 0]);
    // 80x24: the info box, both tables whole, the charts get the rest.
    assert_eq!(panes(21, 2, 2), [6, 5, 5, 5]);
    // 200x60: no blank rows; the extra goes to the charts.
    assert_eq!(panes(57, 2, 2), [6, 5, 5, 41]);
    // Many rules: the tables take the room, the charts go.
    assert_eq!(panes(21, 2, 30), [6, 5, 10, 0]);
    // Many of both: shared, each keeps its selected row.
    assert_eq!(panes(12, 30, 30), [1, 6, 5, 0]);
    assert_eq!(panes(8, 30, 30), [0, 4, 4, 0]);
    for h in 8..80 {
        for (e, r) in [(1, 0), (2, 2), (9, 1), (30, 30)] {
            let p = panes(h, e, r);
            assert_eq!(p.iter().sum::<u16>(), h, "{h} {e} {r}: {p:?}");
            assert!(p[1] >= 4 && p[2] >= 4, "{h} {e} {r}: {p:?}");
        }
    }
}

#[test]
fn detail_at_every_size() {
    let mut a = fixtures::app(0, Theme::monochrome());
    open(&mut a, "DeepSeek-V3");
    // The second endpoint and, in the rules pane, the second rule selected.
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Down);
    for (w, h) in SIZES {
        let s = screen(&mut a, w, h);
        insta::assert_snapshot!(format!("detail_{w}x{h}"), s);
        // Both tables with their selected rows, at every size.
        assert!(s.contains("endpoints policy weighted"), "{s}");
        assert!(s.contains("rate-limit rules [2]"), "{s}");
        row(&s, "│ 2 http://127.0.0.1");
        row(&s, "#2 workspace");
        // Blank rows inside a pane: none but the one a short terminal
        // gives the rules (the charts went first).
        let blank = format!("│{}│", " ".repeat(usize::from(w) - 2));
        let blanks = s.lines().filter(|l| l.contains(&blank)).count();
        assert!(blanks <= 1, "{blanks} blank rows at {w}x{h}:\n{s}");
        assert_eq!(s.contains("requests/s"), h >= 24, "{s}");
    }
}
