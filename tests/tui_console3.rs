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

// ---- weights at the keyboard ---------------------------------------------

use maasctl::tui::views::weights::nudge;

#[test]
fn a_nudge_keeps_the_sum_and_the_others_follow_in_proportion() {
    assert_eq!(nudge(&[70, 30], 0, 5), vec![75, 25]);
    assert_eq!(nudge(&[70, 30], 1, 5), vec![65, 35]);
    // Proportional: 50/30/20, +10 on the first takes 6 and 4.
    assert_eq!(nudge(&[50, 30, 20], 0, 10), vec![60, 24, 16]);
    // Rounding: 5 taken from 30/30/30 is 1.67 each: 1,1,1 and the two
    // units left go to the lower indexes (equal remainders).
    assert_eq!(nudge(&[10, 30, 30, 30], 0, 5), vec![15, 28, 28, 29]);
    // Given back in proportion; to others all at 0, in equal parts.
    assert_eq!(nudge(&[100, 0, 0], 0, -5), vec![95, 3, 2]);
    // Bounds: nothing below 0 or above the sum; one endpoint never moves.
    assert_eq!(nudge(&[98, 2], 0, 5), vec![100, 0]);
    assert_eq!(nudge(&[2, 98], 0, -5), vec![0, 100]);
    assert_eq!(nudge(&[100], 0, 5), vec![100]);
    assert_eq!(nudge(&[70, 30], 5, 5), vec![70, 30]);
    // Many nudges, every way: the sum stays exactly 100, none below 0,
    // and the same nudges give the same weights.
    let mut w = vec![40, 30, 20, 10];
    let steps = [5, 5, -1, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, -5, 1, -5, 5];
    for (n, step) in steps.iter().cycle().take(400).enumerate() {
        let i = n * 7 % 4;
        let next = nudge(&w, i, *step);
        assert_eq!(next.iter().sum::<u32>(), 100, "{w:?} {i} {step}: {next:?}");
        assert_eq!(next, nudge(&w, i, *step));
        w = next;
    }
}

fn deepseek_weights(a: &App) -> Vec<Option<u32>> {
    a.data.registry().models["DeepSeek-V3"]
        .spec
        .endpoints
        .iter()
        .map(|e| e.weight)
        .collect()
}

#[test]
fn nudged_weights_show_pending_and_enter_saves_them_guarded() {
    use maasctl::domain::Change;
    use maasctl::tui::action::Op;
    let mut a = fixtures::app(0, Theme::monochrome());
    open(&mut a, "DeepSeek-V3");
    press(&mut a, KeyCode::Right);
    press(&mut a, KeyCode::Char('L'));
    let s = screen(&mut a, 80, 24);
    insta::assert_snapshot!("weights_pending_80x24", s);
    assert!(row(&s, "│ 1 ").contains("70→76"), "{s}");
    assert!(row(&s, "│ 2 ").contains("30→24"), "{s}");
    // The live columns keep their numbers; the footer says how to end.
    assert!(row(&s, "│ 1 ").contains("67%    6.0"), "{s}");
    assert!(s.contains("<enter>save <esc>discard"), "{s}");
    // A second later the second endpoint took 12 tries, the first none:
    // the live columns move under the pending weights.
    let reg = a.data.registry().clone();
    let mut next = fixtures::stats(&reg, 0);
    next.taken_ms += 1000;
    for e in &mut next.endpoints {
        if e.model == "DeepSeek-V3" && e.index == 1 {
            e.totals.requests += 12;
        }
    }
    assert!(a.on_stats(std::sync::Arc::new(next)));
    let s = screen(&mut a, 80, 24);
    assert!(row(&s, "│ 2 ").contains("30→24"), "{s}");
    assert!(row(&s, "│ 2 ").contains(" 12.0 "), "{s}");
    assert!(row(&s, "│ 1 ").contains("70→76"), "{s}");
    // Nothing sent yet; enter sends the model with the new weights,
    // guarded like the model form.
    assert!(a.take_requests().is_empty());
    press(&mut a, KeyCode::Enter);
    let requests = a.take_requests();
    let [request] = requests.as_slice() else {
        panic!("{requests:?}")
    };
    let Op::Guarded { guard, changes } = &request.op else {
        panic!("{:?}", request.op)
    };
    assert_eq!(guard.subject.label(), "model DeepSeek-V3");
    let [Change::UpdateModel { name, spec }] = changes.as_slice() else {
        panic!("{changes:?}")
    };
    assert_eq!(name, "DeepSeek-V3");
    let w: Vec<_> = spec.endpoints.iter().map(|e| e.weight).collect();
    assert_eq!(w, vec![Some(76), Some(24)]);
    // The rest of the spec is what was stored (the upstream key kept).
    let mut stored = a.data.registry().models["DeepSeek-V3"].spec.clone();
    stored.endpoints[0].weight = Some(76);
    stored.endpoints[1].weight = Some(24);
    assert_eq!(spec, &stored);
    // The model changed elsewhere meanwhile: said, nothing overwritten.
    a.on_reply(maasctl::tui::action::Reply {
        id: request.id,
        result: Ok(maasctl::tui::action::Done::Changed(Box::new(
            a.data.registry().clone(),
        ))),
    });
    let s = screen(&mut a, 80, 24);
    assert!(
        s.contains("not saved: model DeepSeek-V3 changed elsewhere"),
        "{s}"
    );
    // esc discards: the stored weights again, and the detail stays.
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.current(), ViewId::Detail);
    let s = screen(&mut a, 80, 24);
    assert!(row(&s, "│ 1 ").contains(" 70% "), "{s}");
    assert!(!s.contains('→') || !row(&s, "│ 1 ").contains('→'), "{s}");
    assert_eq!(deepseek_weights(&a), vec![Some(70), Some(30)]);
    // A second esc goes back as usual.
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.current(), ViewId::Models);
}

