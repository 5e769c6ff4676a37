//! The admin API's routes: authentication, the route table, and one
//! handler per route. Every answer is JSON (the stats stream is
//! server-sent events of JSON); every error has the shape of
//! [`AdminError`](super::error::AdminError). HTTP plumbing is in
//! [`super::http`].

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use super::error::{AdminError, AdminErrorKind};
use super::explain::{ExplainReport, not_served_reason};
use super::http::{Body, Query, empty, error_response, header_value, json, read_body, read_json};
use super::secrets::{redact, resolve_masked};
use super::wire::{Info, LogEntry, LogPage, NewKey, Revision, ServedGateway};
use super::{AdminToken, PREFIX, decode, sse};
use crate::domain::token::BOOTSTRAP;
use crate::domain::{Change, Channel, Origin, new_key, summarize};
use crate::gateway::GatewayView;
use crate::logging::LogRing;
use crate::store::{Store, StoreError};

/// Most log lines one call returns.
const LOG_PAGE_MAX: usize = 2000;

/// What the handlers work with.
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub gateway: GatewayView,
    pub token: AdminToken,
    pub logs: LogRing,
    /// Base URL of this admin API.
    pub url: String,
    /// Turns true on shutdown (ends the streams).
    pub stop: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Healthz,
    Info,
    Revision,
    Registry,
    Apply,
    Keys,
    Reports,
    Stats,
    StatsStream,
    Explain,
    Logs,
}

/// Path (under `/admin/v1`), method, route.
fn table() -> [(&'static str, Method, Route); 11] {
    [
        ("/healthz", Method::GET, Route::Healthz),
        ("/info", Method::GET, Route::Info),
        ("/revision", Method::GET, Route::Revision),
        ("/registry", Method::GET, Route::Registry),
        ("/apply", Method::POST, Route::Apply),
        ("/keys", Method::POST, Route::Keys),
        ("/reports", Method::GET, Route::Reports),
        ("/stats", Method::GET, Route::Stats),
        ("/stats/stream", Method::GET, Route::StatsStream),
        ("/explain", Method::GET, Route::Explain),
        ("/logs", Method::GET, Route::Logs),
    ]
}

/// The route of `method path`, or why there is none.
fn find(method: &Method, path: &str) -> Result<Route, AdminError> {
    let table = table();
    let sub = path
        .strip_prefix(PREFIX)
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty());
    let same_path: Vec<&(&str, Method, Route)> = match sub {
        Some(sub) => table.iter().filter(|(p, ..)| *p == sub).collect(),
        None => Vec::new(),
    };
    if same_path.is_empty() {
        let known: Vec<String> = table
            .iter()
            .map(|(p, m, _)| format!("{m} {PREFIX}{p}"))
            .collect();
        return Err(AdminError::new(
            AdminErrorKind::NoRoute,
            "path",
            format!("no admin route {path}; the routes are {}", known.join(", ")),
        ));
    }
    match same_path.iter().find(|(_, m, _)| m == method) {
        Some((_, _, r)) => Ok(*r),
        None => {
            let allowed: Vec<String> = same_path.iter().map(|(_, m, _)| m.to_string()).collect();
            Err(AdminError::new(
                AdminErrorKind::MethodNotAllowed,
                "method",
                format!(
                    "{method} is not allowed on {path}; use {}",
                    allowed.join(" or ")
                ),
            ))
        }
    }
}

/// Answer one request.
pub async fn handle(
    state: Arc<AdminState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let route = find(req.method(), req.uri().path());
    // Liveness needs no token (and says nothing else); everything else,
    // unknown routes included, does.
    let public = route == Ok(Route::Healthz);
    let response = match route {
        _ if !public && !authorized(&state, &req) => Err(unauthorized(&req)),
        Err(e) => Err(e),
        Ok(route) => dispatch(&state, route, req).await,
    };
    Ok(response.unwrap_or_else(error_response))
}

