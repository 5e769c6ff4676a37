//! Reaching upstreams: where a request goes, and keep-alive connection pools.
//!
//! An endpoint URL is an OpenAI *base URL* (what the OpenAI SDK calls
//! `base_url`): the gateway takes the caller's path after `/v1` and appends
//! it, so `/v1/chat/completions?x=1` sent to an endpoint
//! `http://127.0.0.1:9000/v1` goes to `http://127.0.0.1:9000/v1/chat/completions?x=1`,
//! and to `https://api.deepseek.com` it goes to
//! `https://api.deepseek.com/chat/completions` (DeepSeek's documented base
//! URL). A trailing `/` on the endpoint is ignored.
//!
//! Pools: one [`Upstream`] per origin (and CA files), shared by every route
//! that points there and kept across reloads; inside it, one stack of idle
//! HTTP/1.1 connections per worker thread (plus one for the prober), so a
//! connection is only ever driven by the runtime that opened it and its
//! lock is never contended. A connection goes back to its stack when the
//! response body has been relayed to the end; one whose response was cut
//! short is closed (that is how a cancelled request reaches the upstream).
//!
//! Built directly on `hyper::client::conn::http1` rather than a generic
//! pooled client: no per-request task to watch for idleness, no per-request
//! Host formatting or URI rewriting, and an exact line between "could not
//! connect" (safe to try the next endpoint) and "failed after sending".

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper::http::uri::{PathAndQuery, Scheme};
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::proxy::error_chain;

/// An idle connection older than this is not reused (upstreams commonly
/// close keep-alive connections after 60–75 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(55);
/// Idle connections kept per worker and upstream.
const MAX_IDLE: usize = 1024;

/// Where an endpoint's requests go.
#[derive(Debug, Clone)]
pub struct Target {
    scheme: Scheme,
    host: String,
    port: u16,
    /// `Host` header value (`host[:port]`).
    host_header: HeaderValue,
    /// Path of the base URL without a trailing `/` (`/v1`, or empty).
    prefix: String,
}

impl Target {
    /// Parse an endpoint base URL (already validated by the registry).
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .trim()
            .parse()
            .map_err(|e| format!("the endpoint URL '{url}' does not parse: {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("the endpoint URL '{url}' has no scheme"))?;
        let default_port = if scheme == Scheme::HTTP {
            80
        } else if scheme == Scheme::HTTPS {
            443
        } else {
            return Err(format!("the endpoint URL '{url}' must be http or https"));
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("the endpoint URL '{url}' has no host"))?;
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("the endpoint URL '{url}' has an unusable host: {e}"))?;
        Ok(Self {
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: authority.port_u16().unwrap_or(default_port),
            scheme,
            host_header,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The origin-form request target for `rest` (the caller's path after
    /// `/v1`, with its query).
    pub fn path(&self, rest: &str) -> Result<Uri, hyper::http::Error> {
        let mut pq = String::with_capacity(self.prefix.len() + rest.len() + 1);
        pq.push_str(&self.prefix);
        pq.push_str(rest);
        if pq.is_empty() {
            pq.push('/');
        }
        Ok(Uri::from(PathAndQuery::try_from(pq)?))
    }

    pub fn host_header(&self) -> &HeaderValue {
        &self.host_header
    }

    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// `scheme://host:port`: the identity of a pool.
    pub fn origin(&self) -> String {
        format!(
            "{}://{}",
            self.scheme,
            self.host_header.to_str().unwrap_or(&self.host)
        )
    }
}

/// Why a request could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// Nothing reached the upstream (refused, unreachable, connect timeout,
    /// TLS failure): safe to try another endpoint.
    Connect(String),
    /// The request may have reached the upstream: not retried.
    Failed(String),
}

/// A connection lent to one request; give it back with [`Upstream::release`]
/// once the response has been read to the end, or drop it to close it.
pub struct Conn {
    tx: SendRequest<Full<Bytes>>,
}

struct Idle {
    tx: SendRequest<Full<Bytes>>,
    since: Instant,
}

/// The pools of one upstream origin.
pub struct Upstream {
    target: Target,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    idle: Box<[Mutex<Vec<Idle>>]>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("origin", &self.target.origin())
            .finish()
    }
}

impl Upstream {
    /// Pools for `target` with one stack per worker plus the prober's.
    /// `tls` is required for https targets.
    pub fn new(
        target: &Target,
        workers: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
        connect_timeout: Duration,
    ) -> Result<Self, String> {
        let tls = match (target.is_https(), tls) {
            (false, _) => None,
            (true, None) => return Err("no TLS configuration for an https endpoint".into()),
            (true, Some(cfg)) => {
                let name = match target.host.parse::<IpAddr>() {
                    Ok(ip) => ServerName::IpAddress(ip.into()),
                    Err(_) => ServerName::try_from(target.host.clone()).map_err(|e| {
                        format!("'{}' is not a valid TLS server name: {e}", target.host)
                    })?,
                };
                Some((TlsConnector::from(cfg), name))
            }
        };
        Ok(Self {
            target: target.clone(),
            tls,
            connect_timeout,
            idle: (0..=workers).map(|_| Mutex::new(Vec::new())).collect(),
        })
    }

    fn slot(&self, worker: usize) -> &Mutex<Vec<Idle>> {
        &self.idle[worker.min(self.idle.len() - 1)]
    }

    /// The prober's slot (the last).
    pub fn prober(&self) -> usize {
        self.idle.len() - 1
    }

    /// Send `req` (origin-form URI, Host set) on an idle connection of this
    /// worker, or a new one.
    pub async fn send(
        &self,
        worker: usize,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Conn), SendError> {
        loop {
            let (mut tx, reused) = match self.checkout(worker) {
                Some(tx) => (tx, true),
                // Boxed: the rare path's large state (TCP + TLS + handshake)
                // would otherwise be copied with every request's future.
                None => (Box::pin(self.connect()).await?, false),
            };
            if tx.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(SendError::Connect(
                    "the connection closed right after it opened".into(),
                ));
            }
            match tx.try_send_request(req).await {
                Ok(res) => return Ok((res, Conn { tx })),
                Err(mut e) => match e.take_message() {
                    // Not written: a pooled connection the upstream had closed.
                    Some(r) if reused => req = r,
                    Some(_) => return Err(SendError::Connect(error_chain(e.error()))),
                    None => return Err(SendError::Failed(error_chain(e.error()))),
                },
            }
        }
    }

    fn checkout(&self, worker: usize) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.slot(worker).lock();
        while let Some(c) = idle.pop() {
            if !c.tx.is_closed() && c.since.elapsed() < IDLE_TIMEOUT {
                return Some(c.tx);
            }
        }
        None
    }

