//! The store: the registry's only truth. A trait so PostgreSQL can stand
//! beside SQLite; every backend runs changes through
//! [`Registry::apply_all`](crate::domain::Registry::apply_all) inside one
//! transaction, so validation is the same everywhere.

pub mod catalog;
pub mod sqlite;

use crate::domain::{Change, DomainError, GatewayReport, Outcome, Registry};

pub use sqlite::SqliteStore;

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    /// Apply a batch of changes atomically: all of them or none.
    fn apply(&self, changes: Vec<Change>) -> Result<Applied, StoreError>;
    /// Record what a gateway reports about itself (not a registry change:
    /// the revision does not move).
    fn put_report(&self, report: &GatewayReport) -> Result<(), StoreError>;
    /// Remove a gateway's report (it stopped cleanly).
    fn remove_report(&self, id: &str) -> Result<(), StoreError>;
    /// All gateway reports, stale ones included (callers check freshness).
    fn reports(&self) -> Result<Vec<GatewayReport>, StoreError>;
    /// Where the data lives, for `maasctl` banners and logs (no secrets).
    fn describe(&self) -> String;
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn load(&self) -> Result<Registry, StoreError> {
        (**self).load()
    }
    fn revision(&self) -> Result<u64, StoreError> {
        (**self).revision()
    }
    fn apply(&self, changes: Vec<Change>) -> Result<Applied, StoreError> {
        (**self).apply(changes)
    }
    fn put_report(&self, report: &GatewayReport) -> Result<(), StoreError> {
        (**self).put_report(report)
    }
    fn remove_report(&self, id: &str) -> Result<(), StoreError> {
        (**self).remove_report(id)
    }
    fn reports(&self) -> Result<Vec<GatewayReport>, StoreError> {
        (**self).reports()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
