//! The console without a terminal: snapshots of every view, form and popup
//! at 80×24 and 160×48 (TestBackend), the colours that carry meaning, and
//! the state change of every key action. Background calls are run against
//! an in-memory registry with the domain's own rules, so refusals are the
//! real ones.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use maasctl::client::{ClientError, CreatedKey, RegistryView};
use maasctl::domain::{Change, Registry};
use maasctl::tui::action::{Action, Done, Op, Reply};
use maasctl::tui::app::{App, PromptKind};
use maasctl::tui::chrome;
use maasctl::tui::ids::ViewId;
use maasctl::tui::popups::{Confirmed, Overlay};
use maasctl::tui::theme::Theme;
use maasctl::tui::views::detail::{Detail, Pane};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};

#[path = "support/tui_fixtures.rs"]
mod fixtures;
use fixtures::NOW_MS;

// ---- helpers ------------------------------------------------------------

fn app() -> App {
    fixtures::app(0, Theme::colored())
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn press(app: &mut App, code: KeyCode) {
    app.on_key(key(code));
}

fn chars(app: &mut App, s: &str) {
    for c in s.chars() {
        press(app, KeyCode::Char(c));
    }
}

/// A frame as the console's loop draws one: scroll positions fitted to
/// the size, then drawn from `&App`.
fn draw(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.layout(Rect::new(0, 0, w, h));
    t.draw(|f| chrome::render(app, f)).unwrap();
    t
}

/// The open model detail.
fn detail(app: &App) -> &Detail {
    assert_eq!(app.current(), ViewId::Detail);
    app.view_as::<Detail>().expect("the detail is open")
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    format!("{}", draw(app, w, h).backend())
}

/// Snapshot at both sizes.
fn snap(name: &str, app: &mut App) {
    for (w, h) in [(80, 24), (160, 48)] {
        let s = screen(app, w, h);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), s);
    }
}

/// Run the queued background calls against `reg` as the store would
/// (the domain validates), publish the result and hand the replies back.
fn run_requests(app: &mut App, reg: &mut Registry) -> Vec<Reply> {
    let mut replies = Vec::new();
    for req in app.take_requests() {
        let result = match req.op {
            Op::Apply(changes) => reg
                .apply_all(changes, NOW_MS / 1000)
                .map(|(outcomes, _)| {
                    Done::Applied(maasctl::store::Applied {
                        revision: reg.revision,
                        outcomes,
                    })
                })
                .map_err(ClientError::Domain),
            Op::Guarded { guard, .. } if !guard.holds(reg) => {
                Ok(Done::Changed(Box::new(reg.clone())))
            }
            Op::Guarded { changes, .. } => reg
                .apply_all(changes, NOW_MS / 1000)
                .map(|(outcomes, _)| {
                    Done::Applied(maasctl::store::Applied {
                        revision: reg.revision,
                        outcomes,
                    })
                })
                .map_err(ClientError::Domain),
            Op::Audit(_) | Op::Rollback { .. } | Op::Tail(_) | Op::Budgets | Op::Usage(_) => {
                Err(ClientError::Other(
                    "this test answers audit, rollback, tail, budgets and usage calls itself"
                        .into(),
                ))
            }
            Op::CreateKey { workspace, name } => {
                let secret = "sk-created-in-test-0123456789abcdefXYZ".to_string();
                let id = "key_0000c001".to_string();
                reg.apply_all(
                    vec![Change::CreateKey {
                        id: id.clone(),
                        workspace: workspace.clone(),
                        name: name.clone(),
                        secret_hash: maasctl::domain::secret::hash_secret(&secret),
                        secret_hint: "XYZ0".into(),
                    }],
                    NOW_MS / 1000,
                )
                .map(|_| {
                    Done::KeyCreated(CreatedKey {
                        id,
                        workspace,
                        name,
                        secret,
                    })
                })
                .map_err(ClientError::Domain)
            }
        };
        replies.push(Reply { id: req.id, result });
    }
    let reports = app.data.view.reports.clone();
    app.on_registry(Arc::new(RegistryView {
        registry: Arc::new(reg.clone()),
        reports,
    }));
    for r in &replies {
        app.on_reply(r.clone());
    }
    replies
}

fn registry(app: &App) -> Registry {
    (*app.data.view.registry).clone()
}

/// The style of the first cell of `text` on screen.
fn style_of(buf: &Buffer, text: &str) -> ratatui::style::Style {
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

fn select_model(app: &mut App, name: &str) {
    app.jump(ViewId::Models);
    assert!(app.select(ViewId::Models, name), "{name}");
}

// ---- snapshots ----------------------------------------------------------

mod snapshots {
    use super::*;
    use maasctl::logging::{LogLine, LogRing};

    #[test]
    fn model_list() {
        let mut a = app();
        snap("models", &mut a);
    }

    #[test]
    fn model_list_sorted() {
        let mut a = app();
        press(&mut a, KeyCode::Char('R'));
        snap("models_sorted_by_rate", &mut a);
    }

    #[test]
    fn model_list_filtered() {
        let mut a = app();
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "deep");
        snap("models_filter_typing", &mut a);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.list(ViewId::Models).rows.len(), 2);
    }

    /// An empty list says why and what to press, at every size.
    #[test]
    fn an_empty_list_says_what_to_press() {
        let mut a = app();
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "zzz");
        press(&mut a, KeyCode::Enter);
        assert!(a.list(ViewId::Models).rows.is_empty());
        for (w, h) in [(60, 15), (80, 24), (160, 48)] {
            let s = screen(&mut a, w, h);
            assert!(s.contains("no model matches /zzz"), "{w}x{h}:\n{s}");
        }
        let s = screen(&mut a, 80, 24);
        assert!(
            s.contains("no model matches /zzz: esc clears the filter"),
            "{s}"
        );
        press(&mut a, KeyCode::Esc);
        assert!(!screen(&mut a, 80, 24).contains("no model matches"));
    }

    #[test]
    fn model_detail() {
        let mut a = app();
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Enter);
        snap("detail", &mut a);
        press(&mut a, KeyCode::Tab);
        snap("detail_rules_pane", &mut a);
    }

    #[test]
    fn degraded_model_detail() {
        let mut a = app();
        select_model(&mut a, "Qwen2.5-72B-Instruct");
        press(&mut a, KeyCode::Enter);
        snap("detail_degraded", &mut a);
        // The down endpoint whole: its reason and since when.
        press(&mut a, KeyCode::Down);
        press(&mut a, KeyCode::Enter);
        snap("detail_endpoint_down", &mut a);
    }

    #[test]
    fn other_views() {
        let mut a = app();
        for v in [
            ViewId::Keys,
            ViewId::Workspaces,
            ViewId::Clusters,
            ViewId::Market,
            ViewId::Traffic,
        ] {
            a.jump(v);
            snap(v.name(), &mut a);
        }
    }

    #[test]
    fn logs_view() {
        let ring = LogRing::new(100);
        for i in 0..30 {
            ring.push(LogLine {
                at_ms: NOW_MS + i * 1000,
                level: if i % 10 == 9 {
                    tracing::Level::WARN
                } else {
                    tracing::Level::INFO
                },
                target: "maasctl::client".into(),
                message: format!("applied change {i}"),
            });
        }
        ring.push(LogLine {
            at_ms: NOW_MS + 30_000,
            level: tracing::Level::ERROR,
            target: "maasctl::gateway::health".into(),
            message: "endpoint 2 of Qwen2.5-72B-Instruct (http://127.0.0.1:9104/v1) is down: connection refused (os error 111); probing every 5s, traffic goes to the other endpoints".into(),
        });
        let mut a = app();
        a.data.logs = Some(ring);
        a.jump(ViewId::Logs);
        snap("logs", &mut a);
        press(&mut a, KeyCode::Char('w'));
        press(&mut a, KeyCode::Up);
        snap("logs_wrapped_scrolled", &mut a);
        press(&mut a, KeyCode::Down);
        press(&mut a, KeyCode::Enter);
        snap("logs_whole_line", &mut a);
    }

    #[test]
    fn help_and_command_bar() {
        let mut a = app();
        press(&mut a, KeyCode::Char('?'));
        snap("help_models", &mut a);
        press(&mut a, KeyCode::Esc);
        press(&mut a, KeyCode::Char(':'));
        chars(&mut a, "w");
        snap("command_bar", &mut a);
        let mut a = app();
        press(&mut a, KeyCode::Char('c'));
        a.on_key(key(KeyCode::F(1)));
        snap("help_form_model", &mut a);
    }

    /// The completion cap field (last before Save): empty is the default,
    /// not a number or out of range is refused inline on the field, a
    /// valid one goes into the model's change.
    #[test]
    fn the_model_form_takes_a_completion_cap() {
        let mut a = app();
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Char('e'));
        let reg = registry(&a);
        let save_with = |a: &mut App, v: &str| {
            a.form_mut().unwrap().set_text("completion_cap", v, &reg);
            a.on_key(ctrl('s'));
            screen(a, 160, 48)
        };
        let s = save_with(&mut a, "0");
        assert!(a.outbox.is_empty());
        assert!(
            s.contains("✗ 0 is out of range: a completion cap is 1 to 1000000 tokens"),
            "{s}"
        );
        let s = save_with(&mut a, "lots");
        assert!(a.outbox.is_empty());
        assert!(s.contains("✗ 'lots' is not a whole number"), "{s}");
        save_with(&mut a, "512");
        assert!(
            matches!(&a.outbox[0].op, Op::Guarded { changes, .. } if matches!(&changes[0], Change::UpdateModel { spec, .. } if spec.completion_cap == Some(512))),
            "{:?}",
            a.outbox.first().map(|o| &o.op)
        );
    }

    #[test]
    fn model_forms() {
        let mut a = app();
        press(&mut a, KeyCode::Char('c'));
        snap("form_model_create", &mut a);
        // A URL without a scheme, then save: refused inline, nothing sent.
        for _ in 0..5 {
            press(&mut a, KeyCode::Tab);
        }
        chars(&mut a, "localhost:9000");
        a.on_key(ctrl('s'));
        assert!(a.outbox.is_empty());
        snap("form_model_invalid", &mut a);

        let mut a = app();
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Char('e'));
        snap("form_model_edit_weighted", &mut a);
        // The running sum follows what is typed, beside every weight field,
        // marked (the error style) while it is not 100.
        let reg = registry(&a);
        a.form_mut()
            .unwrap()
            .set_text("endpoints[0].weight", "60", &reg);
        let s = screen(&mut a, 80, 24);
        let rows: Vec<&str> = s.lines().filter(|l| l.contains("Weight")).collect();
        assert_eq!(rows.len(), 2, "{s}");
        assert!(rows.iter().all(|r| r.contains("90 / 100")), "{s}");
        let (w, h) = (80, 24);
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| chrome::render(&a, f)).unwrap();
        let buf = t.backend().buffer().clone();
        let y = (0..h)
            .find(|&y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .contains("90 / 100")
            })
            .unwrap();
        let x = (0..w)
            .find(|&x| buf[(x, y)].symbol() == "9" && buf[(x + 1, y)].symbol() == "0")
            .unwrap();
        assert_eq!(
            buf[(x, y)].style().fg,
            a.data.theme.error_text().fg,
            "marked"
        );
    }

    #[test]
    fn rule_and_small_forms() {
        let mut a = app();
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Char('a'));
        snap("form_rule", &mut a);
        for _ in 0..3 {
            press(&mut a, KeyCode::Tab);
        }
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Backspace);
        chars(&mut a, "0");
        snap("form_rule_invalid_limit", &mut a);

        for (view, name) in [
            (ViewId::Keys, "form_key"),
            (ViewId::Workspaces, "form_workspace"),
            (ViewId::Clusters, "form_cluster"),
            (ViewId::Market, "form_market"),
        ] {
            let mut a = app();
            a.jump(view);
            press(&mut a, KeyCode::Char('c'));
            snap(name, &mut a);
        }
    }

    #[test]
    fn refused_enable_and_popups() {
        let mut a = app();
        let mut reg = registry(&a);
        select_model(&mut a, "Llama-3.3-70B-Instruct");
        press(&mut a, KeyCode::Char('t'));
        run_requests(&mut a, &mut reg);
        snap("refused_enable", &mut a);

        let mut a = app();
        select_model(&mut a, "DeepSeek-R1");
        press(&mut a, KeyCode::Char('d'));
        snap("confirm_delete", &mut a);

        let mut a = app();
        let mut reg = registry(&a);
        a.jump(ViewId::Keys);
        press(&mut a, KeyCode::Char('c'));
        press(&mut a, KeyCode::Tab);
        chars(&mut a, "ci");
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        snap("key_secret_once", &mut a);
    }

    #[test]
    fn no_color_keeps_the_words() {
        let mut a = fixtures::app(0, Theme::monochrome());
        let t = draw(&mut a, 160, 48);
        let buf = t.backend().buffer();
        for word in ["degraded", "serving", "enabled", "disabled"] {
            let s = style_of(buf, word);
            assert_eq!(
                s.fg,
                Some(Color::Reset),
                "{word} has no colour under NO_COLOR"
            );
        }
        assert!(
            style_of(buf, "degraded")
                .add_modifier
                .contains(Modifier::BOLD)
        );
    }
}

