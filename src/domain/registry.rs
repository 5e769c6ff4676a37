//! The registry: every entity, and the one place changes are checked and made.
//!
//! Stores load a `Registry`, call [`Registry::apply`] inside their transaction
//! and persist what it reports as touched. So validation is the same on every
//! backend, and the console, the CLI and `apply -f` refuse the same things
//! with the same words.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use super::entities::*;
use super::error::{DomainError, ErrorKind, FieldError};
use super::secret::Secret;
use super::validate;

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
}

/// One change to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
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
}

/// What one applied change produced, for the caller to report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    Done,
    RuleCreated {
        id: u64,
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
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.market.is_empty()
            && self.clusters.is_empty()
            && self.workspaces.is_empty()
            && self.keys.is_empty()
            && self.models.is_empty()
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

fn err_not_found(field: &str, what: &str, name: &str) -> DomainError {
    DomainError::not_found(field, format!("no {what} named '{name}'"))
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

    pub fn model(&self, name: &str) -> Result<&Model, DomainError> {
        self.models
            .get(name)
            .ok_or_else(|| err_not_found("model", "model", name))
    }

    pub fn key(&self, id: &str) -> Result<&ApiKey, DomainError> {
        self.keys
            .get(id)
            .ok_or_else(|| err_not_found("key", "API key", id))
    }

    /// Find a key by id, or by `name` within `workspace`.
    pub fn find_key(&self, workspace: Option<&str>, id_or_name: &str) -> Option<&ApiKey> {
        if let Some(k) = self.keys.get(id_or_name) {
            return Some(k);
        }
        self.keys
            .values()
            .find(|k| k.name == id_or_name && workspace.is_none_or(|w| w == k.workspace))
    }

    /// Rules (model, rule) that name `workspace` (as their workspace or via a key of it).
    pub fn rules_using_workspace(&self, workspace: &str) -> Vec<(&Model, &Rule)> {
        self.models
            .values()
            .flat_map(|m| m.rules.iter().map(move |r| (m, r)))
            .filter(|(_, r)| r.spec.workspace == workspace)
            .collect()
    }

    pub fn rules_using_key(&self, key_id: &str) -> Vec<(&Model, &Rule)> {
        self.models
            .values()
            .flat_map(|m| m.rules.iter().map(move |r| (m, r)))
            .filter(|(_, r)| r.spec.key_id.as_deref() == Some(key_id))
            .collect()
    }

    /// Find a rule by id anywhere.
    pub fn rule(&self, id: u64) -> Option<(&Model, &Rule)> {
        self.models
            .values()
            .flat_map(|m| m.rules.iter().map(move |r| (m, r)))
            .find(|(_, r)| r.id == id)
    }

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

    /// Apply one change: validate it against the registry and, if it holds,
    /// make it and record what it touched. On error nothing is changed.
    pub fn apply(
        &mut self,
        change: Change,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        match change {
            Change::ExpectRevision { revision } => {
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
            Change::AddMarket(entry) => {
                DomainError::check(validate::market_entry(&entry))?;
                if self.market.contains_key(&entry.name) {
                    return Err(DomainError::conflict(
                        "name",
                        format!("a marketplace entry named '{}' already exists", entry.name),
                    ));
                }
                touched.market.insert(entry.name.clone());
                self.market.insert(entry.name.clone(), entry);
                Ok(Outcome::Done)
            }
            Change::UpdateMarket { name, entry } => {
                DomainError::check(validate::market_entry(&entry))?;
                let old = self
                    .market
                    .get(&name)
                    .ok_or_else(|| err_not_found("name", "marketplace entry", &name))?
                    .clone();
                if old == entry {
                    return Ok(Outcome::Unchanged);
                }
                if entry.name != name {
                    if self.market.contains_key(&entry.name) {
                        return Err(DomainError::conflict(
                            "name",
                            format!("a marketplace entry named '{}' already exists", entry.name),
                        ));
                    }
                    if self.models.contains_key(&name) {
                        return Err(DomainError::refused(
                            "name",
                            format!(
                                "model '{name}' is registered from this entry; it cannot be renamed"
                            ),
                        ));
                    }
                }
                self.check_unpublish(&name, entry.published)?;
                self.market.remove(&name);
                touched.market.insert(name);
                touched.market.insert(entry.name.clone());
                self.market.insert(entry.name.clone(), entry);
                Ok(Outcome::Done)
            }
            Change::SetPublished { name, published } => {
                let e = self
                    .market
                    .get(&name)
                    .ok_or_else(|| err_not_found("name", "marketplace entry", &name))?;
                if e.published == published {
                    return Ok(Outcome::Unchanged);
                }
                self.check_unpublish(&name, published)?;
                self.market.get_mut(&name).expect("checked").published = published;
                touched.market.insert(name);
                Ok(Outcome::Done)
            }
            Change::DeleteMarket { name } => {
                if !self.market.contains_key(&name) {
                    return Err(err_not_found("name", "marketplace entry", &name));
                }
                if self.models.contains_key(&name) {
                    return Err(DomainError::refused(
                        "name",
                        format!(
                            "model '{name}' is registered from this entry; delete the model first"
                        ),
                    ));
                }
                self.market.remove(&name);
                touched.market.insert(name);
                Ok(Outcome::Done)
            }
            Change::AddCluster(c) => {
                DomainError::check(validate::cluster(&c))?;
                if self.clusters.contains_key(&c.name) {
                    return Err(DomainError::conflict(
                        "name",
                        format!("a cluster named '{}' already exists", c.name),
                    ));
                }
                touched.clusters.insert(c.name.clone());
                self.clusters.insert(c.name.clone(), c);
                Ok(Outcome::Done)
            }
            Change::UpdateCluster { name, cluster } => {
                DomainError::check(validate::cluster(&cluster))?;
                let old = self
                    .clusters
                    .get(&name)
                    .ok_or_else(|| err_not_found("name", "cluster", &name))?;
                if *old == cluster {
                    return Ok(Outcome::Unchanged);
                }
                if cluster.name != name {
                    if name == Cluster::DEFAULT {
                        return Err(DomainError::refused(
                            "name",
                            "'local' is the default cluster; it cannot be renamed",
                        ));
                    }
                    if self.clusters.contains_key(&cluster.name) {
                        return Err(DomainError::conflict(
                            "name",
                            format!("a cluster named '{}' already exists", cluster.name),
                        ));
                    }
                    let users = self.models_in_cluster(&name);
                    if !users.is_empty() {
                        return Err(DomainError::refused(
                            "name",
                            format!(
                                "models use cluster '{name}' ({}); it cannot be renamed",
                                users.join(", ")
                            ),
                        ));
                    }
                }
                self.clusters.remove(&name);
                touched.clusters.insert(name.clone());
                touched.clusters.insert(cluster.name.clone());
                // Access paths of its models change: mark them so gateways reload.
                for m in self.models_in_cluster(&cluster.name) {
                    touched.models.insert(m);
                }
                self.clusters.insert(cluster.name.clone(), cluster);
                Ok(Outcome::Done)
            }
            Change::DeleteCluster { name } => {
                if !self.clusters.contains_key(&name) {
                    return Err(err_not_found("name", "cluster", &name));
                }
                if name == Cluster::DEFAULT {
                    return Err(DomainError::refused(
                        "name",
                        "'local' is the default cluster; it cannot be deleted",
                    ));
                }
                let users = self.models_in_cluster(&name);
                if !users.is_empty() {
                    return Err(DomainError::refused(
                        "name",
                        format!(
                            "cluster '{name}' is the entry cluster of {}; move or delete them first",
                            users.join(", ")
                        ),
                    ));
                }
                self.clusters.remove(&name);
                touched.clusters.insert(name);
                Ok(Outcome::Done)
            }
            Change::AddWorkspace { name, description } => {
                let mut errs = Vec::new();
                validate::name("name", &name, &mut errs);
                DomainError::check(errs)?;
                if self.workspaces.contains_key(&name) {
                    return Err(DomainError::conflict(
                        "name",
                        format!("a workspace named '{name}' already exists"),
                    ));
                }
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
            Change::UpdateWorkspace { name, description } => {
                let w = self
                    .workspaces
                    .get_mut(&name)
                    .ok_or_else(|| err_not_found("name", "workspace", &name))?;
                if w.description == description {
                    return Ok(Outcome::Unchanged);
                }
                w.description = description;
                touched.workspaces.insert(name);
                Ok(Outcome::Done)
            }
            Change::DeleteWorkspace { name } => {
                if !self.workspaces.contains_key(&name) {
                    return Err(err_not_found("name", "workspace", &name));
                }
                let rules = self.rules_using_workspace(&name);
                if !rules.is_empty() {
                    return Err(DomainError::refused(
                        "name",
                        format!(
                            "workspace '{name}' is used by {}; delete those rules first",
                            Self::describe_rules(&rules)
                        ),
                    ));
                }
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
            Change::CreateKey {
                id,
                workspace,
                name,
                secret_hash,
                secret_hint,
            } => {
                let mut errs = Vec::new();
                validate::name("name", &name, &mut errs);
                if !id.strip_prefix("key_").is_some_and(|h| {
                    !h.is_empty() && h.len() <= 32 && h.bytes().all(|b| b.is_ascii_alphanumeric())
                }) {
                    errs.push(FieldError::new(
                        "id",
                        format!("'{id}' is not a key id (key_ followed by letters or digits)"),
                    ));
                }
                if secret_hash.len() != 64 || !secret_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    errs.push(FieldError::new("secret", "hash must be 64 hex digits"));
                }
                DomainError::check(errs)?;
                if !self.workspaces.contains_key(&workspace) {
                    return Err(err_not_found("workspace", "workspace", &workspace));
                }
                if self.keys.contains_key(&id) {
                    return Err(DomainError::conflict(
                        "id",
                        format!("a key with id '{id}' already exists"),
                    ));
                }
                if self
                    .keys
                    .values()
                    .any(|k| k.workspace == workspace && k.name == name)
                {
                    return Err(DomainError::conflict(
                        "name",
                        format!("workspace '{workspace}' already has a key named '{name}'"),
                    ));
                }
                if self.keys.values().any(|k| k.secret_hash == secret_hash) {
                    return Err(DomainError::conflict(
                        "secret",
                        "another key already has this secret",
                    ));
                }
                touched.keys.insert(id.clone());
                self.keys.insert(
                    id.clone(),
                    ApiKey {
                        id,
                        workspace,
                        name,
                        secret_hash,
                        secret_hint,
                        created: now,
                        revoked: None,
                    },
                );
                Ok(Outcome::Done)
            }
            Change::RevokeKey { id } => {
                let k = self
                    .keys
                    .get_mut(&id)
                    .ok_or_else(|| err_not_found("key", "API key", &id))?;
                if k.revoked.is_some() {
                    return Ok(Outcome::Unchanged);
                }
                k.revoked = Some(now);
                touched.keys.insert(id);
                Ok(Outcome::Done)
            }
            Change::DeleteKey { id } => {
                if !self.keys.contains_key(&id) {
                    return Err(err_not_found("key", "API key", &id));
                }
                let rules = self.rules_using_key(&id);
                if !rules.is_empty() {
                    return Err(DomainError::refused(
                        "key",
                        format!(
                            "key '{id}' is used by {}; delete those rules first",
                            Self::describe_rules(&rules)
                        ),
                    ));
                }
                self.keys.remove(&id);
                touched.keys.insert(id);
                Ok(Outcome::Done)
            }
            Change::CreateModel(spec) => {
                self.check_model(&spec, None)?;
                touched.models.insert(spec.name.clone());
                self.models.insert(
                    spec.name.clone(),
                    Model {
                        spec,
                        enabled: false,
                        rules: Vec::new(),
                        created: now,
                        updated: now,
                        rev: 0,
                    },
                );
                Ok(Outcome::Done)
            }
            Change::UpdateModel { name, spec } => {
                let old = self.model(&name)?.clone();
                self.check_model(&spec, Some(&name))?;
                if old.enabled && !self.market.get(&spec.name).is_some_and(|e| e.published) {
                    return Err(DomainError::refused(
                        "name",
                        format!(
                            "the model is enabled and marketplace entry '{}' is not published",
                            spec.name
                        ),
                    ));
                }
                if old.spec == spec {
                    return Ok(Outcome::Unchanged);
                }
                let mut m = old;
                m.spec = spec;
                m.updated = now;
                self.models.remove(&name);
                touched.models.insert(name);
                touched.models.insert(m.spec.name.clone());
                self.models.insert(m.spec.name.clone(), m);
                Ok(Outcome::Done)
            }
            Change::SetEnabled { name, enabled } => {
                let m = self.model(&name)?;
                if m.enabled == enabled {
                    return Ok(Outcome::Unchanged);
                }
                if enabled && !self.market.get(&name).is_some_and(|e| e.published) {
                    return Err(DomainError::refused(
                        "status",
                        format!(
                            "model '{name}' cannot be enabled: marketplace entry '{name}' is not published; publish it first (maasctl market publish {name})"
                        ),
                    ));
                }
                let m = self.models.get_mut(&name).expect("checked");
                m.enabled = enabled;
                m.updated = now;
                touched.models.insert(name);
                Ok(Outcome::Done)
            }
            Change::DeleteModel { name } => {
                self.model(&name)?;
                self.models.remove(&name);
                touched.models.insert(name);
                Ok(Outcome::Done)
            }
            Change::SetEndpointDisabled {
                model,
                index,
                disabled,
            } => {
                let m = self.model(&model)?;
                let n = m.spec.endpoints.len();
                if index >= n {
                    return Err(DomainError::not_found(
                        "endpoint",
                        format!(
                            "model '{model}' has {n} endpoint(s); there is no endpoint {index}"
                        ),
                    ));
                }
                if m.spec.endpoints[index].disabled == disabled {
                    return Ok(Outcome::Unchanged);
                }
                let m = self.models.get_mut(&model).expect("checked");
                m.spec.endpoints[index].disabled = disabled;
                m.updated = now;
                touched.models.insert(model);
                Ok(Outcome::Done)
            }
            Change::AddRule { model, spec } => {
                self.model(&model)?;
                self.check_rule(&spec)?;
                let id = self.next_rule_id.max(1);
                self.next_rule_id = id + 1;
                let m = self.models.get_mut(&model).expect("checked");
                m.rules.push(Rule { id, spec });
                m.updated = now;
                touched.models.insert(model);
                Ok(Outcome::RuleCreated { id })
            }
            Change::UpdateRule { model, id, spec } => {
                let m = self.model(&model)?;
                let Some(pos) = m.rules.iter().position(|r| r.id == id) else {
                    return Err(DomainError::not_found(
                        "rule",
                        format!("model '{model}' has no rule #{id}"),
                    ));
                };
                if m.rules[pos].spec == spec {
                    return Ok(Outcome::Unchanged);
                }
                self.check_rule(&spec)?;
                let m = self.models.get_mut(&model).expect("checked");
                m.rules[pos].spec = spec;
                m.updated = now;
                touched.models.insert(model);
                Ok(Outcome::Done)
            }
            Change::DeleteRule { model, id } => {
                let m = self.model(&model)?;
                let Some(pos) = m.rules.iter().position(|r| r.id == id) else {
                    return Err(DomainError::not_found(
                        "rule",
                        format!("model '{model}' has no rule #{id}"),
                    ));
                };
                let m = self.models.get_mut(&model).expect("checked");
                m.rules.remove(pos);
                m.updated = now;
                touched.models.insert(model);
                Ok(Outcome::Done)
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

    pub fn models_in_cluster(&self, cluster: &str) -> Vec<String> {
        self.models
            .values()
            .filter(|m| m.spec.cluster == cluster)
            .map(|m| m.spec.name.clone())
            .collect()
    }

    fn check_unpublish(&self, name: &str, published: bool) -> Result<(), DomainError> {
        if !published && self.models.get(name).is_some_and(|m| m.enabled) {
            return Err(DomainError::refused(
                "published",
                format!(
                    "model '{name}' is enabled and needs this entry published; disable the model first"
                ),
            ));
        }
        Ok(())
    }

    fn check_model(&self, spec: &ModelSpec, editing: Option<&str>) -> Result<(), DomainError> {
        let mut errs = validate::model_spec(spec);
        if !spec.name.is_empty() && !self.market.contains_key(&spec.name) {
            errs.push(FieldError::new(
                "name",
                format!("'{}' is not in the marketplace; pick an entry (maasctl market list) or add one", spec.name),
            ));
        }
        if !spec.cluster.trim().is_empty() && !self.clusters.contains_key(&spec.cluster) {
            errs.push(FieldError::new(
                "cluster",
                format!("no cluster named '{}'", spec.cluster),
            ));
        }
        DomainError::check(errs)?;
        if editing != Some(spec.name.as_str()) && self.models.contains_key(&spec.name) {
            return Err(DomainError::conflict(
                "name",
                format!("a model named '{}' already exists", spec.name),
            ));
        }
        Ok(())
    }

    /// Context checks of a rule: its workspace and key exist and belong together.
    pub fn check_rule(&self, spec: &RuleSpec) -> Result<(), DomainError> {
        let mut errs = validate::rule_spec(spec);
        if !spec.workspace.trim().is_empty() && !self.workspaces.contains_key(&spec.workspace) {
            errs.push(FieldError::new(
                "workspace",
                format!("no workspace named '{}'", spec.workspace),
            ));
        }
        if let (RuleTarget::ApiKey, Some(kid)) = (spec.target, &spec.key_id)
            && !kid.trim().is_empty()
        {
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

    /// The stored endpoint of `model` with this URL (its `nth` occurrence,
    /// for a URL listed twice): what edits and `apply` take a key from when
    /// they are not given one again.
    pub fn stored_endpoint(&self, model: &str, url: &str, nth: usize) -> Option<&Endpoint> {
        self.models
            .get(model)?
            .spec
            .endpoints
            .iter()
            .filter(|e| e.url == url)
            .nth(nth)
    }

    /// The stored upstream key of `model`'s endpoint with this URL, if any
    /// (lets edits and `apply` keep a key they were not given again).
    pub fn stored_endpoint_key(&self, model: &str, url: &str, nth: usize) -> Option<Secret> {
        self.stored_endpoint(model, url, nth)?.api_key.clone()
    }
}
