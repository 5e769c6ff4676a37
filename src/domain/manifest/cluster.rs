//! Clusters in a file: `clusters: [{name, entry_address}]`.

use serde::{Deserialize, Serialize};

use super::{ApplyAction, Planner};
use crate::domain::entities::Cluster;
use crate::domain::error::DomainError;
use crate::domain::registry::{Change, Registry};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterDecl {
    pub name: String,
    pub entry_address: String,
}

/// The clusters of `reg`, without those equal to `baseline`'s.
pub(super) fn export(reg: &Registry, baseline: Option<&Registry>) -> Vec<ClusterDecl> {
    reg.clusters
        .values()
        .filter(|c| baseline.and_then(|b| b.clusters.get(&c.name)) != Some(*c))
        .map(|c| ClusterDecl {
            name: c.name.clone(),
            entry_address: c.entry_address.clone(),
        })
        .collect()
}

impl Planner {
    pub(super) fn cluster(&mut self, path: &str, d: &ClusterDecl) -> Result<(), DomainError> {
        let cluster = Cluster {
            name: d.name.clone(),
            entry_address: d.entry_address.clone(),
        };
        match self.scratch.clusters.get(&d.name) {
            None => {
                self.push(path, Change::AddCluster(cluster))?;
                self.note("cluster", d.name.clone(), ApplyAction::Created, vec![]);
            }
            Some(old) if *old == cluster => {
                self.note("cluster", d.name.clone(), ApplyAction::Unchanged, vec![]);
            }
            Some(_) => {
                self.push(
                    path,
                    Change::UpdateCluster {
                        name: d.name.clone(),
                        cluster,
                    },
                )?;
                self.note(
                    "cluster",
                    d.name.clone(),
                    ApplyAction::Changed,
                    vec!["entry_address".into()],
                );
            }
        }
        Ok(())
    }
}
