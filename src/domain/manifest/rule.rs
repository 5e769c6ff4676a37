//! Rules in a file: `rules: [{target, workspace, key, limit, duration, unit}]`
//! under their model, without ids: matched to the stored rules by content,
//! then by subject, and updated in place so ids (and the gateway's limiter
//! windows) survive edits.

use serde::{Deserialize, Serialize};

use super::Planner;
use crate::domain::entities::{Rule, RuleSpec, RuleTarget, RuleUnit};
use crate::domain::error::DomainError;
use crate::domain::limits::shown;
use crate::domain::registry::{Change, Registry};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDecl {
    pub target: RuleTarget,
    pub workspace: String,
    /// The key's name within `workspace` (target `api-key` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub limit: u32,
    /// Seconds.
    pub duration: u32,
    /// `requests` (default, left out of exports) or `tokens`.
    #[serde(default, skip_serializing_if = "RuleUnit::is_default")]
    pub unit: RuleUnit,
}

impl RuleDecl {
    /// A stored rule as a file declares it: its key by name.
    pub(super) fn of(r: &Rule, reg: &Registry) -> Self {
        Self {
            target: r.spec.target,
            workspace: r.spec.workspace.clone(),
            key: r.spec.key_id.as_ref().map(|id| {
                reg.keys
                    .get(id)
                    .map_or_else(|| id.clone(), |k| k.name.clone())
            }),
            limit: r.spec.limit,
            duration: r.spec.duration_secs,
            unit: r.spec.unit,
        }
    }
}

impl Planner {
    /// A file rule as a `RuleSpec`: its key name becomes the key's id.
    pub(super) fn rule_spec(&self, path: &str, r: &RuleDecl) -> Result<RuleSpec, DomainError> {
        let key_id = match (r.target, &r.key) {
            (RuleTarget::ApiKey, Some(name)) if !name.trim().is_empty() => Some(
                self.scratch
                    .keys
                    .values()
                    .find(|k| k.workspace == r.workspace && k.name == *name)
                    .map(|k| k.id.clone())
                    .ok_or_else(|| {
                        DomainError::not_found(
                            format!("{path}.key"),
                            format!(
                                "workspace '{}' has no key named '{}' (declare it under the workspace's keys)",
                                shown(&r.workspace),
                                shown(name)
                            ),
                        )
                    })?,
            ),
            // Left for the registry to refuse with its own words.
            (_, k) => k.clone(),
        };
        Ok(RuleSpec {
            target: r.target,
            workspace: r.workspace.clone(),
            key_id,
            limit: r.limit,
            duration_secs: r.duration,
            unit: r.unit,
        })
    }
}

/// Match desired rules to stored ones: identical rules first, then by
/// (target, workspace, key) in order, updated in place; the rest are added or
/// deleted. Returns the changes (with the file index of the rule each comes
/// from) and a summary such as `rules: 1 added, 2 changed`.
pub(super) fn match_rules(
    model: &str,
    stored: &[Rule],
    desired: Vec<RuleSpec>,
) -> (Vec<(Option<usize>, Change)>, Option<String>) {
    let mut taken = vec![false; stored.len()];
    let mut slot: Vec<Option<usize>> = vec![None; desired.len()];
    for (i, d) in desired.iter().enumerate() {
        if let Some(j) = (0..stored.len()).find(|&j| !taken[j] && stored[j].spec == *d) {
            taken[j] = true;
            slot[i] = Some(j);
        }
    }
    let same_subject = |a: &RuleSpec, b: &RuleSpec| {
        a.target == b.target && a.workspace == b.workspace && a.key_id == b.key_id
    };
    let mut out = Vec::new();
    let (mut added, mut changed, mut deleted) = (0, 0, 0);
    for (i, d) in desired.iter().enumerate() {
        if slot[i].is_some() {
            continue;
        }
        if let Some(j) = (0..stored.len()).find(|&j| !taken[j] && same_subject(&stored[j].spec, d))
        {
            taken[j] = true;
            slot[i] = Some(j);
            changed += 1;
            out.push((
                Some(i),
                Change::UpdateRule {
                    model: model.to_string(),
                    id: stored[j].id,
                    spec: d.clone(),
                },
            ));
        }
    }
    for (j, r) in stored.iter().enumerate() {
        if !taken[j] {
            deleted += 1;
            out.push((
                None,
                Change::DeleteRule {
                    model: model.to_string(),
                    id: r.id,
                },
            ));
        }
    }
    for (i, d) in desired.into_iter().enumerate() {
        if slot[i].is_none() {
            added += 1;
            out.push((
                Some(i),
                Change::AddRule {
                    model: model.to_string(),
                    spec: d,
                },
            ));
        }
    }
    let parts: Vec<String> = [(added, "added"), (changed, "changed"), (deleted, "deleted")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
    let summary = (!parts.is_empty()).then(|| format!("rules: {}", parts.join(", ")));
    (out, summary)
}
