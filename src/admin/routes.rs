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

use super::error::{AdminError, AdminErrorKind};
use super::explain::{ExplainReport, not_served_reason};
use super::http::{Body, Query, empty, error_response, header_value, json, read_body, read_json};
use super::secrets::{apply_resolved, redact};
use super::state::{AdminState, Caller, blocking};
use super::wire::{CallerInfo, Info, LogEntry, LogPage, NewKey, Revision, ServedGateway};
use super::{PREFIX, decode, operations, sse};
use crate::domain::secret::hash_secret;
use crate::domain::token::{BOOTSTRAP, Role};
use crate::domain::{Change, Channel, Origin, new_key, summarize};

/// Most log lines one call returns.
const LOG_PAGE_MAX: usize = 2000;
/// Most request events one `/tail` call returns.
const TAIL_PAGE_MAX: usize = 1000;

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
    Metrics,
    Explain,
    Logs,
    Audit,
    Usage,
    Budgets,
    History,
    HistoryRegistry,
    Rollback,
    Manifest,
    Tokens,
    CreateToken,
    RevokeToken,
    Tail,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// Any valid token (`read` or `admin`): it reads.
    Read,
    /// An `admin` token: it changes something.
    Admin,
}

/// One row of the route table.
#[derive(Debug)]
pub struct RouteSpec {
    pub method: Method,
    /// Under [`PREFIX`].
    pub path: &'static str,
    pub access: Access,
    route: Route,
}

const fn row(method: Method, path: &'static str, access: Access, route: Route) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        route,
    }
}

/// The route table: every route the server answers, as data (the OpenAPI
/// test enumerates it against `docs/openapi.json`).
pub static ROUTES: [RouteSpec; 23] = [
    row(Method::GET, "/healthz", Access::Public, Route::Healthz),
    row(Method::GET, "/info", Access::Read, Route::Info),
    row(Method::GET, "/revision", Access::Read, Route::Revision),
    row(Method::GET, "/registry", Access::Read, Route::Registry),
    row(Method::POST, "/apply", Access::Admin, Route::Apply),
    row(Method::POST, "/keys", Access::Admin, Route::Keys),
    row(Method::GET, "/reports", Access::Read, Route::Reports),
    row(Method::GET, "/stats", Access::Read, Route::Stats),
    row(
        Method::GET,
        "/stats/stream",
        Access::Read,
        Route::StatsStream,
    ),
    row(Method::GET, "/metrics", Access::Read, Route::Metrics),
    row(Method::GET, "/explain", Access::Read, Route::Explain),
    row(Method::GET, "/logs", Access::Read, Route::Logs),
    row(Method::GET, "/audit", Access::Read, Route::Audit),
    row(Method::GET, "/usage", Access::Read, Route::Usage),
    row(Method::GET, "/budgets", Access::Read, Route::Budgets),
    row(Method::GET, "/history", Access::Read, Route::History),
    row(
        Method::GET,
        "/history/registry",
        Access::Read,
        Route::HistoryRegistry,
    ),
    row(Method::POST, "/rollback", Access::Admin, Route::Rollback),
    row(Method::POST, "/manifest", Access::Admin, Route::Manifest),
    row(Method::GET, "/tokens", Access::Admin, Route::Tokens),
    row(Method::POST, "/tokens", Access::Admin, Route::CreateToken),
    row(
        Method::POST,
        "/tokens/revoke",
        Access::Admin,
        Route::RevokeToken,
    ),
    row(Method::GET, "/tail", Access::Read, Route::Tail),
];

impl Route {
    /// The query parameters the route reads (docs/openapi.json lists the
    /// same); any other is refused, so a misspelt one (`?sinse=7d`) is not
    /// silently the default.
    fn params(self) -> &'static [&'static str] {
        match self {
            Route::Explain => &["model", "key", "workspace"],
            Route::Logs => &["after"],
            Route::Audit => &["since_ms", "entity", "revisions_only", "limit"],
            Route::Usage => &["since", "until", "by"],
            Route::History => &["limit"],
            Route::HistoryRegistry => &["revision"],
            Route::Tail => &["since", "limit"],
            _ => &[],
        }
    }
}

impl RouteSpec {
    /// The query parameters the route takes.
    pub fn params(&self) -> &'static [&'static str] {
        self.route.params()
    }
}

