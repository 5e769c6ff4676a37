//! The console (SPEC §4): a k9s-like keyboard dashboard over the
//! [`Client`](crate::client::Client) seam.
//!
//! Shape: background tasks publish snapshots; [`run`]'s loop feeds them,
//! keys and replies to [`app::App`] (all state, no I/O) and draws with
//! [`views::chrome::render`] only when something changed.

pub mod action;
pub mod app;
pub mod data;
pub mod embedded;
pub mod fixtures;
pub mod format;
pub mod forms;
pub mod keymap;
pub mod live;
pub mod run;
pub mod terminal;
pub mod theme;
pub mod views;
pub mod widgets;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::client::InProcessClient;
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
    pub admin_listen: crate::admin::AdminListen,
    /// Attach to the admin API of a running `maasctl serve` at URL instead
    /// of running a gateway here (no local store needed).
    #[arg(long, value_name = "URL", conflicts_with_all = ["listen", "no_gateway", "admin_listen"])]
    pub connect: Option<String>,
    #[command(flatten)]
    pub admin_token: crate::admin::TokenArgs,
}

/// A runtime for the console and its embedded gateway.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// `maasctl`: the console with its embedded gateway over `store`; the log
/// file goes to `data_dir`.
pub fn run(args: ConsoleArgs, store: Arc<dyn Store>, data_dir: &Path) -> Result<(), String> {
    let (ring, _log_guard) = crate::logging::init(data_dir)?;
    tracing::info!("console starting over {}", store.describe());
    let rt = runtime()?;
    rt.block_on(async {
        let (gateway, admin) = if args.no_gateway {
            (None, None)
        } else {
            // The admin API comes with the gateway, so `rule explain` can ask it.
            let admin = crate::admin::prepare(args.admin_listen, &args.admin_token, data_dir)?;
            let gw = embedded::start(args.listen, store.clone(), admin.as_ref().map(|a| a.url()))
                .await?;
            let admin = match admin {
                Some(a) => {
                    tracing::info!("{}", a.banner());
                    Some(a.serve(store.clone(), gw.view(), ring.clone())?)
                }
                None => None,
            };
            (Some(gw), admin)
        };
        let client = InProcessClient::start(store, gateway.as_ref().map(|g| g.link()))
            .await
            .map_err(|e| e.to_string())?;
        let result = run::console(client, Some(ring)).await;
        if let Some(a) = admin {
            a.shutdown().await;
        }
        if let Some(g) = gateway {
            g.shutdown().await;
        }
        result
    })
}

/// `maasctl --connect URL`: the console over the admin API at `url` (no
/// gateway, no store here); the log file still goes to `data_dir`.
pub fn run_remote(url: &str, args: ConsoleArgs, data_dir: &Path) -> Result<(), String> {
    let token = args.admin_token.for_client(data_dir)?;
    let api = crate::client::AdminApi::new(url, token.expose())?;
    let (ring, _log_guard) = crate::logging::init(data_dir)?;
    let rt = runtime()?;
    rt.block_on(async {
        let client = crate::client::RemoteClient::connect(api, Some(ring.clone())).await?;
        run::console(client, Some(ring)).await
    })
}
