//! A mock OpenAI-compatible upstream on loopback, for tests and the demo.
//!
//! Answers `/chat/completions`, `/completions`, `/embeddings` (POST) and
//! `/models` (GET) under any path prefix (so `http://127.0.0.1:P/v1` works
//! as an endpoint base URL), streams SSE when asked (`"stream": true`) with
//! a configurable delay between chunks and `usage` in the last one, and can
//! be slow, fail a share of requests, answer a fixed status, or serve TLS.
//! It records what it saw (path, `model`, `Authorization`) so tests can
//! check the gateway's rewriting, counts requests that were cancelled
//! before their answer was complete, and can be stopped and restarted on the
//! same port (failover and probe tests).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// How the mock behaves. Change it while running with [`MockUpstream::configure`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Shown in answers ("Hello from <label>") to tell upstreams apart.
    pub label: String,
    /// Wait before the response headers.
    pub latency: Duration,
    /// Content chunks of a streamed answer (then a usage chunk and `[DONE]`).
    pub chunks: usize,
    /// Wait between streamed chunks.
    pub chunk_delay: Duration,
    /// Share (0..=1) of completion requests answered with `fail_status`.
    pub fail_rate: f64,
    pub fail_status: u16,
    /// Answer every completion request with this status and an error body.
    pub status: Option<u16>,
    /// A `Retry-After` header on those error answers.
    pub retry_after: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Serve HTTPS with this certificate chain and key (PEM).
    pub tls: Option<(String, String)>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            label: "mock".into(),
            latency: Duration::ZERO,
            chunks: 6,
            chunk_delay: Duration::ZERO,
            fail_rate: 0.0,
            fail_status: 500,
            status: None,
            retry_after: None,
            prompt_tokens: 11,
            completion_tokens: 7,
            tls: None,
        }
    }
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    /// The body's `model`, if it had one.
    pub model: Option<String>,
    pub stream: bool,
    pub body: Bytes,
}

impl Seen {
    pub fn authorization(&self) -> Option<&str> {
        self.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct State {
    cfg: Mutex<MockConfig>,
    seen: Mutex<Vec<Seen>>,
    hits: AtomicU64,
    connections: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
}

/// A running mock upstream.
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<State>,
    server: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Start on a free loopback port (on the current tokio runtime).
    pub async fn start(cfg: MockConfig) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().expect("static address"), cfg).await
    }

    /// Start on `addr`.
    pub async fn start_on(addr: SocketAddr, cfg: MockConfig) -> std::io::Result<Self> {
        let state = Arc::new(State::default());
        *state.cfg.lock() = cfg;
        let mut m = Self {
            addr,
            state,
            server: None,
        };
        m.listen().await?;
        Ok(m)
    }

    async fn listen(&mut self) -> std::io::Result<()> {
        let sock = if self.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        sock.set_reuseaddr(true)?;
        sock.bind(self.addr)?;
        let listener = sock.listen(1024)?;
        self.addr = listener.local_addr()?;
        let tls = match &self.state.cfg.lock().tls {
            Some((cert, key)) => Some(TlsAcceptor::from(
                crate::gateway::server::tls::server_config_from_pem(
                    cert.as_bytes(),
                    key.as_bytes(),
                )
                .map_err(std::io::Error::other)?,
            )),
            None => None,
        };
        self.server = Some(tokio::spawn(accept_loop(listener, tls, self.state.clone())));
        Ok(())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL of this mock: `http(s)://127.0.0.1:P/v1`.
    pub fn base_url(&self) -> String {
        let scheme = if self.state.cfg.lock().tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}/v1", self.addr)
    }

    /// Change the behaviour for the next requests.
    pub fn configure(&self, f: impl FnOnce(&mut MockConfig)) {
        f(&mut self.state.cfg.lock());
    }

    /// Requests received (every path).
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Relaxed)
    }

    /// Connections accepted (keep-alive reuse shows as fewer than hits).
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Relaxed)
    }

    /// Requests whose answer was sent to the end.
    pub fn completed(&self) -> u64 {
        self.state.completed.load(Relaxed)
    }

    /// Requests abandoned by the caller before their answer was complete.
    pub fn cancelled(&self) -> u64 {
        self.state.cancelled.load(Relaxed)
    }

    /// Everything received so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().clone()
    }

    /// Stop listening and drop every open connection: the port refuses
    /// connections until [`restart`](Self::restart).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
            let _ = s.await;
        }
    }

    /// Listen again on the same port.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        self.listen().await
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, state: Arc<State>) {
    // Dropping this task (stop) drops the set, which aborts every connection.
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Relaxed);
        let state = state.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            match tls {
                None => serve(stream, state).await,
                Some(a) => {
                    if let Ok(s) = a.accept(stream).await {
                        serve(s, state).await
                    }
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

async fn serve<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(io: I, state: Arc<State>) {
    let svc = service_fn(move |req| answer(state.clone(), req));
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// Counts a request as cancelled if its handler is dropped before the end.
struct Pending {
    state: Arc<State>,
    done: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.state.cancelled.fetch_add(1, Relaxed);
        }
    }
}

fn json_response(status: u16, v: &Value) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    state.hits.fetch_add(1, Relaxed);
    let mut pending = Pending {
        state: state.clone(),
        done: false,
    };
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let model = parsed
        .as_ref()
        .and_then(|v| v["model"].as_str())
        .map(str::to_string);
    let stream = parsed.as_ref().is_some_and(|v| v["stream"] == json!(true));
    let path = parts.uri.path().to_string();
    state.seen.lock().push(Seen {
        method: parts.method.clone(),
        path: parts
            .uri
            .path_and_query()
            .map_or(path.clone(), |p| p.to_string()),
        headers: parts.headers.clone(),
        model: model.clone(),
        stream,
        body: body.clone(),
    });
    let cfg = state.cfg.lock().clone();
    if !cfg.latency.is_zero() {
        tokio::time::sleep(cfg.latency).await;
    }
    let model = model.unwrap_or_else(|| "mock-model".into());
    let usage = json!({
        "prompt_tokens": cfg.prompt_tokens,
        "completion_tokens": cfg.completion_tokens,
        "total_tokens": cfg.prompt_tokens + cfg.completion_tokens,
    });
    let is_completion = parts.method == Method::POST
        && ["/chat/completions", "/completions", "/embeddings"]
            .iter()
            .any(|p| path.ends_with(p));
    let forced = cfg.status.or_else(|| {
        (cfg.fail_rate > 0.0 && fastrand::f64() < cfg.fail_rate).then_some(cfg.fail_status)
    });
    let res = match forced {
        Some(status) if is_completion => {
            let mut r = json_response(
                status,
                &json!({"error": {"message": format!("mock {} answers {status}", cfg.label), "type": "mock_error", "code": status}}),
            );
            if let Some(v) = cfg
                .retry_after
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            r
        }
        _ if parts.method == Method::GET && path.ends_with("/models") => json_response(
            200,
            &json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": cfg.label}]}),
        ),
        _ if is_completion && stream && !path.ends_with("/embeddings") => {
            pending.done = true;
            return Ok(sse_response(&cfg, &model, &path, state));
        }
        _ if is_completion && path.ends_with("/embeddings") => json_response(
            200,
            &json!({"object": "list", "model": model, "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3, 0.4]}],
                    "usage": {"prompt_tokens": cfg.prompt_tokens, "total_tokens": cfg.prompt_tokens}}),
        ),
        _ if is_completion && path.ends_with("/chat/completions") => json_response(
            200,
            &json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("Hello from {}", cfg.label)}, "finish_reason": "stop"}],
                    "usage": usage}),
        ),
        _ if is_completion => json_response(
            200,
            &json!({"id": "cmpl-mock", "object": "text_completion", "created": 0, "model": model,
                    "choices": [{"index": 0, "text": format!("Hello from {}", cfg.label), "finish_reason": "stop"}],
                    "usage": usage}),
        ),
        _ => json_response(
            404,
            &json!({"error": {"message": format!("mock: no route for {path}"), "type": "invalid_request_error", "code": "unknown_url"}}),
        ),
    };
    pending.done = true;
    state.completed.fetch_add(1, Relaxed);
    Ok(res)
}