fn authorized(state: &AdminState, req: &Request<Incoming>) -> bool {
    bearer(req).is_some_and(|t| state.token.matches(t))
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(req: &Request<Incoming>) -> AdminError {
    let problem = if req.headers().contains_key(header::AUTHORIZATION) {
        "the admin token is not valid (it is in the admin.token file of the server's data directory, or what the server was given)"
    } else {
        "missing; send 'Authorization: Bearer <admin token>'"
    };
    AdminError::new(AdminErrorKind::Unauthorized, "Authorization", problem)
}

async fn dispatch(
    state: &AdminState,
    route: Route,
    req: Request<Incoming>,
) -> Result<Response<Body>, AdminError> {
    let query = Query::parse(req.uri().query());
    match route {
        Route::Healthz => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        Route::Info => json(StatusCode::OK, &info(state)),
        Route::Revision => {
            let revision = blocking(state, |s| s.revision()).await?;
            json(StatusCode::OK, &Revision { revision })
        }
        Route::Registry => registry(state, &req).await,
        Route::Apply => {
            let changes = decode::changes(&read_body(req).await?)?;
            apply(state, changes).await
        }
        Route::Keys => {
            let k: NewKey = read_json(req, r#"{"workspace": "...", "name": "..."}"#).await?;
            let (change, created) = new_key(k.workspace, k.name);
            let by = Origin::token(BOOTSTRAP, Channel::AdminApi);
            blocking(state, move |s| s.apply(vec![change], &by)).await?;
            tracing::info!(
                "admin API: created key {} in workspace {}",
                created.id,
                created.workspace
            );
            json(StatusCode::CREATED, &created)
        }
        Route::Reports => json(StatusCode::OK, &blocking(state, |s| s.reports()).await?),
        Route::Stats => json(StatusCode::OK, &**state.gateway.stats().borrow()),
        Route::StatsStream => Ok(sse::response(sse::stats_stream(
            state.gateway.stats(),
            state.stop.clone(),
        ))),
        Route::Explain => explain(state, &query).await,
        Route::Logs => {
            let after = query.number("after")?.unwrap_or(0);
            let (lines, newest) = state.logs.after(after, LOG_PAGE_MAX);
            let lines = lines.iter().map(|(n, l)| LogEntry::new(*n, l)).collect();
            json(StatusCode::OK, &LogPage { lines, newest })
        }
    }
}

fn info(state: &AdminState) -> Info {
    let g = &state.gateway;
    Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        admin: state.url.clone(),
        gateway: ServedGateway {
            listen: g.local_addr().to_string(),
            tls: g.tls(),
            cluster: g.cluster().map(str::to_string),
            applied_revision: g.applied_revision(),
        },
    }
}

/// The registry, redacted, with its revision as ETag: a client that has it
/// (`If-None-Match`) gets 304 for the price of a revision read.
async fn registry(
    state: &AdminState,
    req: &Request<Incoming>,
) -> Result<Response<Body>, AdminError> {
    let have = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let current = blocking(state, |s| s.revision()).await?;
    let tag = etag(current);
    if have.as_deref() == Some(tag.as_str()) {
        let mut res = Response::new(empty());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res.headers_mut().insert(header::ETAG, header_value(&tag));
        return Ok(res);
    }
    let reg = blocking(state, |s| s.load()).await?;
    let mut res = json(StatusCode::OK, &redact(&reg))?;
    res.headers_mut()
        .insert(header::ETAG, header_value(&etag(reg.revision)));
    Ok(res)
}

/// `"N"`: the ETag of registry revision N.
pub fn etag(revision: u64) -> String {
    format!("\"{revision}\"")
}

async fn apply(state: &AdminState, mut changes: Vec<Change>) -> Result<Response<Body>, AdminError> {
    if changes.is_empty() {
        return Err(AdminError::new(
            AdminErrorKind::BadRequest,
            "body",
            "no changes given; send a JSON array of changes",
        ));
    }
    let summary = summarize(&changes);
    let result = blocking(state, move |s| {
        // Masks are resolved against the registry the batch is applied to.
        let reg = s.load()?;
        resolve_masked(&reg, &mut changes)?;
        s.apply(changes, &Origin::token(BOOTSTRAP, Channel::AdminApi))
    })
    .await;
    match &result {
        Ok(a) => tracing::info!(revision = a.revision, "admin API: applied {summary}"),
        Err(e) => tracing::info!("admin API: refused {summary}: {e}"),
    }
    json(StatusCode::OK, &result?)
}

async fn explain(state: &AdminState, query: &Query) -> Result<Response<Body>, AdminError> {
    let model = query.required("model", "?model=NAME&key=ID_OR_NAME")?;
    let key = query.required("key", "?model=NAME&key=ID_OR_NAME")?;
    let workspace = query.get("workspace").map(str::to_string);
    let reg = blocking(state, |s| s.load()).await?;
    let report = ExplainReport::resolve(&reg, &model, &key, workspace.as_deref())?;
    let g = &state.gateway;
    let listen = g.local_addr().to_string();
    let report = match g
        .explain(&report.model, &report.key_id, &report.workspace)
        .await
    {
        Some(live) => report.with_live(listen, live),
        None => {
            let why = not_served_reason(&reg, &report.model, &listen, g.cluster());
            report.without_live(why)
        }
    };
    json(StatusCode::OK, &report)
}

/// Run a store call off the async threads.
async fn blocking<T: Send + 'static>(
    state: &AdminState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AdminError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| {
            AdminError::new(
                AdminErrorKind::Internal,
                "store",
                format!("store task failed: {e}"),
            )
        })?
        .map_err(AdminError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_what_is_wrong() {
        assert_eq!(find(&Method::GET, "/admin/v1/stats").unwrap(), Route::Stats);
        assert_eq!(
            find(&Method::GET, "/admin/v1/stats/").unwrap(),
            Route::Stats
        );
        assert_eq!(
            find(&Method::GET, "/admin/v1/stats/stream").unwrap(),
            Route::StatsStream
        );
        let e = find(&Method::POST, "/admin/v1/stats").unwrap_err();
        assert_eq!((e.status(), e.errors[0].field.as_str()), (405, "method"));
        assert!(e.message.contains("use GET"), "{e}");
        let e = find(&Method::GET, "/admin/v1/nope").unwrap_err();
        assert_eq!((e.status(), e.errors[0].field.as_str()), (404, "path"));
        assert!(e.message.contains("POST /admin/v1/apply"), "{e}");
        assert!(find(&Method::GET, "/admin/v1").is_err());
        assert!(find(&Method::GET, "/").is_err());
    }
}
