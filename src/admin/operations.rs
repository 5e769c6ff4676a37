//! The handlers of the operations routes: the audit trail, the history
//! (revisions, the registry at one), rollback, `apply -f`'s manifests and
//! admin tokens. Each calls the same [`crate::ops`] function the CLI runs
//! on a local store, so `--server` answers exactly as local use would.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::decode;
use super::error::{AdminError, AdminErrorKind};
use super::http::{Body, Query, json, read_body};
use super::secrets::redact;
use super::state::{AdminState, blocking};
use crate::domain::audit::parse_entity;
use crate::domain::{AuditQuery, Origin};
use crate::ops;
use crate::ops::manifest::ManifestRequest;
use crate::ops::rollback::RollbackRequest;
use crate::ops::tokens::{NewToken, RevokeToken};

/// The body as `T`, read strictly: an error names the field and where it is.
async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, AdminError> {
    let bytes = read_body(req).await?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        AdminError::new(
            AdminErrorKind::BadRequest,
            "body",
            format!("is not JSON: {e}"),
        )
    })?;
    decode::value("body", &v)
}

fn bad_query(name: &str, problem: String) -> AdminError {
    AdminError::new(AdminErrorKind::BadRequest, format!("query.{name}"), problem)
}

fn limit(query: &Query) -> Result<Option<usize>, AdminError> {
    Ok(query.number("limit")?.map(|n| n as usize))
}

/// `GET /audit?since_ms=&entity=&limit=&revisions_only=`.
/// `GET /usage?since=&until=&by=`: a usage report (docs/usage.md); times
/// are a duration ago (`7d`), `now` or Unix ms, as on the command line.
pub async fn usage(state: &AdminState, query: &Query) -> Result<Response<Body>, AdminError> {
    use crate::domain::usage::{UsageQuery, parse_by, parse_time};
    let now = crate::domain::now_ms();
    let time = |name: &str, default: &str| {
        let v = query.get(name).unwrap_or(default);
        parse_time(v, now).map_err(|p| bad_query(name, p))
    };
    let q = UsageQuery {
        since_ms: time("since", "7d")?,
        until_ms: time("until", "now")?,
        by: parse_by(query.get("by").unwrap_or("workspace,model"))
            .map_err(|p| bad_query("by", p))?,
    };
    if q.until_ms <= q.since_ms {
        return Err(bad_query("until", "must be after since".into()));
    }
    json(
        StatusCode::OK,
        &blocking(state, move |s| ops::usage::report(s, &q)).await?,
    )
}

pub async fn audit(state: &AdminState, query: &Query) -> Result<Response<Body>, AdminError> {
    let since_ms = query
        .get("since_ms")
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| bad_query("since_ms", format!("'{v}' is not a time in Unix ms")))
        })
        .transpose()?;
    let entity = query
        .get("entity")
        .map(|e| parse_entity(e).map_err(|p| bad_query("entity", p)))
        .transpose()?;
    let revisions_only = match query.get("revisions_only") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(bad_query(
                "revisions_only",
                format!("'{v}' is not true or false"),
            ));
        }
    };
    let q = AuditQuery {
        since_ms,
        entity,
        revisions_only,
        limit: limit(query)?,
    };
    json(
        StatusCode::OK,
        &blocking(state, move |s| s.audit(&q)).await?,
    )
}

/// `GET /history?limit=`.
pub async fn history(state: &AdminState, query: &Query) -> Result<Response<Body>, AdminError> {
    let limit = limit(query)?;
    let revisions = blocking(state, move |s| ops::history(s, limit)).await?;
    json(StatusCode::OK, &revisions)
}

/// `GET /history/registry?revision=N`: redacted like the current one.
pub async fn registry_at(state: &AdminState, query: &Query) -> Result<Response<Body>, AdminError> {
    let revision = query
        .number("revision")?
        .ok_or_else(|| bad_query("revision", "missing; use ?revision=N".into()))?;
    let reg = blocking(state, move |s| s.registry_at(revision)).await?;
    json(StatusCode::OK, &redact(&reg))
}

/// `POST /rollback`.
pub async fn rollback(
    state: &AdminState,
    origin: Origin,
    req: Request<Incoming>,
) -> Result<Response<Body>, AdminError> {
    let r: RollbackRequest = body(req).await?;
    let report = blocking(state, move |s| {
        ops::rollback::rollback(s, &origin, r.revision, r.dry_run)
    })
    .await?;
    if !report.dry_run && report.changed {
        tracing::info!(
            revision = report.revision,
            "admin API: rolled back to revision {}",
            report.to
        );
    }
    json(StatusCode::OK, &report)
}

/// `POST /manifest`: `apply -f` with the references the client read.
pub async fn manifest(
    state: &AdminState,
    origin: Origin,
    req: Request<Incoming>,
) -> Result<Response<Body>, AdminError> {
    let r: ManifestRequest = body(req).await?;
    let out = blocking(state, move |s| {
        let read = ops::manifest::reader(&r.references);
        ops::manifest::apply(
            s,
            &origin,
            &r.manifest,
            &read,
            r.dry_run,
            r.source.as_deref(),
        )
    })
    .await?;
    if !out.dry_run && out.changed {
        tracing::info!(
            revision = out.revision,
            "admin API: applied a declarative file"
        );
    }
    json(StatusCode::OK, &out)
}

/// `GET /tokens`: never a secret or a hash.
pub async fn tokens(state: &AdminState) -> Result<Response<Body>, AdminError> {
    json(StatusCode::OK, &blocking(state, ops::tokens::list).await?)
}

/// `POST /tokens`: the secret is in this answer only.
pub async fn create_token(
    state: &AdminState,
    origin: Origin,
    req: Request<Incoming>,
) -> Result<Response<Body>, AdminError> {
    let r: NewToken = body(req).await?;
    let made = blocking(state, move |s| ops::tokens::create(s, &origin, r)).await?;
    tracing::info!(
        "admin API: created admin token {} ({})",
        made.name,
        made.role
    );
    json(StatusCode::CREATED, &made)
}

/// `POST /tokens/revoke`.
pub async fn revoke_token(
    state: &AdminState,
    origin: Origin,
    req: Request<Incoming>,
) -> Result<Response<Body>, AdminError> {
    let r: RevokeToken = body(req).await?;
    let t = blocking(state, move |s| ops::tokens::revoke(s, &origin, r)).await?;
    tracing::info!("admin API: revoked admin token {}", t.name);
    json(StatusCode::OK, &t)
}
