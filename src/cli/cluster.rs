//! `maasctl cluster add|list|edit|delete`.

use clap::Subcommand;
use serde::Serialize;

use super::output::Table;
use super::{CliError, CliResult, Ctx};
use crate::domain::{Change, Cluster, now_ms};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Add a cluster.
    Add {
        name: String,
        /// Base URL of the cluster's gateway (without /v1).
        #[arg(long, visible_alias = "entry", value_name = "URL")]
        entry_address: Option<String>,
    },
    /// List clusters with their access paths.
    List,
    /// Change a cluster's entry address or name.
    Edit {
        cluster: String,
        /// Rename (refused while models enter through it, and for `local`).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, visible_alias = "entry", value_name = "URL")]
        entry_address: Option<String>,
    },
    /// Delete a cluster (refused while models enter through it).
    Delete { name: String },
}

#[derive(Debug, Serialize)]
struct ClusterView {
    name: String,
    entry_address: String,
    access_path: String,
    models: usize,
    /// Gateways serving it that reported in the last few seconds.
    gateways: usize,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Add {
            name,
            entry_address,
        } => {
            let c = Cluster {
                name,
                entry_address: entry_address.unwrap_or_default(),
            };
            ctx.apply(vec![Change::AddCluster(c.clone())])?;
            ctx.emit(&c, || {
                format!("added cluster {} (access path {})", c.name, c.access_path())
            })
        }
        Cmd::Edit {
            cluster,
            name,
            entry_address,
        } => {
            let (_, c) = ctx.update(|reg| {
                let old = reg.clusters.get(&cluster).ok_or_else(|| {
                    CliError::field("name", format!("no cluster named '{cluster}'"))
                })?;
                let c = Cluster {
                    name: name.clone().unwrap_or_else(|| old.name.clone()),
                    entry_address: entry_address
                        .clone()
                        .unwrap_or_else(|| old.entry_address.clone()),
                };
                let change = Change::UpdateCluster {
                    name: cluster.clone(),
                    cluster: c.clone(),
                };
                Ok((vec![change], c))
            })?;
            ctx.emit(&c, || {
                format!(
                    "updated cluster {} (access path {})",
                    c.name,
                    c.access_path()
                )
            })
        }
        Cmd::Delete { name } => {
            ctx.apply(vec![Change::DeleteCluster { name: name.clone() }])?;
            ctx.emit(&serde_json::json!({ "deleted": name }), || {
                format!("deleted cluster {name}")
            })
        }
        Cmd::List => {
            let reg = ctx.load()?;
            let reports = ctx.reports()?;
            let now = now_ms();
            let views: Vec<ClusterView> = reg
                .clusters
                .values()
                .map(|c| ClusterView {
                    name: c.name.clone(),
                    entry_address: c.entry_address.clone(),
                    access_path: c.access_path(),
                    models: reg.models_in_cluster(&c.name).len(),
                    gateways: reports
                        .iter()
                        .filter(|r| r.is_fresh(now) && r.serves(&c.name))
                        .count(),
                })
                .collect();
            ctx.emit(&views, || {
                let mut t =
                    Table::new(["NAME", "ENTRY ADDRESS", "ACCESS PATH", "MODELS", "GATEWAYS"]);
                for v in &views {
                    t.row([
                        v.name.clone(),
                        v.entry_address.clone(),
                        v.access_path.clone(),
                        v.models.to_string(),
                        v.gateways.to_string(),
                    ]);
                }
                t.render()
            })
        }
    }
}
