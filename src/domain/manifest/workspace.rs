//! Workspaces in a file: `workspaces: [{name, description, keys}]`, their
//! keys declared by name under them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::key::KeyDecl;
use super::{ApplyAction, Planner, ReadRef};
use crate::domain::entities::ApiKey;
use crate::domain::error::DomainError;
use crate::domain::registry::{Change, Registry};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceDecl {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The workspace's keys, by name. Not exhaustive: keys left out stay.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyDecl>,
}

/// Every workspace of `reg`, its keys sorted by name.
pub(super) fn export(reg: &Registry) -> Vec<WorkspaceDecl> {
    let mut keys: BTreeMap<&str, Vec<&ApiKey>> = BTreeMap::new();
    for k in reg.keys.values() {
        keys.entry(k.workspace.as_str()).or_default().push(k);
    }
    reg.workspaces
        .values()
        .map(|w| {
            let mut ks = keys.remove(w.name.as_str()).unwrap_or_default();
            ks.sort_by(|a, b| a.name.cmp(&b.name));
            WorkspaceDecl {
                name: w.name.clone(),
                description: w.description.clone(),
                keys: ks.into_iter().map(KeyDecl::of).collect(),
            }
        })
        .collect()
}

impl Planner {
    pub(super) fn workspace(
        &mut self,
        path: &str,
        d: &WorkspaceDecl,
        read: ReadRef,
    ) -> Result<(), DomainError> {
        match self.scratch.workspaces.get(&d.name) {
            None => {
                self.push(
                    path,
                    Change::AddWorkspace {
                        name: d.name.clone(),
                        description: d.description.clone(),
                    },
                )?;
                self.note("workspace", d.name.clone(), ApplyAction::Created, vec![]);
            }
            Some(old) if old.description == d.description => {
                self.note("workspace", d.name.clone(), ApplyAction::Unchanged, vec![]);
            }
            Some(_) => {
                self.push(
                    path,
                    Change::UpdateWorkspace {
                        name: d.name.clone(),
                        description: d.description.clone(),
                    },
                )?;
                self.note(
                    "workspace",
                    d.name.clone(),
                    ApplyAction::Changed,
                    vec!["description".into()],
                );
            }
        }
        for (j, k) in d.keys.iter().enumerate() {
            self.key(&format!("{path}.keys[{j}]"), &d.name, k, read)?;
        }
        Ok(())
    }
}
