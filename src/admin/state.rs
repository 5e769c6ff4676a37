//! What the handlers work with: the server's state, who is calling, and
//! store calls run off the async threads.

use std::sync::Arc;

use tokio::sync::watch;

use super::AdminToken;
use super::error::{AdminError, AdminErrorKind};
use crate::domain::token::Role;
use crate::domain::{Channel, Origin};
use crate::gateway::GatewayView;
use crate::logging::LogRing;
use crate::store::{Store, StoreError};

/// The server's state.
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub gateway: GatewayView,
    /// The bootstrap token (`admin.token`, `$MAASCTL_ADMIN_TOKEN`,
    /// `--admin-token-file`): an admin token named `bootstrap`.
    pub token: AdminToken,
    pub logs: LogRing,
    /// Base URL of this admin API.
    pub url: String,
    /// Turns true on shutdown (ends the streams).
    pub stop: watch::Receiver<bool>,
}

/// Who is calling: the token's name and role, and what the request says
/// its changes come through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub channel: Channel,
}

impl Caller {
    /// Who this caller's changes are recorded as.
    pub fn origin(&self) -> Origin {
        Origin::token(self.name.clone(), self.channel)
    }
}

/// Run a store call off the async threads.
pub async fn blocking<T: Send + 'static>(
    state: &AdminState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AdminError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| {
            AdminError::new(
                AdminErrorKind::Internal,
                "store",
                format!("store task failed: {e}"),
            )
        })?
        .map_err(AdminError::from)
}