#[test]
fn a_model_changed_in_the_console_view_is_not_overwritten() {
    use std::sync::Arc;
    let mut a = fixtures::app(0, Theme::monochrome());
    open(&mut a, "DeepSeek-V3");
    press(&mut a, KeyCode::Left);
    // The registry moves under the pending weights (the CLI set 50/50).
    let mut reg = a.data.registry().clone();
    let mut spec = reg.models["DeepSeek-V3"].spec.clone();
    spec.endpoints[0].weight = Some(50);
    spec.endpoints[1].weight = Some(50);
    reg.apply_all(
        vec![maasctl::domain::Change::UpdateModel {
            name: "DeepSeek-V3".into(),
            spec,
        }],
        fixtures::NOW_MS / 1000,
    )
    .unwrap();
    a.on_registry(Arc::new(maasctl::client::RegistryView {
        reports: a.data.view.reports.clone(),
        registry: Arc::new(reg),
    }));
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("changed elsewhere: esc discards"), "{s}");
    press(&mut a, KeyCode::Enter);
    assert!(a.take_requests().is_empty());
    assert!(
        screen(&mut a, 80, 24).contains("not saved: model DeepSeek-V3 changed elsewhere"),
        "{s}"
    );
}

#[test]
fn weights_saved_leave_nothing_pending_and_other_policies_say_why_not() {
    use std::sync::Arc;
    let mut a = fixtures::app(0, Theme::monochrome());
    open(&mut a, "DeepSeek-V3");
    press(&mut a, KeyCode::Char('H'));
    press(&mut a, KeyCode::Char('H'));
    // Back to where it was: nothing pending.
    press(&mut a, KeyCode::Char('L'));
    press(&mut a, KeyCode::Char('L'));
    assert!(!screen(&mut a, 80, 24).contains("<enter>save"));
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Right);
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.take_requests().len(), 1);
    // The store applied it: the registry arrives with 65/35; the detail
    // shows them as stored, nothing pending.
    let mut reg = a.data.registry().clone();
    let mut spec = reg.models["DeepSeek-V3"].spec.clone();
    spec.endpoints[0].weight = Some(65);
    spec.endpoints[1].weight = Some(35);
    reg.apply_all(
        vec![maasctl::domain::Change::UpdateModel {
            name: "DeepSeek-V3".into(),
            spec,
        }],
        fixtures::NOW_MS / 1000,
    )
    .unwrap();
    a.on_registry(Arc::new(maasctl::client::RegistryView {
        reports: a.data.view.reports.clone(),
        registry: Arc::new(reg),
    }));
    let s = screen(&mut a, 80, 24);
    assert!(row(&s, "│ 2 ").contains(" 35% "), "{s}");
    assert!(!s.contains("<enter>save"), "{s}");
    // Round-robin has no weights.
    press(&mut a, KeyCode::Esc);
    open(&mut a, "Qwen2.5-72B-Instruct");
    press(&mut a, KeyCode::Right);
    let s = screen(&mut a, 80, 24);
    assert!(
        s.contains("weights apply to the weighted policy only (e: edit)"),
        "{s}"
    );
    // `?` lists the new keys.
    press(&mut a, KeyCode::Char('?'));
    let s = screen(&mut a, 120, 40);
    for k in [
        "weight +5",
        "weight -5",
        "weight +1",
        "discard nudged weights",
    ] {
        assert!(s.contains(k), "{k}:\n{s}");
    }
}

// ---- traffic: selection, enter ---------------------------------------------