// ---- colours ------------------------------------------------------------

mod colours {
    use super::*;

    #[test]
    fn statuses_carry_their_colour() {
        let mut a = app();
        let t = draw(&mut a, 160, 48);
        let buf = t.backend().buffer();
        assert_eq!(style_of(buf, "serving").fg, Some(Color::Green));
        assert_eq!(style_of(buf, "degraded").fg, Some(Color::Yellow));
        assert_eq!(style_of(buf, "enabled").fg, Some(Color::Green));
        assert_eq!(
            style_of(buf, "disabled").fg,
            Some(maasctl::tui::theme::MID_GREY)
        );
    }

    #[test]
    fn throttling_and_down_endpoints_are_red() {
        let mut a = app();
        select_model(&mut a, "Qwen2.5-72B-Instruct");
        press(&mut a, KeyCode::Enter);
        let t = draw(&mut a, 160, 48);
        let buf = t.backend().buffer();
        assert_eq!(style_of(buf, "ejected").fg, Some(Color::Red));
        assert_eq!(style_of(buf, "healthy").fg, Some(Color::Green));

        let mut a = app();
        a.jump(ViewId::Traffic);
        let t = draw(&mut a, 160, 48);
        assert_eq!(
            style_of(t.backend().buffer(), "throttled DeepSeek-V3").fg,
            Some(Color::Yellow)
        );
        assert_eq!(
            style_of(t.backend().buffer(), "error     Qwen").fg,
            Some(Color::Red)
        );
    }

    #[test]
    fn form_errors_are_red() {
        let mut a = app();
        a.jump(ViewId::Workspaces);
        press(&mut a, KeyCode::Char('c'));
        chars(&mut a, "bad name");
        let t = draw(&mut a, 80, 24);
        let s = style_of(t.backend().buffer(), "✗ contains a space");
        assert_eq!(s.fg, Some(Color::Red));
    }
}

// ---- key actions ----------------------------------------------------------

mod keys {
    use super::*;

    #[test]
    fn only_presses_count() {
        let mut a = app();
        let mut k = key(KeyCode::Char('j'));
        k.kind = KeyEventKind::Release;
        a.on_key(k);
        assert_eq!(a.list(ViewId::Models).selected, 0);
        press(&mut a, KeyCode::Char('j'));
        assert_eq!(a.list(ViewId::Models).selected, 1);
    }

    #[test]
    fn esc_then_a_fast_key_is_two_keys() {
        let mut a = app();
        a.jump(ViewId::Keys);
        a.on_key(KeyEvent::new(KeyCode::Char(':'), KeyModifiers::ALT));
        assert_eq!(a.current(), ViewId::Models, "esc went back");
        assert_eq!(a.prompt.as_ref().map(|p| p.kind), Some(PromptKind::Command));
    }

    #[test]
    fn navigation_moves_and_clamps() {
        let mut a = fixtures::app(100, Theme::colored());
        press(&mut a, KeyCode::Down);
        press(&mut a, KeyCode::Char('j'));
        assert_eq!(a.list(ViewId::Models).selected, 2);
        press(&mut a, KeyCode::Up);
        press(&mut a, KeyCode::Char('k'));
        press(&mut a, KeyCode::Up);
        assert_eq!(a.list(ViewId::Models).selected, 0);
        press(&mut a, KeyCode::PageDown);
        assert_eq!(a.list(ViewId::Models).selected, 20);
        press(&mut a, KeyCode::PageUp);
        assert_eq!(a.list(ViewId::Models).selected, 0);
        press(&mut a, KeyCode::Char('G'));
        assert_eq!(a.list(ViewId::Models).selected, 103);
        press(&mut a, KeyCode::Char('g'));
        assert_eq!(a.list(ViewId::Models).selected, 0);
        press(&mut a, KeyCode::End);
        let s = screen(&mut a, 80, 24);
        assert!(
            s.contains("model-00099"),
            "the last row is scrolled into view:\n{s}"
        );
    }

