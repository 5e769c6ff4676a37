//! The console (SPEC §4): a k9s-like keyboard dashboard over the
//! [`Client`](crate::client::Client) seam.
//!
//! Shape: background tasks publish snapshots; [`run`]'s loop feeds them,
//! keys and replies to [`app::App`] (all state, no I/O). Data flows one
//! way: a snapshot arrives → every view derives its rows from it
//! ([`component::View::refresh`]) → before a frame [`app::App::layout`]
//! fits scroll positions → [`chrome::render`] draws from `&App`, reading
//! only, and only when something changed.
//!
//! Keys: the app keeps a stack, views (pages) below and popups (a form,
//! above it at most one overlay) on top. A key goes to the top popup,
//! else to the `:`/`/` prompt, else to the view on top, through that
//! view's key table and then [`keymap::GLOBAL`]. A view answers an action
//! with an [`component::Effect`] (send a call, push a view, jump, open a
//! form or an overlay, flash a line) that the app carries out. One key
//! table per view is the single source of its keys, its footer and its
//! `?` help.
//!
//! Layers, bottom up (no module imports one above it): [`ids`] (view ids,
//! `:` commands, sort keys) · [`action`], [`keymap`], [`theme`],
//! [`format`], [`live`], [`data`] · [`widgets`] · [`forms`] · [`popups`] ·
//! [`component`] (the `View` trait and `Effect`) · [`views`] · [`app`] ·
//! [`chrome`] · [`run`]. `tests/tui.rs` checks there is no import cycle.
//!
//! # How to add …
//!
//! **A view** (`:audit`, say): a `ViewId` variant and its name in
//! [`ids`] (plus a line in `ids::COMMANDS` for its `:` command); one file
//! in `views/` that implements [`component::View`] — or, for a table of
//! rows, [`views::list::Table`] (ids, columns, cells, sorts, what its keys
//! do), which gets filter, sort, selection and drawing from
//! [`views::list::List`]; and one line in [`views::VIEWS`]. A view opened
//! from another (a detail) is not in the table: the opener returns
//! `Effect::Push(Box::new(…))`. Derive rows in `refresh` (it runs for every
//! view whenever data arrives, so skip the work when its inputs did not
//! move); keep `render` reading only; persist scroll offsets in `layout`.
//!
//! **A key**: a line in the view's `KEYS` table (in its file) with the
//! [`action::Action`] it triggers (a new variant if none fits) and an arm
//! in the view's `handle` (or `Table::act`). Footer and help follow from
//! the table. A key of every view goes in [`keymap::GLOBAL`] and is handled
//! in `App::dispatch`.
//!
//! **A form**: a module in `forms/` that builds a [`forms::Form`] from
//! fields named like the registry's error fields, with a
//! [`forms::form::Behaviour`] (what it builds, which fields follow others,
//! keys of its own), a [`forms::FormKind`] variant and its success line in
//! `Form::success`; a view opens it with `Effect::Form(…)`.
//!
//! **A popup**: an [`popups::Overlay`] variant with its keys in
//! `Overlay::on_key` and its drawing in `Overlay::render`; a view opens it
//! with `Effect::Overlay(…)`.

pub mod action;
pub mod app;
pub mod chrome;
pub mod component;
pub mod data;
pub mod embedded;
pub mod format;
pub mod forms;
pub mod ids;
pub mod keymap;
pub mod live;
pub mod popups;
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
    let api = crate::admin::api::AdminApi::new(url, token.expose())?;
    let (ring, _log_guard) = crate::logging::init(data_dir)?;
    let rt = runtime()?;
    rt.block_on(async {
        let client = crate::admin::client::RemoteClient::connect(api, Some(ring.clone())).await?;
        run::console(client, Some(ring)).await
    })
}
