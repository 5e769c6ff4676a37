//! The request path: accept → auth → read `model` → route → limit → balance
//! → rewrite → forward → relay → count.
//!
//! Nothing here locks or does I/O besides the upstream call: the snapshot
//! is an atomic pointer load, auth a SHA-256 and a hash-map read, routing a
//! map read, balancing an atomic add, counting atomic adds on this worker's
//! own shard. The body is read once (it must be, to find `model`), the
//! `model` token is spliced, the rest of the request and the whole response
//! pass through as bytes.

pub mod body;
pub mod errors;
pub mod extract;

use std::convert::Infallible;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::gateway::config::GatewayConfig;
use crate::gateway::limiter::{Decision, Headroom, Limiter};
use crate::gateway::snapshot::{Local, Route, RouteRef, Snapshot};
use crate::gateway::telemetry::counters::RequestOutcome;
use crate::gateway::telemetry::events::Events;
use crate::gateway::telemetry::metrics;
use crate::gateway::telemetry::stats::{EventKind, StatsSnapshot};
use crate::gateway::telemetry::tally::Tally;
use crate::gateway::upstream::balancer::Avail;
use crate::gateway::upstream::h1::{RequestHead, ResponseHead};
use crate::gateway::upstream::health::Transition;
use crate::gateway::upstream::{SendError, UpBody};
use body::ResBody;
use errors::{ProxyError, secs_up};
use extract::extract_model;

/// What every worker shares (read-only or atomic).
pub struct GatewayState {
    pub cfg: GatewayConfig,
    pub snapshot: ArcSwap<Snapshot>,
    pub limiter: Arc<Limiter>,
    pub events: Arc<Events>,
    /// The latest published counters (for `/metrics`).
    pub stats: watch::Receiver<Arc<StatsSnapshot>>,
}

/// One worker thread's view.
pub struct Worker {
    pub id: usize,
    pub shared: Arc<GatewayState>,
}

const API_PATHS: [&str; 3] = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

/// Answer one request.
pub async fn handle(
    w: Arc<Worker>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let path = req.uri().path();
    let res = if API_PATHS.contains(&path) {
        if req.method() == Method::POST {
            proxy(&w, req).await
        } else {
            ProxyError::method_not_allowed(req.method().as_str(), path, "POST").into_response()
        }
    } else {
        match path {
            "/v1/models" | "/metrics" | "/healthz"
                if req.method() != Method::GET && req.method() != Method::HEAD =>
            {
                ProxyError::method_not_allowed(req.method().as_str(), path, "GET").into_response()
            }
            "/v1/models" => list_models(&w, &req),
            "/metrics" => plain(
                "text/plain; version=0.0.4; charset=utf-8",
                metrics::render(&w.shared.stats.borrow()),
            ),
            "/healthz" => plain(
                "application/json",
                format!(
                    "{{\"status\":\"ok\",\"revision\":{},\"limiter\":\"{}\"}}",
                    w.shared.snapshot.load().revision,
                    w.shared.limiter.mode().as_str()
                ),
            ),
            _ => ProxyError::unknown_url(req.method().as_str(), path).into_response(),
        }
    };
    Ok(res)
}

fn plain(content_type: &'static str, body: String) -> Response<ResBody> {
    let mut res = Response::new(ResBody::full(body));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// Who is calling: the key's index in the snapshot, or the 401 to send.
fn authenticate(snap: &Snapshot, headers: &HeaderMap) -> Result<usize, ProxyError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ProxyError::missing_key());
    };
    let v = value.as_bytes();
    let secret = match v.get(..7) {
        Some(s) if s.eq_ignore_ascii_case(b"bearer ") => v[7..].trim_ascii(),
        _ => return Err(ProxyError::malformed_auth()),
    };
    if secret.is_empty() {
        return Err(ProxyError::missing_key());
    }
    let hash: [u8; 32] = Sha256::digest(secret).into();
    match snap.key(&hash) {
        Some(k) if snap.key_list[k].revoked => Err(ProxyError::revoked_key(&snap.key_list[k].id)),
        Some(k) => Ok(k),
        None => Err(ProxyError::invalid_key(&crate::domain::secret::mask(
            &String::from_utf8_lossy(secret),
        ))),
    }
}

fn list_models(w: &Worker, req: &Request<Incoming>) -> Response<ResBody> {
    let snap = w.shared.snapshot.load();
    if let Err(e) = authenticate(&snap, req.headers()) {
        return e.into_response();
    }
    plain_bytes("application/json", snap.models_body.clone())
}

