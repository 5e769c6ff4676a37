//! The store: the registry's only truth. A trait so PostgreSQL can stand
//! beside SQLite; every backend runs changes through
//! [`Registry::apply_all`](crate::domain::Registry::apply_all) inside one
//! transaction, so validation is the same everywhere.
//!
//! What is stored, and how, is written once for both backends:
//! [`migrations`] (the schema's history), [`mapping`] (tables and
//! entity ↔ row, with how to add a table or a column) over the small seam in
//! [`sql`]. The backends ([`sqlite`], [`postgres`]) keep connection
//! handling, locking and transactions, migration driving and their dialect.

pub mod advertise;
pub mod batch;
pub mod catalog;
pub mod mapping;
pub mod migrations;
pub mod postgres;
pub mod sql;
pub mod sqlite;

use crate::domain::history::{self, Journal};
use crate::domain::token::{AdminTokenRecord, TokenChange};
use crate::domain::usage::{Retention, UsageRow};
use crate::domain::{
    AuditEntry, AuditQuery, Change, DomainError, GatewayReport, Origin, Outcome, ProbeLease,
    Registry,
};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Environment variable naming the store (same syntax as `--store`).
pub const STORE_ENV: &str = "MAASCTL_STORE";

/// Where the registry lives, parsed from a store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `sqlite:PATH` (or `sqlite://PATH`): one SQLite file.
    Sqlite(PathBuf),
    /// `postgres://USER@HOST:PORT/DB` (or `postgresql://`): a PostgreSQL
    /// database shared by several processes and machines.
    Postgres(Box<postgres::Target>),
}

impl Location {
    /// Parse `--store URL` / `$MAASCTL_STORE`; without one, the SQLite file
    /// `maasctl.db` in `data_dir`.
    pub fn parse(url: Option<&str>, data_dir: &Path) -> Result<Self, StoreError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Location::Sqlite(data_dir.join(sqlite::DB_FILE)));
        };
        match url.split_once(':') {
            Some(("sqlite", rest)) => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(StoreError::Backend(format!(
                        "store URL '{url}' names no file; use sqlite:PATH"
                    )));
                }
                Ok(Location::Sqlite(PathBuf::from(path)))
            }
            Some(("postgres" | "postgresql", _)) => {
                Ok(Location::Postgres(Box::new(postgres::Target::parse(url)?)))
            }
            _ => Err(StoreError::Backend(format!(
                "store URL '{}' is not supported; use sqlite:PATH, postgres://USER@HOST:PORT/DB (or leave it out for maasctl.db in the data directory)",
                postgres::mask_url(url)
            ))),
        }
    }
}

/// Open the store `url` names (default: SQLite in `data_dir`), creating and
/// migrating it as needed. The one place a backend is picked.
pub fn open(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn Store>, StoreError> {
    match Location::parse(url, data_dir)? {
        Location::Sqlite(path) => Ok(Arc::new(SqliteStore::open(&path)?)),
        Location::Postgres(target) => Ok(Arc::new(PostgresStore::open(*target)?)),
    }
}

/// A store failure: a refused change, or the backend itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Domain(#[from] DomainError),
    #[error("storage: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// What a committed batch of changes produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// The revision after the batch (unchanged if nothing changed).
    pub revision: u64,
    /// One per change, in order.
    pub outcomes: Vec<Outcome>,
}

