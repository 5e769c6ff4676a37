//! `maasctl token create|list|revoke`: named admin tokens with a role
//! (`read` watches, `admin` changes). The secret is shown once; only its
//! hash is kept. The server's bootstrap token (`admin.token`) is not one
//! of these and keeps working.

use clap::Subcommand;

use super::output::{Table, utc};
use super::{CliResult, Ctx};
use crate::domain::token::Role;
use crate::ops::tokens::{NewToken, RevokeToken};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a token; its secret is printed once and only its hash is kept.
    Create {
        name: String,
        /// read (lists, counters, audit, explain) or admin (changes too).
        #[arg(long)]
        role: Role,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token: calls with it fail at once. It stays listed.
    Revoke { name: String },
}

const SHOWN_ONCE: &str =
    "This secret is shown only now and cannot be shown again; store it safely.";

pub fn run(ctx: &Ctx, cmd: Cmd) -> CliResult {
    match cmd {
        Cmd::Create { name, role } => {
            let made = ctx.backend().create_token(NewToken { name, role })?;
            ctx.emit(&made, || {
                format!(
                    "created admin token {} ({})\nsecret: {}\n{SHOWN_ONCE}",
                    made.name, made.role, made.secret
                )
            })
        }
        Cmd::List => {
            let tokens = ctx.backend().tokens()?;
            ctx.emit(&tokens, || {
                let mut t = Table::new(["NAME", "ROLE", "SECRET", "STATUS", "CREATED"]);
                for k in &tokens {
                    t.row([
                        k.name.clone(),
                        k.role.to_string(),
                        k.masked(),
                        k.revoked
                            .map_or("active".into(), |r| format!("revoked {}", utc(r))),
                        utc(k.created),
                    ]);
                }
                t.render()
            })
        }
        Cmd::Revoke { name } => {
            let t = ctx.backend().revoke_token(RevokeToken { name })?;
            ctx.emit(&t, || {
                format!("revoked admin token {} ({})", t.name, t.role)
            })
        }
    }
}