    #[test]
    fn filter_is_incremental_and_esc_clears_it() {
        let mut a = fixtures::app(50, Theme::colored());
        press(&mut a, KeyCode::Char('/'));
        assert_eq!(a.prompt.as_ref().unwrap().kind, PromptKind::Filter);
        chars(&mut a, "model-0004");
        assert_eq!(a.list(ViewId::Models).rows.len(), 10);
        chars(&mut a, "2");
        assert_eq!(a.list(ViewId::Models).rows, vec!["model-00042".to_string()]);
        press(&mut a, KeyCode::Enter);
        assert!(a.prompt.is_none());
        assert_eq!(
            a.list(ViewId::Models).rows.len(),
            1,
            "enter keeps the filter"
        );
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.list(ViewId::Models).rows.len(), 54, "esc clears it");
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "qwen");
        press(&mut a, KeyCode::Esc);
        assert!(a.prompt.is_none());
        assert!(a.list(ViewId::Models).filter.is_empty());
        // Filters match tags and model IDs too.
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "reasoner");
        assert_eq!(a.list(ViewId::Models).rows, vec!["DeepSeek-R1".to_string()]);
    }

    #[test]
    fn command_bar_completes_jumps_and_quits() {
        let mut a = app();
        press(&mut a, KeyCode::Char(':'));
        chars(&mut a, "wo");
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.prompt.as_ref().unwrap().input.value(), "workspaces");
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.current(), ViewId::Workspaces);
        for (cmd, view) in [
            ("keys", ViewId::Keys),
            ("clusters", ViewId::Clusters),
            ("market", ViewId::Market),
            ("traffic", ViewId::Traffic),
            ("logs", ViewId::Logs),
            ("models", ViewId::Models),
            ("tr", ViewId::Traffic),
        ] {
            press(&mut a, KeyCode::Char(':'));
            chars(&mut a, cmd);
            press(&mut a, KeyCode::Enter);
            assert_eq!(a.current(), view, ":{cmd}");
        }
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.current(), ViewId::Models, "esc goes back home");
        press(&mut a, KeyCode::Char(':'));
        chars(&mut a, "nope");
        press(&mut a, KeyCode::Enter);
        assert!(
            a.flash
                .as_ref()
                .unwrap()
                .text
                .contains("unknown command ':nope'")
        );
        press(&mut a, KeyCode::Char(':'));
        chars(&mut a, "q");
        press(&mut a, KeyCode::Enter);
        assert!(a.quit);
    }

    #[test]
    fn completion_stops_at_the_shared_prefix() {
        assert_eq!(maasctl::tui::ids::complete("m"), "m");
        assert_eq!(maasctl::tui::ids::complete("mo"), "models");
        assert_eq!(maasctl::tui::ids::complete("c"), "clusters");
        assert_eq!(maasctl::tui::ids::complete("x"), "x");
    }

    #[test]
    fn q_quits_at_once_without_a_form() {
        let mut a = app();
        press(&mut a, KeyCode::Char('q'));
        assert!(a.quit);
        let mut a = app();
        a.on_key(ctrl('c'));
        assert!(a.quit);
    }

    #[test]
    fn quitting_with_a_changed_form_asks() {
        let mut a = app();
        a.jump(ViewId::Workspaces);
        press(&mut a, KeyCode::Char('c'));
        chars(&mut a, "q");
        assert!(!a.quit, "q types into the form");
        a.on_key(ctrl('c'));
        assert!(matches!(
            a.overlay(),
            Some(Overlay::Confirm {
                on_yes: Confirmed::Quit,
                ..
            })
        ));
        press(&mut a, KeyCode::Char('x'));
        assert!(a.overlay().is_some(), "only y/n answer");
        press(&mut a, KeyCode::Char('n'));
        assert!(!a.quit && a.form().is_some());
        a.on_key(ctrl('c'));
        press(&mut a, KeyCode::Char('y'));
        assert!(a.quit);
    }

    #[test]
    fn esc_on_a_changed_form_asks_first() {
        let mut a = app();
        a.jump(ViewId::Clusters);
        press(&mut a, KeyCode::Char('c'));
        press(&mut a, KeyCode::Esc);
        assert!(a.form().is_none(), "an unchanged form closes at once");
        press(&mut a, KeyCode::Char('c'));
        chars(&mut a, "x");
        press(&mut a, KeyCode::Esc);
        assert!(a.form().is_some());
        press(&mut a, KeyCode::Esc);
        assert!(
            a.form().is_some() && a.overlay().is_none(),
            "esc keeps the form"
        );
        press(&mut a, KeyCode::Esc);
        press(&mut a, KeyCode::Char('y'));
        assert!(a.form().is_none());
    }

    #[test]
    fn enter_opens_detail_and_esc_goes_back() {
        let mut a = app();
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.current(), ViewId::Detail);
        assert_eq!(detail(&a).model, "DeepSeek-V3");
        press(&mut a, KeyCode::Down);
        assert_eq!(detail(&a).endpoint, 1);
        press(&mut a, KeyCode::Down);
        assert_eq!(detail(&a).endpoint, 1, "clamped to the endpoints");
        press(&mut a, KeyCode::Tab);
        assert_eq!(detail(&a).pane, Pane::Rules);
        press(&mut a, KeyCode::Down);
        assert_eq!(detail(&a).rule, 1);
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.current(), ViewId::Models);
    }

    #[test]
    fn help_lists_the_view_keys() {
        let mut a = app();
        press(&mut a, KeyCode::Char('?'));
        assert_eq!(a.overlay(), Some(&Overlay::Help));
        let s = screen(&mut a, 160, 48);
        for b in a
            .keys_of(ViewId::Models)
            .iter()
            .chain(maasctl::tui::keymap::GLOBAL)
        {
            assert!(s.contains(b.help), "help shows {:?}", b.help);
        }
        press(&mut a, KeyCode::Char('z'));
        assert!(a.overlay().is_none(), "any key closes help");
    }

    #[test]
    fn footer_shows_the_view_keys_and_help() {
        let mut a = app();
        a.jump(ViewId::Keys);
        let s = screen(&mut a, 160, 48);
        let footer = s.lines().nth(47).unwrap();
        let mut sorts = Vec::new();
        for b in a.keys_of(ViewId::Keys) {
            if matches!(b.action, Action::Sort(_)) {
                sorts.push(b.label);
            } else {
                let hint = format!("<{}>{}", b.label, b.help);
                assert!(footer.contains(&hint), "{hint} in {footer}");
            }
        }
        // The sort keys are one hint, from the same table.
        let hint = format!("<{}>sort", sorts.join("/"));
        assert_eq!(hint, "<W/N/S/C/R/T>sort");
        assert!(footer.contains(&hint), "{footer}");
        assert!(footer.contains("<?>help"), "{footer}");
        // Esc shows when it does something: back from a jumped-to view.
        assert!(footer.contains("<esc>back"), "{footer}");
        // At 80 columns what does not fit is dropped from the end, `?`
        // and `q` stay.
        let s = screen(&mut a, 80, 24);
        let footer = s.lines().nth(23).unwrap();
        assert!(footer.contains("<?>help <q>quit"), "{footer}");
        assert!(!footer.contains("sort"), "{footer}");
    }

    #[test]
    fn footer_offers_only_what_works_here() {
        let mut a = app();
        let footer = |a: &mut App| screen(a, 160, 48).lines().nth(47).unwrap().to_string();
        let home = footer(&mut a);
        assert!(!home.contains("<esc>"), "nothing to go back to: {home}");
        assert!(home.contains("</>filter"), "{home}");
        a.jump(ViewId::Traffic);
        let traffic = footer(&mut a);
        assert!(!traffic.contains("</>"), "traffic has no filter: {traffic}");
        assert!(traffic.contains("<esc>back"), "{traffic}");
        a.jump(ViewId::Models);
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "deep");
        press(&mut a, KeyCode::Enter);
        let filtered = footer(&mut a);
        assert!(filtered.contains("<esc>clear filter"), "{filtered}");
        press(&mut a, KeyCode::Enter);
        let detail = footer(&mut a);
        assert!(detail.starts_with("\" <esc>back <tab>pane"), "{detail}");
    }

    fn rows(a: &mut App, view: ViewId) -> Vec<String> {
        a.list(view).rows.clone()
    }

    #[test]
    fn sort_keys_order_the_models_and_again_reverse() {
        let mut a = app();
        let by_name = [
            "DeepSeek-R1",
            "DeepSeek-V3",
            "Llama-3.3-70B-Instruct",
            "Qwen2.5-72B-Instruct",
        ];
        assert_eq!(rows(&mut a, ViewId::Models), by_name);
        select_model(&mut a, "DeepSeek-R1");
        // Busiest first (12 and 5 req/s), the idle ones by name.
        press(&mut a, KeyCode::Char('R'));
        assert_eq!(
            rows(&mut a, ViewId::Models),
            [
                "DeepSeek-V3",
                "Qwen2.5-72B-Instruct",
                "DeepSeek-R1",
                "Llama-3.3-70B-Instruct"
            ]
        );
        assert_eq!(
            a.list(ViewId::Models).selected_id(),
            Some("DeepSeek-R1"),
            "the selection stays on its row"
        );
        press(&mut a, KeyCode::Char('R'));
        assert_eq!(
            rows(&mut a, ViewId::Models),
            [
                "DeepSeek-R1",
                "Llama-3.3-70B-Instruct",
                "Qwen2.5-72B-Instruct",
                "DeepSeek-V3"
            ],
            "again: the other way round"
        );
        press(&mut a, KeyCode::Char('T'));
        assert_eq!(rows(&mut a, ViewId::Models)[0], "DeepSeek-V3");
        // Enabled first, problems (degraded) before serving.
        press(&mut a, KeyCode::Char('S'));
        assert_eq!(
            rows(&mut a, ViewId::Models),
            [
                "Qwen2.5-72B-Instruct",
                "DeepSeek-V3",
                "DeepSeek-R1",
                "Llama-3.3-70B-Instruct"
            ]
        );
        press(&mut a, KeyCode::Char('I'));
        assert_eq!(
            rows(&mut a, ViewId::Models)[0],
            "DeepSeek-V3",
            "deepseek-chat"
        );
        press(&mut a, KeyCode::Char('N'));
        assert_eq!(rows(&mut a, ViewId::Models), by_name);
        press(&mut a, KeyCode::Char('N'));
        let mut rev = by_name.to_vec();
        rev.reverse();
        assert_eq!(rows(&mut a, ViewId::Models), rev);
        // A sort combines with the filter.
        press(&mut a, KeyCode::Char('R'));
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "deep");
        assert_eq!(rows(&mut a, ViewId::Models), ["DeepSeek-V3", "DeepSeek-R1"]);
    }

    #[test]
    fn a_rate_sort_follows_new_counters() {
        let mut a = app();
        press(&mut a, KeyCode::Char('R'));
        assert_eq!(rows(&mut a, ViewId::Models)[0], "DeepSeek-V3");
        // A second later Qwen took 100 requests, DeepSeek-V3 none.
        let mut next = (*a.data.live.current).clone();
        next.taken_ms += 1000;
        next.models
            .get_mut("Qwen2.5-72B-Instruct")
            .unwrap()
            .requests += 100;
        assert!(a.on_stats(Arc::new(next)));
        assert_eq!(rows(&mut a, ViewId::Models)[0], "Qwen2.5-72B-Instruct");
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("models [4/4] by req/s↓"), "{s}");
        assert!(s.contains("REQ/S↓"), "{s}");
    }

    #[test]
    fn keys_and_workspaces_sort_too() {
        let mut a = app();
        a.jump(ViewId::Keys);
        // Default: by workspace then name (the revoked batch key first).
        assert_eq!(
            rows(&mut a, ViewId::Keys),
            ["key_0000a002", "key_0000a001", "key_0000b001"]
        );
        press(&mut a, KeyCode::Char('S'));
        assert_eq!(
            rows(&mut a, ViewId::Keys),
            ["key_0000a001", "key_0000b001", "key_0000a002"],
            "active first"
        );
        press(&mut a, KeyCode::Char('N'));
        assert_eq!(
            rows(&mut a, ViewId::Keys),
            ["key_0000a002", "key_0000b001", "key_0000a001"],
            "batch, notebook, prod"
        );
        press(&mut a, KeyCode::Char('T'));
        assert_eq!(rows(&mut a, ViewId::Keys)[0], "key_0000a001");
        a.jump(ViewId::Workspaces);
        press(&mut a, KeyCode::Char('R'));
        assert_eq!(rows(&mut a, ViewId::Workspaces), ["acme", "research"]);
        press(&mut a, KeyCode::Char('R'));
        assert_eq!(rows(&mut a, ViewId::Workspaces), ["research", "acme"]);
        press(&mut a, KeyCode::Char('N'));
        press(&mut a, KeyCode::Char('N'));
        assert_eq!(rows(&mut a, ViewId::Workspaces), ["research", "acme"]);
    }

    #[test]
    fn toggle_enables_and_disables() {
        let mut a = app();
        let mut reg = registry(&a);
        select_model(&mut a, "DeepSeek-R1");
        press(&mut a, KeyCode::Char('t'));
        assert!(
            matches!(&a.outbox[0].op, Op::Apply(c) if c[0] == Change::SetEnabled { name: "DeepSeek-R1".into(), enabled: true })
        );
        run_requests(&mut a, &mut reg);
        assert!(reg.models["DeepSeek-R1"].enabled);
        assert_eq!(a.flash.as_ref().unwrap().text, "model DeepSeek-R1 enabled");
        press(&mut a, KeyCode::Char('t'));
        run_requests(&mut a, &mut reg);
        assert!(!reg.models["DeepSeek-R1"].enabled);
    }

    #[test]
    fn refused_enable_explains_publishing() {
        let mut a = app();
        let mut reg = registry(&a);
        select_model(&mut a, "Llama-3.3-70B-Instruct");
        press(&mut a, KeyCode::Char('t'));
        run_requests(&mut a, &mut reg);
        let Some(Overlay::Message { title, lines }) = a.overlay() else {
            panic!("{:?}", a.overlay())
        };
        assert_eq!(title, "Refused");
        assert!(lines[0].contains("not published"), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains(":market") && l.contains("press p"))
        );
        // Publish it from the marketplace and enable again: accepted.
        press(&mut a, KeyCode::Enter);
        a.jump(ViewId::Market);
        assert!(a.select(ViewId::Market, "Llama-3.3-70B-Instruct"));
        press(&mut a, KeyCode::Char('p'));
        run_requests(&mut a, &mut reg);
        assert!(reg.market["Llama-3.3-70B-Instruct"].published);
        select_model(&mut a, "Llama-3.3-70B-Instruct");
        press(&mut a, KeyCode::Char('t'));
        run_requests(&mut a, &mut reg);
        assert!(reg.models["Llama-3.3-70B-Instruct"].enabled);
    }

    #[test]
    fn delete_asks_and_n_keeps() {
        let mut a = app();
        let mut reg = registry(&a);
        select_model(&mut a, "DeepSeek-R1");
        press(&mut a, KeyCode::Char('d'));
        press(&mut a, KeyCode::Char('n'));
        assert!(a.outbox.is_empty());
        press(&mut a, KeyCode::Char('d'));
        press(&mut a, KeyCode::Char('y'));
        run_requests(&mut a, &mut reg);
        assert!(!reg.models.contains_key("DeepSeek-R1"));
        assert!(
            !a.list(ViewId::Models)
                .rows
                .contains(&"DeepSeek-R1".to_string())
        );
    }

    #[test]
    fn deletes_in_every_list_view() {
        let cases = [
            (ViewId::Keys, "key_0000a002", "key key_0000a002 deleted"),
            (ViewId::Clusters, "cn-east", "cluster cn-east deleted"),
            (
                ViewId::Market,
                "Mistral-Large-2411",
                "marketplace entry Mistral-Large-2411 deleted",
            ),
        ];
        for (view, id, said) in cases {
            let mut a = app();
            let mut reg = registry(&a);
            a.jump(view);
            assert!(a.select(view, id));
            press(&mut a, KeyCode::Char('d'));
            press(&mut a, KeyCode::Char('y'));
            run_requests(&mut a, &mut reg);
            assert_eq!(a.flash.as_ref().map(|f| f.text.as_str()), Some(said));
        }
        // A refused delete shows why, at once (console2: the registry's
        // refusal comes before asking, nothing is sent).
        let mut a = app();
        a.jump(ViewId::Workspaces);
        assert!(a.select(ViewId::Workspaces, "research"));
        press(&mut a, KeyCode::Char('d'));
        assert!(a.take_requests().is_empty());
        let Some(Overlay::Message { lines, .. }) = a.overlay() else {
            panic!()
        };
        assert!(lines[0].contains("delete those rules first"), "{lines:?}");
    }

    #[test]
    fn revoke_asks_then_revokes() {
        let mut a = app();
        let mut reg = registry(&a);
        a.jump(ViewId::Keys);
        assert!(a.select(ViewId::Keys, "key_0000b001"));
        press(&mut a, KeyCode::Char('r'));
        press(&mut a, KeyCode::Char('y'));
        run_requests(&mut a, &mut reg);
        assert!(reg.keys["key_0000b001"].is_revoked());
        let t = draw(&mut a, 160, 48);
        assert_eq!(
            style_of(t.backend().buffer(), "revoked").fg,
            Some(Color::Red)
        );
        // Again: nothing to ask, and it says so.
        press(&mut a, KeyCode::Char('r'));
        assert!(a.overlay().is_none());
        let flash = a.flash.clone().unwrap();
        assert!(flash.error && flash.text == "key key_0000b001 is already revoked");
    }

    #[test]
    fn keys_on_an_empty_list_say_why_nothing_happens() {
        let mut a = app();
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "no such model");
        press(&mut a, KeyCode::Enter);
        for c in ['e', 't', 'd', 'a'] {
            a.flash = None;
            press(&mut a, KeyCode::Char(c));
            let flash = a.flash.clone().expect("a message");
            assert_eq!(
                flash.text,
                "no model selected (the filter hides every row: esc clears it)"
            );
            assert!(a.overlay().is_none() && a.form().is_none() && a.outbox.is_empty());
        }
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.current(), ViewId::Models, "no detail of nothing");
        let mut a = fixtures::app(0, Theme::colored());
        a.jump(ViewId::Clusters);
        a.on_registry(Arc::new(RegistryView::default()));
        press(&mut a, KeyCode::Char('e'));
        assert_eq!(a.flash.unwrap().text, "no cluster selected (c creates one)");
    }

    #[test]
    fn popups_take_keys_before_anything_else() {
        let mut a = app();
        press(&mut a, KeyCode::Char('?'));
        press(&mut a, KeyCode::Char('q'));
        assert!(!a.quit && a.overlay().is_none(), "q closes help first");
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Char('d'));
        let Some(Overlay::Confirm { text, .. }) = a.overlay().cloned() else {
            panic!("{:?}", a.overlay())
        };
        assert!(
            text.contains("It is enabled: callers get 404 at once."),
            "{text}"
        );
        // A confirmation answers only y, n or esc.
        press(&mut a, KeyCode::Char('q'));
        press(&mut a, KeyCode::Char('j'));
        assert!(!a.quit && a.overlay().is_some());
        assert_eq!(a.list(ViewId::Models).selected_id(), Some("DeepSeek-V3"));
        press(&mut a, KeyCode::Esc);
        assert!(a.overlay().is_none() && a.outbox.is_empty());
        // :q quits from any view; in a form, q is a letter.
        a.jump(ViewId::Traffic);
        press(&mut a, KeyCode::Char(':'));
        chars(&mut a, "q");
        press(&mut a, KeyCode::Enter);
        assert!(a.quit);
    }

    #[test]
    fn workspace_enter_shows_its_keys_and_create_key_preselects_it() {
        let mut a = app();
        a.jump(ViewId::Workspaces);
        assert!(a.select(ViewId::Workspaces, "research"));
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.current(), ViewId::Keys);
        assert_eq!(a.list(ViewId::Keys).rows, vec!["key_0000b001".to_string()]);
        press(&mut a, KeyCode::Char('c'));
        assert_eq!(a.form().unwrap().choice("workspace"), Some("research"));
    }

    #[test]
    fn create_key_shows_the_secret_once() {
        let mut a = app();
        let mut reg = registry(&a);
        a.jump(ViewId::Keys);
        press(&mut a, KeyCode::Char('c'));
        press(&mut a, KeyCode::Tab);
        chars(&mut a, "ci");
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        let Some(Overlay::Secret(k)) = a.overlay().cloned() else {
            panic!("{:?}", a.overlay())
        };
        assert!(k.secret.starts_with("sk-"));
        assert!(screen(&mut a, 80, 24).contains(&k.secret));
        // A stray key does not lose the secret: only enter or esc close it.
        press(&mut a, KeyCode::Char('j'));
        press(&mut a, KeyCode::Char('q'));
        assert!(matches!(a.overlay(), Some(Overlay::Secret(_))));
        assert!(!a.quit);
        press(&mut a, KeyCode::Enter);
        let s = screen(&mut a, 160, 48);
        assert!(!s.contains("sk-created-in-test"), "never shown again");
        assert!(s.contains("sk-…XYZ0"));
        assert_eq!(a.list(ViewId::Keys).selected_id(), Some("key_0000c001"));
    }

    #[test]
    fn publish_toggles_and_register_prefills_the_model_form() {
        let mut a = app();
        let mut reg = registry(&a);
        a.jump(ViewId::Market);
        assert!(a.select(ViewId::Market, "Mistral-Large-2411"));
        press(&mut a, KeyCode::Char('p'));
        run_requests(&mut a, &mut reg);
        assert!(!reg.market["Mistral-Large-2411"].published);
        press(&mut a, KeyCode::Char('m'));
        let f = a.form().unwrap();
        assert_eq!(f.choice("name"), Some("Mistral-Large-2411"));
    }

    #[test]
    fn create_model_starts_on_an_entry_that_can_be_enabled() {
        let mut a = app();
        let mut reg = registry(&a);
        for (name, published) in [("Aardvark-1", false), ("Baboon-2", true)] {
            reg.apply_all(
                vec![Change::AddMarket(maasctl::domain::MarketEntry {
                    name: name.into(),
                    provider: "Zoo".into(),
                    tags: vec![],
                    description: String::new(),
                    published,
                    input_price: None,
                    output_price: None,
                })],
                NOW_MS / 1000,
            )
            .unwrap();
        }
        run_requests(&mut a, &mut reg);
        press(&mut a, KeyCode::Char('c'));
        let f = a.form().unwrap();
        assert_eq!(
            f.choice("name"),
            Some("Baboon-2"),
            "not the unpublished first one"
        );
    }

    #[test]
    fn edit_views_open_filled_forms() {
        let mut a = app();
        a.jump(ViewId::Clusters);
        assert!(a.select(ViewId::Clusters, "cn-east"));
        press(&mut a, KeyCode::Char('e'));
        assert_eq!(
            a.form().unwrap().text("entry_address"),
            "https://gw.cn-east.example.com"
        );
        let mut a = app();
        a.jump(ViewId::Market);
        assert!(a.select(ViewId::Market, "DeepSeek-V3"));
        press(&mut a, KeyCode::Char('e'));
        assert_eq!(a.form().unwrap().text("provider"), "DeepSeek");
        let mut a = app();
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Char('e'));
        assert_eq!(a.form().unwrap().text("model_id"), "deepseek-chat");
    }

    #[test]
    fn endpoint_toggle_and_rule_edit_delete_from_detail() {
        let mut a = app();
        let mut reg = registry(&a);
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Down);
        press(&mut a, KeyCode::Char('x'));
        run_requests(&mut a, &mut reg);
        assert!(reg.models["DeepSeek-V3"].spec.endpoints[1].disabled);
        press(&mut a, KeyCode::Enter);
        assert!(
            a.form().is_none(),
            "enter on the endpoints pane edits no rule"
        );
        // It shows the endpoint whole instead (drawn live from the data).
        let Some(Overlay::Endpoint { model, index }) = a.overlay().cloned() else {
            panic!("{:?}", a.overlay())
        };
        assert_eq!((model.as_str(), index), ("DeepSeek-V3", 1));
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("DeepSeek-V3 endpoint 2"), "{s}");
        assert!(s.contains("URL      http://127.0.0.1:9102/v1"), "{s}");
        press(&mut a, KeyCode::Esc);
        press(&mut a, KeyCode::Tab);
        press(&mut a, KeyCode::Enter);
        assert!(a.form().unwrap().title.starts_with("Edit rule #1"));
        press(&mut a, KeyCode::Esc);
        press(&mut a, KeyCode::Char('d'));
        press(&mut a, KeyCode::Char('y'));
        run_requests(&mut a, &mut reg);
        assert_eq!(reg.models["DeepSeek-V3"].rules.len(), 1);
        assert_eq!(a.flash.as_ref().unwrap().text, "rule #1 deleted");
    }

    #[test]
    fn logs_scroll_and_follow() {
        let ring = maasctl::logging::LogRing::new(100);
        for i in 0..50 {
            ring.push(maasctl::logging::LogLine {
                at_ms: NOW_MS,
                level: tracing::Level::INFO,
                target: "t".into(),
                message: format!("line {i}"),
            });
        }
        let mut a = app();
        a.data.logs = Some(ring);
        a.jump(ViewId::Logs);
        assert!(screen(&mut a, 80, 24).contains("line 49"));
        press(&mut a, KeyCode::PageUp);
        let s = screen(&mut a, 80, 24);
        assert!(!s.contains("line 49") && s.contains("scrolled"), "{s}");
        press(&mut a, KeyCode::Char('f'));
        assert!(screen(&mut a, 80, 24).contains("line 49"));
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "line 7");
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("line 7") && !s.contains("line 8"), "{s}");
    }

    #[test]
    fn logs_keep_the_line_being_read_wrap_and_open_it_whole() {
        let ring = maasctl::logging::LogRing::new(100);
        let push = |i: usize| {
            ring.push(maasctl::logging::LogLine {
                at_ms: NOW_MS,
                level: tracing::Level::WARN,
                target: "maasctl::gateway".into(),
                message: format!(
                    "line {i}: upstream http://10.0.0.{i}:8000/v1 answered 503 Service Unavailable after 3 retries; taken out of rotation until the next probe END{i}"
                ),
            })
        };
        (0..30).for_each(push);
        let mut a = app();
        a.data.logs = Some(ring.clone());
        a.jump(ViewId::Logs);
        // Cut with a marker, the end not shown.
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("line 29: upstream") && s.contains("…│"), "{s}");
        assert!(!s.contains("END29"), "{s}");
        // Up onto line 27 (number 28), then lines keep arriving: the view
        // stays on it instead of drifting.
        press(&mut a, KeyCode::Up);
        press(&mut a, KeyCode::Up);
        (30..40).for_each(push);
        a.on_logs();
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("scrolled: f follows"), "{s}");
        assert!(s.contains("line 27:") && !s.contains("line 39:"), "{s}");
        // Enter shows the whole line.
        press(&mut a, KeyCode::Enter);
        assert!(matches!(a.overlay(), Some(Overlay::Text { title, .. }) if title == "log line 28"));
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("END27"), "the end of the line is readable:\n{s}");
        press(&mut a, KeyCode::Esc);
        assert!(a.overlay().is_none());
        // w wraps: every line's end is on screen.
        press(&mut a, KeyCode::Char('w'));
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("· wrapped") && s.contains("END27"), "{s}");
        // f follows the newest again (wrapped), w cuts again.
        press(&mut a, KeyCode::Char('f'));
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("following") && s.contains("END39"), "{s}");
        press(&mut a, KeyCode::Char('w'));
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("line 39:") && !s.contains("END39"), "{s}");
    }
}

