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
        let gateway = if args.no_gateway {
            None
        } else {
            Some(embedded::start(args.listen, store.clone()).await?)
        };
        let client = InProcessClient::start(store, gateway.as_ref().map(|g| g.link()))
            .await
            .map_err(|e| e.to_string())?;
        let result = run::console(client, Some(ring)).await;
        if let Some(g) = gateway {
            g.shutdown().await;
        }
        result
    })
}