    /// Give a connection back after its response was read to the end.
    pub fn release(&self, worker: usize, conn: Conn) {
        if conn.tx.is_closed() {
            return;
        }
        let mut idle = self.slot(worker).lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                tx: conn.tx,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let t = &self.target;
        let work = async {
            let tcp = match t.host.parse::<IpAddr>() {
                Ok(ip) => TcpStream::connect(SocketAddr::new(ip, t.port)).await,
                Err(_) => TcpStream::connect((t.host.as_str(), t.port)).await,
            }
            .map_err(|e| format!("cannot connect to {}: {e}", t.origin()))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => handshake(tcp).await,
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS handshake with {} failed: {e}", t.origin()))?;
                    handshake(tls).await
                }
            }
        };
        match tokio::time::timeout(self.connect_timeout, work).await {
            Ok(r) => r.map_err(SendError::Connect),
            Err(_) => Err(SendError::Connect(format!(
                "connecting to {} timed out after {}s",
                t.origin(),
                self.connect_timeout.as_secs_f64()
            ))),
        }
    }
}

/// HTTP/1.1 over `io`; the connection is driven by a task on this thread's runtime.
async fn handshake<I>(io: I) -> Result<SendRequest<Full<Bytes>>, String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("upstream connection ended: {e}");
        }
    });
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_the_path_after_v1_to_the_base_url() {
        let t = Target::parse("http://127.0.0.1:9000/v1").unwrap();
        assert_eq!(
            t.path("/chat/completions?x=1").unwrap().to_string(),
            "/v1/chat/completions?x=1"
        );
        assert_eq!(t.host_header(), "127.0.0.1:9000");
        assert_eq!(t.origin(), "http://127.0.0.1:9000");
        let t = Target::parse("https://api.deepseek.com/").unwrap();
        assert_eq!(
            t.path("/chat/completions").unwrap().to_string(),
            "/chat/completions"
        );
        assert_eq!(
            (t.port, t.host_header().to_str().unwrap()),
            (443, "api.deepseek.com")
        );
        let t = Target::parse("https://h.example/openai/v1/").unwrap();
        assert_eq!(t.path("/models").unwrap().to_string(), "/openai/v1/models");
        let t = Target::parse("http://[::1]:8000/v1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8000));
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("not a url").is_err());
    }
}
