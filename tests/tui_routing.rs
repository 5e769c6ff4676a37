//! The model detail shows how each endpoint is routed (issue 14): every
//! state the gateway reports — healthy, unknown, ejected (`down`),
//! half-open, cooling with its end, draining with what is in flight,
//! drained, disabled — with its reason, the share of the last minute's
//! tries next to the weight, and the model's fallbacks (detail and list).

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
use fixtures::ROUTED;

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.layout(Rect::new(0, 0, w, h));
    t.draw(|f| chrome::render(app, f)).unwrap();
    format!("{}", t.backend())
}

fn open_routed(app: &mut App) {
    app.jump(ViewId::Models);
    assert!(app.select(ViewId::Models, ROUTED));
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(app.current(), ViewId::Detail);
}

/// The row of the screen that contains `needle`.
fn row<'s>(s: &'s str, needle: &str) -> &'s str {
    s.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{s}"))
}

#[test]
fn the_detail_shows_every_endpoint_state_with_its_reason_and_share() {
    let mut a = fixtures::routing_app(Theme::monochrome());
    open_routed(&mut a);
    for (w, h) in [(80, 24), (200, 60)] {
        let s = screen(&mut a, w, h);
        insta::assert_snapshot!(format!("routing_detail_{w}x{h}"), s);
    }
    let s = screen(&mut a, 200, 60);
    // One row per state, the console's words for them.
    for (n, word) in [
        (1, "healthy"),
        (2, "unknown"),
        (3, "ejected"),
        (4, "half-open"),
        (5, "cooling"),
        (6, "draining"),
        (7, "drained"),
        (8, "disabled"),
    ] {
        let r = row(&s, &format!("│ {n} "));
        assert!(r.contains(word), "endpoint {n} should be {word}: {r}");
    }
    assert!(
        !s.contains(" down "),
        "ejected, not down, in the console:\n{s}"
    );
    // Reasons, the cooling's end and a drain's requests in flight.
    assert!(row(&s, "│ 3 ").contains("5 of 8 tries failed in 10s: connection refused"));
    assert!(row(&s, "│ 4 ").contains("trial after 30s out"));
    assert!(
        row(&s, "│ 5 ").contains("for 12s, until 15:06:52: upstream answered 429"),
        "{}",
        row(&s, "│ 5 ")
    );
    assert!(
        row(&s, "│ 6 ").contains("3 in flight"),
        "{}",
        row(&s, "│ 6 ")
    );
    // Share of the last minute's 1000 tries next to the weight.
    assert!(row(&s, "│ 1 ").contains("30%   60%"), "{}", row(&s, "│ 1 "));
    assert!(row(&s, "│ 6 ").contains("10%   20%"), "{}", row(&s, "│ 6 "));
    assert!(row(&s, "│ 2 ").contains("10%    0%"), "{}", row(&s, "│ 2 "));
    // The fallbacks, in order.
    assert!(
        s.contains("fallbacks DeepSeek-V3 → Qwen2.5-72B-Instruct"),
        "{s}"
    );
}

#[test]
fn the_models_list_names_the_fallbacks() {
    let mut a = fixtures::routing_app(Theme::monochrome());
    a.jump(ViewId::Models);
    let s = screen(&mut a, 200, 60);
    assert!(
        row(&s, ROUTED).contains("Mixtral-8x22B → DeepSeek-V3,Qwen2.5-72B-Instruct"),
        "{}",
        row(&s, ROUTED)
    );
    let other = row(&s, "│Qwen2.5-72B-Instruct ");
    assert!(!other.contains('→'), "{other}");
}
