//! Budgets (issue 12, docs/usage.md "Budgets"): the entity's checks and its
//! round trip on SQLite and PostgreSQL (audited, in the history, rolled
//! back); the CLI (`budget add|list|rm`, errors naming the flag); the
//! gateway refusing a spent workspace with 429 `insufficient_quota` and
//! readmitting it when the budget goes; the console's `:budgets` view.

#[allow(dead_code)]
#[path = "store/backend.rs"]
mod backend;
mod common;
#[path = "support/postgres.rs"]
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::{Backend, Kind, on_both};
use maasctl::domain::budget::{BudgetPeriod, BudgetSpec, BudgetUnit};
use maasctl::domain::secret::{generate_key_id, generate_secret, hash_secret, secret_hint};
use maasctl::domain::*;
use maasctl::store::Store;

fn by() -> Origin {
    Origin::user("tester", Channel::Cli)
}

fn workspace(name: &str) -> Change {
    Change::AddWorkspace {
        name: name.into(),
        description: String::new(),
    }
}

/// A new key of `workspace`: the change and (id, secret).
fn key(workspace: &str, name: &str) -> (Change, String, String) {
    let secret = generate_secret();
    let id = generate_key_id();
    let c = Change::CreateKey {
        id: id.clone(),
        workspace: workspace.into(),
        name: name.into(),
        secret_hash: hash_secret(&secret),
        secret_hint: secret_hint(&secret),
    };
    (c, id, secret)
}

fn tokens_per_day(workspace: &str, n: u64) -> BudgetSpec {
    BudgetSpec {
        target: RuleTarget::Workspace,
        subject: workspace.into(),
        unit: BudgetUnit::Tokens,
        amount: n,
        period: BudgetPeriod::Day,
    }
}

#[test]
fn the_registry_checks_a_budget_naming_the_field() {
    let mut reg = Registry::with_default_cluster("http://127.0.0.1:8080");
    let (k, kid, _) = key("acme", "ci");
    reg.apply_all(vec![workspace("acme"), k], 0).unwrap();
    let refuse = |reg: &mut Registry, spec: BudgetSpec| {
        reg.apply_all(vec![Change::AddBudget(spec)], 0)
            .expect_err("refused")
    };
    let e = refuse(&mut reg, tokens_per_day("nope", 10));
    assert_eq!(e.errors[0].field, "workspace");
    assert!(
        e.errors[0].problem.contains("no workspace named 'nope'"),
        "{e}"
    );
    let e = refuse(&mut reg, tokens_per_day("acme", 0));
    assert_eq!(e.errors[0].field, "tokens");
    let mut usd = tokens_per_day("acme", 0);
    usd.unit = BudgetUnit::Usd;
    assert_eq!(refuse(&mut reg, usd).errors[0].field, "usd");
    let on_key = BudgetSpec {
        target: RuleTarget::ApiKey,
        subject: "key_missing".into(),
        ..tokens_per_day("", 5)
    };
    assert_eq!(refuse(&mut reg, on_key).errors[0].field, "key");

    let (out, _) = reg
        .apply_all(vec![Change::AddBudget(tokens_per_day("acme", 1000))], 0)
        .unwrap();
    assert_eq!(out, vec![Outcome::BudgetCreated { id: "b1".into() }]);
    // One budget per subject, unit and period.
    let e = refuse(&mut reg, tokens_per_day("acme", 5));
    assert_eq!(e.errors[0].field, "per");
    assert!(e.errors[0].problem.contains("b1"), "{e}");
    // A workspace or key with budgets is not removed under them.
    let on_key = BudgetSpec {
        target: RuleTarget::ApiKey,
        subject: kid.clone(),
        ..tokens_per_day("", 5)
    };
    reg.apply_all(vec![Change::AddBudget(on_key)], 0).unwrap();
    let e = reg
        .apply_all(vec![Change::DeleteKey { id: kid.clone() }], 0)
        .unwrap_err();
    assert!(e.to_string().contains("has budgets (b2)"), "{e}");
    let e = reg
        .apply_all(
            vec![Change::DeleteWorkspace {
                name: "acme".into(),
            }],
            0,
        )
        .unwrap_err();
    assert_eq!(e.errors[0].field, "name");
}

