//! Where a command's registry lives: the local store ([`Local`]), or a
//! server's admin API (`--server URL`, [`Remote`]). Commands are written
//! once against [`Backend`] (through [`super::Ctx`]), so every command
//! behaves the same on both paths: the same output, the same errors (the
//! server's refusals carry the registry's own words), the same exit codes.
//!
//! Adding a command that needs more than `load`/`apply`: write the
//! operation once in [`crate::ops`] (or use a `Store` method), add a route
//! calling it to the admin API's table (and the OpenAPI document), a typed
//! call to [`crate::client::AdminApi`], and a method here whose [`Local`]
//! side calls the operation and whose [`Remote`] side calls the route.

use std::path::PathBuf;
use std::sync::Arc;

use super::{CliError, CliResult};
use crate::admin::TokenArgs;
use crate::admin::explain::{ExplainReport, NO_GATEWAY};
use crate::client::AdminApi;
use crate::client::api::CallError;
use crate::domain::budget::BudgetStatus;
use crate::domain::history::RevisionInfo;
use crate::domain::manifest::{Manifest, ReadRef};
use crate::domain::token::{AdminTokenRecord, CreatedToken};
use crate::domain::usage::{UsageQuery, UsageReport};
use crate::domain::{AuditEntry, AuditQuery, Change, GatewayReport, Origin, Registry, now_ms};
use crate::ops::manifest::{ManifestOutcome, ManifestRequest, references};
use crate::ops::rollback::{RollbackReport, RollbackRequest};
use crate::ops::tokens::{NewToken, RevokeToken};
use crate::store::{Applied, Store, StoreError};

/// Why a batch was not applied.
pub enum ApplyFailure {
    /// Someone else changed the registry since it was read: read it again.
    Stale,
    Failed(CliError),
}

/// What commands need of the registry's home.
pub trait Backend {
    /// The registry (from a server: upstream keys masked, no key hashes;
    /// every command's output is the same either way).
    fn load(&self) -> CliResult<Registry>;
    /// The live gateways' reports.
    fn reports(&self) -> CliResult<Vec<GatewayReport>>;
    /// Apply a batch atomically.
    fn apply(&self, changes: Vec<Change>) -> Result<Applied, ApplyFailure>;
    /// `apply -f`: plan `m` against the registry and apply it (references
    /// read here, with `read`).
    fn apply_manifest(
        &self,
        m: &Manifest,
        read: ReadRef,
        dry_run: bool,
        source: &str,
    ) -> CliResult<ManifestOutcome>;
    fn audit(&self, q: &AuditQuery) -> CliResult<Vec<AuditEntry>>;
    /// A usage report from the ledger (docs/usage.md).
    fn usage(&self, q: &UsageQuery) -> CliResult<UsageReport>;
    /// Budgets with what was spent this period (docs/usage.md "Budgets").
    fn budgets(&self) -> CliResult<Vec<BudgetStatus>>;
    fn history(&self, limit: Option<usize>) -> CliResult<Vec<RevisionInfo>>;
    /// The registry at an earlier revision.
    fn registry_at(&self, revision: u64) -> CliResult<Registry>;
    fn rollback(&self, req: &RollbackRequest) -> CliResult<RollbackReport>;
    /// Admin tokens, without hashes.
    fn tokens(&self) -> CliResult<Vec<AdminTokenRecord>>;
    fn create_token(&self, req: NewToken) -> CliResult<CreatedToken>;
    fn revoke_token(&self, req: RevokeToken) -> CliResult<AdminTokenRecord>;
    /// `rule explain`: the rules of `model` that apply to `key`, with a
    /// gateway's live counts when one can be asked.
    fn explain(&self, model: &str, key: &str, workspace: Option<&str>) -> CliResult<ExplainReport>;
}

/// The local store; changes are recorded as `origin`'s.
pub struct Local {
    pub store: Arc<dyn Store>,
    pub origin: Origin,
    /// Where `rule explain` finds the token to ask a running gateway.
    pub data_dir: PathBuf,
    pub tokens: TokenArgs,
}

impl Backend for Local {
    fn load(&self) -> CliResult<Registry> {
        Ok(self.store.load()?)
    }