// ---- forms ---------------------------------------------------------------

mod forms {
    use super::*;
    use maasctl::domain::Policy;

    /// Create-model form filled with a valid model on `url`.
    fn filled(a: &mut App, url: &str) {
        press(a, KeyCode::Char('c'));
        let f = a.form_mut().unwrap();
        assert_eq!(f.focused().key, "name");
        press(a, KeyCode::Char('m')); // type-ahead: Mistral-Large-2411
        assert_eq!(a.form().unwrap().choice("name"), Some("Mistral-Large-2411"));
        press(a, KeyCode::Tab);
        press(a, KeyCode::Tab);
        chars(a, "mistral-large");
        press(a, KeyCode::Tab);
        press(a, KeyCode::Tab);
        chars(a, "chat, eu");
        press(a, KeyCode::Tab);
        chars(a, url);
    }

    #[test]
    fn a_rejected_field_is_shown_then_corrected_and_saved() {
        let mut a = app();
        let mut reg = registry(&a);
        filled(&mut a, "ftp://upstream");
        a.on_key(ctrl('s'));
        assert!(a.outbox.is_empty(), "nothing is sent until valid");
        let f = a.form().unwrap();
        let url = f.field("endpoints[0].url").unwrap();
        assert!(
            f.error_for(url)
                .unwrap()
                .contains("scheme 'ftp' is not supported")
        );
        assert_eq!(
            f.focused().key,
            "endpoints[0].url",
            "focus goes to the problem"
        );
        for _ in 0.."ftp://upstream".len() {
            press(&mut a, KeyCode::Backspace);
        }
        chars(&mut a, "http://127.0.0.1:9200/v1");
        let f = a.form().unwrap();
        assert_eq!(f.error_for(f.field("endpoints[0].url").unwrap()), None);
        press(&mut a, KeyCode::Tab);
        chars(&mut a, "sk-upstream-abcdefgh1234");
        let s = screen(&mut a, 80, 24);
        assert!(
            !s.contains("sk-upstream"),
            "the key is masked while typed:\n{s}"
        );
        assert!(s.contains("••••"));
        a.on_key(ctrl('s'));
        assert!(a.form().unwrap().saving);
        run_requests(&mut a, &mut reg);
        assert!(a.form().is_none());
        let m = &reg.models["Mistral-Large-2411"];
        assert_eq!(m.spec.model_id, "mistral-large");
        assert_eq!(m.spec.tags, vec!["chat", "eu"]);
        assert_eq!(
            m.spec.endpoints[0].api_key.as_ref().unwrap().expose(),
            "sk-upstream-abcdefgh1234"
        );
        assert!(!m.enabled);
        assert_eq!(
            a.list(ViewId::Models).selected_id(),
            Some("Mistral-Large-2411")
        );
        assert!(a.flash.as_ref().unwrap().text.contains("press t to enable"));
    }

