//! Console numbers that never lie (issue 15), without a terminal: the
//! model detail with per-endpoint ERR/S and P99 and an endpoint never
//! contacted (`unknown`), at 60×15, 80×24 and 200×60; stale data marked
//! with its age (no old rate shown as current); the remote header; the
//! endpoint popup showing the table's numbers as they move.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use maasctl::client::{GatewayHeader, GatewayState, RegistryView};
use maasctl::domain::{Change, Endpoint, EndpointState, Registry};
use maasctl::gateway::{EndpointStats, StatsSnapshot, Totals};
use maasctl::tui::app::App;
use maasctl::tui::chrome;
use maasctl::tui::ids::ViewId;
use maasctl::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

#[path = "support/tui_fixtures.rs"]
mod fixtures;
use fixtures::{LISTEN, NOW_MS};

const QWEN: &str = "Qwen2.5-72B-Instruct";
/// The endpoint just saved: nothing answers on port 9.
const NEW_URL: &str = "http://127.0.0.1:9/v1";

/// The fixture registry with a third Qwen endpoint, just saved.
fn registry() -> Registry {
    let mut reg = fixtures::registry(0);
    let mut spec = reg.models[QWEN].spec.clone();
    spec.endpoints.push(Endpoint::new(NEW_URL));
    reg.apply_all(
        vec![Change::UpdateModel {
            name: QWEN.into(),
            spec,
        }],
        NOW_MS / 1000,
    )
    .expect("a valid edit");
    reg
}

/// Qwen's endpoints `steps_back` seconds ago: #1 answers 4 req/s, 1 of
/// them failing (p99 950ms); #2 refuses its 1 req/s (every try an error,
/// no latency); #3 was never contacted (unknown, no traffic).
fn stats(reg: &Registry, steps_back: u64) -> StatsSnapshot {
    let mut s = fixtures::stats(reg, steps_back);
    let t = 100 - steps_back;
    s.endpoints.retain(|e| e.model != QWEN);
    let eps = [
        (4 * t, t, 950.0, EndpointState::Healthy, None),
        (t, t, 0.0, EndpointState::Down, Some("connection refused")),
        (0, 0, 0.0, EndpointState::Unknown, None),
    ];
    for (i, (requests, errors, p99, state, reason)) in eps.into_iter().enumerate() {
        s.endpoints.push(EndpointStats {
            model: QWEN.into(),
            index: i,
            url: reg.models[QWEN].spec.endpoints[i].url.clone(),
            weight: None,
            state,
            reason: reason.map(str::to_string),
            since_ms: reason.map(|_| NOW_MS - 30_000),
            totals: Totals {
                requests,
                success: requests - errors,
                upstream_errors: errors,
                latency_p50_ms: p99 / 8.0,
                latency_p99_ms: p99,
                ..Default::default()
            },
        });
    }
    s.started_ms = NOW_MS - 600_000;
    s
}

/// The console on that registry after three snapshots a second apart,
/// with the gateway's report saying #3 is unknown.
fn app() -> App {
    let reg = registry();
    let mut reports = fixtures::reports(&reg);
    for e in &mut reports[0].endpoints {
        if e.model == QWEN && e.index == 2 {
            e.state = EndpointState::Unknown;
        }
    }
    let view = Arc::new(RegistryView {
        reports: Arc::new(reports),
        registry: Arc::new(reg),
    });
    let gateway = GatewayHeader {
        listen: Some(LISTEN.into()),
        state: GatewayState::Running,
    };
    let mut app = App::new(Theme::monochrome(), view.clone(), gateway, NOW_MS, None);
    for back in [2, 1, 0] {
        app.on_stats(Arc::new(stats(&view.registry, back)));
    }
    app
}

fn press(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.layout(Rect::new(0, 0, w, h));
    t.draw(|f| chrome::render(app, f)).unwrap();
    format!("{}", t.backend())
}