on_both! {
fn budgets_round_trip_are_audited_and_roll_back(b) {
    let store = b.open();
    store.apply(vec![workspace("acme"), workspace("beta")], &by()).unwrap();
    let before = store.revision().unwrap();
    let usd = BudgetSpec {
        target: RuleTarget::Workspace,
        subject: "beta".into(),
        unit: BudgetUnit::Usd,
        amount: budget::parse_usd("12.50").unwrap(),
        period: BudgetPeriod::Month,
    };
    store
        .apply(
            vec![
                Change::AddBudget(tokens_per_day("acme", 1000)),
                Change::AddBudget(usd.clone()),
            ],
            &by(),
        )
        .unwrap();
    let reg = store.load().unwrap();
    assert_eq!(reg.budgets.len(), 2);
    assert_eq!(reg.budgets["b1"].spec, tokens_per_day("acme", 1000));
    assert_eq!(reg.budgets["b2"].spec, usd);
    assert_eq!(reg.next_budget_id, 3);

    // Edit, then remove: the trail names the budget and its fields.
    store
        .apply(
            vec![Change::UpdateBudget { id: "b1".into(), spec: tokens_per_day("acme", 5000) }],
            &by(),
        )
        .unwrap();
    store.apply(vec![Change::DeleteBudget { id: "b2".into() }], &by()).unwrap();
    let reg = store.load().unwrap();
    assert_eq!(reg.budgets["b1"].spec.amount, 5000);
    assert!(!reg.budgets.contains_key("b2"));
    let trail = store
        .audit(&AuditQuery { entity: Some("budget/b1".into()), ..Default::default() })
        .unwrap();
    assert_eq!(trail.len(), 2, "created and updated: {trail:?}");
    let upd = &trail[1].changes[0];
    assert_eq!(upd.entity, "budget/b1");
    assert_eq!(upd.fields[0].field, "amount");

    // Rollback to before the budgets: both gone; a new budget gets a new id.
    let earlier = store.registry_at(before).unwrap();
    assert!(earlier.budgets.is_empty());
    store
        .apply(vec![Change::Restore { revision: before, registry: Box::new(earlier) }], &by())
        .unwrap();
    let reg = store.load().unwrap();
    assert!(reg.budgets.is_empty(), "{:?}", reg.budgets);
    let out = store.apply(vec![Change::AddBudget(tokens_per_day("acme", 7))], &by()).unwrap().outcomes;
    assert_eq!(out, vec![Outcome::BudgetCreated { id: "b3".into() }]);
    // A fresh open reads the same.
    drop(store);
    assert_eq!(b.open().load().unwrap().budgets["b3"].spec.amount, 7);
}
}

// ---- the gateway ---------------------------------------------------------

use maasctl::demo::upstream::{MockConfig, MockUpstream};
use maasctl::gateway::{Gateway, GatewayConfig, GatewayHandle};

const PROMPT: u64 = 13;
const COMPLETION: u64 = 29;
/// A day's tokens for workspace `acme`: spent after 24 answers of 42.
const BUDGET: u64 = 1000;
/// What it is raised to, to readmit the workspace.
const RAISED: u64 = 1_000_000;

/// Workspaces `acme` and `beta` with a key each, model `m` on the mock.
/// Returns (acme's secret, beta's secret).
fn seed(store: &dyn Store, upstream: &str) -> (String, String) {
    let (ka, _, sa) = key("acme", "a");
    let (kb, _, sb) = key("beta", "b");
    let changes = vec![
        workspace("acme"),
        workspace("beta"),
        ka,
        kb,
        Change::AddMarket(MarketEntry {
            name: "m".into(),
            provider: "Test".into(),
            tags: vec![],
            description: String::new(),
            published: true,
            input_price: None,
            output_price: None,
        }),
        Change::CreateModel(ModelSpec {
            name: "m".into(),
            cluster: "local".into(),
            model_id: "m-up".into(),
            endpoints: vec![Endpoint::new(upstream)],
            policy: Policy::RoundRobin,
            tags: vec![],
            fallbacks: vec![],
            completion_cap: None,
        }),
        Change::SetEnabled {
            name: "m".into(),
            enabled: true,
        },
    ];
    store.apply(changes, &by()).expect("seed applies");
    (sa, sb)
}

fn gateway(store: &Arc<dyn Store>) -> GatewayHandle {
    let cfg = GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        reload_poll: Duration::from_millis(50),
        report_interval: Duration::from_millis(200),
        stats_interval: Duration::from_millis(50),
        usage_flush: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    Gateway::start(cfg, store.clone()).expect("gateway starts")
}