    #[test]
    fn store_refusals_land_next_to_their_field() {
        let mut a = app();
        let mut reg = registry(&a);
        filled(&mut a, "http://127.0.0.1:9200/v1");
        // Someone else registers the same model meanwhile.
        let mut spec = reg.models["DeepSeek-R1"].spec.clone();
        spec.name = "Mistral-Large-2411".into();
        reg.apply_all(vec![Change::CreateModel(spec)], 0).unwrap();
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        let f = a.form().expect("the form stays open");
        assert!(!f.saving);
        assert!(
            f.error_for(f.field("name").unwrap())
                .unwrap()
                .contains("already exists")
        );
        let s = screen(&mut a, 80, 24);
        assert!(
            s.contains("✗ a model named 'Mistral-Large-2411' already exists"),
            "{s}"
        );
    }

    #[test]
    fn weighted_policy_shows_weights_and_checks_their_sum() {
        let mut a = app();
        filled(&mut a, "http://127.0.0.1:9200/v1");
        a.form_mut().unwrap().focus_on("policy");
        press(&mut a, KeyCode::Right);
        press(&mut a, KeyCode::Right);
        assert_eq!(
            a.form().unwrap().choice("policy"),
            Some(Policy::Weighted.as_str())
        );
        assert!(
            !a.form()
                .unwrap()
                .field("endpoints[0].weight")
                .unwrap()
                .hidden
        );
        a.on_key(ctrl('n'));
        let f = a.form().unwrap();
        assert_eq!(f.focused().key, "endpoints[1].url");
        chars(&mut a, "http://127.0.0.1:9201/v1");
        a.form_mut().unwrap().focus_on("endpoints[0].weight");
        chars(&mut a, "60");
        a.form_mut().unwrap().focus_on("endpoints[1].weight");
        chars(&mut a, "30");
        a.on_key(ctrl('s'));
        assert!(a.outbox.is_empty());
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("sum to 90"), "{s}");
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Backspace);
        chars(&mut a, "4x");
        let f = a.form().unwrap();
        assert_eq!(
            f.error_for(f.field("endpoints[1].weight").unwrap()),
            Some("'4x' is not a whole number")
        );
        press(&mut a, KeyCode::Backspace);
        chars(&mut a, "0");
        a.on_key(ctrl('s'));
        assert_eq!(a.outbox.len(), 1);
        // Remove the second endpoint again: the form renumbers.
        let mut a2 = app();
        filled(&mut a2, "http://a.example");
        a2.on_key(ctrl('n'));
        chars(&mut a2, "http://b.example");
        a2.on_key(ctrl('n'));
        chars(&mut a2, "http://c.example");
        a2.form_mut().unwrap().focus_on("endpoints[1].url");
        a2.on_key(ctrl('d'));
        let f = a2.form().unwrap();
        assert_eq!(f.text("endpoints[1].url"), "http://c.example");
        assert!(f.field("endpoints[2].url").is_none());
    }

    #[test]
    fn editing_keeps_a_stored_key_unless_replaced_or_cleared() {
        let mut a = app();
        let mut reg = registry(&a);
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Char('e'));
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("sk-…7f3a (kept; type to replace)"), "{s}");
        assert!(!s.contains("sk-upstream-secret"));
        a.form_mut().unwrap().focus_on("model_id");
        chars(&mut a, "-v3");
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        let m = &reg.models["DeepSeek-V3"];
        assert_eq!(m.spec.model_id, "deepseek-chat-v3");
        assert_eq!(
            m.spec.endpoints[0].api_key.as_ref().unwrap().expose(),
            "sk-upstream-secret-7f3a"
        );
        assert!(m.enabled, "editing keeps the status");
        press(&mut a, KeyCode::Char('e'));
        a.form_mut().unwrap().focus_on("endpoints[0].api_key");
        a.on_key(ctrl('x'));
        assert!(screen(&mut a, 80, 24).contains("(removed on save)"));
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        assert!(
            reg.models["DeepSeek-V3"].spec.endpoints[0]
                .api_key
                .is_none()
        );
    }

    #[test]
    fn rule_form_offers_only_the_workspace_keys() {
        let mut a = app();
        let mut reg = registry(&a);
        select_model(&mut a, "Qwen2.5-72B-Instruct");
        press(&mut a, KeyCode::Char('a'));
        let f = a.form().unwrap();
        assert_eq!(f.choice("workspace"), Some("acme"));
        assert_eq!(
            f.choice("key"),
            Some("key_0000a001"),
            "the revoked key is not offered"
        );
        press(&mut a, KeyCode::Tab);
        press(&mut a, KeyCode::Right);
        let f = a.form().unwrap();
        assert_eq!(f.choice("workspace"), Some("research"));
        assert_eq!(f.choice("key"), Some("key_0000b001"));
        a.form_mut().unwrap().focus_on("target");
        press(&mut a, KeyCode::Right);
        assert!(a.form().unwrap().field("key").unwrap().hidden);
        a.form_mut().unwrap().focus_on("duration");
        press(&mut a, KeyCode::Backspace);
        press(&mut a, KeyCode::Backspace);
        chars(&mut a, "9999999999");
        a.on_key(ctrl('s'));
        assert!(a.outbox.is_empty());
        let f = a.form().unwrap();
        assert!(f.error_for(f.field("duration").unwrap()).is_some());
        a.form_mut().unwrap().set_text("duration", "30", &reg);
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        let r = &reg.models["Qwen2.5-72B-Instruct"].rules[0];
        assert_eq!(r.spec.workspace, "research");
        assert_eq!(r.spec.key_id, None);
        assert_eq!((r.spec.limit, r.spec.duration_secs), (60, 30));
        assert_eq!(
            a.flash.as_ref().unwrap().text,
            "rule added to Qwen2.5-72B-Instruct"
        );
    }

    #[test]
    fn enter_walks_fields_and_saves_on_the_button_and_f1_helps() {
        let mut a = app();
        let mut reg = registry(&a);
        a.jump(ViewId::Workspaces);
        press(&mut a, KeyCode::Char('c'));
        chars(&mut a, "ops");
        press(&mut a, KeyCode::Enter);
        chars(&mut a, "Operators");
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.form().unwrap().focused().key, "save");
        a.on_key(KeyEvent::new(KeyCode::F(1), KeyModifiers::NONE));
        assert_eq!(a.overlay(), Some(&Overlay::Help));
        assert!(screen(&mut a, 80, 24).contains("ctrl-s"));
        press(&mut a, KeyCode::Esc);
        a.on_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
        assert_eq!(a.form().unwrap().focused().key, "description");
        press(&mut a, KeyCode::Down);
        press(&mut a, KeyCode::Enter);
        run_requests(&mut a, &mut reg);
        assert_eq!(reg.workspaces["ops"].description, "Operators");
        assert_eq!(a.list(ViewId::Workspaces).selected_id(), Some("ops"));
    }

    /// The field limits (docs/limits.md) are the domain's, so a form gets
    /// the same refusal as the CLI and the admin API, next to its field.
    #[test]
    fn an_over_long_description_is_refused_next_to_its_field() {
        let mut a = app();
        let mut reg = registry(&a);
        a.jump(ViewId::Workspaces);
        press(&mut a, KeyCode::Char('c'));
        chars(&mut a, "ops");
        press(&mut a, KeyCode::Enter);
        chars(&mut a, &"d".repeat(1025));
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        let f = a.form().expect("the form stays open");
        assert_eq!(
            f.error_for(f.field("description").unwrap()),
            Some("1025 characters is over the limit of 1024")
        );
        assert!(!reg.workspaces.contains_key("ops"));
        press(&mut a, KeyCode::Backspace);
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        assert!(a.form().is_none());
        assert_eq!(reg.workspaces["ops"].description.len(), 1024);
    }

    #[test]
    fn storage_failures_keep_the_form() {
        let mut a = app();
        a.jump(ViewId::Workspaces);
        press(&mut a, KeyCode::Char('c'));
        chars(&mut a, "ops");
        a.on_key(ctrl('s'));
        let req = a.take_requests().pop().unwrap();
        a.on_reply(Reply {
            id: req.id,
            result: Err(ClientError::Other("storage: disk I/O error".into())),
        });
        let f = a.form().unwrap();
        assert!(!f.saving);
        assert_eq!(f.text("name"), "ops", "nothing typed is lost");
        assert!(screen(&mut a, 80, 24).contains("disk I/O error"));
    }
}

