//! Workspaces: their shape, and adding, editing and deleting them (refused
//! while rules use one or it has active keys; its revoked keys go with it).

use super::checks::{existing, name_free, not_found, unused_by_rules};
use super::{Outcome, Registry, Touched};
use crate::domain::entities::Workspace;
use crate::domain::error::{DomainError, FieldError};
use crate::domain::{limits, validate};

const WHAT: &str = "workspace";

/// The shape of a new workspace: its name and description.
pub fn validate(name: &str, description: &str) -> Vec<FieldError> {
    let mut out = Vec::new();
    validate::name("name", name, &mut out);
    out.extend(validate_description(description));
    out
}

/// A workspace's description: free text within [`limits::DESCRIPTION`].
pub fn validate_description(description: &str) -> Vec<FieldError> {
    let mut out = Vec::new();
    limits::DESCRIPTION.length("description", description, &mut out);
    out
}

impl Registry {
    pub(super) fn add_workspace(
        &mut self,
        name: String,
        description: String,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        DomainError::check(validate(&name, &description))?;
        name_free(&self.workspaces, WHAT, &name)?;
        touched.workspaces.insert(name.clone());
        self.workspaces.insert(
            name.clone(),
            Workspace {
                name,
                description,
                created: now,
            },
        );
        Ok(Outcome::Done)
    }

    pub(super) fn update_workspace(
        &mut self,
        name: String,
        description: String,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        DomainError::check(validate_description(&description))?;
        let w = self
            .workspaces
            .get_mut(&name)
            .ok_or_else(|| not_found("name", WHAT, &name))?;
        if w.description == description {
            return Ok(Outcome::Unchanged);
        }
        w.description = description;
        touched.workspaces.insert(name);
        Ok(Outcome::Done)
    }

    pub(super) fn delete_workspace(
        &mut self,
        name: String,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        existing(&self.workspaces, "name", WHAT, &name)?;
        unused_by_rules(
            "name",
            &format!("workspace '{name}'"),
            &self.rules_using_workspace(&name),
        )?;
        self.unused_by_budgets("name", crate::domain::RuleTarget::Workspace, &name)?;
        let live: Vec<&str> = self
            .keys
            .values()
            .filter(|k| k.workspace == name && !k.is_revoked())
            .map(|k| k.id.as_str())
            .collect();
        if !live.is_empty() {
            return Err(DomainError::refused(
                "name",
                format!(
                    "workspace '{name}' still has active keys ({}); revoke them first",
                    live.join(", ")
                ),
            ));
        }
        let revoked: Vec<String> = self
            .keys
            .values()
            .filter(|k| k.workspace == name)
            .map(|k| k.id.clone())
            .collect();
        for id in revoked {
            self.keys.remove(&id);
            touched.keys.insert(id);
        }
        self.workspaces.remove(&name);
        touched.workspaces.insert(name);
        Ok(Outcome::Done)
    }
}