/// One chat call: status, `Retry-After`, body.
async fn call(gw: &GatewayHandle, secret: &str) -> (u16, Option<u64>, serde_json::Value) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let res = http
        .post(format!("http://{}/v1/chat/completions", gw.local_addr()))
        .bearer_auth(secret)
        .json(&serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("the gateway answers");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, res.json().await.unwrap_or_default())
}

/// Call until the first answer that is not 200 (within a deadline):
/// how many 200s came before it, and it.
async fn until_refused(
    gw: &GatewayHandle,
    secret: &str,
) -> (u64, (u16, Option<u64>, serde_json::Value)) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ok = 0;
    loop {
        let answer = call(gw, secret).await;
        if answer.0 != 200 {
            return (ok, answer);
        }
        ok += 1;
        assert!(Instant::now() < deadline, "still admitted after {ok} calls");
    }
}

/// Seconds until the next UTC midnight, as of now.
fn to_midnight_secs() -> u64 {
    let now = now_ms();
    let (_, end) = BudgetPeriod::Day.bounds(now);
    ((end - now) as u64).div_ceil(1000)
}

on_both! {
fn a_spent_workspace_gets_429_insufficient_quota_until_its_budget_goes(b) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mock = MockUpstream::start(MockConfig {
            prompt_tokens: PROMPT,
            completion_tokens: COMPLETION,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let store = b.open();
        let (acme, beta) = seed(&*store, &format!("{}/v1", mock.base_url()));
        store
            .apply(vec![Change::AddBudget(tokens_per_day("acme", BUDGET))], &by())
            .unwrap();
        let gw = tokio::task::block_in_place(|| gateway(&store));

        let (ok, (status, retry, body)) = until_refused(&gw, &acme).await;
        let per = PROMPT + COMPLETION;
        eprintln!("admitted {ok} calls ({} tokens) against a budget of {BUDGET}", ok * per);
        assert!(ok * per >= BUDGET, "refused after {ok} answers ({} tokens), before the budget was spent", ok * per);
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["type"], "insufficient_quota", "{body}");
        assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        let (_, end) = BudgetPeriod::Day.bounds(now_ms());
        assert!(
            msg.contains("budget b1 of 1000 tokens per day for workspace acme is spent")
                && msg.contains(&format!("it resets at {}", budget::rfc3339(end))),
            "{msg}"
        );
        let retry = retry.expect("Retry-After");
        let want = to_midnight_secs();
        assert!(retry.abs_diff(want) <= 2, "Retry-After {retry}, midnight in {want}s");
        // Still refused; another workspace is not.
        assert_eq!(call(&gw, &acme).await.0, 429);
        assert_eq!(call(&gw, &beta).await.0, 200);

        // The budget is raised: admitted again within a couple of seconds.
        store
            .apply(
                vec![Change::UpdateBudget { id: "b1".into(), spec: tokens_per_day("acme", RAISED) }],
                &by(),
            )
            .unwrap();
        let t = Instant::now();
        loop {
            let (s, _, _) = call(&gw, &acme).await;
            if s == 200 {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(3), "still {s} {:?} after the budget was raised", t.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gw.shutdown().await;

        // The ledger counts the refusals as throttled, and the budget list
        // shows what the upstream reported.
        let rows = store.usage(0, i64::MAX).unwrap();
        let (mut tokens, mut throttled, mut answered) = (0, 0, 0);
        for r in rows.iter().filter(|r| r.workspace == "acme") {
            tokens += r.usage.prompt_tokens + r.usage.completion_tokens;
            throttled += r.usage.throttled;
            answered += r.usage.ok;
        }
        assert!(throttled >= 2, "refusals in the ledger: {throttled}");
        assert_eq!(tokens, answered * per);
        assert_eq!(answered, mock.hits() - 1, "every 200 of acme reached the upstream (one was beta's)");

        // `budget list` shows what the upstream reported as spent.
        let list = b.env.json(&["budget", "list"]);
        let b1 = &list[0];
        assert_eq!(b1["id"], "b1");
        assert_eq!(b1["spent"].as_u64(), Some(tokens), "{list}");
        assert_eq!(b1["left"].as_u64(), Some(RAISED - tokens), "{list}");
        let table = b.env.ok(&["budget", "list"]);
        assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("b1") && l.contains(&tokens.to_string())), "{table}");

        // Removed: the list is empty, and the gateway (were it running)
        // would have nothing to check.
        b.env.ok(&["budget", "rm", "b1"]);
        assert_eq!(b.env.json(&["budget", "list"]), serde_json::json!([]));
    });
}
}

