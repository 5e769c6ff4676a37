//! What `maasctl rule explain --model M --key K` reports: the rules of M
//! that apply to K (its own and its workspace's), from the registry, and —
//! when a gateway serving M answers — the limiter's live view of them
//! (used/limit, reset, which would reject the next request).

use serde::{Deserialize, Serialize};

use crate::domain::{DomainError, Registry, Rule, RuleTarget};
use crate::gateway::limiter::Explanation;

/// The report, as the admin API returns it and `--output json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainReport {
    pub model: String,
    pub key_id: String,
    pub key_name: String,
    pub workspace: String,
    /// A revoked key is refused (401) before any rule is checked.
    pub key_revoked: bool,
    /// The model's rules that target the key or its workspace (registry).
    pub rules: Vec<Rule>,
    /// Listen address of the gateway whose limiter answered.
    pub gateway: Option<String>,
    /// The limiter's view: live use of each rule and the verdict on the
    /// next request.
    pub live: Option<Explanation>,
    /// Why there are no live counts (no gateway running, model disabled…).
    pub no_live_counts: Option<String>,
}

/// What no live counts means when no gateway answers at all.
pub const NO_GATEWAY: &str = "no gateway running";

impl ExplainReport {
    /// Find model `model` and key `key` (an id, or a name — within
    /// `workspace` when given) and the rules that apply; no live counts yet.
    pub fn resolve(
        reg: &Registry,
        model: &str,
        key: &str,
        workspace: Option<&str>,
    ) -> Result<Self, DomainError> {
        let m = reg.model(model)?;
        if let Some(w) = workspace
            && !reg.workspaces.contains_key(w)
        {
            return Err(DomainError::not_found(
                "workspace",
                format!("no workspace named '{w}'"),
            ));
        }
        let k = match reg.keys.get(key) {
            Some(k) => k,
            None => {
                let named: Vec<_> = reg
                    .keys
                    .values()
                    .filter(|k| k.name == key && workspace.is_none_or(|w| w == k.workspace))
                    .collect();
                match named.as_slice() {
                    [k] => *k,
                    [] => {
                        let within = workspace
                            .map(|w| format!(" in workspace '{w}'"))
                            .unwrap_or_default();
                        return Err(DomainError::not_found(
                            "key",
                            format!("no API key with id or name '{key}'{within}"),
                        ));
                    }
                    many => {
                        let list: Vec<String> = many
                            .iter()
                            .map(|k| format!("{} in {}", k.id, k.workspace))
                            .collect();
                        return Err(DomainError::invalid(
                            "key",
                            format!(
                                "'{key}' names keys in several workspaces ({}); give the key id or the workspace",
                                list.join(", ")
                            ),
                        ));
                    }
                }
            }
        };
        let rules = m
            .rules
            .iter()
            .filter(|r| match r.spec.target {
                RuleTarget::ApiKey => r.spec.key_id.as_deref() == Some(k.id.as_str()),
                RuleTarget::Workspace => r.spec.workspace == k.workspace,
            })
            .cloned()
            .collect();
        Ok(Self {
            model: m.spec.name.clone(),
            key_id: k.id.clone(),
            key_name: k.name.clone(),
            workspace: k.workspace.clone(),
            key_revoked: k.is_revoked(),
            rules,
            gateway: None,
            live: None,
            no_live_counts: Some(NO_GATEWAY.into()),
        })
    }

    /// Add the limiter's view from the gateway at `listen`.
    pub fn with_live(mut self, listen: String, live: Explanation) -> Self {
        self.gateway = Some(listen);
        self.live = Some(live);
        self.no_live_counts = None;
        self
    }

    /// Say why there are no live counts.
    pub fn without_live(mut self, why: impl Into<String>) -> Self {
        self.live = None;
        self.no_live_counts = Some(why.into());
        self
    }
}

/// Why the gateway at `listen` (serving `cluster`, `None`: every model)
/// has no limits for `model`.
pub fn not_served_reason(
    reg: &Registry,
    model: &str,
    listen: &str,
    cluster: Option<&str>,
) -> String {
    match reg.models.get(model) {
        Some(m) if !m.enabled => {
            format!("model {model} is disabled: its requests get 404 before any rule is checked")
        }
        Some(m) if cluster.is_some_and(|c| c != m.spec.cluster) => format!(
            "model {model} is entered in cluster '{}', which the gateway at {listen} does not serve",
            m.spec.cluster
        ),
        _ => format!(
            "the gateway at {listen} has not loaded model {model} yet; try again in a second"
        ),
    }
}
