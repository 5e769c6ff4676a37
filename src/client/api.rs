//! The admin API from the other side: one typed call per route, over
//! reqwest. Used by the remote console ([`super::RemoteClient`]) and
//! `maasctl rule explain`.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::IF_NONE_MATCH;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ClientError, CreatedKey};
use crate::admin::error::{AdminError, AdminErrorBody};
use crate::admin::explain::ExplainReport;
use crate::admin::routes::etag;
use crate::admin::wire::{Info, LogPage, NewKey};
use crate::admin::{CHANNEL_HEADER, PREFIX};
use crate::domain::history::RevisionInfo;
use crate::domain::token::{AdminTokenRecord, CreatedToken};
use crate::domain::{AuditEntry, AuditQuery, Channel};
use crate::domain::{Change, GatewayReport, Registry};
use crate::gateway::StatsSnapshot;
use crate::ops::manifest::{ManifestOutcome, ManifestRequest};
use crate::ops::rollback::{RollbackReport, RollbackRequest};
use crate::ops::tokens::{NewToken, RevokeToken};
use crate::store::Applied;

/// Time to open a connection to the admin API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for one call (not the stream).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach the admin API at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The server answered with an error.
    #[error("{0}")]
    Api(AdminError),
    /// The server answered something this client cannot read.
    #[error("unexpected answer from the admin API at {url}: {reason}")]
    Decode { url: String, reason: String },
}

impl From<AdminError> for ClientError {
    fn from(e: AdminError) -> Self {
        match e.domain() {
            Some(d) => ClientError::Domain(d),
            None => ClientError::Other(e.message),
        }
    }
}

impl From<CallError> for ClientError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Api(a) => a.into(),
            other => ClientError::Other(other.to_string()),
        }
    }
}

/// The innermost cause of a reqwest error ("Connection refused (os error
/// 111)"), which says more than its "error sending request" wrapper.
pub fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A client of one admin API.
#[derive(Clone)]
pub struct AdminApi {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Sent as [`CHANNEL_HEADER`]: what the server records changes as
    /// coming through (`None`: the admin API itself).
    channel: Option<Channel>,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminApi({})", self.base)
    }
}

impl AdminApi {
    /// `url`: the admin API's base URL (`http://host:9090`; a bare
    /// `host:port` means http, a trailing `/admin/v1` is allowed).
    pub fn new(url: &str, token: &str) -> Result<Self, String> {
        let base = normalize(url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Self {
            http,
            base,
            token: token.to_string(),
            channel: None,
        })
    }

