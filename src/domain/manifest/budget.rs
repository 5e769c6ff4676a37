//! Budgets in a file: `budgets: [{workspace, key, tokens | usd, per}]`
//! (docs/usage.md "Budgets"), without ids: matched to the stored budgets by
//! subject, unit and period (the registry keeps at most one of each), so
//! a changed amount updates the budget in place. A key is named within its
//! workspace, like in rules; without `key` the budget is the workspace's.

use serde::{Deserialize, Serialize};

use super::{ApplyAction, Planner};
use crate::domain::budget::{self, Budget, BudgetPeriod, BudgetSpec, BudgetUnit};
use crate::domain::entities::RuleTarget;
use crate::domain::error::DomainError;
use crate::domain::limits::shown;
use crate::domain::registry::{Change, Registry};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetDecl {
    pub workspace: String,
    /// A key's name within `workspace`: the budget is that key's alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Tokens (prompt + completion) per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// US dollars per period (at most 9 decimals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    pub per: BudgetPeriod,
}

// The file's numbers are finite (YAML/TOML), so equality is total.
impl Eq for BudgetDecl {}

impl BudgetDecl {
    /// A stored budget as a file declares it (a key by name).
    fn of(b: &Budget, reg: &Registry) -> Self {
        let s = &b.spec;
        let (workspace, key) = match s.target {
            RuleTarget::Workspace => (s.subject.clone(), None),
            RuleTarget::ApiKey => match reg.keys.get(&s.subject) {
                Some(k) => (k.workspace.clone(), Some(k.name.clone())),
                None => (String::new(), Some(s.subject.clone())),
            },
        };
        let (tokens, usd) = match s.unit {
            BudgetUnit::Tokens => (Some(s.amount), None),
            BudgetUnit::Usd => (None, Some(s.amount as f64 / budget::NANOS_PER_USD as f64)),
        };
        Self {
            workspace,
            key,
            tokens,
            usd,
            per: s.period,
        }
    }
}

/// Every budget of `reg`, in id order.
pub(super) fn export(reg: &Registry) -> Vec<BudgetDecl> {
    let mut all: Vec<&Budget> = reg.budgets.values().collect();
    all.sort_by_key(|b| budget::id_number(&b.id));
    all.into_iter().map(|b| BudgetDecl::of(b, reg)).collect()
}

impl Planner {
    /// The spec a file budget declares: its key name becomes the key's id.
    fn budget_spec(&self, path: &str, d: &BudgetDecl) -> Result<BudgetSpec, DomainError> {
        let (unit, amount) = match (d.tokens, d.usd) {
            (Some(n), None) => (BudgetUnit::Tokens, n),
            (None, Some(x)) => (
                BudgetUnit::Usd,
                budget::parse_usd(&x.to_string())
                    .map_err(|e| DomainError::invalid(format!("{path}.usd"), e))?,
            ),
            _ => {
                return Err(DomainError::invalid(
                    format!("{path}.tokens"),
                    "give exactly one of tokens and usd",
                ));
            }
        };
        let (target, subject) = match &d.key {
            None => (RuleTarget::Workspace, d.workspace.clone()),
            Some(name) => {
                let id = self
                    .scratch
                    .keys
                    .values()
                    .find(|k| k.workspace == d.workspace && k.name == *name)
                    .map(|k| k.id.clone())
                    .ok_or_else(|| {
                        DomainError::not_found(
                            format!("{path}.key"),
                            format!(
                                "workspace '{}' has no key named '{}' (declare it under the workspace's keys)",
                                shown(&d.workspace),
                                shown(name)
                            ),
                        )
                    })?;
                (RuleTarget::ApiKey, id)
            }
        };
        Ok(BudgetSpec {
            target,
            subject,
            unit,
            amount,
            period: d.per,
        })
    }

    pub(super) fn budget(&mut self, path: &str, d: &BudgetDecl) -> Result<(), DomainError> {
        let spec = self.budget_spec(path, d)?;
        let name = format!(
            "{} {} {} per {}",
            spec.target, spec.subject, spec.unit, spec.period
        );
        let found = self
            .scratch
            .budgets
            .values()
            .find(|b| {
                b.spec.target == spec.target
                    && b.spec.subject == spec.subject
                    && b.spec.unit == spec.unit
                    && b.spec.period == spec.period
            })
            .cloned();
        match found {
            None => {
                self.push(path, Change::AddBudget(spec))?;
                self.note("budget", name, ApplyAction::Created, vec![]);
            }
            Some(b) if b.spec == spec => {
                self.note("budget", name, ApplyAction::Unchanged, vec![]);
            }
            Some(b) => {
                self.push(path, Change::UpdateBudget { id: b.id, spec })?;
                self.note("budget", name, ApplyAction::Changed, vec!["amount".into()]);
            }
        }
        Ok(())
    }
}
