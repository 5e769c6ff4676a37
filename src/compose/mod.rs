//! Assembly: the one place a store, a gateway, its admin API and the
//! console's in-process client are put together, for the three ways
//! maasctl runs them — `maasctl serve` (gateway + admin API, headless),
//! `maasctl` (the console over an embedded gateway with its admin API) and
//! `maasctl demo` (the console over a gateway on a throw-away store).
//!
//! A caller describes what it wants in a [`NodePlan`]; [`Node::start`]
//! binds the admin API first (so the gateway's report names it), starts the
//! gateway on its own threads, points the `local` cluster at it when it
//! serves every model (see `gateway::advertise`), then serves the admin API
//! on the caller's runtime. [`Node::client`] makes the console's client over
//! the same store and gateway; [`Node::shutdown`] stops everything in the
//! right order.

pub mod gateway;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::admin::{AdminHandle, AdminListen, TokenArgs};
use crate::client::InProcessClient;
use crate::domain::{Channel, Origin};
use crate::gateway::{GatewayConfig, GatewayError};
use crate::logging::LogRing;
use crate::store::Store;

pub use gateway::RunningGateway;

/// What to run beside the store.
pub struct NodePlan {
    /// The gateway; `None` runs none here (the console's `--no-gateway`).
    pub gateway: Option<GatewayPlan>,
    /// Its admin API; `None` runs none (`--admin-listen off`, the demo).
    /// Ignored without a gateway.
    pub admin: Option<AdminPlan>,
}

/// The gateway to start.
pub struct GatewayPlan {
    pub config: GatewayConfig,
    /// When the listen address is taken, listen on a free port of the same
    /// interface instead (the demo: offline and throw-away, any port will
    /// do); otherwise a taken address fails.
    pub free_port_if_taken: bool,
}

/// The admin API to run beside the gateway.
pub struct AdminPlan {
    pub listen: AdminListen,
    pub tokens: TokenArgs,
    /// Where `admin.token` is found, or generated when missing.
    pub data_dir: PathBuf,
}

/// Why a node could not start.
#[derive(Debug)]
pub enum StartError {
    /// The admin API could not bind or find its token.
    Admin(String),
    /// The gateway could not start (its own error: a caller can tell a
    /// taken port).
    Gateway(GatewayError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Admin(e) => f.write_str(e),
            StartError::Gateway(e) => write!(f, "{e}"),
        }
    }
}

/// A running store + gateway + admin API.
pub struct Node {
    store: Arc<dyn Store>,
    gateway: Option<RunningGateway>,
    admin: Option<AdminHandle>,
    admin_banner: Option<String>,
}

impl Node {
    /// Start what `plan` asks for over `store`, on the current runtime (the
    /// admin API is served there; the gateway runs on its own threads).
    /// The admin API's handlers serve `logs`.
    pub async fn start(
        store: Arc<dyn Store>,
        plan: NodePlan,
        logs: LogRing,
    ) -> Result<Node, StartError> {
        let Some(gw_plan) = plan.gateway else {
            return Ok(Node {
                store,
                gateway: None,
                admin: None,
                admin_banner: None,
            });
        };
        // Bound before the gateway starts, so its report carries the URL.
        let listener = match plan.admin {
            Some(a) => crate::admin::prepare(a.listen, &a.tokens, &a.data_dir)
                .map_err(StartError::Admin)?,
            None => None,
        };
        let mut config = gw_plan.config;
        config.admin = listener.as_ref().map(|a| a.url());
        let gateway = gateway::start(config, store.clone(), gw_plan.free_port_if_taken)
            .await
            .map_err(StartError::Gateway)?;
        let admin_banner = listener.as_ref().map(|l| l.banner());
        let admin = match listener {
            Some(l) => Some(
                l.serve(store.clone(), gateway.view(), logs)
                    .map_err(StartError::Admin)?,
            ),
            None => None,
        };
        Ok(Node {
            store,
            gateway: Some(gateway),
            admin,
            admin_banner,
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The gateway, when one runs here.
    pub fn gateway(&self) -> Option<&RunningGateway> {
        self.gateway.as_ref()
    }

    /// The admin API's startup line (where it listens, where its token
    /// is; never the token), when one runs.
    pub fn admin_banner(&self) -> Option<&str> {
        self.admin_banner.as_deref()
    }

    /// The console's client over this node's store and gateway; its
    /// changes are recorded as the OS user's, through the console.
    pub async fn client(&self) -> Result<Arc<InProcessClient>, String> {
        InProcessClient::start(
            self.store.clone(),
            self.gateway.as_ref().map(RunningGateway::link),
            local_origin(Channel::Console),
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Stop the admin API (ending its streams), then the gateway (finishing
    /// requests in flight, withdrawing its report).
    pub async fn shutdown(self) {
        if let Some(a) = self.admin {
            a.shutdown().await;
        }
        if let Some(g) = self.gateway {
            g.shutdown().await;
        }
    }
}

/// Who a change made here is recorded as: the OS user running maasctl,
/// through `channel`.
pub fn local_origin(channel: Channel) -> Origin {
    Origin::user(crate::paths::os_user(), channel)
}

/// A runtime for the console and what runs beside it (the admin API; the
/// gateway has threads of its own).
pub fn console_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}
