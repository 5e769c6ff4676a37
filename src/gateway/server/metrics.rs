//! `--metrics-listen ADDR`: `/metrics` on a listener of its own, for a
//! Prometheus scraper on a network the operator chose (no token; the admin
//! API serves the same text behind its token at `/admin/v1/metrics`). It
//! runs on a thread of its own so a scrape never takes a worker's time.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::gateway::proxy::body::ResBody;
use crate::gateway::proxy::errors::ProxyError;
use crate::gateway::proxy::{GatewayState, METRICS_CONTENT_TYPE, metrics_text, plain};

/// Bind the metrics listener (port 0 picks a free one).
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

fn answer<B>(shared: &GatewayState, req: &Request<B>) -> Response<ResBody> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            plain(METRICS_CONTENT_TYPE, metrics_text(shared))
        }
        (m, "/metrics") => ProxyError::method_not_allowed(m.as_str(), path, "GET").into_response(),
        (m, _) => ProxyError::unknown_url(m.as_str(), path).into_response(),
    }
}

/// Serve `/metrics` until `stop` turns true.
pub async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<GatewayState>,
    mut stop: watch::Receiver<bool>,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("--metrics-listen: cannot use the listener: {e}");
            return;
        }
    };
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = shared.clone();
                    let svc = service_fn(move |req| {
                        let res = answer(&shared, &req);
                        async move { Ok::<_, Infallible>(res) }
                    });
                    conns.spawn(async move {
                        let conn = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .serve_connection(TokioIo::new(stream), svc);
                        if let Err(e) = conn.await {
                            tracing::debug!("metrics connection ended: {e}");
                        }
                    });
                    while conns.try_join_next().is_some() {}
                }
                Err(e) => {
                    tracing::warn!("--metrics-listen: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}