    /// The same client with another connect timeout (the remote console's
    /// actions use a short one: an operator waiting on a key press must
    /// hear at once that the server is not there).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Result<Self, String> {
        self.http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(self)
    }

    /// The same client, telling the server its changes come through
    /// `channel` (the CLI, `apply`, the console).
    pub fn with_channel(mut self, channel: Channel) -> Self {
        self.channel = Some(channel);
        self
    }

    /// The base URL, as normalized.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, route: &str) -> String {
        format!("{}{PREFIX}{route}", self.base)
    }

    fn transport(&self, e: &reqwest::Error) -> CallError {
        CallError::Transport {
            url: self.base.clone(),
            reason: reason(e),
        }
    }

    /// Send, then turn an error status into [`CallError::Api`].
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
        let req = match self.channel {
            Some(c) => req.header(CHANNEL_HEADER, c.as_str()),
            None => req,
        };
        let res = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = res.status();
        if status.is_success() || status == StatusCode::NOT_MODIFIED {
            return Ok(res);
        }
        let body = res.bytes().await.map_err(|e| self.transport(&e))?;
        match serde_json::from_slice::<AdminErrorBody>(&body) {
            Ok(b) => Err(CallError::Api(b.error)),
            Err(_) => Err(CallError::Decode {
                url: self.base.clone(),
                reason: format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            }),
        }
    }

    async fn read<T: DeserializeOwned>(&self, res: reqwest::Response) -> Result<T, CallError> {
        let body = res.bytes().await.map_err(|e| self.transport(&e))?;
        serde_json::from_slice(&body).map_err(|e| CallError::Decode {
            url: self.base.clone(),
            reason: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        route: &str,
        query: &[(&str, &str)],
    ) -> Result<T, CallError> {
        let mut url = url::Url::parse(&self.url(route)).map_err(|e| CallError::Decode {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let req = self.http.get(url).timeout(CALL_TIMEOUT);
        let res = self.send(req).await?;
        self.read(res).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        route: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let req = self
            .http
            .post(self.url(route))
            .json(body)
            .timeout(CALL_TIMEOUT);
        let res = self.send(req).await?;
        self.read(res).await
    }

    pub async fn info(&self) -> Result<Info, CallError> {
        self.get("/info", &[]).await
    }

    /// The registry, unless it is still at revision `have` (`None`).
    pub async fn registry(&self, have: Option<u64>) -> Result<Option<Registry>, CallError> {
        let mut req = self.http.get(self.url("/registry")).timeout(CALL_TIMEOUT);
        if let Some(rev) = have {
            req = req.header(IF_NONE_MATCH, etag(rev));
        }
        let res = self.send(req).await?;
        if res.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        self.read(res).await.map(Some)
    }

    pub async fn reports(&self) -> Result<Vec<GatewayReport>, CallError> {
        self.get("/reports", &[]).await
    }

    pub async fn stats(&self) -> Result<StatsSnapshot, CallError> {
        self.get("/stats", &[]).await
    }

    /// The open stats stream (server-sent events); read it with
    /// [`super::events::EventReader`].
    pub async fn stats_stream(&self) -> Result<reqwest::Response, CallError> {
        self.send(self.http.get(self.url("/stats/stream"))).await
    }

    pub async fn apply(&self, changes: &[Change]) -> Result<Applied, CallError> {
        self.post("/apply", changes).await
    }

    pub async fn create_key(&self, workspace: &str, name: &str) -> Result<CreatedKey, CallError> {
        let body = NewKey {
            workspace: workspace.to_string(),
            name: name.to_string(),
        };
        self.post("/keys", &body).await
    }

    pub async fn explain(
        &self,
        model: &str,
        key: &str,
        workspace: Option<&str>,
    ) -> Result<ExplainReport, CallError> {
        let mut q = vec![("model", model), ("key", key)];
        if let Some(w) = workspace {
            q.push(("workspace", w));
        }
        self.get("/explain", &q).await
    }

    /// The gateway's request events after `since` (the live tail).
    pub async fn tail(&self, since: u64) -> Result<crate::gateway::TailPage, CallError> {
        let limit = super::TAIL_PAGE.to_string();
        self.get("/tail", &[("since", &since.to_string()), ("limit", &limit)])
            .await
    }

    pub async fn logs(&self, after: u64) -> Result<LogPage, CallError> {
        self.get("/logs", &[("after", &after.to_string())]).await
    }

    pub async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, CallError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = q.since_ms {
            query.push(("since_ms", s.to_string()));
        }
        if let Some(e) = &q.entity {
            query.push(("entity", e.clone()));
        }
        if q.revisions_only {
            query.push(("revisions_only", "true".into()));
        }
        if let Some(n) = q.limit {
            query.push(("limit", n.to_string()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.get("/audit", &query).await
    }

    /// `GET /usage`: a usage report from the ledger.
    pub async fn usage(
        &self,
        q: &crate::domain::usage::UsageQuery,
    ) -> Result<crate::domain::usage::UsageReport, CallError> {
        let by: Vec<&str> = q.by.iter().map(|d| d.as_str()).collect();
        let (since, until, by) = (q.since_ms.to_string(), q.until_ms.to_string(), by.join(","));
        self.get(
            "/usage",
            &[("since", &since), ("until", &until), ("by", &by)],
        )
        .await
    }

    /// `GET /budgets`: every budget with what was spent this period.
    pub async fn budgets(&self) -> Result<Vec<crate::domain::budget::BudgetStatus>, CallError> {
        self.get("/budgets", &[]).await
    }

    pub async fn history(&self, limit: Option<usize>) -> Result<Vec<RevisionInfo>, CallError> {
        match limit {
            Some(n) => self.get("/history", &[("limit", &n.to_string())]).await,
            None => self.get("/history", &[]).await,
        }
    }

    /// The registry at `revision` (redacted, like the current one).
    pub async fn registry_at(&self, revision: u64) -> Result<Registry, CallError> {
        self.get("/history/registry", &[("revision", &revision.to_string())])
            .await
    }

    pub async fn rollback(&self, req: &RollbackRequest) -> Result<RollbackReport, CallError> {
        self.post("/rollback", req).await
    }

    pub async fn manifest(&self, req: &ManifestRequest) -> Result<ManifestOutcome, CallError> {
        self.post("/manifest", req).await
    }

    pub async fn tokens(&self) -> Result<Vec<AdminTokenRecord>, CallError> {
        self.get("/tokens", &[]).await
    }

    pub async fn create_token(&self, req: &NewToken) -> Result<CreatedToken, CallError> {
        self.post("/tokens", req).await
    }

    pub async fn revoke_token(&self, req: &RevokeToken) -> Result<AdminTokenRecord, CallError> {
        self.post("/tokens/revoke", req).await
    }
}

/// `host:9090` → `http://host:9090`; trailing `/` and `/admin/v1` dropped.
fn normalize(url: &str) -> Result<String, String> {
    let t = url.trim();
    let with_scheme = if t.contains("://") {
        t.to_string()
    } else {
        format!("http://{t}")
    };
    let parsed = url::Url::parse(&with_scheme).map_err(|e| {
        format!("--connect: '{url}' is not a URL ({e}); use e.g. http://127.0.0.1:9090")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "--connect: scheme '{}' is not supported; use http or https",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("--connect: '{url}' names no host"));
    }
    let s = with_scheme.trim_end_matches('/');
    Ok(s.strip_suffix(PREFIX)
        .unwrap_or(s)
        .trim_end_matches('/')
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::error::AdminErrorKind;
    use crate::domain::DomainError;

    /// A refusal read back from the wire is the registry's refusal again
    /// (kind and fields), so a remote console shows the same inline
    /// errors; any other error is a sentence.
    #[test]
    fn registry_refusals_come_back_as_domain_errors() {
        let d = DomainError::refused("enabled", "publish it first");
        let json = serde_json::to_string(&AdminErrorBody {
            error: AdminError::from(d.clone()),
        })
        .unwrap();
        let back: AdminErrorBody = serde_json::from_str(&json).unwrap();
        assert_eq!(ClientError::from(back.error), ClientError::Domain(d));
        let route = AdminError::new(AdminErrorKind::NoRoute, "path", "no such route");
        assert_eq!(
            ClientError::from(route),
            ClientError::Other("path: no such route".into())
        );
    }

    #[test]
    fn urls_normalize() {
        assert_eq!(
            normalize("127.0.0.1:9090").unwrap(),
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            normalize("https://gw.example/admin/v1/").unwrap(),
            "https://gw.example"
        );
        assert!(normalize("ftp://x").unwrap_err().contains("scheme"));
        assert!(normalize("http://").is_err());
    }
}
