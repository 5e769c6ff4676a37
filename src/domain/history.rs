//! The registry's history: what each revision did to each entity, whole,
//! so the registry at an earlier revision can be rebuilt ([`rewind`]) for
//! `maasctl diff` and `maasctl rollback`.
//!
//! A [`Journal`] is internal: it holds entities as the store does (upstream
//! keys and key hashes included, like the registry's own rows) and never
//! leaves the store; what people see of a change is its audit entry
//! ([`super::audit`]), masked. The store keeps the journals of the newest
//! [`KEEP`] revisions; an older revision stays in the audit trail (who,
//! when, what) but can no longer be rebuilt.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::DomainError;
use super::registry::{Registry, Touched};

/// How many revisions back the registry can be rebuilt (diff, rollback).
pub const KEEP: u64 = 1000;

/// What one revision did: every entity it changed, before and after.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub entities: Vec<Recorded>,
}

/// One entity before and after a revision (`None`: absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// `market`, `cluster`, `workspace`, `key`, `model` or `budget`.
    pub kind: String,
    pub name: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// A revision as `maasctl history` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionInfo {
    pub revision: u64,
    /// Unix ms.
    pub at_ms: i64,
    pub actor: super::audit::Actor,
    pub channel: super::audit::Channel,
    pub summary: String,
}

fn record<T: Serialize + PartialEq>(
    out: &mut Vec<Recorded>,
    kind: &str,
    names: &std::collections::BTreeSet<String>,
    before: &BTreeMap<String, T>,
    after: &BTreeMap<String, T>,
) {
    for n in names {
        let (b, a) = (before.get(n), after.get(n));
        if b == a {
            continue;
        }
        let json =
            |v: Option<&T>| v.map(|v| serde_json::to_value(v).expect("an entity serializes"));
        out.push(Recorded {
            kind: kind.into(),
            name: n.clone(),
            before: json(b),
            after: json(a),
        });
    }
}

/// The journal of a batch that turned `before` into `after`, touching
/// `touched`.
pub fn journal(before: &Registry, after: &Registry, touched: &Touched) -> Journal {
    let mut e = Vec::new();
    record(
        &mut e,
        "market",
        &touched.market,
        &before.market,
        &after.market,
    );
    record(
        &mut e,
        "cluster",
        &touched.clusters,
        &before.clusters,
        &after.clusters,
    );
    record(
        &mut e,
        "workspace",
        &touched.workspaces,
        &before.workspaces,
        &after.workspaces,
    );
    record(&mut e, "key", &touched.keys, &before.keys, &after.keys);
    record(
        &mut e,
        "model",
        &touched.models,
        &before.models,
        &after.models,
    );
    record(
        &mut e,
        "budget",
        &touched.budgets,
        &before.budgets,
        &after.budgets,
    );
    Journal { entities: e }
}

fn undo<T: DeserializeOwned>(
    map: &mut BTreeMap<String, T>,
    r: &Recorded,
    revision: u64,
) -> Result<(), String> {
    match &r.before {
        None => {
            map.remove(&r.name);
        }
        Some(v) => {
            let entity = T::deserialize(v).map_err(|e| {
                format!(
                    "the history of revision {revision} holds an unreadable {} '{}': {e}",
                    r.kind, r.name
                )
            })?;
            map.insert(r.name.clone(), entity);
        }
    }
    Ok(())
}

/// The registry as it was at revision `to`, rebuilt from `current` by
/// undoing, newest first, the `journals` of every revision after `to`
/// (given newest first). Refused, naming the oldest revision that can be
/// rebuilt, when a journal is missing (older than the history kept, or
/// made before this store kept history); `to` beyond the current revision
/// does not exist.
pub fn rewind(
    current: &Registry,
    journals: &[(u64, Journal)],
    to: u64,
) -> Result<Registry, DomainError> {
    if to > current.revision {
        return Err(DomainError::not_found(
            "revision",
            format!(
                "there is no revision {to}; the registry is at revision {}",
                current.revision
            ),
        ));
    }
    let mut reg = current.clone();
    let mut expected = current.revision;
    for (rev, j) in journals {
        if *rev > current.revision {
            // Written after `current` was read.
            continue;
        }
        if *rev <= to {
            break;
        }
        if *rev != expected {
            break;
        }
        for r in &j.entities {
            let undone = match r.kind.as_str() {
                "market" => undo(&mut reg.market, r, *rev),
                "cluster" => undo(&mut reg.clusters, r, *rev),
                "workspace" => undo(&mut reg.workspaces, r, *rev),
                "key" => undo(&mut reg.keys, r, *rev),
                "model" => undo(&mut reg.models, r, *rev),
                "budget" => undo(&mut reg.budgets, r, *rev),
                other => Err(format!(
                    "the history of revision {rev} names an unknown kind of entity '{other}'"
                )),
            };
            undone.map_err(|e| DomainError::invalid("revision", e))?;
        }
        expected -= 1;
    }
    if expected != to {
        let oldest = expected;
        return Err(DomainError::not_found(
            "revision",
            format!(
                "revision {to} is older than the history this store keeps (the newest {KEEP} revisions, from when the store started keeping them); the oldest revision that can be rebuilt is {oldest}"
            ),
        ));
    }
    reg.revision = to;
    Ok(reg)
}
