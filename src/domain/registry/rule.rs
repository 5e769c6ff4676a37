//! Rate-limit rules of a model: their shape, and adding, editing and
//! deleting them. A rule names an existing workspace, and (target api-key)
//! a live key of that workspace.

use super::checks::{has_error, missing};
use super::{Outcome, Registry, Touched};
use crate::domain::entities::{Rule, RuleSpec, RuleTarget};
use crate::domain::error::{DomainError, ErrorKind, FieldError};
use crate::domain::limits;

/// Longest rule window: 31 days.
pub const MAX_DURATION_SECS: u32 = 31 * 24 * 3600;

/// The shape of a rule: numbers in range, key given exactly when targeted.
pub fn validate(spec: &RuleSpec) -> Vec<FieldError> {
    let mut out = Vec::new();
    if spec.workspace.trim().is_empty() {
        out.push(FieldError::new("workspace", "must not be empty"));
    } else {
        limits::NAME.length("workspace", &spec.workspace, &mut out);
    }
    if let Some(k) = &spec.key_id {
        limits::KEY_ID.length("key", k, &mut out);
    }
    match (spec.target, &spec.key_id) {
        (RuleTarget::ApiKey, None) => out.push(FieldError::new("key", "is required when the target is api-key")),
        (RuleTarget::ApiKey, Some(k)) if k.trim().is_empty() => {
            out.push(FieldError::new("key", "is required when the target is api-key"))
        }
        (RuleTarget::Workspace, Some(_)) => out.push(FieldError::new(
            "key",
            "must be left out when the target is workspace (the rule counts all the workspace's keys)",
        )),
        _ => {}
    }
    if spec.limit < 1 {
        out.push(FieldError::new(
            "limit",
            format!(
                "{} is less than 1; a rule admits at least 1 {}",
                spec.limit,
                match spec.unit {
                    crate::domain::RuleUnit::Requests => "request",
                    crate::domain::RuleUnit::Tokens => "token",
                }
            ),
        ));
    }
    if spec.duration_secs < 1 {
        out.push(FieldError::new(
            "duration",
            format!("{} is less than 1 second", spec.duration_secs),
        ));
    } else if spec.duration_secs > MAX_DURATION_SECS {
        out.push(FieldError::new(
            "duration",
            format!(
                "{} seconds is longer than the maximum of 31 days ({MAX_DURATION_SECS})",
                spec.duration_secs
            ),
        ));
    }
    out
}

/// `model 'M' has no rule #7`.
fn no_rule(model: &str, id: u64) -> DomainError {
    DomainError::not_found("rule", format!("model '{model}' has no rule #{id}"))
}

impl Registry {
    /// Context checks of a rule: its workspace and key exist and belong together.
    pub fn check_rule(&self, spec: &RuleSpec) -> Result<(), DomainError> {
        let mut errs = validate(spec);
        let (workspace_ok, key_ok) = (!has_error(&errs, "workspace"), !has_error(&errs, "key"));
        if workspace_ok && !self.workspaces.contains_key(&spec.workspace) {
            errs.push(FieldError::new(
                "workspace",
                missing("workspace", &spec.workspace),
            ));
        }
        if let (RuleTarget::ApiKey, Some(kid), true) = (spec.target, &spec.key_id, key_ok) {
            match self.keys.get(kid) {
                None => errs.push(FieldError::new(
                    "key",
                    format!("no API key with id '{kid}'"),
                )),
                Some(k) if k.workspace != spec.workspace => errs.push(FieldError::new(
                    "key",
                    format!(
                        "key '{kid}' belongs to workspace '{}', not '{}'",
                        k.workspace, spec.workspace
                    ),
                )),
                Some(k) if k.is_revoked() => {
                    errs.push(FieldError::new("key", format!("key '{kid}' is revoked")))
                }
                Some(_) => {}
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            let kind = if errs.iter().any(|e| e.problem.starts_with("no ")) && errs.len() == 1 {
                ErrorKind::NotFound
            } else {
                ErrorKind::Invalid
            };
            Err(DomainError { kind, errors: errs })
        }
    }

    /// Where rule `id` is in `model`'s rules.
    fn rule_position(&self, model: &str, id: u64) -> Result<usize, DomainError> {
        self.model(model)?
            .rules
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| no_rule(model, id))
    }

    pub(super) fn add_rule(
        &mut self,
        model: String,
        spec: RuleSpec,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        self.model(&model)?;
        self.check_rule(&spec)?;
        let id = self.next_rule_id.max(1);
        self.next_rule_id = id + 1;
        self.touch_model(&model, now, touched)
            .rules
            .push(Rule { id, spec });
        Ok(Outcome::RuleCreated { id })
    }

    pub(super) fn update_rule(
        &mut self,
        model: String,
        id: u64,
        spec: RuleSpec,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        let pos = self.rule_position(&model, id)?;
        if self.models[&model].rules[pos].spec == spec {
            return Ok(Outcome::Unchanged);
        }
        self.check_rule(&spec)?;
        self.touch_model(&model, now, touched).rules[pos].spec = spec;
        Ok(Outcome::Done)
    }

    pub(super) fn delete_rule(
        &mut self,
        model: String,
        id: u64,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        let pos = self.rule_position(&model, id)?;
        self.touch_model(&model, now, touched).rules.remove(pos);
        Ok(Outcome::Done)
    }
}
