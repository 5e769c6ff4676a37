//! Budgets in the registry: adding, changing and removing them. A budget
//! names an existing workspace, or an existing key that is not revoked;
//! there is at most one budget per (subject, unit, period), so a file
//! (`apply -f`) can match its budgets to the stored ones without ids.

use super::{Outcome, Registry, Touched};
use crate::domain::budget::{self, Budget, BudgetSpec, subject_field};
use crate::domain::entities::RuleTarget;
use crate::domain::error::{DomainError, FieldError};

impl Registry {
    /// Context checks: the subject exists; no other budget (than `except`)
    /// has the same subject, unit and period.
    pub fn check_budget(&self, spec: &BudgetSpec, except: Option<&str>) -> Result<(), DomainError> {
        DomainError::check(budget::validate(spec))?;
        let field = subject_field(spec.target);
        match spec.target {
            RuleTarget::Workspace if !self.workspaces.contains_key(&spec.subject) => {
                return Err(DomainError::not_found(
                    field,
                    format!("no workspace named '{}'", spec.subject),
                ));
            }
            RuleTarget::ApiKey => match self.keys.get(&spec.subject) {
                None => {
                    return Err(DomainError::not_found(
                        field,
                        format!("no API key with id '{}'", spec.subject),
                    ));
                }
                Some(k) if k.is_revoked() => {
                    return Err(DomainError::invalid(
                        field,
                        format!("key '{}' is revoked", spec.subject),
                    ));
                }
                Some(_) => {}
            },
            _ => {}
        }
        if let Some(other) = self.budgets.values().find(|b| {
            Some(b.id.as_str()) != except
                && b.spec.target == spec.target
                && b.spec.subject == spec.subject
                && b.spec.unit == spec.unit
                && b.spec.period == spec.period
        }) {
            return Err(DomainError::conflict(
                "per",
                format!(
                    "{} already has a {} budget per {} ({}); change or remove it instead",
                    spec.subject_label(),
                    spec.unit,
                    spec.period,
                    other.id
                ),
            ));
        }
        Ok(())
    }

    /// The budget `id`, or not-found on `id`.
    pub fn budget(&self, id: &str) -> Result<&Budget, DomainError> {
        self.budgets
            .get(id)
            .ok_or_else(|| DomainError::not_found("id", format!("no budget with id '{id}'")))
    }

    /// Budgets whose subject is `target` `subject`.
    pub fn budgets_of(&self, target: RuleTarget, subject: &str) -> Vec<&Budget> {
        self.budgets
            .values()
            .filter(|b| b.spec.target == target && b.spec.subject == subject)
            .collect()
    }

    /// Refuse removing a workspace or key while budgets name it.
    pub(super) fn unused_by_budgets(
        &self,
        field: &str,
        target: RuleTarget,
        subject: &str,
    ) -> Result<(), DomainError> {
        let ids: Vec<&str> = self
            .budgets_of(target, subject)
            .into_iter()
            .map(|b| b.id.as_str())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        Err(DomainError::refused(
            field,
            format!(
                "{} {subject} has budgets ({}); remove them first",
                target.as_str(),
                ids.join(", ")
            ),
        ))
    }

    pub(super) fn add_budget(
        &mut self,
        spec: BudgetSpec,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        self.check_budget(&spec, None)?;
        let n = self.next_budget_id.max(1);
        self.next_budget_id = n + 1;
        let id = format!("b{n}");
        self.budgets.insert(
            id.clone(),
            Budget {
                id: id.clone(),
                spec,
            },
        );
        touched.budgets.insert(id.clone());
        Ok(Outcome::BudgetCreated { id })
    }

    pub(super) fn update_budget(
        &mut self,
        id: String,
        spec: BudgetSpec,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        if self.budget(&id)?.spec == spec {
            return Ok(Outcome::Unchanged);
        }
        self.check_budget(&spec, Some(&id))?;
        if let Some(b) = self.budgets.get_mut(&id) {
            b.spec = spec;
        }
        touched.budgets.insert(id);
        Ok(Outcome::Done)
    }

    pub(super) fn delete_budget(
        &mut self,
        id: String,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        self.budget(&id)?;
        self.budgets.remove(&id);
        touched.budgets.insert(id);
        Ok(Outcome::Done)
    }
}

/// A budget coming back in a rollback: its shape, and its subject exists
/// (a key revoked since is kept: it spends nothing now).
pub(super) fn restored_errors(reg: &Registry, b: &Budget) -> Vec<FieldError> {
    let mut out = budget::validate(&b.spec);
    let s = &b.spec;
    let exists = match s.target {
        RuleTarget::Workspace => reg.workspaces.contains_key(&s.subject),
        RuleTarget::ApiKey => reg.keys.contains_key(&s.subject),
    };
    if !exists {
        out.push(FieldError::new(
            subject_field(s.target),
            format!("no {} '{}'", s.target.as_str(), s.subject),
        ));
    }
    out
}