fn sse_response(
    cfg: &MockConfig,
    model: &str,
    path: &str,
    state: Arc<State>,
) -> Response<MockBody> {
    let chat = path.ends_with("/chat/completions");
    let chunk = |content: Value, usage: Value| {
        let v = if chat {
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": content, "usage": usage})
        } else {
            json!({"id": "cmpl-mock", "object": "text_completion", "created": 0, "model": model,
                   "choices": content, "usage": usage})
        };
        Bytes::from(format!("data: {v}\n\n"))
    };
    let mut chunks: VecDeque<Bytes> = (0..cfg.chunks)
        .map(|i| {
            let choice = if chat {
                json!([{"index": 0, "delta": {"content": format!("piece{i} ")}, "finish_reason": null}])
            } else {
                json!([{"index": 0, "text": format!("piece{i} "), "finish_reason": null}])
            };
            chunk(choice, Value::Null)
        })
        .collect();
    chunks.push_back(chunk(
        json!([]),
        json!({"prompt_tokens": cfg.prompt_tokens, "completion_tokens": cfg.completion_tokens,
               "total_tokens": cfg.prompt_tokens + cfg.completion_tokens}),
    ));
    chunks.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    let mut r = Response::new(MockBody::Sse(Box::new(Sse {
        chunks,
        delay: cfg.chunk_delay,
        sleep: None,
        state,
        done: false,
    })));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    r
}

/// The mock's response bodies.
enum MockBody {
    Full(Option<Bytes>),
    Sse(Box<Sse>),
}

impl MockBody {
    fn full(b: Vec<u8>) -> Self {
        MockBody::Full(Some(Bytes::from(b)))
    }
}

struct Sse {
    chunks: VecDeque<Bytes>,
    delay: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    state: Arc<State>,
    done: bool,
}

impl Drop for Sse {
    fn drop(&mut self) {
        if !self.done {
            self.state.cancelled.fetch_add(1, Relaxed);
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Sse(s) => {
                if let Some(sleep) = &mut s.sleep {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    s.sleep = None;
                }
                match s.chunks.pop_front() {
                    Some(c) => {
                        if !s.delay.is_zero() && !s.chunks.is_empty() {
                            s.sleep = Some(Box::pin(tokio::time::sleep(s.delay)));
                        }
                        Poll::Ready(Some(Ok(Frame::data(c))))
                    }
                    None => {
                        if !s.done {
                            s.done = true;
                            s.state.completed.fetch_add(1, Relaxed);
                        }
                        Poll::Ready(None)
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::Sse(s) => s.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => SizeHint::with_exact(0),
            MockBody::Sse(_) => SizeHint::default(),
        }
    }
}
