//! The checks several entities share, written once: a name refers to an
//! existing entity, a new name is free, and nothing is removed while rules
//! use it. Each keeps the words every caller's tests and docs rely on.

use std::collections::BTreeMap;

use super::Registry;
use crate::domain::entities::{Model, Rule};
use crate::domain::error::{DomainError, FieldError};
use crate::domain::limits::shown;

/// The words of every missing reference: `no cluster named 'eu'` (a name
/// too long to exist is cut).
pub(super) fn missing(what: &str, name: &str) -> String {
    format!("no {what} named '{}'", shown(name))
}

/// Whether `field` already has a shape error: the registry checks a
/// reference (does the cluster exist?) only when its shape is right, so
/// each field gets one error.
pub(super) fn has_error(errs: &[FieldError], field: &str) -> bool {
    errs.iter().any(|e| e.field == field)
}

/// Not-found on `field` for the `what` called `name`.
pub(super) fn not_found(field: &str, what: &str, name: &str) -> DomainError {
    DomainError::not_found(field, missing(what, name))
}

/// The entity `name` of `map`, or not-found on `field`.
pub(super) fn existing<'a, T>(
    map: &'a BTreeMap<String, T>,
    field: &str,
    what: &str,
    name: &str,
) -> Result<&'a T, DomainError> {
    map.get(name).ok_or_else(|| not_found(field, what, name))
}

/// Refuse a new name `map` already holds: conflict on `name`.
pub(super) fn name_free<T>(
    map: &BTreeMap<String, T>,
    what: &str,
    name: &str,
) -> Result<(), DomainError> {
    if map.contains_key(name) {
        return Err(DomainError::conflict(
            "name",
            format!("a {what} named '{name}' already exists"),
        ));
    }
    Ok(())
}

/// Refuse removing `subject` (`workspace 'acme'`) while `rules` use it,
/// naming them.
pub(super) fn unused_by_rules(
    field: &str,
    subject: &str,
    rules: &[(&Model, &Rule)],
) -> Result<(), DomainError> {
    if rules.is_empty() {
        return Ok(());
    }
    Err(DomainError::refused(
        field,
        format!(
            "{subject} is used by {}; delete those rules first",
            describe_rules(rules)
        ),
    ))
}

/// `model M rule #1 (…), …`: the first five, and how many more.
fn describe_rules(rules: &[(&Model, &Rule)]) -> String {
    let mut s: Vec<String> = rules
        .iter()
        .take(5)
        .map(|(m, r)| format!("model {} {}", m.spec.name, r.describe()))
        .collect();
    if rules.len() > 5 {
        s.push(format!("and {} more", rules.len() - 5));
    }
    s.join(", ")
}

impl Registry {
    /// Every rule with the model it belongs to.
    pub(super) fn all_rules(&self) -> impl Iterator<Item = (&Model, &Rule)> {
        self.models
            .values()
            .flat_map(|m| m.rules.iter().map(move |r| (m, r)))
    }

    /// Rules (model, rule) that name `workspace` (as their workspace or via a key of it).
    pub fn rules_using_workspace(&self, workspace: &str) -> Vec<(&Model, &Rule)> {
        self.all_rules()
            .filter(|(_, r)| r.spec.workspace == workspace)
            .collect()
    }

    pub fn rules_using_key(&self, key_id: &str) -> Vec<(&Model, &Rule)> {
        self.all_rules()
            .filter(|(_, r)| r.spec.key_id.as_deref() == Some(key_id))
            .collect()
    }

    /// Find a rule by id anywhere.
    pub fn rule(&self, id: u64) -> Option<(&Model, &Rule)> {
        self.all_rules().find(|(_, r)| r.id == id)
    }

    /// Models whose entry cluster is `cluster`.
    pub fn models_in_cluster(&self, cluster: &str) -> Vec<String> {
        self.models
            .values()
            .filter(|m| m.spec.cluster == cluster)
            .map(|m| m.spec.name.clone())
            .collect()
    }
}