// ---- rendering scale ------------------------------------------------------

#[test]
fn a_huge_list_renders_only_what_is_visible() {
    let mut a = fixtures::app(10_000, Theme::colored());
    let s = screen(&mut a, 160, 48);
    assert!(s.contains("[10004/10004]"));
    press(&mut a, KeyCode::Char('G'));
    let s = screen(&mut a, 160, 48);
    assert!(s.contains("model-09999"));
}

// ---- module layering ------------------------------------------------------

/// No import cycle among the console's modules (files): every path in
/// `src/tui` code (`use` lines with their braces expanded, and paths
/// written inline) that starts with `super::`, `self::`, `crate::tui::` or
/// the name of a child module is an edge from the file's module to the
/// deepest module the path names (an item of a `mod.rs` counts as that
/// folder's module). Comments and a file's `#[cfg(test)]` tests are left
/// out. The graph must have no cycle.
mod layering {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    type Module = Vec<String>;

    /// `views/list.rs` → `["views", "list"]`; a `mod.rs` is its folder.
    fn module_of(rel: &Path) -> Module {
        let mut parts: Module = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        parts
    }

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    fn segments(path: &str) -> Vec<String> {
        path.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `a::{b, c::{d}}` → `a::b`, `a::c::d` (after `prefix`).
    fn expand(prefix: &str, tree: &str, out: &mut Vec<Vec<String>>) {
        let tree = tree.trim();
        match tree.find('{') {
            None => {
                let path = tree.split(" as ").next().unwrap_or("");
                out.push(segments(&format!("{prefix}{path}")));
            }
            Some(open) => {
                let head = format!("{prefix}{}", &tree[..open]);
                let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
                let (mut depth, mut start) = (0, 0);
                for (i, c) in inner.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            expand(&head, &inner[start..i], out);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                expand(&head, &inner[start..], out);
            }
        }
    }

    /// The paths in `code`: those of `use` statements, and every `a::b…`
    /// written inline.
    fn paths(code: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut inline = String::new();
        for stmt in code.split_inclusive(';') {
            let t = stmt.trim_start();
            let t = t
                .strip_prefix("pub(crate) ")
                .or(t.strip_prefix("pub "))
                .unwrap_or(t);
            match t.strip_prefix("use ") {
                Some(tree) => expand("", tree.trim_end_matches(';'), &mut out),
                None => inline.push_str(stmt),
            }
        }
        let code = inline.as_str();
        let word = |c: char| c.is_alphanumeric() || c == '_';
        let mut at = 0;
        while let Some(i) = code[at..].find("::") {
            let sep = at + i;
            let start = code[..sep]
                .rfind(|c: char| !(word(c) || c == ':'))
                .map_or(0, |j| j + 1);
            let len = code[sep..]
                .find(|c: char| !(word(c) || c == ':'))
                .unwrap_or(code.len() - sep);
            out.push(segments(&code[start..sep + len]));
            at = sep + len.max(2);
        }
        out
    }

    /// The module `path` (written in module `me`) names, if in the console.
    fn resolve(me: &Module, path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
        let (mut at, rest): (Module, &[String]) = match path.first()?.as_str() {
            "crate" if path.get(1).is_some_and(|s| s == "tui") => (Vec::new(), &path[2..]),
            "self" => (me.clone(), &path[1..]),
            "super" => (me[..me.len().checked_sub(1)?].to_vec(), &path[1..]),
            child if modules.contains(&[me.clone(), vec![child.to_string()]].concat()) => {
                (me.clone(), path)
            }
            _ => return None,
        };
        let mut deepest = at.clone();
        for seg in rest {
            if seg == "super" {
                at.pop();
                deepest = at.clone();
                continue;
            }
            at.push(seg.clone());
            if modules.contains(&at) {
                deepest = at.clone();
            }
        }
        Some(deepest)
    }

    fn visit(
        m: &Module,
        edges: &BTreeMap<Module, BTreeSet<Module>>,
        state: &mut BTreeMap<Module, bool>,
        trail: &mut Vec<Module>,
    ) {
        match state.get(m) {
            Some(true) => return,
            Some(false) => {
                let at = trail.iter().position(|t| t == m).unwrap();
                let cycle: Vec<String> = trail[at..]
                    .iter()
                    .chain([m])
                    .map(|t| format!("tui::{}", t.join("::")))
                    .collect();
                panic!("import cycle: {}", cycle.join(" → "));
            }
            None => {}
        }
        state.insert(m.clone(), false);
        trail.push(m.clone());
        for n in edges.get(m).into_iter().flatten() {
            visit(n, edges, state, trail);
        }
        trail.pop();
        state.insert(m.clone(), true);
    }

    #[test]
    fn the_console_modules_import_no_cycle() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tui");
        let mut all = Vec::new();
        files(&root, &mut all);
        let module = |p: &PathBuf| module_of(p.strip_prefix(&root).unwrap());
        let modules: BTreeSet<Module> = all.iter().map(module).collect();
        let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for p in &all {
            let me = module(p);
            let text = std::fs::read_to_string(p).unwrap();
            let code: String = text
                .split("#[cfg(test)]")
                .next()
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            for path in paths(&code) {
                if let Some(to) = resolve(&me, &path, &modules)
                    && to != me
                {
                    edges.entry(me.clone()).or_default().insert(to);
                }
            }
        }
        let mut state = BTreeMap::new();
        for m in &modules {
            visit(m, &edges, &mut state, &mut Vec::new());
        }
        // The check sees the console's imports, written every way.
        let of = |m: &str| edges.get(&segments(m)).cloned().unwrap_or_default();
        assert!(of("app").contains(&segments("component")), "use super::…");
        assert!(
            of("views::models").contains(&segments("views::list")),
            "use super::…"
        );
        assert!(
            of("chrome").contains(&segments("widgets")),
            "use crate::tui::…"
        );
        assert!(
            of("views").contains(&segments("views::traffic")),
            "a child inline"
        );
        assert!(
            of("forms").contains(&segments("forms::form")),
            "pub use child::…"
        );
    }
}