fn plain_bytes(content_type: &'static str, body: Bytes) -> Response<ResBody> {
    let mut res = Response::new(ResBody::full(body));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// The outcome counted for an error answer.
fn outcome_of(e: &ProxyError) -> RequestOutcome {
    match e.status {
        StatusCode::UNAUTHORIZED => RequestOutcome::Unauthorized,
        StatusCode::NOT_FOUND => RequestOutcome::NotFound,
        StatusCode::TOO_MANY_REQUESTS => RequestOutcome::Throttled,
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => RequestOutcome::BadRequest,
        _ => RequestOutcome::UpstreamError,
    }
}

fn refuse(tally: &mut Tally, e: ProxyError) -> Response<ResBody> {
    tally.decide(outcome_of(&e));
    e.into_response()
}

async fn proxy(w: &Worker, req: Request<Incoming>) -> Response<ResBody> {
    let shared = &*w.shared;
    let mut tally = Tally::new(Local::current(&shared.snapshot), w.id);
    let snap = tally.snap().clone();

    let key = match authenticate(&snap, req.headers()) {
        Ok(k) => k,
        Err(e) => return refuse(&mut tally, e),
    };
    tally.set_key(key);

    let limit = shared.cfg.body_limit;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return refuse(&mut tally, ProxyError::too_large(limit, declared));
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body, limit).await {
        Ok(b) => b,
        Err(e) => return refuse(&mut tally, e),
    };
    let field = match extract_model(&body) {
        Ok(f) => f,
        Err(e) => return refuse(&mut tally, ProxyError::bad_body(e.code(), e.message())),
    };
    let r = match snap.route(&field.name) {
        Some(RouteRef::Serve(r)) => *r,
        Some(RouteRef::Disabled) => {
            return refuse(&mut tally, ProxyError::disabled_model(&field.name));
        }
        Some(RouteRef::Elsewhere(path)) => {
            return refuse(&mut tally, ProxyError::other_cluster(&field.name, path));
        }
        None => return refuse(&mut tally, ProxyError::unknown_model(&field.name)),
    };
    tally.set_route(r);
    let route = &snap.routes[r];

    let mut headroom = None;
    if !route.limits.is_empty() {
        let k = &snap.key_list[key];
        // Boxed: the limiter's future (Redis round trip included) is large,
        // and only limited models pay for it.
        let check = shared
            .limiter
            .check(&route.limits, &k.id, &snap.workspaces[k.workspace].name);
        match Box::pin(check).await {
            Decision::Admit(h) => headroom = h,
            Decision::Reject(rej) => {
                shared.events.push(
                    EventKind::Throttled,
                    Some(&route.name),
                    Some(&k.id),
                    format!(
                        "rule #{} ({} {}: {} per {}s) throttled key {}",
                        rej.rule_id,
                        rej.target.as_str(),
                        rej.subject,
                        rej.limit,
                        rej.duration_secs,
                        k.id
                    ),
                );
                return refuse(&mut tally, ProxyError::throttled(&route.name, &rej));
            }
        }
    }

    // The body goes out in three pieces: around the `model` token, the
    // route's model ID in its place.
    let span = field.span.clone();
    let pieces: [&[u8]; 3] = [&body[..span.start], &route.model_id_json, &body[span.end..]];
    // The caller's path after `/v1`, with its query (see `upstream` for the join).
    let rest = parts
        .uri
        .path_and_query()
        .map_or("", |pq| pq.as_str())
        .get(3..)
        .unwrap_or("");
    forward(w, tally, route, r, &parts.headers, rest, &pieces, headroom).await
}