#[test]
fn traffic_tables_take_a_selection_and_enter_opens_what_is_cut() {
    use maasctl::tui::popups::Overlay;
    use maasctl::tui::views::traffic::{Pane, Traffic};
    let mut a = fixtures::app(0, Theme::monochrome());
    a.jump(ViewId::Traffic);
    let t = a.view_as::<Traffic>().unwrap();
    assert_eq!(t.pane, Pane::Models);
    assert_eq!(t.models.selected_id(), Some("DeepSeek-V3"), "busiest first");
    // j moves in the focused table; tab moves on, round to the start.
    press(&mut a, KeyCode::Char('j'));
    assert_eq!(
        a.view_as::<Traffic>().unwrap().models.selected_id(),
        Some("Qwen2.5-72B-Instruct")
    );
    for (n, pane) in [Pane::Keys, Pane::Workspaces, Pane::Events, Pane::Models]
        .into_iter()
        .enumerate()
    {
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.view_as::<Traffic>().unwrap().pane, pane, "tab {n}");
    }
    // enter on a top model: its detail; esc comes back.
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.current(), ViewId::Detail);
    assert!(a.view().crumbs().ends_with("Qwen2.5-72B-Instruct"));
    press(&mut a, KeyCode::Esc);
    assert_eq!(a.current(), ViewId::Traffic);
    // enter on a top key: the key in :keys.
    press(&mut a, KeyCode::Tab);
    let key = a
        .view_as::<Traffic>()
        .unwrap()
        .keys
        .selected_id()
        .unwrap()
        .to_string();
    press(&mut a, KeyCode::Enter);
    assert_eq!(a.current(), ViewId::Keys);
    assert_eq!(a.view().filter(), Some(key.as_str()));
    assert_eq!(a.view().list().unwrap().selected_id(), Some(key.as_str()));
    // The events: newest first; enter shows the selected one whole. The
    // view kept its pane (keys): two tabs on.
    a.jump(ViewId::Traffic);
    press(&mut a, KeyCode::Tab);
    press(&mut a, KeyCode::Tab);
    assert_eq!(a.view_as::<Traffic>().unwrap().pane, Pane::Events);
    assert_eq!(
        a.view_as::<Traffic>().unwrap().events.selected_id(),
        Some("2")
    );
    press(&mut a, KeyCode::Down);
    press(&mut a, KeyCode::Enter);
    let Some(Overlay::Text { lines, .. }) = a.overlay() else {
        panic!("{:?}", a.overlay())
    };
    let whole = "message  upstream http://127.0.0.1:9104/v1 refused the connection";
    assert!(lines.iter().any(|l| l == whole), "{lines:?}");
    let s = screen(&mut a, 80, 24);
    insta::assert_snapshot!("traffic_event_popup_80x24", s);
    assert!(
        s.contains("message  upstream http://127.0.0.1:9104/v1 refused the"),
        "{s}"
    );
    // The table cuts it at 60 columns; the popup does not.
    press(&mut a, KeyCode::Esc);
    let s = screen(&mut a, 60, 15);
    assert!(!s.contains("refused the connection"), "{s}");
    // The footer names the view's keys.
    let s = screen(&mut a, 120, 40);
    assert!(
        s.contains("<tab>next pane <enter>open the row whole"),
        "{s}"
    );
}

// ---- the model list at every size -------------------------------------------

#[test]
fn model_list_keeps_every_seed_column_at_80x24() {
    let mut a = fixtures::app(0, Theme::monochrome());
    a.jump(ViewId::Models);
    assert!(a.select(ViewId::Models, "Qwen2.5-72B-Instruct"));
    for (w, h) in SIZES {
        let s = screen(&mut a, w, h);
        insta::assert_snapshot!(format!("models_{w}x{h}"), s);
        // The selected model's whole access path under the table.
        assert!(
            s.contains("http://127.0.0.1:8080/v1  model \"Qwen2.5-72B-Instruct\""),
            "{s}"
        );
    }
    let s = screen(&mut a, 80, 24);
    let header = row(&s, "NAME");
    for title in [
        "NAME", "MODEL ID", "TAGS", "STATUS", "CLUSTER", "GATEWAY", "REQ/S", "THR/S",
    ] {
        assert!(header.contains(title), "{title}: {header}");
    }
    let qwen = row(&s, "│Qwen2.5");
    for cell in ["enabled", "local", "degraded", "5.0"] {
        assert!(qwen.contains(cell), "{cell}: {qwen}");
    }
    // What does not fit is cut with the marker, never silently.
    assert!(qwen.contains("│Qwen2.5-72B-Instr… "), "{qwen}");
    // 200 columns: the access path in its column too.
    let s = screen(&mut a, 200, 60);
    assert!(row(&s, "NAME").contains("ACCESS PATH"), "{s}");
    // At every width from 30 to 200 a cell wider than its column ends in
    // `…`: the long model ID and name are whole or cut with the marker,
    // never clipped.
    for w in 30..=200 {
        let s = screen(&mut a, w, 24);
        let qwen = row(&s, "│Q");
        assert!(
            qwen.contains("Qwen2.5-72B-Instruct ") || qwen.contains('…'),
            "{w}: {qwen}"
        );
        assert!(
            qwen.contains("qwen2.5-72b-instruct") || qwen.contains('…') || !qwen.contains("qwen2"),
            "{w}: {qwen}"
        );
    }
}