// ---- the CLI -------------------------------------------------------------

/// A ledger row of today for `key` of `workspace`.
fn spent_today(
    workspace: &str,
    key: &str,
    prompt: u64,
    completion: u64,
    cost: u64,
) -> usage::UsageRow {
    usage::UsageRow {
        span: usage::Span::Minute,
        bucket_ms: usage::floor(now_ms(), usage::MINUTE_MS),
        key_id: key.into(),
        workspace: workspace.into(),
        model: "m".into(),
        usage: usage::Usage {
            requests: 1,
            ok: 1,
            prompt_tokens: prompt,
            completion_tokens: completion,
            cost_nanos: cost,
            ..Default::default()
        },
    }
}

on_both! {
fn the_cli_adds_lists_and_removes_budgets_locally_and_through_the_server(b) {
    let store = b.open();
    let (k, kid, _) = key("acme", "ci");
    store.apply(vec![workspace("acme"), workspace("beta"), k], &by()).unwrap();
    store
        .add_usage(&[
            spent_today("acme", &kid, 100, 50, 2_500_000_000),
            spent_today("acme", "key_other", 10, 5, 0),
            spent_today("beta", "key_b", 7, 0, 0),
        ])
        .unwrap();
    drop(store);
    let env = &b.env;

    let added = env.json(&["budget", "add", "--workspace", "acme", "--tokens", "1000", "--per", "day"]);
    assert_eq!((added["id"].as_str(), added["spent"].as_u64(), added["left"].as_u64()), (Some("b1"), Some(165), Some(835)), "{added}");
    let usd = env.ok(&["budget", "add", "--key", "ci", "--usd", "10", "--per", "month"]);
    assert!(usd.contains("added budget b2: $10.00 per month for api-key") && usd.contains("($2.50 spent"), "{usd}");

    // Refusals name the field or the flag.
    for (args, field) in [
        (vec!["budget", "add", "--workspace", "nope", "--tokens", "5", "--per", "day"], "workspace: no workspace named 'nope'"),
        (vec!["budget", "add", "--workspace", "acme", "--tokens", "0", "--per", "month"], "tokens: must be at least 1"),
        (vec!["budget", "add", "--workspace", "acme", "--usd", "ten", "--per", "day"], "--usd: 'ten' is not an amount"),
        (vec!["budget", "add", "--workspace", "acme", "--usd", "-5", "--per", "day"], "--usd: '-5' is not an amount"),
        (vec!["budget", "add", "--workspace", "acme", "--usd", "0", "--per", "day"], "usd: must be more than 0"),
        (vec!["budget", "add", "--key", "key_nope", "--tokens", "5", "--per", "day"], "key: no API key with id 'key_nope'"),
        (vec!["budget", "add", "--workspace", "acme", "--tokens", "5", "--per", "day"], "per: workspace acme already has a tokens budget per day (b1)"),
        (vec!["budget", "rm", "b9"], "id: no budget with id 'b9'"),
        (vec!["budget", "edit", "b1", "--usd", "3"], "--usd: budget b1 counts tokens"),
    ] {
        let err = env.fails(&args);
        assert!(err.contains(field), "{args:?}: {err}");
    }
    for (args, flag) in [
        (vec!["budget", "add", "--workspace", "acme", "--tokens", "5", "--per", "week"], "--per"),
        (vec!["budget", "add", "--workspace", "acme", "--key", "ci", "--tokens", "5", "--per", "day"], "--key"),
        (vec!["budget", "add", "--workspace", "acme", "--per", "day"], "--tokens"),
        (vec!["budget", "add", "--workspace", "acme", "--tokens", "-5", "--per", "day"], "--tokens"),
        (vec!["budget", "add", "--tokens", "5", "--per", "day"], "--workspace"),
    ] {
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(flag), "{args:?}: {err}");
    }

    let list = env.json(&["budget", "list"]);
    let rows: Vec<(&str, &str, u64, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["unit"].as_str().unwrap(), s["spent"].as_u64().unwrap(), s["left"].as_u64().unwrap()))
        .collect();
    assert_eq!(rows, vec![("b1", "tokens", 165, 835), ("b2", "usd", 2_500_000_000, 7_500_000_000)]);
    let table = env.ok(&["budget", "list"]);
    assert!(table.starts_with("ID") && table.contains("RESETS"), "{table}");
    assert!(table.contains("$2.50") && table.contains("$7.50") && table.contains("16%") && table.contains("25%"), "{table}");
    env.ok(&["budget", "edit", "b1", "--tokens", "2000"]);

    // The same through a server's admin API; the change is the token's.
    let serve_env = common::Env::new()
        .var("MAASCTL_STORE", &b.url())
        .var("MAASCTL_ADMIN_TOKEN", "budget-test-token-1234");
    let serve = common::Serve::start(&serve_env, &["--admin-listen", "127.0.0.1:0"]);
    let remote = common::Env::new()
        .var("MAASCTL_SERVER", &serve.admin())
        .var("MAASCTL_ADMIN_TOKEN", "budget-test-token-1234");
    assert_eq!(remote.json(&["budget", "list"]), env.json(&["budget", "list"]));
    assert_eq!(remote.json(&["budget", "list"])[0]["amount"].as_u64(), Some(2000));
    remote.ok(&["budget", "rm", "b2"]);
    let added = remote.json(&["budget", "add", "--workspace", "beta", "--usd", "1.5", "--per", "day"]);
    assert_eq!((added["id"].as_str(), added["amount"].as_u64()), (Some("b3"), Some(1_500_000_000)));
    let err = remote.fails(&["budget", "add", "--workspace", "nope", "--tokens", "5", "--per", "day"]);
    assert!(err.contains("workspace: no workspace named 'nope'"), "{err}");
    drop(serve);
    let trail = env.json(&["audit", "--entity", "budget/b2"]);
    assert_eq!(trail.as_array().map(Vec::len), Some(2), "added, removed: {trail}");
}
}

