//! `maasctl` with no subcommand: the console, over an embedded gateway on
//! the local store (assembled by [`crate::compose`]), or attached to a
//! running server's admin API (`--connect URL`).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::admin::{AdminListen, TokenArgs};
use crate::compose::{AdminPlan, GatewayPlan, Node, NodePlan, console_runtime};
use crate::gateway::GatewayConfig;
use crate::store::Store;

/// Flags of the console (`maasctl` with no subcommand).
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// Address the embedded gateway listens on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Run the console without the embedded gateway (manage the registry only).
    #[arg(long)]
    pub no_gateway: bool,
    /// Address of the embedded gateway's admin API (port 0: any free port,
    /// found by `maasctl rule explain` through the store), or off.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:0")]
    pub admin_listen: AdminListen,
    /// Attach to the admin API of a running `maasctl serve` at URL instead
    /// of running a gateway here (no local store needed).
    #[arg(long, value_name = "URL", conflicts_with_all = ["listen", "no_gateway", "admin_listen"])]
    pub connect: Option<String>,
}

/// `maasctl`: the console with its embedded gateway over `store`; the log
/// file goes to `data_dir`.
pub fn run(
    args: ConsoleArgs,
    tokens: &TokenArgs,
    store: Arc<dyn Store>,
    data_dir: &Path,
) -> Result<(), String> {
    let (ring, _log_guard) = crate::logging::init(data_dir)?;
    tracing::info!("console starting over {}", store.describe());
    let plan = NodePlan {
        gateway: (!args.no_gateway).then(|| GatewayPlan {
            config: GatewayConfig {
                listen: args.listen,
                ..GatewayConfig::default()
            },
            free_port_if_taken: false,
        }),
        // The admin API comes with the gateway, so `rule explain` can ask it.
        admin: Some(AdminPlan {
            listen: args.admin_listen,
            tokens: tokens.clone(),
            data_dir: data_dir.to_path_buf(),
        }),
    };
    let rt = console_runtime()?;
    rt.block_on(async {
        let node = Node::start(store, plan, ring.clone())
            .await
            .map_err(|e| match e {
                crate::compose::StartError::Gateway(e) => format!(
                    "cannot start the embedded gateway: {e}; choose another address with --listen ADDR, or run the console without it (--no-gateway)"
                ),
                other => other.to_string(),
            })?;
        if let Some(g) = node.gateway() {
            tracing::info!("embedded gateway listening on {}", g.listen());
        }
        if let Some(b) = node.admin_banner() {
            tracing::info!("{b}");
        }
        let result = match node.client().await {
            Ok(client) => crate::tui::run::console(client, Some(ring)).await,
            Err(e) => Err(e),
        };
        node.shutdown().await;
        result
    })
}

/// `maasctl --connect URL` (or `--server URL`): the console over the admin
/// API at `url` (no gateway, no store here); the log file still goes to
/// `data_dir`.
pub fn run_remote(
    url: &str,
    _args: ConsoleArgs,
    tokens: &TokenArgs,
    data_dir: &Path,
) -> Result<(), String> {
    let token = tokens.for_client(data_dir)?;
    let api = crate::client::AdminApi::new(url, token.expose())?;
    let (ring, _log_guard) = crate::logging::init(data_dir)?;
    let rt = console_runtime()?;
    rt.block_on(async {
        let client = crate::client::RemoteClient::connect(api, Some(ring.clone())).await?;
        crate::tui::run::console(client, Some(ring)).await
    })
}