fn open_qwen(app: &mut App) {
    app.jump(ViewId::Models);
    assert!(app.select(ViewId::Models, QWEN));
    press(app, KeyCode::Enter);
    assert_eq!(app.current(), ViewId::Detail);
}

/// The row of the screen that contains `needle`.
fn row<'s>(s: &'s str, needle: &str) -> &'s str {
    s.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{s}"))
}

#[test]
fn detail_with_errors_latency_and_an_unknown_endpoint() {
    let mut a = app();
    open_qwen(&mut a);
    for (w, h) in [(60, 15), (80, 24), (200, 60)] {
        let s = screen(&mut a, w, h);
        insta::assert_snapshot!(format!("truth_detail_{w}x{h}"), s);
        // The numbers in every size: errors and latency per endpoint, and
        // the new endpoint unknown, never healthy.
        let r1 = row(&s, "│ 1 ");
        assert!(r1.contains("   4.0    1.0  950ms "), "{r1}");
        let r2 = row(&s, "│ 2 ");
        assert!(r2.contains("   1.0    1.0      — ejected"), "{r2}");
        let r3 = row(&s, "│ 3 ");
        assert!(r3.contains("unknown") && !r3.contains("healthy"), "{r3}");
    }
    // The model is degraded (one down), not serving.
    let s = screen(&mut a, 200, 60);
    assert!(row(&s, "status enabled").contains("gateway degraded"));
}

#[test]
fn the_endpoint_popup_shows_what_the_table_shows_as_it_moves() {
    let mut a = app();
    open_qwen(&mut a);
    press(&mut a, KeyCode::Enter);
    let s = screen(&mut a, 200, 60);
    assert!(row(&s, "traffic").contains("4.0 req/s, share 80%"), "{s}");
    assert!(
        row(&s, "errors").contains("1.0 failed tries/s, p99 950ms"),
        "{s}"
    );
    // A second later endpoint #1 took nothing, #2 took 4: the open popup
    // follows (it used to keep the share it had when opened).
    let reg = a.data.registry().clone();
    let mut next = stats(&reg, 0);
    next.taken_ms += 1000;
    let n = next.endpoints.len();
    next.endpoints[n - 2].totals.requests += 4;
    next.endpoints[n - 2].totals.upstream_errors += 4;
    assert!(a.on_stats(Arc::new(next)));
    let s = screen(&mut a, 200, 60);
    assert!(row(&s, "traffic").contains("0 req/s, share 0%"), "{s}");
    press(&mut a, KeyCode::Esc);
    let s = screen(&mut a, 200, 60);
    assert!(row(&s, "│ 1 ").contains(" 0% "), "{}", row(&s, "│ 1 "));
    assert!(row(&s, "│ 2 ").contains(" 100% "), "{}", row(&s, "│ 2 "));
}

#[test]
fn a_silent_source_is_stale_with_its_age_and_shows_no_old_rate() {
    let mut a = app();
    let s = screen(&mut a, 80, 24);
    assert!(s.contains("req/s 17.0"), "{s}");
    // Heartbeats stop: 3 s is still current, more is stale.
    a.tick(NOW_MS + 3000);
    assert!(!screen(&mut a, 80, 24).contains("stale"));
    assert!(a.tick(NOW_MS + 5000));
    let s = screen(&mut a, 80, 24);
    insta::assert_snapshot!("truth_stale_models_80x24", s);
    let header = s.lines().next().unwrap();
    assert!(header.contains("stale 5s"), "{header}");
    assert!(
        header.contains("req/s —") && !header.contains("17.0"),
        "{header}"
    );
    assert!(
        !s.contains("12.0"),
        "DeepSeek-V3's old 12 req/s is gone:\n{s}"
    );
    open_qwen(&mut a);
    let s = screen(&mut a, 80, 24);
    assert!(row(&s, "req/s").contains("req/s —"), "{s}");
    assert!(row(&s, "│ 1 ").contains("—"), "{s}");
    // The age moves with the clock.
    assert!(a.tick(NOW_MS + 75_000));
    assert!(
        screen(&mut a, 80, 24)
            .lines()
            .next()
            .unwrap()
            .contains("stale 1m15s")
    );
}