/// The route of `method path`, or why there is none.
fn find(method: &Method, path: &str) -> Result<&'static RouteSpec, AdminError> {
    let sub = path
        .strip_prefix(PREFIX)
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty());
    let same_path: Vec<&RouteSpec> = match sub {
        Some(sub) => ROUTES.iter().filter(|r| r.path == sub).collect(),
        None => Vec::new(),
    };
    if same_path.is_empty() {
        let known: Vec<String> = ROUTES
            .iter()
            .map(|r| format!("{} {PREFIX}{}", r.method, r.path))
            .collect();
        return Err(AdminError::new(
            AdminErrorKind::NoRoute,
            "path",
            format!("no admin route {path}; the routes are {}", known.join(", ")),
        ));
    }
    match same_path.iter().find(|r| r.method == method) {
        Some(r) => Ok(r),
        None => {
            let allowed: Vec<String> = same_path.iter().map(|r| r.method.to_string()).collect();
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
    let response = match find(req.method(), req.uri().path()) {
        // Liveness needs no token (and says nothing else).
        Ok(spec) if spec.access == Access::Public => dispatch(&state, spec.route, None, req).await,
        // Everything else, unknown routes included, does.
        found => match authenticate(&state, &req).await {
            Err(e) => Err(e),
            Ok(caller) => match found {
                Err(e) => Err(e),
                Ok(spec) => match allowed(&caller, spec, &req) {
                    Err(e) => Err(e),
                    Ok(()) => dispatch(&state, spec.route, Some(&caller), req).await,
                },
            },
        },
    };
    Ok(response.unwrap_or_else(error_response))
}

const NOT_VALID: &str = "the admin token is not valid (it is in the admin.token file of the server's data directory, or what the server was given, or one made with maasctl token create)";

/// The caller the bearer token names: the bootstrap token (an admin token
/// named `bootstrap`), or an active named token from the store.
async fn authenticate(state: &AdminState, req: &Request<Incoming>) -> Result<Caller, AdminError> {
    let Some(given) = bearer(req) else {
        return Err(unauthorized(
            if req.headers().contains_key(header::AUTHORIZATION) {
                NOT_VALID
            } else {
                "missing; send 'Authorization: Bearer <admin token>'"
            },
        ));
    };
    let channel = channel(req)?;
    if state.token.matches(given) {
        return Ok(Caller {
            name: BOOTSTRAP.into(),
            role: Role::Admin,
            channel,
        });
    }
    let hash = hash_secret(given);
    let found = blocking(state, move |s| {
        Ok(s.tokens()?.into_iter().find(|t| t.secret_hash == hash))
    })
    .await?;
    match found {
        Some(t) if t.revoked.is_none() => Ok(Caller {
            name: t.name,
            role: t.role,
            channel,
        }),
        Some(t) => Err(unauthorized(format!(
            "the admin token '{}' was revoked; ask for a new one (maasctl token create)",
            t.name
        ))),
        None => Err(unauthorized(NOT_VALID)),
    }
}

/// What the request's changes come through ([`super::CHANNEL_HEADER`]);
/// without it, the admin API itself.
fn channel(req: &Request<Incoming>) -> Result<Channel, AdminError> {
    let Some(v) = req.headers().get(super::CHANNEL_HEADER) else {
        return Ok(Channel::AdminApi);
    };
    let bad = |why: String| {
        AdminError::new(
            AdminErrorKind::BadRequest,
            format!("header {}", super::CHANNEL_HEADER),
            why,
        )
    };
    let v = v.to_str().map_err(|_| bad("is not text".into()))?;
    match v.parse::<Channel>() {
        Ok(c @ (Channel::Cli | Channel::Apply | Channel::Console | Channel::AdminApi)) => Ok(c),
        _ => Err(bad(format!(
            "'{v}' is not a channel a client can name; use cli, apply, console or admin-api"
        ))),
    }
}

/// A `read` token on a route that changes something: 403 with the reason.
fn allowed(caller: &Caller, spec: &RouteSpec, req: &Request<Incoming>) -> Result<(), AdminError> {
    if spec.access == Access::Admin && caller.role != Role::Admin {
        return Err(AdminError::new(
            AdminErrorKind::Forbidden,
            "role",
            format!(
                "the admin token '{}' has the {} role, which changes nothing; {} {} needs a token with the admin role",
                caller.name,
                caller.role,
                req.method(),
                req.uri().path()
            ),
        ));
    }
    Ok(())
}

fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(problem: impl Into<String>) -> AdminError {
    AdminError::new(AdminErrorKind::Unauthorized, "Authorization", problem)
}

async fn dispatch(
    state: &AdminState,
    route: Route,
    caller: Option<&Caller>,
    req: Request<Incoming>,
) -> Result<Response<Body>, AdminError> {
    let query = Query::parse(req.uri().query());
    let Some(caller) = caller else {
        return json(StatusCode::OK, &serde_json::json!({"status": "ok"}));
    };
    query.only(route.params())?;
    let origin = caller.origin();
    match route {
        Route::Healthz => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        Route::Info => json(StatusCode::OK, &info(state, caller)),
        Route::Revision => {
            let revision = blocking(state, |s| s.revision()).await?;
            json(StatusCode::OK, &Revision { revision })
        }
        Route::Registry => registry(state, &req).await,
        Route::Apply => {
            let changes = decode::changes(&read_body(req).await?)?;
            apply(state, changes, origin).await
        }
        Route::Keys => {
            let k: NewKey = read_json(req, r#"{"workspace": "...", "name": "..."}"#).await?;
            let (change, created) = new_key(k.workspace, k.name);
            blocking(state, move |s| s.apply(vec![change], &origin)).await?;
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
        Route::Metrics => Ok(super::http::text(
            crate::gateway::proxy::METRICS_CONTENT_TYPE,
            state.gateway.metrics(),
        )),
        Route::Explain => explain(state, &query).await,
        Route::Logs => {
            let after = query.number("after")?.unwrap_or(0);
            let (lines, newest) = state.logs.after(after, LOG_PAGE_MAX);
            let lines = lines.iter().map(|(n, l)| LogEntry::new(*n, l)).collect();
            json(StatusCode::OK, &LogPage { lines, newest })
        }
        Route::Audit => operations::audit(state, &query).await,
        Route::Usage => operations::usage(state, &query).await,
        Route::Budgets => json(
            StatusCode::OK,
            &blocking(state, |s| {
                crate::ops::budgets::status(s, crate::domain::now_ms())
            })
            .await?,
        ),
        Route::History => operations::history(state, &query).await,
        Route::HistoryRegistry => operations::registry_at(state, &query).await,
        Route::Rollback => operations::rollback(state, origin, req).await,
        Route::Manifest => operations::manifest(state, origin, req).await,
        Route::Tokens => operations::tokens(state).await,
        Route::CreateToken => operations::create_token(state, origin, req).await,
        Route::RevokeToken => operations::revoke_token(state, origin, req).await,
        Route::Tail => {
            let since = query.number("since")?.unwrap_or(0);
            let limit = query.number("limit")?.unwrap_or(TAIL_PAGE_MAX as u64);
            let limit = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .min(TAIL_PAGE_MAX);
            json(StatusCode::OK, &state.gateway.tail(since, limit))
        }
    }
}

fn info(state: &AdminState, caller: &Caller) -> Info {
    let g = &state.gateway;
    Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        admin: state.url.clone(),
        caller: CallerInfo {
            name: caller.name.clone(),
            role: caller.role,
        },
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

async fn apply(
    state: &AdminState,
    changes: Vec<Change>,
    origin: Origin,
) -> Result<Response<Body>, AdminError> {
    if changes.is_empty() {
        return Err(AdminError::new(
            AdminErrorKind::BadRequest,
            "body",
            "no changes given; send a JSON array of changes",
        ));
    }
    let summary = summarize(&changes);
    // Masks are resolved against the registry the batch is applied to.
    let result = blocking(state, move |s| apply_resolved(s, changes, &origin)).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_what_is_wrong() {
        let route = |m: &Method, p: &str| find(m, p).map(|r| r.route);
        assert_eq!(
            route(&Method::GET, "/admin/v1/stats").unwrap(),
            Route::Stats
        );
        assert_eq!(
            route(&Method::GET, "/admin/v1/stats/").unwrap(),
            Route::Stats
        );
        assert_eq!(
            route(&Method::GET, "/admin/v1/stats/stream").unwrap(),
            Route::StatsStream
        );
        assert_eq!(
            route(&Method::GET, "/admin/v1/tokens").unwrap(),
            Route::Tokens
        );
        assert_eq!(
            route(&Method::POST, "/admin/v1/tokens").unwrap(),
            Route::CreateToken
        );
        let e = find(&Method::DELETE, "/admin/v1/tokens").unwrap_err();
        assert!(e.message.contains("use GET or POST"), "{e}");
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