// ---- operations: :audit, rollback, read-only, the form guard ------------

mod operations {
    use super::*;
    use maasctl::domain::token::Role;
    use maasctl::domain::{AuditEntry, audit};
    use maasctl::ops::rollback::{KeyFates, RollbackReport};
    use maasctl::tui::app::{AUDIT_LIMIT, READ_ONLY};

    /// Snapshot at the three sizes an operator's terminal may have.
    fn snap3(name: &str, app: &mut App) {
        for (w, h) in [(60, 15), (80, 24), (160, 48)] {
            let s = screen(app, w, h);
            insta::assert_snapshot!(format!("{name}_{w}x{h}"), s);
        }
    }

    fn publish(app: &mut App, reg: &Registry) {
        let reports = app.data.view.reports.clone();
        app.on_registry(Arc::new(RegistryView {
            registry: Arc::new(reg.clone()),
            reports,
        }));
    }

    /// The one queued call, which must be `want`'s kind.
    fn one_request(app: &mut App) -> maasctl::tui::action::Request {
        let mut reqs = app.take_requests();
        assert_eq!(reqs.len(), 1, "{reqs:?}");
        reqs.remove(0)
    }

    /// A console over the audited registry with `:audit` shown and its
    /// entries answered.
    fn audit_app() -> (App, Registry, Vec<AuditEntry>) {
        let (reg, trail) = fixtures::audit_trail();
        let mut a = app();
        publish(&mut a, &reg);
        a.jump(ViewId::Audit);
        let req = one_request(&mut a);
        let Op::Audit(q) = &req.op else {
            panic!("{req:?}")
        };
        assert_eq!(q.limit, Some(AUDIT_LIMIT));
        a.on_reply(Reply {
            id: req.id,
            result: Ok(Done::Audit(trail.clone())),
        });
        (a, reg, trail)
    }

    fn rows(a: &App) -> Vec<String> {
        a.list(ViewId::Audit).rows.clone()
    }

