//! The console's one seam to the platform, and both sides of it.
//!
//! Views never call the store or the network: the console holds a
//! [`Client`] and reads the snapshots it publishes (registry + gateway
//! reports, counters, gateway state) from `watch` channels, and sends changes
//! through its async methods from background tasks.
//!
//! - [`in_process`]: [`InProcessClient`], the embedded mode (store +
//!   embedded gateway handle in this process);
//! - [`remote`]: [`RemoteClient`], the same trait over the admin API, so
//!   the console cannot tell them apart;
//! - [`api`]: [`AdminApi`], the typed reqwest client of the admin API (one
//!   call per route), which the remote client and the CLI use;
//! - [`events`]: reading the stats stream's server-sent events back;
//! - [`guard`]: edit forms' saves that do not overwrite a change made
//!   meanwhile elsewhere.

pub mod api;
pub mod events;
pub mod guard;
pub mod in_process;
pub mod remote;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

pub use crate::domain::CreatedKey;
use crate::domain::token::Role;
use crate::domain::{AuditEntry, AuditQuery, Change, DomainError, GatewayReport, Registry};
use crate::gateway::{StatsSnapshot, TailPage};
use crate::ops::rollback::RollbackReport;
use crate::store::{Applied, StoreError};
pub use api::AdminApi;
pub use in_process::{GatewayLink, InProcessClient};
pub use remote::RemoteClient;

/// A boxed future, so the trait stays object-safe (`Arc<dyn Client>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the console knows of the registry: every entity at one revision,
/// and what the gateways last reported (the gateway status column).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryView {
    pub registry: Arc<Registry>,
    pub reports: Arc<Vec<GatewayReport>>,
}

/// Whether the gateway this console shows is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayState {
    /// Serving at `listen`.
    Running,
    /// The console was started without a gateway (`--no-gateway`).
    Off,
    /// It could not start or stopped with an error.
    Failed(String),
}

/// The header's gateway line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayHeader {
    /// The address it listens on (as bound: a `:0` port is resolved).
    pub listen: Option<String>,
    pub state: GatewayState,
}

impl GatewayHeader {
    pub fn off() -> Self {
        Self {
            listen: None,
            state: GatewayState::Off,
        }
    }
}

/// Why a client call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The registry refused the change (fields named).
    #[error("{0}")]
    Domain(DomainError),
    /// Storage or transport failed.
    #[error("{0}")]
    Other(String),
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => ClientError::Domain(d),
            StoreError::Backend(s) => ClientError::Other(s),
        }
    }
}

/// The console's view of the platform. Snapshots come from `watch`
/// receivers (the latest value wins, readers never block writers); changes
/// are async calls returning owned data.
pub trait Client: Send + Sync + 'static {
    /// Registry snapshots: a new value whenever the revision or a gateway
    /// report moves.
    fn registry(&self) -> watch::Receiver<Arc<RegistryView>>;
    /// Gateway counters, cumulative; rates come from two snapshots.
    fn stats(&self) -> watch::Receiver<Arc<StatsSnapshot>>;
    /// The gateway's address and state, for the header.
    fn gateway(&self) -> watch::Receiver<GatewayHeader>;
    /// Apply a batch of changes atomically (the registry validates them).
    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, Result<Applied, ClientError>>;
    /// Create a platform key; the returned secret is shown once.
    fn create_key(
        &self,
        workspace: String,
        name: String,
    ) -> BoxFuture<'_, Result<CreatedKey, ClientError>>;
    /// The registry as the platform holds it now (not the last snapshot
    /// published; through the admin API, redacted like the snapshots).
    fn load(&self) -> BoxFuture<'_, Result<Registry, ClientError>>;
    /// Roll the registry back to `revision` (`maasctl rollback`, the same
    /// code); `dry_run` only says what it would change.
    fn rollback(
        &self,
        revision: u64,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<RollbackReport, ClientError>>;
    /// Audit entries, as `query` asks (oldest first).
    fn audit(&self, query: AuditQuery) -> BoxFuture<'_, Result<Vec<AuditEntry>, ClientError>>;
    /// A usage report from the ledger (docs/usage.md): `ops::usage::report`
    /// in process, `GET /admin/v1/usage` remotely.
    fn usage(
        &self,
        query: crate::domain::usage::UsageQuery,
    ) -> BoxFuture<'_, Result<crate::domain::usage::UsageReport, ClientError>>;
    /// Every budget with what was spent this period (docs/usage.md
    /// "Budgets"): `ops::budgets::status` in process, `GET
    /// /admin/v1/budgets` remotely.
    fn budgets(
        &self,
    ) -> BoxFuture<'_, Result<Vec<crate::domain::budget::BudgetStatus>, ClientError>>;
    /// What this console may do: `admin` in process (it holds the store);
    /// through the admin API, the role of the token it attached with (a
    /// `read` token's console watches and changes nothing).
    fn role(&self) -> Role;
    /// The server this console is attached to (its admin API's base URL),
    /// if remote; `None` in process.
    fn attached(&self) -> Option<String> {
        None
    }
    /// The live tail: the gateway's request events after cursor `since`
    /// (the newest [`TAIL_PAGE`] of them). Empty without a gateway.
    fn tail(&self, since: u64) -> BoxFuture<'_, Result<TailPage, ClientError>>;
}

/// Most request events one [`Client::tail`] call brings.
pub const TAIL_PAGE: usize = 1000;
