//! The console's live tail, clipboard, palette and safe changes (issue 15):
//! state tests and ratatui `TestBackend` snapshots, no terminal, no store.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use maasctl::gateway::{RequestEvent, TailPage};
use maasctl::tui::action::{Done, Op, Reply};
use maasctl::tui::app::App;
use maasctl::tui::chrome;
use maasctl::tui::ids::ViewId;
use maasctl::tui::theme::Theme;
use maasctl::tui::views::tail::Tail;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

#[path = "support/tui_fixtures.rs"]
mod fixtures;
use fixtures::NOW_MS;

// ---- helpers ------------------------------------------------------------

fn app() -> App {
    fixtures::app(0, Theme::colored())
}

fn press(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn chars(app: &mut App, s: &str) {
    for c in s.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn draw(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.layout(Rect::new(0, 0, w, h));
    t.draw(|f| chrome::render(app, f)).unwrap();
    t
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    format!("{}", draw(app, w, h).backend())
}

fn tail(app: &App) -> &Tail {
    app.view_as::<Tail>().expect("the tail view")
}

/// A request line: `n` numbers it (and its time); odd ones are acme/prod's
/// on DeepSeek-V3, even ones research/notebook's on Qwen, every fifth a 429.
fn line(n: u64) -> RequestEvent {
    let throttled = n % 5 == 0;
    let (key, model) = if n % 2 == 1 {
        ("key_0000a001", "DeepSeek-V3")
    } else {
        ("key_0000b001", "Qwen2.5-72B-Instruct")
    };
    RequestEvent {
        seq: n,
        at_ms: NOW_MS + n as i64 * 1000,
        key_id: Some(key.into()),
        model: Some(model.into()),
        status: if throttled { 429 } else { 200 },
        latency_ms: if throttled { 0 } else { 100 + n },
        prompt_tokens: if throttled { 0 } else { 12 },
        completion_tokens: if throttled { 0 } else { 30 },
        endpoint: (!throttled).then(|| "#0 http://127.0.0.1:9101/v1".into()),
        hops: u32::from(n == 3),
        rule: throttled.then_some(7),
    }
}

/// Answer the console's pending tail call with lines `from..=to`; panics if
/// it asked for none, or from another cursor than `since`.
fn feed(app: &mut App, since: u64, from: u64, to: u64, dropped: u64) {
    let reqs = app.take_requests();
    let req = reqs
        .iter()
        .find(|r| matches!(r.op, Op::Tail(_)))
        .unwrap_or_else(|| panic!("a tail call in {reqs:?}"));
    assert_eq!(req.op, Op::Tail(since), "asked from the cursor");
    let page = TailPage {
        events: (from..=to).map(line).collect(),
        next: to.max(since),
        dropped,
    };
    app.on_reply(Reply {
        id: req.id,
        result: Ok(Done::Tail(page)),
    });
}

fn open_tail(app: &mut App) {
    chars(app, ":tail");
    press(app, KeyCode::Enter);
    assert_eq!(app.current(), ViewId::Tail);
}

// ---- live tail ------------------------------------------------------------

#[test]
fn the_tail_asks_from_its_cursor_and_follows_the_newest_line() {
    let mut app = app();
    open_tail(&mut app);
    feed(&mut app, 0, 1, 6, 0);
    let t = tail(&app);
    assert_eq!(t.state.rows.len(), 6);
    assert_eq!(t.state.selected_id(), Some("6"), "follows the newest");
    app.poll_tail();
    feed(&mut app, 6, 7, 8, 0);
    assert_eq!(tail(&app).state.selected_id(), Some("8"));
    // Moving up stops following; G follows again.
    press(&mut app, KeyCode::Up);
    app.poll_tail();
    feed(&mut app, 8, 9, 9, 0);
    assert_eq!(tail(&app).state.selected_id(), Some("7"));
    assert!(tail(&app).held);
    press(&mut app, KeyCode::Char('G'));
    assert_eq!(tail(&app).state.selected_id(), Some("9"));
    assert!(!tail(&app).held);
    // One call at a time: no second call while one is pending.
    app.poll_tail();
    app.poll_tail();
    let calls = app
        .take_requests()
        .into_iter()
        .filter(|r| matches!(r.op, Op::Tail(_)))
        .count();
    assert_eq!(calls, 1);
}

#[test]
fn the_tail_is_not_asked_for_when_not_shown() {
    let mut app = app();
    app.poll_tail();
    assert!(
        !app.take_requests()
            .iter()
            .any(|r| matches!(r.op, Op::Tail(_))),
        "the models list shows no tail"
    );
}

#[test]
fn pause_counts_new_lines_and_shows_them_on_resume() {
    let mut app = app();
    open_tail(&mut app);
    feed(&mut app, 0, 1, 4, 0);
    press(&mut app, KeyCode::Char(' '));
    assert_eq!(tail(&app).paused, Some(4));
    app.poll_tail();
    feed(&mut app, 4, 5, 9, 0);
    let t = tail(&app);
    assert_eq!(t.state.rows, ["1", "2", "3", "4"], "frozen while paused");
    assert_eq!(t.new_while_paused, 5);
    let s = screen(&mut app, 100, 20);
    assert!(s.contains("PAUSED: 5 new"), "{s}");
    press(&mut app, KeyCode::Char(' '));
    let t = tail(&app);
    assert_eq!(t.paused, None);
    assert_eq!(t.state.rows.len(), 9, "shown on resume");
    assert_eq!(t.state.selected_id(), Some("9"));
    let s = screen(&mut app, 100, 20);
    assert!(s.contains("tail resumed: 5 new line(s)"), "{s}");
}

#[test]
fn the_filter_matches_model_key_status_and_rule() {
    let mut app = app();
    open_tail(&mut app);
    feed(&mut app, 0, 1, 10, 0);
    let rows = |app: &App| tail(app).state.rows.clone();
    press(&mut app, KeyCode::Char('/'));
    chars(&mut app, "deepseek");
    assert_eq!(rows(&app), ["1", "3", "5", "7", "9"]);
    press(&mut app, KeyCode::Esc);
    press(&mut app, KeyCode::Char('/'));
    chars(&mut app, "research/");
    assert_eq!(rows(&app), ["2", "4", "6", "8", "10"]);
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Esc);
    assert_eq!(rows(&app).len(), 10, "esc clears the filter");
    press(&mut app, KeyCode::Char('/'));
    chars(&mut app, "rule #7");
    assert_eq!(rows(&app), ["5", "10"]);
    press(&mut app, KeyCode::Enter);
    // New lines are filtered too; paused counts only matching ones.
    press(&mut app, KeyCode::Char(' '));
    app.poll_tail();
    feed(&mut app, 10, 11, 20, 0);
    assert_eq!(tail(&app).new_while_paused, 2);
}

#[test]
fn l_opens_the_tail_filtered_on_a_model_key_or_workspace() {
    let mut app = app();
    // The models list starts on the first model by name.
    let first = app.list(ViewId::Models).selected_id().unwrap().to_string();
    press(&mut app, KeyCode::Char('l'));
    assert_eq!(app.current(), ViewId::Tail);
    assert_eq!(tail(&app).state.filter, first);
    feed(&mut app, 0, 1, 4, 0);

    chars(&mut app, ":keys");
    press(&mut app, KeyCode::Enter);
    let key = app.list(ViewId::Keys).selected_id().unwrap().to_string();
    press(&mut app, KeyCode::Char('l'));
    assert_eq!(tail(&app).state.filter, key);

    chars(&mut app, ":workspaces");
    press(&mut app, KeyCode::Enter);
    let ws = app
        .list(ViewId::Workspaces)
        .selected_id()
        .unwrap()
        .to_string();
    press(&mut app, KeyCode::Char('l'));
    assert_eq!(tail(&app).state.filter, format!("{ws}/"));
}

#[test]
fn the_console_keeps_at_most_a_thousand_lines() {
    let mut app = app();
    open_tail(&mut app);
    feed(&mut app, 0, 1, 1500, 3);
    assert_eq!(app.data.requests.lines.len(), maasctl::tui::requests::KEEP);
    assert_eq!(
        tail(&app).state.rows.first().map(String::as_str),
        Some("501")
    );
    let s = screen(&mut app, 120, 20);
    assert!(s.contains("gateway dropped 3"), "{s}");
}

#[test]
fn tail_snapshots() {
    let mut app = app();
    open_tail(&mut app);
    feed(&mut app, 0, 1, 12, 0);
    for (w, h) in [(60, 15), (80, 24), (200, 60)] {
        let s = screen(&mut app, w, h);
        insta::assert_snapshot!(format!("tail_{w}x{h}"), s);
    }
    press(&mut app, KeyCode::Char(' '));
    app.poll_tail();
    feed(&mut app, 12, 13, 15, 0);
    insta::assert_snapshot!("tail_paused_80x24", screen(&mut app, 80, 24));
}

// ---- copy over SSH (OSC 52) ---------------------------------------------------

#[test]
fn y_on_a_model_copies_a_curl_call_without_any_secret() {
    let mut app = app();
    let model = app.list(ViewId::Models).selected_id().unwrap().to_string();
    press(&mut app, KeyCode::Char('y'));
    let text = app.take_clipboard().expect("something to copy");
    assert!(
        text.starts_with("curl -s http://127.0.0.1:8080/v1/chat/completions ")
            && text.contains("Bearer $MAASCTL_KEY")
            && text.contains(&format!(r#""model":"{model}""#)),
        "{text}"
    );
    assert!(!text.contains("sk-"), "no secret: {text}");
    let s = screen(&mut app, 120, 24);
    assert!(
        s.contains(&format!(
            "copied a curl call of {model} (key: $MAASCTL_KEY)"
        )),
        "{s}"
    );
    assert_eq!(app.take_clipboard(), None, "copied once");
    press(&mut app, KeyCode::Char('Y'));
    assert_eq!(
        app.take_clipboard().as_deref(),
        Some("http://127.0.0.1:8080/v1")
    );
}

#[test]
fn y_copies_a_new_keys_secret_only_while_its_popup_shows_it() {
    use maasctl::client::CreatedKey;
    use maasctl::tui::popups::Overlay;
    let mut app = app();
    chars(&mut app, ":keys");
    press(&mut app, KeyCode::Enter);
    // The key list's `y` copies nothing (no secret is held there).
    press(&mut app, KeyCode::Char('y'));
    assert_eq!(app.take_clipboard(), None);
    // A key created: its popup shows the secret once; `y` copies it and
    // the popup stays.
    press(&mut app, KeyCode::Char('c'));
    press(&mut app, KeyCode::Tab);
    chars(&mut app, "ci");
    app.on_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    let req = app
        .take_requests()
        .into_iter()
        .find(|r| matches!(r.op, Op::CreateKey { .. }))
        .expect("the key is created");
    let secret = "sk-created-0123456789abcdefghijklmnopqrstuv".to_string();
    app.on_reply(Reply {
        id: req.id,
        result: Ok(Done::KeyCreated(CreatedKey {
            id: "key_0000c001".into(),
            workspace: "acme".into(),
            name: "ci".into(),
            secret: secret.clone(),
        })),
    });
    assert!(matches!(app.overlay(), Some(Overlay::Secret(_))));
    let s = screen(&mut app, 100, 24);
    assert!(s.contains("y copies it to your clipboard"), "{s}");
    press(&mut app, KeyCode::Char('y'));
    assert_eq!(app.take_clipboard(), Some(secret));
    assert!(
        matches!(app.overlay(), Some(Overlay::Secret(_))),
        "still shown"
    );
    let s = screen(&mut app, 120, 24);
    assert!(s.contains("copied the secret of key key_0000c001"), "{s}");
    press(&mut app, KeyCode::Enter);
    assert!(app.overlay().is_none());
    press(&mut app, KeyCode::Char('y'));
    assert_eq!(app.take_clipboard(), None, "gone with its popup");
}

// ---- palette ----------------------------------------------------------------

/// The style of the first cell of `text` on screen.
fn style_of(buf: &ratatui::buffer::Buffer, text: &str) -> ratatui::style::Style {
    let w = buf.area.width;
    for y in 0..buf.area.height {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        if let Some(byte) = line.find(text) {
            let x = line[..byte].chars().count() as u16;
            return buf[(x, y)].style();
        }
    }
    panic!("{text:?} is not on screen");
}

#[test]
fn status_cells_carry_their_colour_in_both_palettes() {
    use maasctl::tui::theme::MID_GREY;
    use ratatui::style::{Color, Modifier};
    for (theme, dim_fg, dim_faint) in [
        (Theme::colored(), Some(MID_GREY), false),
        (Theme::basic(), Some(Color::Reset), true),
    ] {
        let mut a = fixtures::app(0, theme);
        let t = draw(&mut a, 160, 48);
        let buf = t.backend().buffer();
        assert_eq!(style_of(buf, "serving").fg, Some(Color::Green));
        assert_eq!(style_of(buf, "degraded").fg, Some(Color::Yellow));
        assert_eq!(style_of(buf, "enabled").fg, Some(Color::Green));
        let dim = style_of(buf, "disabled");
        assert_eq!(dim.fg, dim_fg, "{theme:?}");
        assert_eq!(
            dim.add_modifier.contains(Modifier::DIM),
            dim_faint,
            "{theme:?}"
        );
        // Nothing dark grey (unreadable on black), and in the basic palette
        // nothing beyond the 16 colours.
        for c in &buf.content {
            let fg = c.style().fg;
            assert_ne!(fg, Some(Color::DarkGray), "{theme:?} at {:?}", c.symbol());
            if theme == Theme::basic() {
                assert!(
                    !matches!(fg, Some(Color::Indexed(_) | Color::Rgb(..))),
                    "{fg:?}"
                );
            }
        }
    }
}

// ---- safe changes and undo -------------------------------------------------

use maasctl::client::{ClientError, RegistryView};
use maasctl::domain::{Registry, audit};
use maasctl::ops::rollback::RollbackReport;
use maasctl::tui::popups::Overlay;
use std::sync::Arc;

fn snap3(name: &str, app: &mut App) {
    for (w, h) in [(60, 15), (80, 24), (200, 60)] {
        let s = screen(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), s);
    }
}

fn select(app: &mut App, view: ViewId, id: &str) {
    app.jump(view);
    assert!(app.select(view, id), "{id} in {view:?}");
}

/// Run the one queued apply against `reg` as the store would, publish the
/// new registry, and hand the reply back.
fn apply_queued(app: &mut App, reg: &mut Registry) {
    let reqs = app.take_requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let Op::Apply(changes) = reqs[0].op.clone() else {
        panic!("{:?}", reqs[0].op)
    };
    let result = reg
        .apply_all(changes, NOW_MS / 1000)
        .map(|(outcomes, _)| {
            Done::Applied(maasctl::store::Applied {
                revision: reg.revision,
                outcomes,
            })
        })
        .map_err(ClientError::Domain);
    let reports = app.data.view.reports.clone();
    app.on_registry(Arc::new(RegistryView {
        registry: Arc::new(reg.clone()),
        reports,
    }));
    app.on_reply(Reply {
        id: reqs[0].id,
        result,
    });
}

/// What `ops::rollback` answers for a dry run from `current` back to
/// `earlier` (the same computation: restored registry, its diff).
fn plan(current: &Registry, earlier: &Registry) -> RollbackReport {
    let restored = current.restored(earlier, NOW_MS / 1000);
    let changes = audit::registry_changes(current, &restored, &audit::both(current, &restored));
    RollbackReport {
        to: earlier.revision,
        from: current.revision,
        revision: current.revision,
        dry_run: true,
        changed: !changes.is_empty(),
        changes,
        keys: Default::default(),
    }
}

fn confirm_text(app: &App) -> String {
    match app.overlay() {
        Some(Overlay::Confirm { title, text, .. }) => format!("{title}\n{text}"),
        Some(Overlay::ConfirmLines { title, lines, .. }) => {
            format!("{title}\n{}", lines.join("\n"))
        }
        o => panic!("a question, not {o:?}"),
    }
}

#[test]
fn disabling_a_model_with_traffic_asks_and_u_undoes_it() {
    let mut app = app();
    let mut reg = fixtures::registry(0);
    let before = reg.clone();
    select(&mut app, ViewId::Models, "DeepSeek-V3");
    assert!(
        app.data.live.model("DeepSeek-V3").req > 0.0,
        "the fixture has traffic"
    );
    press(&mut app, KeyCode::Char('t'));
    let text = confirm_text(&app);
    assert!(
        text.contains("Disable model DeepSeek-V3? It has traffic")
            && text.contains("callers get 404"),
        "{text}"
    );
    snap3("disable_with_traffic", &mut app);
    press(&mut app, KeyCode::Char('y'));
    apply_queued(&mut app, &mut reg);
    assert!(!reg.models["DeepSeek-V3"].enabled);
    let u = app.undo.clone().expect("undoable");
    assert_eq!((u.before, u.after), (before.revision, reg.revision));

    // u: the dry run first, shown before anything is done.
    press(&mut app, KeyCode::Char('u'));
    let reqs = app.take_requests();
    assert_eq!(
        reqs[0].op,
        Op::Rollback {
            revision: before.revision,
            dry_run: true
        }
    );
    app.on_reply(Reply {
        id: reqs[0].id,
        result: Ok(Done::Rollback(plan(&reg, &before))),
    });
    let text = confirm_text(&app);
    assert!(
        text.starts_with("Undo \"model DeepSeek-V3 disabled\"?"),
        "{text}"
    );
    assert!(text.contains("enabled: false → true"), "{text}");
    snap3("undo_confirm", &mut app);
    press(&mut app, KeyCode::Char('y'));
    let reqs = app.take_requests();
    assert_eq!(
        reqs[0].op,
        Op::Rollback {
            revision: before.revision,
            dry_run: false
        }
    );
}

#[test]
fn enabling_or_a_quiet_model_is_not_asked() {
    let mut app = app();
    // Qwen is disabled in the fixture? Whatever it is, a model without
    // traffic toggles at once.
    let quiet: Vec<String> = app
        .data
        .registry()
        .models
        .keys()
        .filter(|m| app.data.live.model(m).req == 0.0)
        .cloned()
        .collect();
    let name = quiet.first().expect("a model without traffic").clone();
    select(&mut app, ViewId::Models, &name);
    press(&mut app, KeyCode::Char('t'));
    assert!(app.overlay().is_none(), "{:?}", app.overlay());
    assert!(matches!(app.take_requests()[0].op, Op::Apply(_)));
}

#[test]
fn undo_is_refused_when_late_or_when_the_registry_moved() {
    let mut app = app();
    press(&mut app, KeyCode::Char('u'));
    assert!(app.flash.as_ref().unwrap().text.contains("nothing to undo"));
    let mut reg = fixtures::registry(0);
    select(&mut app, ViewId::Workspaces, "research");
    press(&mut app, KeyCode::Char('c'));
    chars(&mut app, "ops");
    app.on_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
    // The form's save goes through apply too.
    let reqs = app.take_requests();
    let Op::Apply(changes) = reqs[0].op.clone() else {
        panic!("{:?}", reqs[0].op)
    };
    let (outcomes, _) = reg.apply_all(changes, NOW_MS / 1000).unwrap();
    app.on_reply(Reply {
        id: reqs[0].id,
        result: Ok(Done::Applied(maasctl::store::Applied {
            revision: reg.revision,
            outcomes,
        })),
    });
    assert!(app.undo.is_some());
    // Someone else changes the registry meanwhile.
    reg.revision += 1;
    let reports = app.data.view.reports.clone();
    app.on_registry(Arc::new(RegistryView {
        registry: Arc::new(reg.clone()),
        reports,
    }));
    press(&mut app, KeyCode::Char('u'));
    let f = app.flash.clone().unwrap();
    assert!(
        f.error && f.text.contains("the registry moved since"),
        "{f:?}"
    );
    assert!(app.take_requests().is_empty());
    // And 30 s later it is too late anyway.
    app.undo.as_mut().unwrap().after = reg.revision;
    app.tick(NOW_MS + 31_000);
    press(&mut app, KeyCode::Char('u'));
    let f = app.flash.clone().unwrap();
    assert!(f.text.contains("too late to undo"), "{f:?}");
    assert!(app.take_requests().is_empty());
}

#[test]
fn deletes_say_what_follows_and_refusals_come_before_asking() {
    let mut app = app();
    select(&mut app, ViewId::Models, "DeepSeek-V3");
    press(&mut app, KeyCode::Char('d'));
    let text = confirm_text(&app);
    let rules = app.data.registry().models["DeepSeek-V3"].rules.len();
    assert!(
        text.contains("callers get 404 at once")
            && text.contains("It has traffic now")
            && text.contains(&format!("Its {rules} rule")),
        "{text}"
    );
    snap3("delete_model", &mut app);
    press(&mut app, KeyCode::Esc);

    // A workspace with active keys: said at once, not asked.
    let mut reg = fixtures::registry(0);
    reg.apply_all(
        vec![
            maasctl::domain::Change::AddWorkspace {
                name: "ops".into(),
                description: String::new(),
            },
            maasctl::domain::Change::CreateKey {
                id: "key_0000d001".into(),
                workspace: "ops".into(),
                name: "cron".into(),
                secret_hash: maasctl::domain::secret::hash_secret("sk-ops-cron-0123456789"),
                secret_hint: "6789".into(),
            },
        ],
        NOW_MS / 1000,
    )
    .unwrap();
    let reports = app.data.view.reports.clone();
    app.on_registry(Arc::new(RegistryView {
        registry: Arc::new(reg),
        reports,
    }));
    select(&mut app, ViewId::Workspaces, "ops");
    press(&mut app, KeyCode::Char('d'));
    let Some(Overlay::Message { title, lines }) = app.overlay() else {
        panic!("said, not asked: {:?}", app.overlay())
    };
    assert_eq!(title, "Cannot delete workspace ops");
    assert!(
        lines.join(" ").contains("still has active keys"),
        "{lines:?}"
    );
    snap3("delete_workspace_refused", &mut app);
    // One that rules use: said at once too, with the registry's reason.
    press(&mut app, KeyCode::Esc);
    select(&mut app, ViewId::Workspaces, "research");
    press(&mut app, KeyCode::Char('d'));
    let Some(Overlay::Message { lines, .. }) = app.overlay() else {
        panic!("said, not asked: {:?}", app.overlay())
    };
    assert!(
        lines.join(" ").contains("delete those rules first"),
        "{lines:?}"
    );
    press(&mut app, KeyCode::Esc);

    // Revoking an active key says calls get 401.
    select(&mut app, ViewId::Keys, "key_0000b001");
    press(&mut app, KeyCode::Char('r'));
    let text = confirm_text(&app);
    assert!(
        text.contains("Revoke research/notebook? Calls with it get 401 at once"),
        "{text}"
    );
}
