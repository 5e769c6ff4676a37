//! Forms: fields named exactly like the registry's error fields
//! (`endpoints[1].url`, `limit`, …), so a refusal from the store lands next
//! to the field it is about. Every edit re-runs the domain's own validation
//! on what is typed; nothing is sent until that passes, and what the store
//! refuses comes back inline too.
//!
//! [`form`] is the form itself; each other module makes one kind of form
//! and gives it its [`form::Behaviour`].

pub mod budget;
pub mod form;
pub mod model;
pub mod rule;
pub mod simple;

pub use form::{Choice, Field, FieldKind, Form, FormAction, FormEvent, FormKind, SELECT_HELP};

use crate::domain::Registry;

/// The edit form of `kind` opened again on `reg` (its values as they are
/// there, nothing typed kept): "reload" after a change made elsewhere.
/// `None` when what it edits is gone, or `kind` creates.
pub fn reopen(kind: &FormKind, reg: &Registry) -> Option<Form> {
    match kind {
        FormKind::Model { editing: Some(n) } => reg.models.get(n).map(|m| model::edit(reg, m)),
        FormKind::Rule {
            model,
            editing: Some(id),
        } => {
            let m = reg.models.get(model)?;
            let r = m.rules.iter().find(|r| r.id == *id)?;
            Some(rule::edit(reg, model, r))
        }
        FormKind::Cluster { editing: Some(n) } => {
            reg.clusters.get(n).map(|c| simple::cluster(reg, Some(c)))
        }
        FormKind::Market { editing: Some(n) } => {
            reg.market.get(n).map(|e| simple::market(reg, Some(e)))
        }
        _ => None,
    }
}
