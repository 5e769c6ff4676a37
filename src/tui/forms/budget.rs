//! The budget form (`:budgets`, `a`): target, workspace, key (only that
//! workspace's active keys), unit (tokens or usd), amount, period. The
//! registry's errors on `tokens` / `usd` land on the amount field.

use crate::domain::budget::{self, BudgetPeriod, BudgetSpec, BudgetUnit};
use crate::domain::{Change, FieldError, Registry, RuleTarget};
use crate::tui::action::Op;

use super::form::{Behaviour, Choice, Field, Form, FormKind};

fn key_choices(reg: &Registry, workspace: &str) -> Vec<Choice> {
    reg.keys
        .values()
        .filter(|k| k.workspace == workspace && !k.is_revoked())
        .map(|k| Choice {
            value: k.id.clone(),
            label: format!("{} ({})", k.id, k.name),
        })
        .collect()
}

/// A new budget: a workspace's tokens per day to start with.
pub fn create(reg: &Registry) -> Form {
    let workspace = reg.workspaces.keys().next().cloned().unwrap_or_default();
    let same = |v: &[&str]| v.iter().map(|s| Choice::same(s)).collect::<Vec<_>>();
    let fields = vec![
        Field::select(
            "target",
            "Target",
            same(&[RuleTarget::Workspace.as_str(), RuleTarget::ApiKey.as_str()]),
            Some(RuleTarget::Workspace.as_str()),
        ),
        Field::select(
            "workspace",
            "Workspace",
            reg.workspaces.keys().map(|w| Choice::same(w)).collect(),
            Some(&workspace),
        ),
        Field::select("key", "API key", key_choices(reg, &workspace), None),
        Field::select(
            "unit",
            "Counting",
            same(&[BudgetUnit::Tokens.as_str(), BudgetUnit::Usd.as_str()]),
            Some(BudgetUnit::Tokens.as_str()),
        ),
        Field::text("amount", "Amount", "1000000"),
        Field::select(
            "per",
            "Per (UTC)",
            same(&[BudgetPeriod::Day.as_str(), BudgetPeriod::Month.as_str()]),
            Some(BudgetPeriod::Day.as_str()),
        ),
    ];
    let behaviour = Behaviour {
        follow,
        ..Behaviour::plain(build)
    };
    Form::new((FormKind::Budget, behaviour), "Add budget", fields, reg)
}

/// The key list follows the workspace; no key under target workspace.
fn follow(form: &mut Form, reg: &Registry) {
    let ws = form.choice("workspace").unwrap_or_default().to_string();
    form.set_options("key", key_choices(reg, &ws));
    let by_key = form.choice("target") == Some(RuleTarget::ApiKey.as_str());
    form.set_hidden("key", !by_key);
}

fn build(form: &Form, reg: &Registry) -> Result<Op, Vec<FieldError>> {
    let mut errs = Vec::new();
    let target: RuleTarget = form
        .choice("target")
        .and_then(|t| t.parse().ok())
        .unwrap_or(RuleTarget::Workspace);
    let unit: BudgetUnit = form
        .choice("unit")
        .and_then(|u| u.parse().ok())
        .unwrap_or(BudgetUnit::Tokens);
    let text = form.text("amount").trim();
    let amount = match unit {
        BudgetUnit::Tokens => text
            .parse::<u64>()
            .map_err(|_| format!("'{text}' is not a whole number of tokens")),
        BudgetUnit::Usd => budget::parse_usd(text),
    };
    let subject = match target {
        RuleTarget::Workspace => form.choice("workspace").unwrap_or_default().to_string(),
        RuleTarget::ApiKey => form.choice("key").unwrap_or_default().to_string(),
    };
    if target == RuleTarget::ApiKey && subject.is_empty() {
        errs.push(FieldError::new(
            "key",
            "this workspace has no active key (:keys, c)",
        ));
    }
    let spec = BudgetSpec {
        target,
        subject,
        unit,
        amount: *amount.as_ref().unwrap_or(&1),
        period: form
            .choice("per")
            .and_then(|p| p.parse().ok())
            .unwrap_or(BudgetPeriod::Day),
    };
    if let Err(problem) = &amount {
        errs.push(FieldError::new("amount", problem.clone()));
    }
    if errs.is_empty()
        && let Err(e) = reg.check_budget(&spec, None)
    {
        errs.extend(e.errors.into_iter().map(|mut e| {
            if e.field == "tokens" || e.field == "usd" {
                e.field = "amount".into();
            }
            e
        }));
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Op::Apply(vec![Change::AddBudget(spec)]))
}