    fn reports(&self) -> CliResult<Vec<GatewayReport>> {
        Ok(self.store.reports()?)
    }

    fn apply(&self, changes: Vec<Change>) -> Result<Applied, ApplyFailure> {
        self.store
            .apply(changes, &self.origin)
            .map_err(|e| match e {
                StoreError::Domain(d) if d.is_stale_revision() => ApplyFailure::Stale,
                other => ApplyFailure::Failed(other.into()),
            })
    }

    fn apply_manifest(
        &self,
        m: &Manifest,
        read: ReadRef,
        dry_run: bool,
        source: &str,
    ) -> CliResult<ManifestOutcome> {
        let store = &*self.store;
        Ok(crate::ops::manifest::apply(
            store,
            &self.origin,
            m,
            read,
            dry_run,
            Some(source),
        )?)
    }

    fn audit(&self, q: &AuditQuery) -> CliResult<Vec<AuditEntry>> {
        Ok(self.store.audit(q)?)
    }

    fn usage(&self, q: &UsageQuery) -> CliResult<UsageReport> {
        Ok(crate::ops::usage::report(&*self.store, q)?)
    }

    fn budgets(&self) -> CliResult<Vec<BudgetStatus>> {
        Ok(crate::ops::budgets::status(&*self.store, now_ms())?)
    }

    fn history(&self, limit: Option<usize>) -> CliResult<Vec<RevisionInfo>> {
        Ok(crate::ops::history(&*self.store, limit)?)
    }

    fn registry_at(&self, revision: u64) -> CliResult<Registry> {
        Ok(self.store.registry_at(revision)?)
    }

    fn rollback(&self, req: &RollbackRequest) -> CliResult<RollbackReport> {
        Ok(crate::ops::rollback::rollback(
            &*self.store,
            &self.origin,
            req.revision,
            req.dry_run,
        )?)
    }

    fn tokens(&self) -> CliResult<Vec<AdminTokenRecord>> {
        Ok(crate::ops::tokens::list(&*self.store)?)
    }

    fn create_token(&self, req: NewToken) -> CliResult<CreatedToken> {
        Ok(crate::ops::tokens::create(&*self.store, &self.origin, req)?)
    }

    fn revoke_token(&self, req: RevokeToken) -> CliResult<AdminTokenRecord> {
        Ok(crate::ops::tokens::revoke(&*self.store, &self.origin, req)?)
    }

    fn explain(&self, model: &str, key: &str, workspace: Option<&str>) -> CliResult<ExplainReport> {
        runtime()?.block_on(ask_gateways(self, model, key, workspace))
    }
}

fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the async runtime: {e}")))
}

/// A refusal keeps its field (`key: no API key …`); anything else is a
/// sentence.
pub fn call_error(e: CallError) -> CliError {
    match e {
        CallError::Api(a) => CliError(a.message),
        other => CliError(other.to_string()),
    }
}

/// `rule explain` on the local store: resolve the model and key here, then
/// ask the freshest gateway serving the model's cluster that has an admin
/// API (with the token from the usual places).
async fn ask_gateways(
    local: &Local,
    model: &str,
    key: &str,
    workspace: Option<&str>,
) -> CliResult<ExplainReport> {
    let reg = local.store.load()?;
    let report = ExplainReport::resolve(&reg, model, key, workspace)?;
    let cluster = reg.model(&report.model)?.spec.cluster.clone();
    let now = now_ms();
    let fresh: Vec<GatewayReport> = local
        .store
        .reports()?
        .into_iter()
        .filter(|r| r.is_fresh(now))
        .collect();
    let mut serving: Vec<&GatewayReport> = fresh.iter().filter(|r| r.serves(&cluster)).collect();
    serving.sort_by_key(|r| std::cmp::Reverse(r.heartbeat_ms));
    if fresh.is_empty() {
        return Ok(report.without_live(NO_GATEWAY));
    }
    let Some(first) = serving.first() else {
        return Ok(report.without_live(format!("no running gateway serves cluster '{cluster}'")));
    };
    let with_admin: Vec<(&GatewayReport, &str)> = serving
        .iter()
        .filter_map(|r| r.admin.as_deref().map(|a| (*r, a)))
        .collect();
    if with_admin.is_empty() {
        return Ok(report.without_live(format!(
            "the gateway at {} runs without an admin API (--admin-listen off)",
            first.listen
        )));
    }
    let mut unreachable = Vec::new();
    for (gw, admin) in with_admin {
        let api = api(admin, &local.tokens, &local.data_dir)?;
        match api
            .explain(&report.model, &report.key_id, Some(&report.workspace))
            .await
        {
            Ok(r) => return Ok(r),
            // A gateway that just died still has a fresh report: try the next.
            Err(CallError::Transport { reason, .. }) => unreachable.push(format!(
                "the gateway at {} did not answer ({reason})",
                gw.listen
            )),
            Err(e) => return Err(call_error(e)),
        }
    }
    Ok(report.without_live(unreachable.join("; ")))
}