#[test]
fn apply_and_export_carry_budgets_matched_without_ids() {
    let env = common::Env::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("budgets.yaml");
    let write = |tokens: u64| {
        std::fs::write(
            &file,
            format!(
                "workspaces:\n- name: acme\n  keys:\n  - name: ci\nbudgets:\n- workspace: acme\n  tokens: {tokens}\n  per: day\n- workspace: acme\n  key: ci\n  usd: 12.5\n  per: month\n"
            ),
        )
        .unwrap();
    };
    write(1000);
    let first = env.json(&["apply", "-f", file.to_str().unwrap()]);
    let budgets: Vec<&serde_json::Value> = first["report"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "budget")
        .collect();
    assert_eq!(budgets.len(), 2, "{first}");
    assert!(budgets.iter().all(|r| r["action"] == "created"), "{first}");
    let list = env.json(&["budget", "list"]);
    assert_eq!(list[0]["amount"].as_u64(), Some(1000));
    assert_eq!(list[1]["amount"].as_u64(), Some(12_500_000_000));
    assert_eq!(list[1]["target"], "api-key");

    let exported = env.ok(&["export"]);
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&exported).unwrap();
    assert_eq!(
        doc["budgets"][0]["tokens"].as_u64(),
        Some(1000),
        "{exported}"
    );
    assert_eq!(doc["budgets"][1]["key"].as_str(), Some("ci"), "{exported}");
    assert_eq!(doc["budgets"][1]["usd"].as_f64(), Some(12.5), "{exported}");

    let again = env.json(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(again["changed"], false, "{again}");
    write(2000);
    let changed = env.json(&["apply", "-f", file.to_str().unwrap()]);
    let b = changed["report"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "budget" && r["action"] == "changed")
        .cloned();
    assert!(b.is_some(), "{changed}");
    let list = env.json(&["budget", "list"]);
    assert_eq!(
        (list[0]["id"].as_str(), list[0]["amount"].as_u64()),
        (Some("b1"), Some(2000)),
        "updated in place"
    );

    std::fs::write(
        &file,
        "budgets:\n- workspace: acme\n  tokens: 5\n  usd: 1\n  per: day\n",
    )
    .unwrap();
    let err = env.fails(&["apply", "-f", file.to_str().unwrap()]);
    assert!(err.contains("budgets[0].tokens"), "{err}");
}

// ---- the console ---------------------------------------------------------