/// The style of the cell where `text` starts in the row holding `name`.
fn style_in_row(buf: &ratatui::buffer::Buffer, name: &str, text: &str) -> ratatui::style::Style {
    let w = usize::from(buf.area.width);
    let rows: Vec<String> = buf
        .content
        .chunks(w)
        .map(|r| r.iter().map(|c| c.symbol()).collect())
        .collect();
    let y = rows
        .iter()
        .position(|r| r.contains(name))
        .unwrap_or_else(|| panic!("no row with {name}"));
    let row = &rows[y];
    let at = row
        .find(text)
        .unwrap_or_else(|| panic!("no {text} in {row}"));
    // Columns, not bytes: the row has multi-byte border characters.
    let x = row[..at].chars().count();
    buf.content[y * w + x].style()
}

#[test]
fn status_cells_carry_their_colours_in_the_model_list() {
    use maasctl::client::{GatewayHeader, GatewayState, RegistryView};
    use maasctl::domain::EndpointState;
    use ratatui::style::Color;
    use std::sync::Arc;
    // Two more models: one with its only endpoint down, one never
    // contacted (unknown).
    let reg = fixtures::registry(2);
    let mut reports = fixtures::reports(&reg);
    for e in &mut reports[0].endpoints {
        match e.model.as_str() {
            "model-00000" => e.state = EndpointState::Down,
            "model-00001" => e.state = EndpointState::Unknown,
            _ => {}
        }
    }
    let view = Arc::new(RegistryView {
        reports: Arc::new(reports),
        registry: Arc::new(reg),
    });
    let gateway = GatewayHeader {
        listen: Some(fixtures::LISTEN.into()),
        state: GatewayState::Running,
    };
    let mut a = App::new(Theme::colored(), view, gateway, fixtures::NOW_MS, None);
    for (w, h) in SIZES {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        a.layout(Rect::new(0, 0, w, h));
        t.draw(|f| chrome::render(&a, f)).unwrap();
        let buf = t.backend().buffer();
        let cases = [
            ("DeepSeek-V3", "enabled", Color::Green),
            ("DeepSeek-V3", "serving", Color::Green),
            ("Qwen2.5", "degraded", Color::Yellow),
            ("model-00000", "down", Color::Red),
            ("model-00001", "unknown", Color::Yellow),
        ];
        for (name, text, colour) in cases {
            let style = style_in_row(buf, name, text);
            assert_eq!(style.fg, Some(colour), "{name} {text} at {w}x{h}");
        }
        let disabled = style_in_row(buf, "DeepSeek-R1", "disabled");
        assert_ne!(disabled.fg, Some(Color::Green), "{w}x{h}");
        assert_ne!(disabled.fg, Some(Color::Red), "{w}x{h}");
    }
}

#[test]
fn a_short_detail_scrolls_to_the_selected_endpoint_and_keeps_the_rules() {
    let mut a = fixtures::routing_app(Theme::monochrome());
    open(&mut a, "Mixtral-8x22B");
    press(&mut a, KeyCode::Char('G'));
    for (w, h) in [(60, 15), (80, 24)] {
        let s = screen(&mut a, w, h);
        // The last of eight endpoints, selected, is on screen; the rules
        // pane is there with its header.
        row(&s, "│ 8 ");
        assert!(row(&s, "rate-limit rules [0]").starts_with("\"┌"), "{s}");
        row(&s, "USED/LIMIT");
    }
    insta::assert_snapshot!("detail_eight_endpoints_60x15", screen(&mut a, 60, 15));
}

#[test]
fn a_token_rule_reads_in_thousands_and_says_it_counts_tokens() {
    let mut reg = fixtures::registry(0);
    let rule = reg
        .models
        .get_mut("DeepSeek-V3")
        .unwrap()
        .rules
        .iter_mut()
        .find(|r| r.id == 1)
        .unwrap();
    rule.spec.unit = maasctl::domain::RuleUnit::Tokens;
    rule.spec.limit = 90_000;
    let mut a = fixtures::app_with(reg, Theme::monochrome());
    open(&mut a, "DeepSeek-V3");
    let s = screen(&mut a, 80, 24);
    let line = row(&s, "#1 ");
    assert!(line.contains("10/90.0k"), "{line}");
    assert!(line.contains("tok/1s"), "{line}");
    // The request rule beside it stays exact.
    let line = row(&s, "#2 ");
    assert!(line.contains("—/600") && line.contains(" 1m "), "{line}");
}