/// A client of the admin API at `url`, with the token from the usual
/// places (`--admin-token-file`, `$MAASCTL_ADMIN_TOKEN`, `admin.token`).
pub fn api(url: &str, tokens: &TokenArgs, data_dir: &std::path::Path) -> CliResult<AdminApi> {
    let token = tokens.for_client(data_dir).map_err(CliError)?;
    AdminApi::new(url, token.expose()).map_err(CliError)
}

/// A server's admin API (`--server URL`); changes are recorded as the
/// token's, through the channel the API client names.
pub struct Remote {
    api: AdminApi,
    rt: tokio::runtime::Runtime,
}

impl Remote {
    pub fn new(api: AdminApi) -> CliResult<Self> {
        Ok(Self {
            api,
            rt: runtime()?,
        })
    }

    fn call<T>(&self, f: impl std::future::Future<Output = Result<T, CallError>>) -> CliResult<T> {
        self.rt.block_on(f).map_err(call_error)
    }
}

impl Backend for Remote {
    fn load(&self) -> CliResult<Registry> {
        Ok(self.call(self.api.registry(None))?.unwrap_or_default())
    }

    fn reports(&self) -> CliResult<Vec<GatewayReport>> {
        self.call(self.api.reports())
    }

    fn apply(&self, changes: Vec<Change>) -> Result<Applied, ApplyFailure> {
        self.rt
            .block_on(self.api.apply(&changes))
            .map_err(|e| match e {
                CallError::Api(a) if a.domain().is_some_and(|d| d.is_stale_revision()) => {
                    ApplyFailure::Stale
                }
                other => ApplyFailure::Failed(call_error(other)),
            })
    }

    fn apply_manifest(
        &self,
        m: &Manifest,
        read: ReadRef,
        dry_run: bool,
        source: &str,
    ) -> CliResult<ManifestOutcome> {
        let req = ManifestRequest {
            manifest: m.clone(),
            references: references(m, read),
            dry_run,
            source: Some(source.to_string()),
        };
        self.call(self.api.manifest(&req))
    }

    fn audit(&self, q: &AuditQuery) -> CliResult<Vec<AuditEntry>> {
        self.call(self.api.audit(q))
    }

    fn usage(&self, q: &UsageQuery) -> CliResult<UsageReport> {
        self.call(self.api.usage(q))
    }

    fn budgets(&self) -> CliResult<Vec<BudgetStatus>> {
        self.call(self.api.budgets())
    }

    fn history(&self, limit: Option<usize>) -> CliResult<Vec<RevisionInfo>> {
        self.call(self.api.history(limit))
    }

    fn registry_at(&self, revision: u64) -> CliResult<Registry> {
        self.call(self.api.registry_at(revision))
    }

    fn rollback(&self, req: &RollbackRequest) -> CliResult<RollbackReport> {
        self.call(self.api.rollback(req))
    }

    fn tokens(&self) -> CliResult<Vec<AdminTokenRecord>> {
        self.call(self.api.tokens())
    }

    fn create_token(&self, req: NewToken) -> CliResult<CreatedToken> {
        self.call(self.api.create_token(&req))
    }

    fn revoke_token(&self, req: RevokeToken) -> CliResult<AdminTokenRecord> {
        self.call(self.api.revoke_token(&req))
    }

    fn explain(&self, model: &str, key: &str, workspace: Option<&str>) -> CliResult<ExplainReport> {
        self.call(self.api.explain(model, key, workspace))
    }
}
