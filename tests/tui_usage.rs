//! The console's usage data path (issue 12): `Client::usage` reads the same
//! report as `maasctl usage` (ops::usage::report) from the store's ledger.

use std::sync::Arc;

use maasctl::client::Client;
use maasctl::client::in_process::InProcessClient;
use maasctl::domain::usage::{Dim, Span, Usage, UsageQuery, UsageRow};
use maasctl::domain::{Channel, Origin};
use maasctl::store::{SqliteStore, Store};

const HOUR: i64 = 3_600_000;

fn row(bucket_ms: i64, key: &str, ws: &str, model: &str, prompt: u64, done: u64) -> UsageRow {
    UsageRow {
        span: Span::Hour,
        bucket_ms,
        key_id: key.into(),
        workspace: ws.into(),
        model: model.into(),
        usage: Usage {
            requests: 2,
            ok: 1,
            throttled: 1,
            errors: 0,
            prompt_tokens: prompt,
            completion_tokens: done,
            cost_nanos: 1_000,
        },
    }
}

#[tokio::test]
async fn in_process_client_reports_the_ledger() {
    let dir = std::env::temp_dir().join(format!("maasctl-tui-usage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&dir).unwrap());
    let base = 1_000 * HOUR;
    store
        .add_usage(&[
            row(base, "k1", "team-a", "m1", 10, 5),
            row(base + HOUR, "k2", "team-b", "m1", 100, 50),
        ])
        .unwrap();
    let origin = Origin::user("tester", Channel::Console);
    let client = InProcessClient::start(store, None, origin).await.unwrap();
    let report = client
        .usage(UsageQuery {
            since_ms: base,
            until_ms: base + 2 * HOUR,
            by: vec![Dim::Workspace],
        })
        .await
        .unwrap();
    assert_eq!(report.groups.len(), 2);
    assert_eq!(report.groups[0].keys, vec!["team-b".to_string()]);
    assert_eq!(report.total.requests, 4);
    assert_eq!(report.total.tokens(), 165);
    assert_eq!(report.series.iter().map(|p| p.tokens).sum::<u64>(), 165);
    // A bad range is refused naming the field.
    let err = client
        .usage(UsageQuery {
            since_ms: base,
            until_ms: base,
            by: vec![Dim::Workspace],
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("until"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the console's `:usage` view -----------------------------------------

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use maasctl::client::ClientError;
use maasctl::domain::token::Role;
use maasctl::domain::usage::{DAY_MS, MINUTE_MS, UsageReport};
use maasctl::tui::action::{Op, Reply};
use maasctl::tui::app::App;
use maasctl::tui::chrome;
use maasctl::tui::ids::ViewId;
use maasctl::tui::theme::Theme;
use maasctl::tui::views::usage::{self, Range, UsageView};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

#[path = "support/tui_fixtures.rs"]
mod fixtures;
use fixtures::NOW_MS;

/// 2025-06-15 00:00 UTC, the fixtures' today.
const TODAY: i64 = NOW_MS - NOW_MS % DAY_MS;

fn press(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn chars(app: &mut App, s: &str) {
    for c in s.chars() {
        press(app, KeyCode::Char(c));
    }
}

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    app.layout(Rect::new(0, 0, w, h));
    t.draw(|f| chrome::render(app, f)).unwrap();
    format!("{}", t.backend())
}

fn view(app: &App) -> &UsageView {
    app.view_as::<UsageView>().expect("the usage view")
}

/// A ledger row of `requests` requests (one in ten throttled, one in
/// twenty an error), `prompt` and `completion` tokens, a cost of a
/// nano-dollar per token.
fn used(
    bucket_ms: i64,
    key: &str,
    ws: &str,
    model: &str,
    requests: u64,
    prompt: u64,
    completion: u64,
) -> UsageRow {
    UsageRow {
        span: Span::Minute,
        bucket_ms,
        key_id: key.into(),
        workspace: ws.into(),
        model: model.into(),
        usage: Usage {
            requests,
            ok: requests - requests / 10 - requests / 20,
            throttled: requests / 10,
            errors: requests / 20,
            prompt_tokens: prompt,
            completion_tokens: completion,
            cost_nanos: (prompt + completion) * 1_000,
        },
    }
}

/// The fixtures' keys using the fixtures' models: today (hours 09, 14,
/// 15), three days ago, and twenty days ago.
fn ledger() -> Vec<UsageRow> {
    let h = |d: i64, hour: i64| TODAY - d * DAY_MS + hour * HOUR + 5 * MINUTE_MS;
    vec![
        used(
            h(0, 9),
            "key_0000a001",
            "acme",
            "DeepSeek-V3",
            1200,
            1_234_567,
            234_567,
        ),
        used(
            h(0, 14),
            "key_0000a001",
            "acme",
            "DeepSeek-V3",
            300,
            45_000,
            9_000,
        ),
        used(
            h(0, 15),
            "key_0000b001",
            "research",
            "Qwen2.5-72B-Instruct",
            40,
            8_000,
            2_000,
        ),
        used(
            h(0, 15),
            "key_0000a002",
            "acme",
            "Qwen2.5-72B-Instruct",
            20,
            900,
            100,
        ),
        used(
            h(3, 11),
            "key_0000b001",
            "research",
            "DeepSeek-V3",
            500,
            300_000,
            60_000,
        ),
        used(
            h(20, 8),
            "key_0000a001",
            "acme",
            "Qwen2.5-72B-Instruct",
            90_000,
            45_000_000,
            5_000_000,
        ),
    ]
}

struct Fixture {
    app: App,
    store: Arc<dyn Store>,
    client: Arc<InProcessClient>,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture(name: &str, rows: &[UsageRow]) -> Fixture {
    let dir = std::env::temp_dir().join(format!("maasctl-tui-usage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_dir(&dir).unwrap());
    if !rows.is_empty() {
        store.add_usage(rows).unwrap();
    }
    let origin = Origin::user("tester", Channel::Console);
    let client = InProcessClient::start(store.clone(), None, origin)
        .await
        .unwrap();
    Fixture {
        app: fixtures::app(0, Theme::colored()),
        store,
        client,
        dir,
    }
}

impl Fixture {
    /// Run the console's pending usage calls against the store and hand
    /// back the answers; the queries asked.
    async fn answer(&mut self) -> Vec<UsageQuery> {
        let mut asked = Vec::new();
        loop {
            let round = self.answer_once().await;
            if round.is_empty() {
                return asked;
            }
            asked.extend(round);
        }
    }

    /// One round: the calls pending now (not those their answers start).
    async fn answer_once(&mut self) -> Vec<UsageQuery> {
        let mut asked = Vec::new();
        for req in self.app.take_requests() {
            if let Op::Usage(q) = &req.op {
                asked.push(q.clone());
                let reply = req.run(self.client.as_ref()).await;
                self.app.on_reply(reply);
            }
        }
        asked
    }

    async fn open(&mut self) -> UsageQuery {
        chars(&mut self.app, ":usage");
        press(&mut self.app, KeyCode::Enter);
        assert_eq!(self.app.current(), ViewId::Usage);
        let asked = self.answer().await;
        assert_eq!(asked.len(), 1, "one call when opened: {asked:?}");
        asked[0].clone()
    }

    fn report(&self) -> &UsageReport {
        view(&self.app).report(&self.app.data).expect("a report")
    }
}

#[tokio::test]
async fn range_and_grouping_keys_ask_for_the_matching_report() {
    let mut fx = fixture("keys", &ledger()).await;
    let q = fx.open().await;
    // The last 7 UTC days, today included, by workspace × model.
    assert_eq!(
        q,
        UsageQuery {
            since_ms: TODAY - 6 * DAY_MS,
            until_ms: TODAY + DAY_MS,
            by: vec![Dim::Workspace, Dim::Model],
        }
    );
    press(&mut fx.app, KeyCode::Char('t'));
    let q = fx.answer().await;
    assert_eq!(q[0].since_ms, TODAY);
    assert_eq!(q[0].until_ms, TODAY + DAY_MS);
    assert_eq!(view(&fx.app).range, Range::Today);
    assert_eq!(fx.report().step_ms, HOUR, "hourly today");
    assert_eq!(fx.report().series.len(), 24);
    press(&mut fx.app, KeyCode::Char('m'));
    let q = fx.answer().await;
    assert_eq!(q[0].since_ms, TODAY - 29 * DAY_MS);
    assert_eq!(fx.report().series.len(), 30, "daily over 30 days");
    press(&mut fx.app, KeyCode::Tab);
    let q = fx.answer().await;
    assert_eq!(q[0].since_ms, TODAY, "tab: 30 days → today");
    press(&mut fx.app, KeyCode::Tab);
    fx.answer().await;
    assert_eq!(view(&fx.app).range, Range::Week);
    // g cycles workspace → key → model → workspace×model.
    let mut seen = Vec::new();
    for _ in 0..4 {
        press(&mut fx.app, KeyCode::Char('g'));
        let q = fx.answer().await;
        assert_eq!(q.len(), 1);
        assert_eq!(fx.report().by, q[0].by, "the report shown is the one asked");
        seen.push(q[0].by.clone());
    }
    assert_eq!(
        seen,
        vec![
            vec![Dim::Workspace],
            vec![Dim::Key],
            vec![Dim::Model],
            vec![Dim::Workspace, Dim::Model]
        ]
    );
    // r asks again; the same range asked twice does not.
    press(&mut fx.app, KeyCode::Char('r'));
    assert_eq!(fx.answer().await.len(), 1);
    press(&mut fx.app, KeyCode::Char('w'));
    assert!(fx.answer().await.is_empty(), "already on 7 days");
}

#[tokio::test]
async fn one_call_at_a_time_and_a_refresh_every_ten_seconds_while_shown() {
    let mut fx = fixture("cadence", &ledger()).await;
    chars(&mut fx.app, ":usage");
    press(&mut fx.app, KeyCode::Enter);
    // Keys while the first call is under way: one more call, once it is back.
    press(&mut fx.app, KeyCode::Char('t'));
    press(&mut fx.app, KeyCode::Char('g'));
    let first = fx.answer_once().await;
    assert_eq!(first.len(), 1);
    let again = fx.answer_once().await;
    assert_eq!(again.len(), 1, "asked again for what changed meanwhile");
    assert_eq!(again[0].since_ms, TODAY);
    assert_eq!(again[0].by, vec![Dim::Workspace]);
    assert!(fx.answer().await.is_empty());
    // The clock: nothing before 10 s, a call at 10 s.
    fx.app.tick(NOW_MS + 5_000);
    assert!(fx.answer().await.is_empty());
    fx.app.tick(NOW_MS + usage::REFRESH_MS);
    assert_eq!(fx.answer().await.len(), 1);
    // Hidden: never asked.
    press(&mut fx.app, KeyCode::Esc);
    assert_eq!(fx.app.current(), ViewId::Models);
    fx.app.tick(NOW_MS + 60_000);
    assert!(fx.answer().await.is_empty());
}

#[tokio::test]
async fn the_totals_row_is_the_sum_and_the_filter_narrows_it() {
    let mut fx = fixture("totals", &ledger()).await;
    fx.open().await;
    let r = fx.report().clone();
    // 7 days: today's rows and the one of three days ago, not the 20-day one.
    let mut sum = Usage::default();
    for g in &r.groups {
        sum.add(&g.usage);
    }
    assert_eq!(sum, r.total);
    assert_eq!(view(&fx.app).total, r.total, "the totals row: every group");
    assert_eq!(r.total.requests, 1200 + 300 + 40 + 20 + 500);
    assert_eq!(
        r.total.tokens(),
        1_234_567 + 234_567 + 45_000 + 9_000 + 8_000 + 2_000 + 900 + 100 + 300_000 + 60_000
    );
    // Most tokens first.
    let tokens: Vec<u64> = r.groups.iter().map(|g| g.usage.tokens()).collect();
    assert!(tokens.windows(2).all(|w| w[0] >= w[1]), "{tokens:?}");
    // `/research`: its groups only, and the total of what is shown.
    press(&mut fx.app, KeyCode::Char('/'));
    chars(&mut fx.app, "research");
    press(&mut fx.app, KeyCode::Enter);
    let v = view(&fx.app);
    let shown: Vec<&Vec<String>> = v
        .state
        .rows
        .iter()
        .map(|id| &v.group(&fx.app.data, id).expect("a group").keys)
        .collect();
    assert_eq!(shown.len(), 2);
    assert!(shown.iter().all(|k| k[0] == "research"), "{shown:?}");
    assert_eq!(v.total.requests, 540);
    assert_eq!(v.total.tokens(), 370_000);
    // By key, the filter matches the key's label too (acme/batch).
    press(&mut fx.app, KeyCode::Esc);
    press(&mut fx.app, KeyCode::Char('g'));
    press(&mut fx.app, KeyCode::Char('g'));
    fx.answer().await;
    press(&mut fx.app, KeyCode::Char('/'));
    chars(&mut fx.app, "acme/batch");
    press(&mut fx.app, KeyCode::Enter);
    let v = view(&fx.app);
    assert_eq!(v.state.rows.len(), 1);
    assert_eq!(v.total.requests, 20);
}

#[tokio::test]
async fn enter_shows_the_exact_figures_and_the_keys_whole() {
    let mut fx = fixture("enter", &ledger()).await;
    fx.open().await;
    press(&mut fx.app, KeyCode::Enter);
    let s = screen(&mut fx.app, 80, 24);
    // The first row: acme × DeepSeek-V3, its two hours of today.
    assert!(s.contains("1,523,134"), "exact total tokens:\n{s}");
    assert!(s.contains("1,279,567"), "exact prompt tokens:\n{s}");
    assert!(s.contains("$1.523134000"), "exact cost:\n{s}");
    insta::assert_snapshot!("usage_enter_80x24", s);
}

#[tokio::test]
async fn usage_view_snapshots() {
    let mut fx = fixture("snap", &ledger()).await;
    fx.open().await;
    for (w, h) in [(60, 15), (80, 24), (160, 48)] {
        let s = screen(&mut fx.app, w, h);
        insta::assert_snapshot!(format!("usage_{w}x{h}"), s);
    }
    // Today, by key: the hourly chart.
    press(&mut fx.app, KeyCode::Char('t'));
    press(&mut fx.app, KeyCode::Char('g'));
    assert_eq!(fx.answer().await.len(), 2);
    assert_eq!(fx.report().by, vec![Dim::Workspace]);
    press(&mut fx.app, KeyCode::Char('g'));
    fx.answer().await;
    let s = screen(&mut fx.app, 80, 24);
    assert!(s.contains("acme/prod"), "keys by their label:\n{s}");
    insta::assert_snapshot!("usage_today_by_key_80x24", s);
}

#[tokio::test]
async fn an_empty_ledger_says_what_happens_and_what_to_press() {
    let mut fx = fixture("empty", &[]).await;
    fx.open().await;
    let s = screen(&mut fx.app, 80, 24);
    assert!(
        s.contains("no usage recorded in the last 7 days"),
        "the empty state:\n{s}"
    );
    assert!(s.contains("press r to refresh"), "{s}");
    insta::assert_snapshot!("usage_empty_80x24", s);
}

#[tokio::test]
async fn an_error_shows_in_the_view_with_its_message() {
    let mut fx = fixture("error", &ledger()).await;
    chars(&mut fx.app, ":usage");
    press(&mut fx.app, KeyCode::Enter);
    let s = screen(&mut fx.app, 80, 24);
    assert!(s.contains("loading"), "loading before the answer:\n{s}");
    let req = fx.app.take_requests().pop().expect("a usage call");
    fx.app.on_reply(Reply {
        id: req.id,
        result: Err(ClientError::Other(
            "cannot reach the admin API at 127.0.0.1:9 (connection refused)".into(),
        )),
    });
    let s = screen(&mut fx.app, 80, 24);
    assert!(
        s.contains("cannot read usage: cannot reach the admin API"),
        "the error, never a blank:\n{s}"
    );
    insta::assert_snapshot!("usage_error_80x24", s);
    // r tries again; its answer clears the error.
    press(&mut fx.app, KeyCode::Char('r'));
    assert_eq!(fx.answer().await.len(), 1);
    assert!(fx.app.data.usage.error.is_none());
    assert!(!screen(&mut fx.app, 80, 24).contains("cannot read usage"));
}

#[tokio::test]
async fn a_read_only_console_opens_usage() {
    let mut fx = fixture("readonly", &ledger()).await;
    fx.app.set_role(Role::Read);
    fx.open().await;
    press(&mut fx.app, KeyCode::Char('r'));
    assert_eq!(fx.answer().await.len(), 1, "refresh reads: allowed");
    assert!(fx.app.flash.is_none(), "{:?}", fx.app.flash);
    assert_eq!(fx.report().total.requests, 2060);
    // Its keys are all in `?`.
    press(&mut fx.app, KeyCode::Char('?'));
    let s = screen(&mut fx.app, 80, 24);
    for key in ["30 days", "today", "group", "refresh"] {
        assert!(s.contains(key), "{key} in the help:\n{s}");
    }
}

#[test]
fn numbers_read_at_a_glance_and_exactly() {
    assert_eq!(usage::compact(9_999), "9999");
    assert_eq!(usage::compact(12_345), "12.3k");
    assert_eq!(usage::compact(999_949), "999.9k");
    assert_eq!(usage::compact(999_999), "1.00M");
    assert_eq!(usage::compact(1_469_134), "1.47M");
    assert_eq!(usage::compact(50_000_000_000), "50.00G");
    assert_eq!(usage::exact(1_469_134), "1,469,134");
    assert_eq!(usage::exact(999), "999");
    assert_eq!(usage::dollars(0), "$0");
    assert_eq!(usage::dollars(1_469_134_000), "$1.47");
    assert_eq!(usage::dollars(1_469_134), "$0.0015");
    assert_eq!(usage::dollars(12), "<$0.0001");
    assert_eq!(usage::dollars_exact(1_469_134_000), "$1.469134000");
    assert_eq!(
        usage::dollars_exact(12_345_000_000_001),
        "$12,345.000000001"
    );
}

#[tokio::test]
async fn the_selection_stays_on_its_group_when_a_refresh_reorders_them() {
    let mut fx = fixture("reorder", &ledger()).await;
    fx.open().await;
    press(&mut fx.app, KeyCode::Down);
    press(&mut fx.app, KeyCode::Down);
    let id = "research\tQwen2.5-72B-Instruct";
    assert_eq!(view(&fx.app).state.selected_id(), Some(id));
    // Its use grows past every other group's; the next refresh shows it.
    let more = used(
        TODAY + 15 * HOUR,
        "key_0000b001",
        "research",
        "Qwen2.5-72B-Instruct",
        10,
        5_000_000,
        0,
    );
    fx.store.add_usage(&[more]).unwrap();
    fx.app.tick(NOW_MS + usage::REFRESH_MS);
    assert_eq!(fx.answer().await.len(), 1);
    let v = view(&fx.app);
    assert_eq!(v.state.rows[0], id, "most tokens first");
    assert_eq!(v.state.selected_id(), Some(id), "the selection followed it");
    assert_eq!(v.total.requests, 2070);
}
