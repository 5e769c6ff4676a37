//! Rollback: make the registry equal an earlier one ([`Change::Restore`],
//! given the registry as it was, rebuilt from the history).
//!
//! Everything comes back as it was — marketplace, clusters, workspaces,
//! models with their endpoints (upstream keys included) and rules (their
//! ids too, so the gateway's limiter windows hang on the same ids) — except
//! that no platform key secret is ever resurrected:
//!
//! - a key that exists now stays as it is now: one revoked since stays
//!   revoked;
//! - a key deleted since comes back **revoked** (so the rules of the
//!   earlier registry that name it can come back, and its secret still
//!   fails);
//! - a key created since is **deleted** (the earlier registry did not have
//!   it; its secret fails at once).
//!
//! Entities that come back are checked against today's rules for their
//! shape; one that no longer passes refuses the rollback, naming it.

use std::collections::BTreeMap;

use super::{
    Change, Outcome, Registry, Touched, budget, cluster, key, market, model, rule, workspace,
};
use crate::domain::error::{DomainError, FieldError};

/// Names whose entity differs between `a` and `b`.
fn differing<T: PartialEq>(a: &BTreeMap<String, T>, b: &BTreeMap<String, T>) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .filter(|n| a.get(*n) != b.get(*n))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

impl Registry {
    /// The registry `earlier` (as it was at revision `revision`) with the
    /// platform keys as rollback treats them (see the module docs).
    pub fn restored(&self, earlier: &Registry, now: i64) -> Registry {
        let mut next = earlier.clone();
        next.revision = self.revision;
        next.next_rule_id = self.next_rule_id.max(earlier.next_rule_id);
        next.next_budget_id = self.next_budget_id.max(earlier.next_budget_id);
        next.keys = earlier
            .keys
            .iter()
            .map(|(id, then)| {
                let k = match self.keys.get(id) {
                    Some(now_) => now_.clone(),
                    None => {
                        let mut k = then.clone();
                        k.revoked.get_or_insert(now);
                        k
                    }
                };
                (id.clone(), k)
            })
            .collect();
        for (name, m) in &mut next.models {
            match self.models.get(name) {
                Some(cur)
                    if cur.spec == m.spec && cur.enabled == m.enabled && cur.rules == m.rules =>
                {
                    *m = cur.clone();
                }
                _ => m.updated = now,
            }
        }
        next
    }

    pub(super) fn restore(
        &mut self,
        revision: u64,
        earlier: &Registry,
        now: i64,
        touched: &mut Touched,
    ) -> Result<Outcome, DomainError> {
        let next = self.restored(earlier, now);
        let t = Touched {
            market: differing(&self.market, &next.market).into_iter().collect(),
            clusters: differing(&self.clusters, &next.clusters)
                .into_iter()
                .collect(),
            workspaces: differing(&self.workspaces, &next.workspaces)
                .into_iter()
                .collect(),
            keys: differing(&self.keys, &next.keys).into_iter().collect(),
            models: differing(&self.models, &next.models).into_iter().collect(),
            budgets: differing(&self.budgets, &next.budgets)
                .into_iter()
                .collect(),
        };
        if t.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        check_restored(&next, &t, revision)?;
        touched.market.extend(t.market);
        touched.clusters.extend(t.clusters);
        touched.workspaces.extend(t.workspaces);
        touched.keys.extend(t.keys);
        touched.models.extend(t.models);
        touched.budgets.extend(t.budgets);
        *self = next;
        Ok(Outcome::Done)
    }
}

/// Every entity coming back passes today's shape checks, and every rule
/// coming back names what it needs.
fn check_restored(next: &Registry, t: &Touched, revision: u64) -> Result<(), DomainError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut add = |what: String, found: Vec<FieldError>| {
        errors.extend(found.into_iter().map(|e| {
            FieldError::new(
                "revision",
                format!(
                    "{what} as it was at revision {revision} no longer passes today's checks ({e}); change it first, or roll back to another revision"
                ),
            )
        }))
    };
    for n in &t.market {
        if let Some(e) = next.market.get(n) {
            add(format!("marketplace entry '{n}'"), market::validate(e));
        }
    }
    for n in &t.clusters {
        if let Some(c) = next.clusters.get(n) {
            add(format!("cluster '{n}'"), cluster::validate(c));
        }
    }
    for n in &t.workspaces {
        if let Some(w) = next.workspaces.get(n) {
            add(
                format!("workspace '{n}'"),
                workspace::validate(n, &w.description),
            );
        }
    }
    for id in &t.keys {
        if let Some(k) = next.keys.get(id) {
            add(format!("key '{id}'"), key::validate(k));
        }
    }
    for n in &t.models {
        let Some(m) = next.models.get(n) else {
            continue;
        };
        add(format!("model '{n}'"), model::validate(&m.spec));
        for r in &m.rules {
            let mut found = rule::validate(&r.spec);
            references(next, &r.spec, &mut found);
            add(format!("rule #{} of model '{n}'", r.id), found);
        }
    }
    for id in &t.budgets {
        if let Some(b) = next.budgets.get(id) {
            add(format!("budget {id}"), budget::restored_errors(next, b));
        }
    }
    DomainError::check(errors)
}

/// A rule's workspace and key exist and belong together (a rule on a key
/// revoked since is kept: it was there, and it limits nothing now).
fn references(reg: &Registry, spec: &crate::domain::entities::RuleSpec, out: &mut Vec<FieldError>) {
    if !reg.workspaces.contains_key(&spec.workspace) {
        out.push(FieldError::new(
            "workspace",
            format!("no workspace named '{}'", spec.workspace),
        ));
    }
    if let Some(kid) = &spec.key_id {
        match reg.keys.get(kid) {
            None => out.push(FieldError::new(
                "key",
                format!("no API key with id '{kid}'"),
            )),
            Some(k) if k.workspace != spec.workspace => out.push(FieldError::new(
                "key",
                format!("key '{kid}' belongs to workspace '{}'", k.workspace),
            )),
            Some(_) => {}
        }
    }
}

/// `rollback to revision N` for summaries.
pub fn describe(change: &Change) -> Option<String> {
    match change {
        Change::Restore { revision, .. } => Some(format!("rollback to revision {revision}")),
        _ => None,
    }
}