#[path = "support/tui_fixtures.rs"]
mod fixtures;

mod console {
    use super::*;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use maasctl::client::RegistryView;
    use maasctl::tui::action::{Done, Op, Reply};
    use maasctl::tui::app::App;
    use maasctl::tui::chrome;
    use maasctl::tui::ids::ViewId;
    use maasctl::tui::theme::Theme;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ratatui::layout::Rect;

    use super::fixtures::{self, NOW_MS};

    fn press(app: &mut App, code: KeyCode) {
        app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
    }

    fn screen(app: &mut App, w: u16, h: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        app.layout(Rect::new(0, 0, w, h));
        t.draw(|f| chrome::render(app, f)).unwrap();
        format!("{}", t.backend())
    }

    /// The fixture console with three budgets: acme's tokens per day
    /// (spent), key acme/prod's dollars per month (62% used), research's
    /// tokens per month (barely touched).
    fn app_with_budgets() -> (App, Vec<budget::BudgetStatus>) {
        let mut app = fixtures::app(0, Theme::colored());
        let mut reg = app.data.registry().clone();
        reg.apply_all(
            vec![
                Change::AddBudget(tokens_per_day("acme", 50_000)),
                Change::AddBudget(BudgetSpec {
                    target: RuleTarget::ApiKey,
                    subject: "key_0000a001".into(),
                    unit: BudgetUnit::Usd,
                    amount: budget::parse_usd("25").unwrap(),
                    period: BudgetPeriod::Month,
                }),
                Change::AddBudget(BudgetSpec {
                    target: RuleTarget::Workspace,
                    subject: "research".into(),
                    unit: BudgetUnit::Tokens,
                    amount: 2_000_000,
                    period: BudgetPeriod::Month,
                }),
            ],
            NOW_MS / 1000,
        )
        .unwrap();
        let row = |ws: &str, key: &str, tokens: u64, cost: u64| usage::UsageRow {
            span: usage::Span::Hour,
            bucket_ms: usage::floor(NOW_MS, usage::HOUR_MS),
            key_id: key.into(),
            workspace: ws.into(),
            model: "DeepSeek-V3".into(),
            usage: usage::Usage {
                prompt_tokens: tokens,
                cost_nanos: cost,
                ..Default::default()
            },
        };
        let rows = vec![
            row("acme", "key_0000a001", 40_000, 15_500_000_000),
            row("acme", "key_0000a002", 12_500, 0),
            row("research", "key_0000b001", 3_210, 0),
        ];
        let statuses = budget::status(reg.budgets.values(), &rows, NOW_MS);
        let view = Arc::new(RegistryView {
            reports: app.data.view.reports.clone(),
            registry: Arc::new(reg),
        });
        app.on_registry(view);
        (app, statuses)
    }

    /// Answer the pending budgets call; panics if there is none.
    fn answer(app: &mut App, statuses: &[budget::BudgetStatus]) {
        let reqs = app.take_requests();
        let req = reqs
            .iter()
            .find(|r| r.op == Op::Budgets)
            .unwrap_or_else(|| panic!("a budgets call in {reqs:?}"));
        app.on_reply(Reply {
            id: req.id,
            result: Ok(Done::Budgets(statuses.to_vec())),
        });
    }

