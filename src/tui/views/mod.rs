//! The views, one file each. The list views (models, keys, workspaces,
//! clusters, market) implement [`list::Table`] and share the list
//! machinery; the model detail, traffic, logs, audit, tail and usage implement
//! [`crate::tui::component::View`] directly.

pub mod audit;
pub mod budgets;
pub mod clusters;
pub mod detail;
pub mod keys;
pub mod list;
pub mod logs;
pub mod market;
pub mod model_ops;
pub mod models;
pub mod safe;
pub mod sort;
pub mod tail;
pub mod traffic;
pub mod usage;
pub mod weights;
pub mod workspaces;

use crate::tui::component::View;

/// The view table: every view a `:` command reaches, made once when the
/// console starts (a view keeps its filter, sort and selection when the
/// operator jumps away and back). Views pushed over another (the model
/// detail) are made by the view that opens them.
pub const VIEWS: &[fn() -> Box<dyn View>] = &[
    list::new::<models::Models>,
    list::new::<keys::Keys>,
    list::new::<workspaces::Workspaces>,
    list::new::<clusters::Clusters>,
    list::new::<market::Market>,
    traffic::new,
    logs::new,
    audit::new,
    tail::new,
    list::new::<budgets::Budgets>,
    usage::new,
];
