//! Accepting: listeners and worker threads (the first phase of the request
//! path; the listener's TLS is [`tls`]).
//!
//! One worker per core, each a current-thread tokio runtime on its own OS
//! thread, all accepting from one listening socket: a connection stays on
//! the worker that accepted it, and nothing on the request path is handed
//! between threads (measured: 0.61x of nginx's req/s with tokio's default
//! multi-thread runtime, 0.87x with this shape; see ARCHITECTURE.md).
//! One shared socket rather than one `SO_REUSEPORT` socket per worker: the
//! kernel's reuseport hash ties each connection to a worker whatever its
//! load, while from a shared socket the worker that is free first accepts
//! (measured with the bench rig's load, c=32/256 interleaved runs: 7–15%
//! more req/s than per-worker reuseport sockets).
//!
//! Shutdown: a worker stops accepting, asks each of its connections to
//! finish the request in flight and close (HTTP/1 graceful shutdown), waits
//! up to the grace period, then drops what is left.

mod conn;
pub mod limits;
pub mod metrics;
pub mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::gateway::proxy::{Worker, handle};
use conn::{ClientIo, ConnBody, ConnState};

/// Time a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn listen_socket(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// Tells a worker's connections to finish up when it stops. Each
/// connection registers its task's waker once; the stop flag is a plain
/// load on every poll (a `watch` or `Notify` would take a lock on every
/// wake-up of every connection, i.e. several times per request).
#[derive(Default)]
struct Stopper {
    stopping: AtomicBool,
    conns: Mutex<(u64, HashMap<u64, Waker>)>,
}

impl Stopper {
    fn register(&self, waker: &Waker) -> u64 {
        let mut g = self.conns.lock();
        g.0 += 1;
        let id = g.0;
        g.1.insert(id, waker.clone());
        id
    }

    fn forget(&self, id: u64) {
        self.conns.lock().1.remove(&id);
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        for w in self.conns.lock().1.values() {
            w.wake_by_ref();
        }
    }
}

/// One listening socket on `addr`, as `n` handles (one per worker). A port
/// another process holds is refused (no `SO_REUSEPORT`).
pub fn bind(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let first = listen_socket(addr)?;
    let mut out = Vec::with_capacity(n.max(1));
    for _ in 1..n.max(1) {
        out.push(first.try_clone()?);
    }
    out.push(first);
    Ok(out)
}

/// Accept and serve until `stop` turns true, then drain within `grace`.
pub async fn run_worker(
    worker: Arc<Worker>,
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("worker {}: cannot use its listener: {e}", worker.id);
            return;
        }
    };
    let mut conns = JoinSet::new();
    let stopper = Arc::new(Stopper::default());
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let w = worker.clone();
                    let stop = stopper.clone();
                    match &tls {
                        None => { conns.spawn(serve_conn(stream, w, stop)); }
                        Some(acceptor) => {
                            let acceptor = acceptor.clone();
                            conns.spawn(async move {
                                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                    Ok(Ok(s)) => serve_conn(s, w, stop).await,
                                    Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                                    Err(_) => tracing::debug!("TLS handshake timed out"),
                                }
                            });
                        }
                    }
                    while conns.try_join_next().is_some() {}
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("worker {}: accept failed: {e}", worker.id);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    stopper.stop();
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "worker {}: {} connection(s) still busy after the {}s grace period; closing them",
            worker.id,
            conns.len(),
            grace.as_secs_f64()
        );
    }
}

async fn serve_conn<I>(io: I, worker: Arc<Worker>, stopper: Arc<Stopper>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnState::default());
    let st = state.clone();
    let svc = service_fn(move |req| {
        // Synchronous, as hyper hands over the head: busy from now on.
        st.begin();
        let st = st.clone();
        let answer = handle(worker.clone(), req);
        async move {
            let res = answer.await?;
            Ok::<_, Infallible>(res.map(|b| ConnBody::new(b, st)))
        }
    });
    // A read EOF mid-request is held back by `ClientIo` (half-close, see
    // conn.rs); hyper still reads mid-request, so a reset ends it at once.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(ClientIo::new(io, state)), svc);
    tokio::pin!(conn);
    let mut id = None;
    let mut finishing = false;
    let result = poll_fn(|cx| {
        if id.is_none() {
            id = Some(stopper.register(cx.waker()));
        }
        if !finishing && stopper.is_stopping() {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            finishing = true;
        }
        conn.as_mut().poll(cx)
    })
    .await;
    if let Some(id) = id {
        stopper.forget(id);
    }
    if let Err(e) = result {
        tracing::debug!("connection ended: {e}");
    }
}
