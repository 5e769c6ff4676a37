//! `maasctl workspace create|list|edit|delete`.

use clap::Subcommand;
use serde::Serialize;

use super::output::{Table, or_dash, utc};
use super::{CliResult, Ctx};
use crate::domain::Change;

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a workspace.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List workspaces with their key counts.
    List,
    /// Change a workspace's description.
    Edit {
        name: String,
        #[arg(long)]
        description: String,
    },
    /// Delete a workspace (refused while rules use it or it has active keys;
    /// its revoked keys go with it).
    Delete { name: String },
}

#[derive(Debug, Serialize)]
struct WorkspaceView {
    name: String,
    description: String,
    active_keys: usize,
    revoked_keys: usize,
    created: i64,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Create { name, description } => {
            ctx.apply(vec![Change::AddWorkspace {
                name: name.clone(),
                description: description.unwrap_or_default(),
            }])?;
            ctx.emit(&serde_json::json!({ "created": name }), || {
                format!("created workspace {name}")
            })
        }
        Cmd::Edit { name, description } => {
            ctx.apply(vec![Change::UpdateWorkspace {
                name: name.clone(),
                description,
            }])?;
            ctx.emit(&serde_json::json!({ "updated": name }), || {
                format!("updated workspace {name}")
            })
        }
        Cmd::Delete { name } => {
            ctx.apply(vec![Change::DeleteWorkspace { name: name.clone() }])?;
            ctx.emit(&serde_json::json!({ "deleted": name }), || {
                format!("deleted workspace {name}")
            })
        }
        Cmd::List => {
            let reg = ctx.load()?;
            let views: Vec<WorkspaceView> = reg
                .workspaces
                .values()
                .map(|w| {
                    let keys = reg.keys.values().filter(|k| k.workspace == w.name);
                    let revoked = keys.clone().filter(|k| k.is_revoked()).count();
                    WorkspaceView {
                        name: w.name.clone(),
                        description: w.description.clone(),
                        active_keys: keys.count() - revoked,
                        revoked_keys: revoked,
                        created: w.created,
                    }
                })
                .collect();
            ctx.emit(&views, || {
                let mut t = Table::new(["NAME", "KEYS", "CREATED", "DESCRIPTION"]);
                for v in &views {
                    let keys = if v.revoked_keys > 0 {
                        format!("{} (+{} revoked)", v.active_keys, v.revoked_keys)
                    } else {
                        v.active_keys.to_string()
                    };
                    t.row([
                        v.name.clone(),
                        keys,
                        utc(v.created),
                        or_dash(v.description.clone()),
                    ]);
                }
                t.render()
            })
        }
    }
}
