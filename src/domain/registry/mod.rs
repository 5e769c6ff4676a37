//! The registry: every entity, and the one place changes are checked and made.
//!
//! Stores load a `Registry`, call [`Registry::apply`] inside their transaction
//! and persist what it reports as touched. So validation is the same on every
//! backend, and the console, the CLI and `apply -f` refuse the same things
//! with the same words.
//!
//! One module per entity holds its shape checks (what needs no other entity)
//! and its changes (what needs the registry): [`market`], [`cluster`],
//! [`workspace`], [`key`], [`model`], [`rule`]. The checks several entities
//! share (existence, name uniqueness, "used by rules") are in `checks`.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use super::entities::*;
use super::error::{DomainError, ErrorKind};

pub mod budget;
mod checks;
pub mod cluster;
pub mod key;
pub mod market;
pub mod model;
pub mod restore;
pub mod rule;
pub mod workspace;

/// Everything the store holds, at one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// Moves on every committed change.
    pub revision: u64,
    pub market: BTreeMap<String, MarketEntry>,
    pub clusters: BTreeMap<String, Cluster>,
    pub workspaces: BTreeMap<String, Workspace>,
    /// By key id.
    pub keys: BTreeMap<String, ApiKey>,
    pub models: BTreeMap<String, Model>,
    /// Next rate-limit rule id to hand out.
    pub next_rule_id: u64,
    /// Budgets by id (`b1`, `b2`, …; docs/usage.md "Budgets").
    #[serde(default)]
    pub budgets: BTreeMap<String, crate::domain::budget::Budget>,
    /// Next budget number to hand out (0 and 1 both mean 1: stores made
    /// before budgets have no meta row for it).
    #[serde(default)]
    pub next_budget_id: u64,
}

/// One change to the registry.
///
/// Read strictly: a field no change has (`"duration"` for `duration_secs`)
/// is refused rather than dropped, here and in the entities changes carry
/// (`ModelSpec`, `Endpoint`, `RuleSpec`, `MarketEntry`, `Cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Change {
    /// Refuse the whole batch unless the registry is still at this revision:
    /// a caller that computed its changes from a loaded registry (`apply -f`,
    /// `model edit`, a console form) puts it first, so it never overwrites a
    /// change it did not see. Refused with field `revision`, kind `Conflict`.
    ExpectRevision {
        revision: u64,
    },
    AddMarket(MarketEntry),
    /// Replace the entry `name` (its name may change if no model uses it).
    UpdateMarket {
        name: String,
        entry: MarketEntry,
    },
    SetPublished {
        name: String,
        published: bool,
    },
    DeleteMarket {
        name: String,
    },
    AddCluster(Cluster),
    UpdateCluster {
        name: String,
        cluster: Cluster,
    },
    DeleteCluster {
        name: String,
    },
    AddWorkspace {
        name: String,
        description: String,
    },
    UpdateWorkspace {
        name: String,
        description: String,
    },
    DeleteWorkspace {
        name: String,
    },
    /// The secret is generated (or imported) by the caller; only its hash comes here.
    CreateKey {
        id: String,
        workspace: String,
        name: String,
        secret_hash: String,
        secret_hint: String,
    },
    RevokeKey {
        id: String,
    },
    DeleteKey {
        id: String,
    },
    CreateModel(ModelSpec),
    UpdateModel {
        name: String,
        spec: ModelSpec,
    },
    SetEnabled {
        name: String,
        enabled: bool,
    },
    DeleteModel {
        name: String,
    },
    SetEndpointDisabled {
        model: String,
        index: usize,
        disabled: bool,
    },
    /// Drain an endpoint (no new requests) or take it back.
    SetEndpointDrain {
        model: String,
        index: usize,
        drain: bool,
    },
    AddRule {
        model: String,
        spec: RuleSpec,
    },
    UpdateRule {
        model: String,
        id: u64,
        spec: RuleSpec,
    },
    DeleteRule {
        model: String,
        id: u64,
    },
    /// A new budget; its id (`b<n>`) is handed out here.
    AddBudget(crate::domain::budget::BudgetSpec),
    UpdateBudget {
        id: String,
        spec: crate::domain::budget::BudgetSpec,
    },
    DeleteBudget {
        id: String,
    },
    /// Make the registry equal `registry`, the registry as it was at
    /// `revision` (rebuilt from the history), keeping every platform key
    /// secret dead (see [`restore`]). Not accepted from outside: rollback
    /// has its own route, which rebuilds the earlier registry itself.
    #[serde(skip)]
    Restore {
        revision: u64,
        registry: Box<Registry>,
    },
}

/// `create-model DeepSeek-V3, add-rule DeepSeek-V3` for logs and history
/// (no secrets: only operation names and entity names; `expect-revision`,
/// a guard rather than a change, left out).
pub fn summarize(changes: &[Change]) -> String {
    changes
        .iter()
        .filter(|c| !matches!(c, Change::ExpectRevision { .. }))
        .map(|c| {
            if let Some(s) = restore::describe(c) {
                return s;
            }
            let v = serde_json::to_value(c).unwrap_or_default();
            let op = v["op"].as_str().unwrap_or("change").to_string();
            let subject = ["name", "model", "id", "subject"]
                .iter()
                .find_map(|k| v[*k].as_str().map(str::to_string))
                .unwrap_or_default();
            format!("{op} {subject}").trim().to_string()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one applied change produced, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    RuleCreated {
        id: u64,
    },
    BudgetCreated {
        id: String,
    },
    /// The change asked for what is already so (enable an enabled model…).
    Unchanged,
}

/// Entities a change wrote; the store upserts those present and deletes the
/// rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    pub market: BTreeSet<String>,
    pub clusters: BTreeSet<String>,
    pub workspaces: BTreeSet<String>,
    pub keys: BTreeSet<String>,
    pub models: BTreeSet<String>,
    /// Budget ids.
    pub budgets: BTreeSet<String>,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.market.is_empty()
            && self.clusters.is_empty()
            && self.workspaces.is_empty()
            && self.keys.is_empty()
            && self.models.is_empty()
            && self.budgets.is_empty()
    }
}