    #[test]
    fn the_budgets_view_shows_spent_left_and_the_reset() {
        let (mut app, statuses) = app_with_budgets();
        for c in ":budgets".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.current(), ViewId::Budgets);
        // Before the first answer: the budgets, their spending unknown.
        let before = screen(&mut app, 80, 24);
        assert!(before.contains("b1") && before.contains('…'), "{before}");
        answer(&mut app, &statuses);
        let s = screen(&mut app, 80, 24);
        insta::assert_snapshot!("budgets_80x24", s);
        assert!(
            s.contains("acme/prod") && s.contains("$15.50") && s.contains("$9.50"),
            "{s}"
        );
        assert!(s.contains("100%") && s.contains(" 62%"), "{s}");
        // One call at a time; asked again on the next poll.
        app.poll_budgets();
        app.poll_budgets();
        let calls = app
            .take_requests()
            .into_iter()
            .filter(|r| r.op == Op::Budgets)
            .count();
        assert_eq!(calls, 1);
    }

    #[test]
    fn d_removes_a_budget_after_asking() {
        let (mut app, statuses) = app_with_budgets();
        app.jump(ViewId::Budgets);
        answer(&mut app, &statuses);
        press(&mut app, KeyCode::Char('d'));
        let s = screen(&mut app, 80, 24);
        assert!(s.contains("Delete budget b1?"), "{s}");
        press(&mut app, KeyCode::Char('y'));
        let reqs = app.take_requests();
        assert!(
            reqs.iter()
                .any(|r| r.op == Op::Apply(vec![Change::DeleteBudget { id: "b1".into() }])),
            "{reqs:?}"
        );
    }

    #[test]
    fn a_adds_a_budget_through_a_form_checked_like_the_cli() {
        let (mut app, statuses) = app_with_budgets();
        app.jump(ViewId::Budgets);
        answer(&mut app, &statuses);
        press(&mut app, KeyCode::Char('a'));
        let s = screen(&mut app, 80, 24);
        insta::assert_snapshot!("budget_form_80x24", s);
        for _ in 0..3 {
            press(&mut app, KeyCode::Tab);
        }
        assert_eq!(
            app.form().unwrap().focused().key,
            "amount",
            "the key field is hidden for a workspace"
        );
        for _ in 0.."1000000".len() {
            press(&mut app, KeyCode::Backspace);
        }
        press(&mut app, KeyCode::Char('0'));
        app.on_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
        assert!(
            app.take_requests().is_empty(),
            "nothing is sent until valid"
        );
        let f = app.form().unwrap();
        let err = f.error_for(f.field("amount").unwrap()).unwrap_or_default();
        assert!(err.contains("must be at least 1"), "{err}");
        // acme already has a daily token budget (b1): the registry says so.
        press(&mut app, KeyCode::Backspace);
        for c in "5000".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        app.on_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
        let f = app.form().unwrap();
        let err = f.error_for(f.field("per").unwrap()).unwrap_or_default();
        assert!(
            err.contains("already has a tokens budget per day (b1)"),
            "{err}"
        );
        // Per month instead (the refusal put the focus on `per`): sent.
        assert_eq!(app.form().unwrap().focused().key, "per");
        press(&mut app, KeyCode::Right);
        app.on_key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL));
        let reqs = app.take_requests();
        let want = Change::AddBudget(BudgetSpec {
            target: RuleTarget::Workspace,
            subject: "acme".into(),
            unit: BudgetUnit::Tokens,
            amount: 5000,
            period: BudgetPeriod::Month,
        });
        assert!(
            reqs.iter().any(|r| r.op == Op::Apply(vec![want.clone()])),
            "{reqs:?}"
        );
    }

    #[test]
    fn budgets_are_not_asked_for_when_not_shown() {
        let (mut app, _) = app_with_budgets();
        app.poll_budgets();
        assert!(!app.take_requests().iter().any(|r| r.op == Op::Budgets));
    }
}

fn ledger_row(bucket_ms: i64, key: &str, model: &str, prompt: u64, cost: u64) -> usage::UsageRow {
    usage::UsageRow {
        span: usage::Span::Minute,
        bucket_ms,
        key_id: key.into(),
        workspace: "acme".into(),
        model: model.into(),
        usage: usage::Usage {
            requests: 1,
            ok: 1,
            prompt_tokens: prompt,
            completion_tokens: 1,
            cost_nanos: cost,
            ..Default::default()
        },
    }
}

on_both! {
fn the_store_sums_a_period_per_key_in_two_parts(b) {
    let store = b.open();
    let (since, split) = (60_000_000, 120_000_000);
    store
        .add_usage(&[
            ledger_row(since - 60_000, "k1", "m1", 1000, 1000), // before: not read
            ledger_row(since, "k1", "m1", 10, 1),
            ledger_row(since + 60_000, "k1", "m2", 20, 2),
            ledger_row(split, "k1", "m1", 300, 30),
            ledger_row(split + 60_000, "k2", "m1", 4000, 400),
        ])
        .unwrap();
    let mut got: Vec<(String, i64, u64, u64)> = store
        .usage_totals(since, split)
        .unwrap()
        .into_iter()
        .map(|r| (r.key_id, r.bucket_ms, r.usage.prompt_tokens + r.usage.completion_tokens, r.usage.cost_nanos))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("k1".into(), since, 32, 3),
            ("k1".into(), split, 301, 30),
            ("k2".into(), split, 4001, 400),
        ]
    );
}
}
