//! `maasctl key create|list|revoke|delete`: platform API keys.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::output::{Table, utc};
use super::refs::read_ref;
use super::{CliError, CliResult, Ctx};
use crate::domain::{ApiKey, Change, Registry, secret};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a key; its secret is printed once and only its hash is kept.
    Create(CreateArgs),
    /// List keys (secrets masked).
    List {
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Revoke a key: calls with it fail at once. It stays listed.
    Revoke {
        /// Key id, or name.
        key: String,
        /// Workspace of a key given by name.
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Delete a key (refused while rules use it).
    Delete {
        /// Key id, or name.
        key: String,
        #[arg(long)]
        workspace: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    workspace: String,
    #[arg(long)]
    name: String,
    /// Import the secret from this environment variable instead of generating one.
    #[arg(long, value_name = "VAR", conflicts_with = "secret_from_file")]
    secret_from_env: Option<String>,
    /// Import the secret from this file instead of generating one.
    #[arg(long, value_name = "PATH")]
    secret_from_file: Option<String>,
}

/// Find a key by id, or by name (within `workspace` when given). A name
/// that matches nothing is returned as typed, for the registry to refuse
/// with its own words.
pub fn resolve_key(reg: &Registry, workspace: Option<&str>, s: &str) -> CliResult<String> {
    if reg.keys.contains_key(s) {
        return Ok(s.to_string());
    }
    let found: Vec<&ApiKey> = reg
        .keys
        .values()
        .filter(|k| k.name == s && workspace.is_none_or(|w| w == k.workspace))
        .collect();
    match found.as_slice() {
        [] => Ok(s.to_string()),
        [k] => Ok(k.id.clone()),
        many => Err(CliError::field(
            "key",
            format!(
                "'{s}' names keys in several workspaces ({}); give the key id or --workspace",
                many.iter()
                    .map(|k| format!("{} in {}", k.id, k.workspace))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

#[derive(Debug, Serialize)]
struct KeyView {
    id: String,
    workspace: String,
    name: String,
    /// Masked.
    secret_hint: String,
    created: i64,
    revoked: Option<i64>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.clone(),
            workspace: k.workspace.clone(),
            name: k.name.clone(),
            secret_hint: k.masked(),
            created: k.created,
            revoked: k.revoked,
        }
    }
}

#[derive(Debug, Serialize)]
struct Created {
    #[serde(flatten)]
    key: KeyView,
    /// Only when generated here; never retrievable again.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

const SHOWN_ONCE: &str =
    "This secret is shown only now and cannot be shown again; store it safely.";

pub fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Create(a) => create(ctx, a),
        Cmd::List { workspace } => list(ctx, workspace),
        Cmd::Revoke { key, workspace } => {
            let (_, id) = ctx.update(|reg| {
                let id = resolve_key(reg, workspace.as_deref(), &key)?;
                Ok((vec![Change::RevokeKey { id: id.clone() }], id))
            })?;
            let reg = ctx.load()?;
            let k = reg.key(&id)?;
            ctx.emit(&KeyView::from(k), || {
                format!("revoked key {id} ({}/{})", k.workspace, k.name)
            })
        }
        Cmd::Delete { key, workspace } => {
            let (_, id) = ctx.update(|reg| {
                let id = resolve_key(reg, workspace.as_deref(), &key)?;
                Ok((vec![Change::DeleteKey { id: id.clone() }], id))
            })?;
            ctx.emit(&serde_json::json!({ "deleted": id }), || {
                format!("deleted key {id}")
            })
        }
    }
}

fn create(ctx: &Ctx, a: CreateArgs) -> CliResult {
    let reference = a
        .secret_from_env
        .map(|v| format!("env:{v}"))
        .or(a.secret_from_file.map(|p| format!("file:{p}")));
    let (secret, generated) = match &reference {
        None => (secret::generate_secret(), true),
        Some(r) => {
            let s = read_ref(r).map_err(|e| CliError::field("secret", e))?;
            secret::validate_imported_secret(&s)
                .map_err(|p| CliError::field("secret", format!("the secret in {r} {p}")))?;
            (s, false)
        }
    };
    let id = secret::generate_key_id();
    ctx.apply(vec![Change::CreateKey {
        id: id.clone(),
        workspace: a.workspace,
        name: a.name,
        secret_hash: secret::hash_secret(&secret),
        secret_hint: secret::secret_hint(&secret),
    }])?;
    let reg = ctx.load()?;
    let out = Created {
        key: reg.key(&id)?.into(),
        secret: generated.then_some(secret),
    };
    ctx.emit(&out, || {
        let k = &out.key;
        match &out.secret {
            Some(s) => format!(
                "created key {} ({}) in workspace {}\nsecret: {s}\n{SHOWN_ONCE}",
                k.id, k.name, k.workspace
            ),
            None => format!(
                "created key {} ({}) in workspace {} with the imported secret {}",
                k.id, k.name, k.workspace, k.secret_hint
            ),
        }
    })
}

fn list(ctx: &Ctx, workspace: Option<String>) -> CliResult {
    let reg = ctx.load()?;
    if let Some(w) = &workspace
        && !reg.workspaces.contains_key(w)
    {
        return Err(CliError::field(
            "workspace",
            format!("no workspace named '{w}'"),
        ));
    }
    let mut keys: Vec<KeyView> = reg
        .keys
        .values()
        .filter(|k| workspace.as_ref().is_none_or(|w| *w == k.workspace))
        .map(KeyView::from)
        .collect();
    keys.sort_by(|a, b| (&a.workspace, &a.name).cmp(&(&b.workspace, &b.name)));
    ctx.emit(&keys, || {
        let mut t = Table::new(["ID", "WORKSPACE", "NAME", "SECRET", "STATUS", "CREATED"]);
        for k in &keys {
            t.row([
                k.id.clone(),
                k.workspace.clone(),
                k.name.clone(),
                k.secret_hint.clone(),
                k.revoked
                    .map_or("active".into(), |r| format!("revoked {}", utc(r))),
                utc(k.created),
            ]);
        }
        t.render()
    })
}