    #[test]
    fn audit_lists_newest_first_filters_and_follows_the_revision() {
        let (mut a, mut reg, trail) = audit_app();
        assert_eq!(a.current(), ViewId::Audit);
        assert_eq!(rows(&a), ["4", "3", "2", "1"]);
        let s = screen(&mut a, 160, 48);
        let newest = line_of(&s, "bob");
        for cell in ["2025-06-15 15:05", "bob", "cli", "3", "key/key_0000a001 +1"] {
            assert!(newest.contains(cell), "{cell} in {newest}");
        }
        assert!(newest.contains("update-rule DeepSeek-V3, revoke-key key_0000a001"));
        assert!(line_of(&s, "token:bootstrap").contains("admin-api"));
        assert!(s.contains("[4/4]"), "{s}");
        snap3("audit", &mut a);

        // `/` filters on who, channel, entity and summary.
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "alice");
        assert_eq!(rows(&a), ["2"]);
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Esc);
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "token/");
        assert_eq!(rows(&a), ["3"]);
        press(&mut a, KeyCode::Esc);
        assert_eq!(rows(&a), ["4", "3", "2", "1"]);

        // A new revision (made elsewhere) asks for the trail again, once.
        reg.apply_all(
            vec![Change::SetEnabled {
                name: "DeepSeek-R1".into(),
                enabled: true,
            }],
            NOW_MS / 1000,
        )
        .unwrap();
        publish(&mut a, &reg);
        publish(&mut a, &reg);
        let req = one_request(&mut a);
        assert!(matches!(req.op, Op::Audit(_)), "{req:?}");
        let mut newer = trail.clone();
        newer.push(AuditEntry {
            id: 5,
            at_ms: NOW_MS,
            actor: maasctl::domain::Actor::user("carol"),
            channel: maasctl::domain::Channel::Cli,
            revision: Some(reg.revision),
            summary: "set-enabled DeepSeek-R1".into(),
            changes: Vec::new(),
        });
        press(&mut a, KeyCode::Char('j'));
        a.on_reply(Reply {
            id: req.id,
            result: Ok(Done::Audit(newer.clone())),
        });
        assert_eq!(rows(&a), ["5", "4", "3", "2", "1"]);
        // Off the first row, the selection stays on its entry; on it, it
        // follows the newest.
        assert_eq!(a.list(ViewId::Audit).selected_id(), Some("3"));
        press(&mut a, KeyCode::Char('g'));
        newer.push(AuditEntry {
            id: 6,
            ..newer[4].clone()
        });
        a.jump(ViewId::Audit);
        let req = one_request(&mut a);
        a.on_reply(Reply {
            id: req.id,
            result: Ok(Done::Audit(newer)),
        });
        assert_eq!(a.list(ViewId::Audit).selected_id(), Some("6"));
        // A failed call says so and is not repeated at once; opening the
        // view again asks again.
        a.jump(ViewId::Audit);
        let req = one_request(&mut a);
        a.on_reply(Reply {
            id: req.id,
            result: Err(ClientError::Other("cannot reach the admin API".into())),
        });
        assert!(a.take_requests().is_empty(), "no retry loop");
        let flash = a.flash.clone().unwrap();
        assert!(
            flash.error
                && flash
                    .text
                    .contains("cannot read the audit trail: cannot reach")
        );
        assert_eq!(rows(&a).len(), 6, "the entries shown stay");
        a.jump(ViewId::Audit);
        assert!(matches!(one_request(&mut a).op, Op::Audit(_)));
        // Elsewhere, the trail is not asked for.
        a.jump(ViewId::Models);
        reg.apply_all(
            vec![Change::SetEnabled {
                name: "DeepSeek-R1".into(),
                enabled: false,
            }],
            NOW_MS / 1000,
        )
        .unwrap();
        publish(&mut a, &reg);
        assert!(a.take_requests().is_empty());
    }

    fn line_of<'a>(screen: &'a str, needle: &str) -> &'a str {
        screen
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} on screen:\n{screen}"))
    }

    #[test]
    fn enter_shows_an_entry_field_by_field_with_secrets_masked() {
        let (mut a, _, _) = audit_app();
        // The console's edit of DeepSeek-V3.
        press(&mut a, KeyCode::Char('/'));
        chars(&mut a, "alice");
        press(&mut a, KeyCode::Enter);
        press(&mut a, KeyCode::Enter);
        let Some(Overlay::Scroll { title, lines, .. }) = a.overlay() else {
            panic!("{:?}", a.overlay())
        };
        assert_eq!(title, "audit entry #2 · revision 2");
        assert!(lines.contains(&"model/DeepSeek-V3 updated".to_string()));
        assert!(lines.contains(&"  model_id: deepseek-chat → deepseek-v3".to_string()));
        snap3("audit_diff", &mut a);
        press(&mut a, KeyCode::Esc);
        assert!(a.overlay().is_none());
        // The seed shows the upstream key masked only.
        press(&mut a, KeyCode::Esc);
        press(&mut a, KeyCode::Char('G'));
        press(&mut a, KeyCode::Enter);
        let Some(Overlay::Scroll { lines, .. }) = a.overlay().cloned() else {
            panic!()
        };
        let text = lines.join("\n");
        assert!(
            text.contains("endpoints[0].api_key: — → sk-…7f3a"),
            "{text}"
        );
        assert!(!text.contains("sk-upstream-secret"), "{text}");
        // Longer than the screen: it scrolls, and says where it is.
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("rows 1–17 of 115 ·"), "{s}");
        assert!(s.contains("apply -f seed.yaml"));
        press(&mut a, KeyCode::Char('j'));
        press(&mut a, KeyCode::PageDown);
        let s = screen(&mut a, 80, 24);
        assert!(s.contains("rows 12–28 of 115 ·"), "{s}");
        assert!(!s.contains("apply -f seed.yaml"), "scrolled past: {s}");
        // Past the end it stops at the last row.
        for _ in 0..50 {
            press(&mut a, KeyCode::PageDown);
        }
        let s = screen(&mut a, 80, 24);
        let last = lines.last().unwrap().trim().to_string();
        assert!(s.contains(&last), "{last} in {s}");
        assert!(s.contains("rows 99–115 of 115 ·"), "{s}");
        press(&mut a, KeyCode::Char('k'));
        let s = screen(&mut a, 80, 24);
        assert!(!s.contains(&last), "one up hides the last row: {s}");
        press(&mut a, KeyCode::Char('x'));
        assert!(a.overlay().is_some(), "a stray key keeps it");
        press(&mut a, KeyCode::Esc);
        assert!(a.overlay().is_none());
    }

    /// What `ops::rollback` answers for a dry run back to revision 2 of
    /// the fixture trail (the same computation: restored registry, its
    /// diff, the key kept revoked).
    fn plan(reg: &Registry, trail: &[AuditEntry]) -> RollbackReport {
        let mut earlier = fixtures::registry(0);
        let mut spec = earlier.models["DeepSeek-V3"].spec.clone();
        spec.model_id = "deepseek-v3".into();
        earlier
            .apply_all(
                vec![Change::UpdateModel {
                    name: "DeepSeek-V3".into(),
                    spec,
                }],
                NOW_MS / 1000,
            )
            .unwrap();
        assert_eq!(Some(earlier.revision), trail[1].revision);
        let restored = reg.restored(&earlier, NOW_MS / 1000);
        RollbackReport {
            to: 2,
            from: reg.revision,
            revision: reg.revision,
            dry_run: true,
            changed: true,
            changes: audit::registry_changes(reg, &restored, &audit::both(reg, &restored)),
            keys: KeyFates {
                kept_revoked: vec!["key_0000a001 (acme/prod)".into()],
                ..KeyFates::default()
            },
        }
    }

    #[test]
    fn rollback_shows_its_dry_run_and_rolls_back_on_yes() {
        let (mut a, reg, trail) = audit_app();
        press(&mut a, KeyCode::Char('j'));
        press(&mut a, KeyCode::Char('j'));
        press(&mut a, KeyCode::Char('R'));
        let req = one_request(&mut a);
        assert_eq!(
            req.op,
            Op::Rollback {
                revision: 2,
                dry_run: true
            }
        );
        let report = plan(&reg, &trail);
        assert_eq!(report.changes.len(), 1, "{:?}", report.changes);
        a.on_reply(Reply {
            id: req.id,
            result: Ok(Done::Rollback(report.clone())),
        });
        let Some(Overlay::ConfirmLines { title, lines, .. }) = a.overlay() else {
            panic!("{:?}", a.overlay())
        };
        assert_eq!(title, "Roll back to revision 2?");
        let text = lines.join("\n");
        assert!(
            text.contains("model/DeepSeek-V3 rules[#1].limit: 20 → 10"),
            "{text}"
        );
        assert!(text.contains("keys staying revoked: key_0000a001 (acme/prod)"));
        snap3("audit_rollback_confirm", &mut a);
        press(&mut a, KeyCode::Char('y'));
        let req = one_request(&mut a);
        assert_eq!(
            req.op,
            Op::Rollback {
                revision: 2,
                dry_run: false
            }
        );
        a.on_reply(Reply {
            id: req.id,
            result: Ok(Done::Rollback(RollbackReport {
                dry_run: false,
                revision: reg.revision + 1,
                ..report.clone()
            })),
        });
        assert_eq!(a.flash.clone().unwrap().text, "rolled back to revision 2");
        // `n` asks nothing of the store.
        press(&mut a, KeyCode::Char('R'));
        let req = one_request(&mut a);
        a.on_reply(Reply {
            id: req.id,
            result: Ok(Done::Rollback(report)),
        });
        press(&mut a, KeyCode::Char('n'));
        assert!(a.overlay().is_none());
        assert!(a.take_requests().is_empty());
        // Nothing to do: said, not asked.
        press(&mut a, KeyCode::Char('R'));
        let req = one_request(&mut a);
        a.on_reply(Reply {
            id: req.id,
            result: Ok(Done::Rollback(RollbackReport {
                changed: false,
                changes: Vec::new(),
                ..plan(&reg, &trail)
            })),
        });
        assert!(a.overlay().is_none());
        assert!(
            a.flash
                .clone()
                .unwrap()
                .text
                .contains("already equals revision 2")
        );
        // The admin token's entry made no revision.
        press(&mut a, KeyCode::Char('k'));
        press(&mut a, KeyCode::Char('R'));
        assert!(a.take_requests().is_empty());
        let flash = a.flash.clone().unwrap();
        assert!(flash.error && flash.text.contains("changed no registry revision"));
    }

    #[test]
    fn a_read_token_console_is_read_only() {
        let mut a = app();
        a.set_role(Role::Read);
        let s = screen(&mut a, 80, 24);
        assert!(s.lines().next().unwrap().contains("read-only"), "{s}");
        let footer = s.lines().last().unwrap();
        for hidden in ["create", "edit", "enable", "delete"] {
            assert!(!footer.contains(hidden), "{hidden} in {footer}");
        }
        assert!(footer.contains("<enter>"), "{footer}");
        snap3("read_only", &mut a);
        // Changing keys answer with a line, nothing opens or is sent.
        for k in ['c', 'e', 't', 'd'] {
            press(&mut a, KeyCode::Char(k));
            assert!(a.form().is_none() && a.overlay().is_none(), "{k}");
            assert!(a.take_requests().is_empty());
            assert_eq!(a.flash.clone().unwrap().text, READ_ONLY);
        }
        // Reading keys work; help lists no changing key.
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.current(), ViewId::Detail);
        press(&mut a, KeyCode::Char('a'));
        assert!(a.form().is_none());
        // A reading key that leads to a change: enter on a rule opens no
        // form either.
        press(&mut a, KeyCode::Tab);
        assert_eq!(detail(&a).pane, Pane::Rules);
        a.flash = None;
        press(&mut a, KeyCode::Enter);
        assert!(a.form().is_none());
        assert_eq!(a.flash.clone().unwrap().text, READ_ONLY);
        press(&mut a, KeyCode::Char('?'));
        let help = screen(&mut a, 160, 48);
        assert!(!help.contains("add rule"), "{help}");
        press(&mut a, KeyCode::Esc);
        a.jump(ViewId::Audit);
        let _ = a.take_requests();
        press(&mut a, KeyCode::Char('R'));
        assert_eq!(a.flash.clone().unwrap().text, READ_ONLY);
        assert!(a.take_requests().is_empty());
        let admin = {
            let mut b = app();
            b.set_role(Role::Admin);
            screen(&mut b, 80, 24)
        };
        assert!(!admin.contains("read-only"));
    }

    /// Someone else sets DeepSeek-V3's model ID to `id` (the CLI, another
    /// console): the store moves, this console's snapshot does not yet.
    fn edit_elsewhere(reg: &mut Registry, id: &str) {
        let mut spec = reg.models["DeepSeek-V3"].spec.clone();
        spec.model_id = id.into();
        reg.apply_all(
            vec![Change::UpdateModel {
                name: "DeepSeek-V3".into(),
                spec,
            }],
            NOW_MS / 1000,
        )
        .unwrap();
    }

    #[test]
    fn a_form_does_not_overwrite_a_change_made_meanwhile() {
        let mut a = app();
        let mut reg = registry(&a);
        select_model(&mut a, "DeepSeek-V3");
        press(&mut a, KeyCode::Char('e'));
        a.form_mut().unwrap().focus_on("model_id");
        chars(&mut a, "-mine");
        edit_elsewhere(&mut reg, "theirs");
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        assert_eq!(reg.models["DeepSeek-V3"].spec.model_id, "theirs", "kept");
        let Some(Overlay::Changed { text }) = a.overlay() else {
            panic!("{:?}", a.overlay())
        };
        assert_eq!(
            text,
            "model DeepSeek-V3 changed elsewhere since you opened this form"
        );
        snap("form_changed_elsewhere", &mut a);
        // esc: back to the form, edits kept, the reason shown.
        press(&mut a, KeyCode::Esc);
        let form = a.form().unwrap();
        assert_eq!(form.text("model_id"), "deepseek-chat-mine");
        assert!(screen(&mut a, 80, 24).contains("changed elsewhere since you opened"));
        // Reload: the current values, nothing typed kept.
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        press(&mut a, KeyCode::Char('r'));
        let form = a.form().expect("reopened");
        assert_eq!(form.text("model_id"), "theirs");
        assert!(!form.is_dirty() && form.failure.is_none());
        // Edit again; changed again meanwhile; overwrite saves mine.
        a.form_mut().unwrap().focus_on("model_id");
        chars(&mut a, "-mine");
        edit_elsewhere(&mut reg, "theirs-again");
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        assert_eq!(reg.models["DeepSeek-V3"].spec.model_id, "theirs-again");
        press(&mut a, KeyCode::Char('o'));
        run_requests(&mut a, &mut reg);
        assert_eq!(reg.models["DeepSeek-V3"].spec.model_id, "theirs-mine");
        assert!(a.form().is_none());
        assert_eq!(a.flash.clone().unwrap().text, "model DeepSeek-V3 saved");
        // A change elsewhere to what the form does not write (the model's
        // rules) does not stop the save.
        press(&mut a, KeyCode::Char('e'));
        a.form_mut().unwrap().focus_on("model_id");
        chars(&mut a, "2");
        reg.apply_all(
            vec![Change::DeleteRule {
                model: "DeepSeek-V3".into(),
                id: 2,
            }],
            NOW_MS / 1000,
        )
        .unwrap();
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        assert_eq!(reg.models["DeepSeek-V3"].spec.model_id, "theirs-mine2");
        assert!(a.overlay().is_none());
        // Deleted meanwhile: reload has nothing to reopen; it says so.
        press(&mut a, KeyCode::Char('e'));
        a.form_mut().unwrap().focus_on("model_id");
        chars(&mut a, "3");
        reg.apply_all(
            vec![
                Change::SetEnabled {
                    name: "DeepSeek-V3".into(),
                    enabled: false,
                },
                Change::DeleteModel {
                    name: "DeepSeek-V3".into(),
                },
            ],
            NOW_MS / 1000,
        )
        .unwrap();
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        press(&mut a, KeyCode::Char('r'));
        assert!(a.form().is_none());
        let flash = a.flash.clone().unwrap();
        assert_eq!(flash.text, "model DeepSeek-V3 was deleted elsewhere");
        assert!(flash.error);
        // A form that creates has no guard.
        a.jump(ViewId::Workspaces);
        press(&mut a, KeyCode::Char('c'));
        assert!(a.form().unwrap().guard.is_none());
    }
}

/// Token rules in the console's rule form (docs/rate-limits.md, "Token
/// rules"): the unit is chosen in the form and saved with the rule.
mod token_rules {
    use super::*;
    use maasctl::domain::RuleUnit;

    #[test]
    fn the_rule_form_saves_the_unit_chosen() {
        let mut a = app();
        let mut reg = registry(&a);
        select_model(&mut a, "Qwen2.5-72B-Instruct");
        press(&mut a, KeyCode::Char('a'));
        assert_eq!(a.form().unwrap().choice("unit"), Some("requests"));
        a.form_mut().unwrap().focus_on("unit");
        press(&mut a, KeyCode::Right);
        assert_eq!(a.form().unwrap().choice("unit"), Some("tokens"));
        a.form_mut().unwrap().set_text("limit", "90000", &reg);
        a.on_key(ctrl('s'));
        run_requests(&mut a, &mut reg);
        let r = &reg.models["Qwen2.5-72B-Instruct"].rules[0];
        assert_eq!((r.spec.unit, r.spec.limit), (RuleUnit::Tokens, 90_000));
    }
}
