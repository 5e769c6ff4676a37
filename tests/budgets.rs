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