/// The field of the error [`Change::ExpectRevision`] gives; callers that
/// retry on a concurrent change look for it.
pub const REVISION_FIELD: &str = "revision";

impl DomainError {
    /// True when this is the refusal of [`Change::ExpectRevision`]: someone
    /// else changed the registry; load it again and retry.
    pub fn is_stale_revision(&self) -> bool {
        self.kind == ErrorKind::Conflict
            && self
                .errors
                .first()
                .is_some_and(|e| e.field == REVISION_FIELD)
    }
}

impl Registry {
    /// A registry holding only the default cluster (`local`, at `entry`).
    pub fn with_default_cluster(entry: &str) -> Self {
        let mut r = Registry {
            next_rule_id: 1,
            ..Default::default()
        };
        r.clusters.insert(
            Cluster::DEFAULT.to_string(),
            Cluster {
                name: Cluster::DEFAULT.to_string(),
                entry_address: entry.to_string(),
            },
        );
        r
    }

    /// Apply one change: validate it against the registry and, if it holds,
    /// make it and record what it touched. On error nothing is changed.
    pub fn apply(
        &mut self,
        change: Change,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        match change {
            Change::ExpectRevision { revision } => self.expect_revision(revision),
            Change::AddMarket(entry) => self.add_market(entry, touched),
            Change::UpdateMarket { name, entry } => self.update_market(name, entry, touched),
            Change::SetPublished { name, published } => {
                self.set_published(name, published, touched)
            }
            Change::DeleteMarket { name } => self.delete_market(name, touched),
            Change::AddCluster(c) => self.add_cluster(c, touched),
            Change::UpdateCluster { name, cluster } => self.update_cluster(name, cluster, touched),
            Change::DeleteCluster { name } => self.delete_cluster(name, touched),
            Change::AddWorkspace { name, description } => {
                self.add_workspace(name, description, now, touched)
            }
            Change::UpdateWorkspace { name, description } => {
                self.update_workspace(name, description, touched)
            }
            Change::DeleteWorkspace { name } => self.delete_workspace(name, touched),
            Change::CreateKey {
                id,
                workspace,
                name,
                secret_hash,
                secret_hint,
            } => {
                let k = ApiKey {
                    id,
                    workspace,
                    name,
                    secret_hash,
                    secret_hint,
                    created: now,
                    revoked: None,
                };
                self.create_key(k, touched)
            }
            Change::RevokeKey { id } => self.revoke_key(id, now, touched),
            Change::DeleteKey { id } => self.delete_key(id, touched),
            Change::CreateModel(spec) => self.create_model(spec, now, touched),
            Change::UpdateModel { name, spec } => self.update_model(name, spec, now, touched),
            Change::SetEnabled { name, enabled } => self.set_enabled(name, enabled, now, touched),
            Change::DeleteModel { name } => self.delete_model(name, touched),
            Change::SetEndpointDisabled {
                model,
                index,
                disabled,
            } => self.set_endpoint_disabled(model, index, disabled, now, touched),
            Change::SetEndpointDrain {
                model,
                index,
                drain,
            } => self.set_endpoint_drain(model, index, drain, now, touched),
            Change::AddRule { model, spec } => self.add_rule(model, spec, now, touched),
            Change::UpdateRule { model, id, spec } => {
                self.update_rule(model, id, spec, now, touched)
            }
            Change::DeleteRule { model, id } => self.delete_rule(model, id, now, touched),
            Change::AddBudget(spec) => self.add_budget(spec, touched),
            Change::UpdateBudget { id, spec } => self.update_budget(id, spec, touched),
            Change::DeleteBudget { id } => self.delete_budget(id, touched),
            Change::Restore { revision, registry } => {
                self.restore(revision, &registry, now, touched)
            }
        }
    }

    /// Apply changes in order; on the first error the registry is left as it
    /// was before the batch. Touched models get `rev = revision + 1`.
    pub fn apply_all(
        &mut self,
        changes: Vec<Change>,
        now: i64,
    ) -> Result<(Vec<Outcome>, Touched), DomainError> {
        let mut next = self.clone();
        let mut touched = Touched::default();
        let mut outcomes = Vec::with_capacity(changes.len());
        for c in changes {
            outcomes.push(next.apply(c, now, &mut touched)?);
        }
        if !touched.is_empty() {
            next.revision = self.revision + 1;
            for name in &touched.models {
                if let Some(m) = next.models.get_mut(name) {
                    m.rev = next.revision;
                }
            }
        }
        *self = next;
        Ok((outcomes, touched))
    }

    fn expect_revision(&self, revision: u64) -> Result<Outcome, DomainError> {
        if self.revision != revision {
            return Err(DomainError::conflict(
                REVISION_FIELD,
                format!(
                    "the registry changed (revision {revision} is now {}) while this change was prepared; load it again",
                    self.revision
                ),
            ));
        }
        Ok(Outcome::Unchanged)
    }
}