/// Read the whole request body, refusing it as soon as it passes `limit`.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, ProxyError> {
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ProxyError::bad_request_body(&e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > limit {
            return Err(ProxyError::too_large(limit, None));
        }
        match (&mut first, &mut more) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut m = BytesMut::with_capacity(f.len() + data.len());
                m.extend_from_slice(f);
                m.extend_from_slice(&data);
                more = Some(m);
            }
            (Some(_), Some(m)) => m.extend_from_slice(&data),
        }
    }
    Ok(match more {
        Some(m) => m.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// What went wrong with one try of an endpoint.
enum TryError {
    /// No byte reached the upstream (refused, unreachable, TLS failure):
    /// safe to try the next endpoint.
    Connect(String),
    /// No answer within the upstream timeout.
    Timeout,
    /// The request may have reached the upstream; not retried.
    Other(String),
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    w: &Worker,
    mut tally: Tally,
    route: &Route,
    r: usize,
    headers: &HeaderMap,
    rest: &str,
    body: &[&[u8]],
    headroom: Option<Headroom>,
) -> Response<ResBody> {
    let shared = &*w.shared;
    let n = route.endpoints.len();
    let avail = |i| route.avail(i);
    let usable = (0..n).filter(|&i| route.avail(i) != Avail::Never).count();
    if usable == 0 {
        let snap = tally.snap().clone();
        return refuse(&mut tally, ProxyError::no_endpoint(&snap.routes[r].name));
    }
    // The policy's pick first; the fallback order is only worked out when
    // a try fails (or when nothing is healthy: then only the last resort).
    let first = route.balancer.pick(n, avail);
    let mut order: Vec<usize> = Vec::new();
    let mut ordered = first.is_none();
    if ordered {
        order = route.balancer.fallbacks(n, None, avail);
        order.reverse();
    }
    let mut next = first.or_else(|| order.pop());
    let mut attempts = 0usize;
    let mut last = TryError::Other(String::new());
    while let Some(i) = next {
        attempts += 1;
        let ep = &route.endpoints[i];
        tally.begin_attempt(i);
        match try_endpoint(w, route, i, headers, rest, body).await {
            Ok((head, up)) => {
                return relay(shared, tally, route, i, head, up, headroom);
            }
            Err(e) => {
                let reason = match &e {
                    TryError::Connect(m) | TryError::Other(m) => m.clone(),
                    TryError::Timeout => format!(
                        "no answer within {}s",
                        shared.cfg.upstream_timeout.as_secs_f64()
                    ),
                };
                health_failure(shared, route, i, &reason);
                if matches!(e, TryError::Other(_)) || attempts >= usable {
                    last = e;
                    break;
                }
                tally.fail_attempt();
                tracing::debug!(
                    "model {} endpoint {i} ({}): {reason}; trying the next endpoint",
                    route.name,
                    ep.url
                );
                if !ordered {
                    order = route.balancer.fallbacks(n, first, avail);
                    order.reverse();
                    ordered = true;
                }
                last = e;
                next = order.pop();
            }
        }
    }
    let err = match last {
        TryError::Timeout => {
            ProxyError::timeout(&route.name, shared.cfg.upstream_timeout.as_secs_f64())
        }
        TryError::Connect(m) | TryError::Other(m) => ProxyError::unreachable(&route.name, &m),
    };
    shared.events.push(
        EventKind::UpstreamError,
        Some(&route.name),
        tally
            .key_index()
            .map(|k| tally.snap().key_list[k].id.as_str()),
        format!("{} {}", err.status.as_u16(), err.message),
    );
    refuse(&mut tally, err)
}

fn health_failure(shared: &GatewayState, route: &Route, i: usize, reason: &str) {
    let ep = &route.endpoints[i];
    if let Some(Transition::WentDown(r)) = ep.health.failure(reason, shared.cfg.fail_threshold) {
        tracing::warn!(
            "model {} endpoint {i} ({}) left the rotation: {r}",
            route.name,
            ep.url
        );
        shared.events.push(
            EventKind::EndpointDown,
            Some(&route.name),
            None,
            format!("endpoint {i} ({}) left the rotation: {r}", ep.url),
        );
    }
}

async fn try_endpoint(
    w: &Worker,
    route: &Route,
    i: usize,
    headers: &HeaderMap,
    rest: &str,
    body: &[&[u8]],
) -> Result<(ResponseHead, UpBody), TryError> {
    let ep = &route.endpoints[i];
    let upstream = ep
        .upstream
        .as_ref()
        .map_err(|e| TryError::Connect(e.clone()))?;
    let head = RequestHead {
        method: "POST",
        target: ep.target.path(rest),
        host: ep.target.host_header(),
        authorization: ep.auth.as_ref(),
        headers,
        content_length: Some(body.iter().map(|p| p.len()).sum()),
    };
    let call = upstream.send(w.id, &head, body);
    match tokio::time::timeout(w.shared.cfg.upstream_timeout, call).await {
        Err(_) => Err(TryError::Timeout),
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(SendError::Connect(m))) => Err(TryError::Connect(m)),
        Ok(Err(SendError::Failed(m))) => Err(TryError::Other(m)),
    }
}

/// Pass the upstream's answer through.
fn relay(
    shared: &GatewayState,
    mut tally: Tally,
    route: &Route,
    i: usize,
    head: ResponseHead,
    body: UpBody,
    headroom: Option<Headroom>,
) -> Response<ResBody> {
    let status = head.status;
    let ep = &route.endpoints[i];
    if status.is_server_error() {
        health_failure(
            shared,
            route,
            i,
            &format!("answered HTTP {}", status.as_u16()),
        );
        shared.events.push(
            EventKind::UpstreamError,
            Some(&route.name),
            tally
                .key_index()
                .map(|k| tally.snap().key_list[k].id.as_str()),
            format!(
                "endpoint {i} ({}) answered HTTP {}",
                ep.url,
                status.as_u16()
            ),
        );
        tally.decide(RequestOutcome::UpstreamError);
    } else {
        if let Some(Transition::CameBack) = ep.health.success() {
            shared.events.push(
                EventKind::EndpointUp,
                Some(&route.name),
                None,
                format!(
                    "endpoint {i} ({}) answered again and is back in rotation",
                    ep.url
                ),
            );
        }
        tally.decide(if status.is_success() {
            RequestOutcome::Success
        } else {
            RequestOutcome::Upstream4xx
        });
    }
    let mut res = Response::new(ResBody::relay(body, tally));
    *res.status_mut() = status;
    *res.headers_mut() = head.headers;
    if let Some(h) = headroom {
        let hs = res.headers_mut();
        hs.insert(
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderValue::from(h.limit),
        );
        hs.insert(
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderValue::from(h.remaining),
        );
        hs.insert(
            HeaderName::from_static("x-ratelimit-reset"),
            HeaderValue::from(secs_up(h.reset_ms)),
        );
    }
    res
}
