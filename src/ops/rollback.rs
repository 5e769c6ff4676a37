//! `maasctl rollback REV`: a new revision whose registry equals REV's,
//! except that no platform key comes back to life (see
//! `domain::registry::restore`). The report says what changed, entity by
//! entity, and what happened to the keys.

use serde::{Deserialize, Serialize};

use crate::domain::audit::{self, EntityChange};
use crate::domain::{Change, Origin, Registry, now_secs};
use crate::store::{Store, StoreError};

/// `POST /admin/v1/rollback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The revision whose registry to return to.
    pub revision: u64,
    /// Report what would change; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What became of platform keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFates {
    /// Created after the revision: deleted (their secrets fail at once).
    pub deleted: Vec<String>,
    /// Deleted after the revision: back, but revoked.
    pub restored_revoked: Vec<String>,
    /// Revoked after the revision: stay revoked.
    pub kept_revoked: Vec<String>,
}

/// What a rollback did (or would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackReport {
    /// The revision rolled back to.
    pub to: u64,
    /// The revision it was at.
    pub from: u64,
    /// The revision it is at now (`from` for a dry run or no change).
    pub revision: u64,
    pub dry_run: bool,
    pub changed: bool,
    /// Entity by entity, as the audit trail shows changes (masked).
    pub changes: Vec<EntityChange>,
    pub keys: KeyFates,
}

/// Each list by workspace and key name.
fn key_fates(current: &Registry, earlier: &Registry) -> KeyFates {
    let mut f = KeyFates::default();
    for (id, k) in &current.keys {
        match earlier.keys.get(id) {
            None => f.deleted.push(format!("{id} ({}/{})", k.workspace, k.name)),
            Some(then) if then.revoked.is_none() && k.revoked.is_some() => f
                .kept_revoked
                .push(format!("{id} ({}/{})", k.workspace, k.name)),
            Some(_) => {}
        }
    }
    for (id, k) in &earlier.keys {
        if !current.keys.contains_key(id) {
            f.restored_revoked
                .push(format!("{id} ({}/{})", k.workspace, k.name));
        }
    }
    let by_name = |s: &String| s.split_once(' ').map(|(_, n)| n.to_string());
    for list in [&mut f.deleted, &mut f.restored_revoked, &mut f.kept_revoked] {
        list.sort_by_key(by_name);
    }
    f
}

/// Roll the registry back to revision `to` (unless `dry_run`), by `origin`.
pub fn rollback(
    store: &dyn Store,
    origin: &Origin,
    to: u64,
    dry_run: bool,
) -> Result<RollbackReport, StoreError> {
    let earlier = store.registry_at(to)?;
    let plan = |current: &Registry| {
        let restored = current.restored(&earlier, now_secs());
        let changes = audit::registry_changes(current, &restored, &audit::both(current, &restored));
        RollbackReport {
            to,
            from: current.revision,
            revision: current.revision,
            dry_run,
            changed: !changes.is_empty(),
            changes,
            keys: key_fates(current, &earlier),
        }
    };
    if dry_run {
        return Ok(plan(&store.load()?));
    }
    let origin = origin
        .clone()
        .with_note(format!("rollback to revision {to}"));
    let (applied, mut report) = super::update(store, &origin, |current| {
        let report = plan(current);
        let changes = if report.changed {
            vec![Change::Restore {
                revision: to,
                registry: Box::new(earlier.clone()),
            }]
        } else {
            Vec::new()
        };
        Ok((changes, report))
    })?;
    report.revision = applied.revision;
    Ok(report)
}