#[test]
fn remote_header_and_a_reconnect_to_a_restarted_server() {
    let mut a = app();
    a.data.attached = Some("http://127.0.0.1:9090".into());
    let s = screen(&mut a, 120, 24);
    let header = s.lines().next().unwrap();
    assert!(
        header.contains("remote 127.0.0.1:9090 gw 127.0.0.1:8080 running"),
        "{header}"
    );
    // At 80 columns the gateway's address gives way to the rates (the
    // list's footer shows the access path): nothing is cut.
    let s = screen(&mut a, 80, 24);
    let header = s.lines().next().unwrap();
    assert!(
        header.contains("remote 127.0.0.1:9090 running  req/s 17.0  thr/s 3.0"),
        "{header}"
    );
    assert!(!header.contains('…'), "{header}");
    // The server stops answering: stale at once, with the reason.
    a.data.now_ms = NOW_MS + 500;
    a.on_gateway(GatewayHeader {
        listen: Some(LISTEN.into()),
        state: GatewayState::Failed("disconnected, retrying (Connection refused)".into()),
    });
    let s = screen(&mut a, 120, 24);
    let header = s.lines().next().unwrap();
    assert!(header.contains("stale 0s failed: disconnected"), "{header}");
    assert!(!header.contains("17.0"), "{header}");
    // Back, restarted: counters from zero. The first snapshot shows no
    // rate (one snapshot is no window), the next a fresh one.
    a.on_gateway(GatewayHeader {
        listen: Some(LISTEN.into()),
        state: GatewayState::Running,
    });
    let reg = a.data.registry().clone();
    let restarted = |secs: i64, req: u64| {
        let mut s = StatsSnapshot {
            taken_ms: NOW_MS + secs * 1000,
            started_ms: NOW_MS + 5000,
            listen: LISTEN.into(),
            revision: reg.revision,
            ..Default::default()
        };
        s.gateway.requests = req;
        s.models.insert(
            "DeepSeek-V3".into(),
            Totals {
                requests: req,
                ..Default::default()
            },
        );
        Arc::new(s)
    };
    a.data.now_ms = NOW_MS + 9000;
    a.on_stats(restarted(9, 300));
    let header = screen(&mut a, 120, 24).lines().next().unwrap().to_string();
    assert!(header.contains("running  req/s —"), "{header}");
    assert!(!header.contains("stale"), "{header}");
    a.data.now_ms = NOW_MS + 10_000;
    a.on_stats(restarted(10, 302));
    let header = screen(&mut a, 120, 24).lines().next().unwrap().to_string();
    assert!(header.contains("req/s 2.0"), "{header}");
}

#[test]
fn a_rule_window_takes_the_units_the_console_shows() {
    use maasctl::tui::action::Op;
    let mut a = app();
    open_qwen(&mut a);
    press(&mut a, KeyCode::Char('a'));
    assert!(a.form().is_some_and(|f| f.title.starts_with("Add rule")));
    a.form_mut().unwrap().focus_on("duration");
    for _ in 0..4 {
        press(&mut a, KeyCode::Backspace);
    }
    for c in "5m".chars() {
        press(&mut a, KeyCode::Char(c));
    }
    a.on_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    let requests = a.take_requests();
    let [request] = requests.as_slice() else {
        panic!(
            "one request: {requests:?}; form: {:?}",
            a.form().map(|f| &f.title)
        );
    };
    let Op::Apply(changes) = &request.op else {
        panic!("{:?}", request.op)
    };
    let [Change::AddRule { spec, .. }] = changes.as_slice() else {
        panic!("{changes:?}")
    };
    assert_eq!(spec.duration_secs, 300, "5m is 300 seconds");
}
