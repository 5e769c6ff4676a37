//! Operations on a store that take more than one `Store` call: what the
//! CLI runs on a local store and the admin API runs for remote callers,
//! written once, so a command behaves the same on either path (the CLI's
//! `--server` sends the request to a route that calls the same function).
//!
//! - [`manifest`]: `apply -f` (the file's references read by the caller);
//! - [`rollback`]: make a new revision equal to an earlier one;
//! - [`tokens`]: create, list, revoke admin tokens;
//! - [`update`]: a read-modify-write guarded by `ExpectRevision`;
//! - [`history`]: the revisions, newest last;
//! - [`budgets`]: budgets with what their subjects spent.
//!
//! Their request and answer types are the admin API's bodies too.

pub mod budgets;
pub mod manifest;
pub mod rollback;
pub mod tokens;
pub mod usage;

use crate::domain::history::RevisionInfo;
use crate::domain::{AuditQuery, Change, Origin, Registry};
use crate::store::{Applied, Store, StoreError};

/// How often [`update`] recomputes its changes when other writers keep
/// moving the registry under it.
const UPDATE_ATTEMPTS: usize = 20;

/// Apply changes computed from the current registry by `f`, guarded by
/// [`Change::ExpectRevision`]: if another writer changed the registry in
/// between, load it again and recompute rather than overwrite its change.
/// `f` returning no change applies nothing.
pub fn update<T>(
    store: &dyn Store,
    origin: &Origin,
    mut f: impl FnMut(&Registry) -> Result<(Vec<Change>, T), StoreError>,
) -> Result<(Applied, T), StoreError> {
    let mut attempt = 0;
    loop {
        let reg = store.load()?;
        let (changes, extra) = f(&reg)?;
        if changes.is_empty() {
            let applied = Applied {
                revision: reg.revision,
                outcomes: Vec::new(),
            };
            return Ok((applied, extra));
        }
        let mut batch = Vec::with_capacity(changes.len() + 1);
        batch.push(Change::ExpectRevision {
            revision: reg.revision,
        });
        batch.extend(changes);
        match store.apply(batch, origin) {
            Ok(mut applied) => {
                applied.outcomes.remove(0);
                return Ok((applied, extra));
            }
            Err(StoreError::Domain(e)) if e.is_stale_revision() && attempt < UPDATE_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The newest `limit` revisions (all kept in the audit trail), oldest
/// first.
pub fn history(store: &dyn Store, limit: Option<usize>) -> Result<Vec<RevisionInfo>, StoreError> {
    let entries = store.audit(&AuditQuery {
        revisions_only: true,
        limit,
        ..AuditQuery::default()
    })?;
    Ok(entries
        .into_iter()
        .filter_map(|e| {
            Some(RevisionInfo {
                revision: e.revision?,
                at_ms: e.at_ms,
                actor: e.actor,
                channel: e.channel,
                summary: e.summary,
            })
        })
        .collect())
}