/// The registry's backing store. Implementations are cheap to share
/// (`Arc<dyn Store>`); calls block, so async code runs them on
/// `spawn_blocking`.
pub trait Store: Send + Sync {
    /// Every entity, as of one revision (a consistent read).
    fn load(&self) -> Result<Registry, StoreError>;
    /// The current revision: cheap, polled by gateways to see changes.
    fn revision(&self) -> Result<u64, StoreError>;
    /// Apply a batch of changes atomically: all of them or none, made by
    /// `origin`. The same transaction records the batch in the audit trail
    /// and the history (one entry, one journal); a batch that changes
    /// nothing records nothing.
    fn apply(&self, changes: Vec<Change>, origin: &Origin) -> Result<Applied, StoreError>;
    /// Audit entries, as `query` asks (oldest first).
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
    /// The journals of the revisions after `after` still kept, newest first.
    fn journals(&self, after: u64) -> Result<Vec<(u64, Journal)>, StoreError>;
    /// Every admin token (hashes included: for checking bearer tokens).
    fn tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError>;
    /// Create or revoke an admin token, recorded in the audit trail in the
    /// same transaction; the token as written.
    fn change_token(
        &self,
        change: TokenChange,
        origin: &Origin,
    ) -> Result<AdminTokenRecord, StoreError>;
    /// The registry as it was at `revision`, rebuilt from the history.
    fn registry_at(&self, revision: u64) -> Result<Registry, StoreError> {
        let current = self.load()?;
        if revision == current.revision {
            return Ok(current);
        }
        let journals = self.journals(revision)?;
        Ok(history::rewind(&current, &journals, revision)?)
    }
    /// Record what a gateway reports about itself (not a registry change:
    /// the revision does not move), replacing its previous report, and
    /// delete the reports that expired before this one's heartbeat.
    fn put_report(&self, report: &GatewayReport) -> Result<(), StoreError>;
    /// Remove a gateway's report (it stopped cleanly).
    fn remove_report(&self, id: &str) -> Result<(), StoreError>;
    /// The reports of live gateways as of `now_ms` (Unix ms): those whose
    /// heartbeat is at most [`GatewayReport::STALE_MS`] old. Expired ones
    /// are never returned.
    fn reports_at(&self, now_ms: i64) -> Result<Vec<GatewayReport>, StoreError>;
    /// The reports of live gateways now ([`reports_at`](Self::reports_at)
    /// the current time).
    fn reports(&self) -> Result<Vec<GatewayReport>, StoreError> {
        self.reports_at(crate::domain::now_ms())
    }
    /// Add usage to the ledger (docs/usage.md): each row is added to its
    /// bucket's counts, so rows from several gateways add up. All or none.
    fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        let _ = rows;
        Err(no_ledger(&self.describe()))
    }
    /// The ledger rows whose bucket starts in `[since_ms, until_ms)`, every
    /// span (minute, hour, day rows never overlap: a row is moved, not copied).
    fn usage(&self, since_ms: i64, until_ms: i64) -> Result<Vec<UsageRow>, StoreError> {
        let _ = (since_ms, until_ms);
        Err(no_ledger(&self.describe()))
    }
    /// What each (key, workspace) used from `since_ms` on, summed by the
    /// store in two parts: rows whose bucket starts before `split_ms` as
    /// one row at `since_ms`, the rest as one row at `split_ms` (budgets:
    /// the month before today, and today; docs/usage.md "Budgets"). Only
    /// the token and cost sums are filled; `model` is empty.
    fn usage_totals(&self, since_ms: i64, split_ms: i64) -> Result<Vec<UsageRow>, StoreError> {
        let _ = (since_ms, split_ms);
        Err(no_ledger(&self.describe()))
    }
    /// The rows of [`usage`](Self::usage) summed per (key, model,
    /// `step_ms`-aligned bucket), each dated by its earliest row: all a
    /// report grouped by workspace, key or model with a series of that step
    /// needs (`ops::usage::report`), in far fewer rows. With `open_end`
    /// (the caller knows nothing is dated at or after `until_ms`:
    /// `domain::usage::open_end`) the hour or day `until_ms` is in is read
    /// from its one row (`domain::usage::plan`). The default sums nothing
    /// and reads exactly (the report adds the rows up all the same).
    fn usage_summary(
        &self,
        since_ms: i64,
        until_ms: i64,
        step_ms: i64,
        open_end: bool,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let _ = (step_ms, open_end);
        self.usage(since_ms, until_ms)
    }
    /// Age the ledger as of `now_ms`: minute rows past `keep` become hour
    /// rows, hour rows past it become day rows, in one transaction.
    fn compact_usage(&self, now_ms: i64, keep: &Retention) -> Result<(), StoreError> {
        let _ = (now_ms, keep);
        Err(no_ledger(&self.describe()))
    }
    /// Shared probes (`docs/gateway.md`, "Probes"): run `write` (a
    /// [`mapping::claim_probe`] or [`mapping::put_probe_result`]) and read
    /// the lease of `key` back, in one transaction.
    fn probe_lease(
        &self,
        key: &str,
        write: Vec<sql::Statement>,
    ) -> Result<Option<ProbeLease>, StoreError> {
        let _ = (key, write);
        Err(StoreError::Backend(format!(
            "{} keeps no probe leases",
            self.describe()
        )))
    }
    /// Where the data lives, for `maasctl` banners and logs (no secrets).
    fn describe(&self) -> String;
}

fn no_ledger(store: &str) -> StoreError {
    StoreError::Backend(format!("{store} keeps no usage ledger"))
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn load(&self) -> Result<Registry, StoreError> {
        (**self).load()
    }
    fn revision(&self) -> Result<u64, StoreError> {
        (**self).revision()
    }
    fn apply(&self, changes: Vec<Change>, origin: &Origin) -> Result<Applied, StoreError> {
        (**self).apply(changes, origin)
    }
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        (**self).audit(query)
    }
    fn journals(&self, after: u64) -> Result<Vec<(u64, Journal)>, StoreError> {
        (**self).journals(after)
    }
    fn tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError> {
        (**self).tokens()
    }
    fn change_token(
        &self,
        change: TokenChange,
        origin: &Origin,
    ) -> Result<AdminTokenRecord, StoreError> {
        (**self).change_token(change, origin)
    }
    fn registry_at(&self, revision: u64) -> Result<Registry, StoreError> {
        (**self).registry_at(revision)
    }
    fn put_report(&self, report: &GatewayReport) -> Result<(), StoreError> {
        (**self).put_report(report)
    }
    fn remove_report(&self, id: &str) -> Result<(), StoreError> {
        (**self).remove_report(id)
    }
    fn reports_at(&self, now_ms: i64) -> Result<Vec<GatewayReport>, StoreError> {
        (**self).reports_at(now_ms)
    }
    fn reports(&self) -> Result<Vec<GatewayReport>, StoreError> {
        (**self).reports()
    }
    fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        (**self).add_usage(rows)
    }
    fn usage(&self, since_ms: i64, until_ms: i64) -> Result<Vec<UsageRow>, StoreError> {
        (**self).usage(since_ms, until_ms)
    }
    fn usage_totals(&self, since_ms: i64, split_ms: i64) -> Result<Vec<UsageRow>, StoreError> {
        (**self).usage_totals(since_ms, split_ms)
    }
    fn usage_summary(
        &self,
        since_ms: i64,
        until_ms: i64,
        step_ms: i64,
        open_end: bool,
    ) -> Result<Vec<UsageRow>, StoreError> {
        (**self).usage_summary(since_ms, until_ms, step_ms, open_end)
    }
    fn compact_usage(&self, now_ms: i64, keep: &Retention) -> Result<(), StoreError> {
        (**self).compact_usage(now_ms, keep)
    }
    fn probe_lease(
        &self,
        key: &str,
        write: Vec<sql::Statement>,
    ) -> Result<Option<ProbeLease>, StoreError> {
        (**self).probe_lease(key, write)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
