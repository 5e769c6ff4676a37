//! Accepting: listeners and worker threads (the first phase of the request
//! path; the listener's TLS is [`tls`]).
//!
//! One worker per core, each a current-thread tokio runtime on its own OS
//! thread, all accepting from one listening socket: a connection stays on
//! the worker it was placed on, and nothing on the request path is handed
//! between threads (measured: 0.61x of nginx's req/s with tokio's default
//! multi-thread runtime, 0.87x with this shape; see ARCHITECTURE.md).
//! One shared socket rather than one `SO_REUSEPORT` socket per worker: the
//! kernel's reuseport hash ties each connection to a worker whatever its
//! load (measured with the bench rig's load, c=32/256 interleaved runs:
//! 7–15% more req/s from the shared socket).
//!
//! Placement: whichever worker the kernel wakes accepts, and a burst of
//! connections lands mostly on one (29 of 32 on one of 4 workers in the
//! test `a_burst_of_connections_is_spread_evenly_over_the_workers`). So
//! an accepted connection goes to the worker serving the fewest
//! ([`place`], `ConnCounters::place`), handed over through that worker's
//! inbox ([`handoff`]) before a byte of it is read.
//!
//! Shutdown: a worker stops accepting, asks each of its connections to
//! finish the request in flight and close (HTTP/1 graceful shutdown), waits
//! up to the grace period, then drops what is left.
//!
//! Connection cap (`--max-connections`, default from the open-file limit:
//! [`limits`]): at the cap, a new caller is served by shedding an idle
//! keep-alive connection (one that answered a request and waits for the
//! next), on this worker first; with none idle, the new caller is closed at
//! once. An accept that fails (out of descriptors) sheds one too. Logged
//! at most once per 10 s per worker; counted in `/metrics`.

mod codec;
mod conn;
mod driver;
mod handoff;
pub mod limits;
pub mod metrics;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::gateway::proxy::Worker;
pub(crate) use conn::Registry;
use handoff::Open;
pub(crate) use handoff::{Handoff, Placed};

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

/// How often the connection cap's notice is logged at most.
const CAP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs "at the cap" / "accept failed" at most once per [`CAP_LOG_EVERY`]
/// per worker, with what happened since the last line.
struct CapLog {
    last: Option<std::time::Instant>,
    shed: u64,
    refused: u64,
    accept_errors: u64,
}

impl CapLog {
    fn new() -> Self {
        Self {
            last: None,
            shed: 0,
            refused: 0,
            accept_errors: 0,
        }
    }

    fn note(&mut self, worker: &Worker, detail: impl FnOnce() -> String) {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < CAP_LOG_EVERY)
        {
            return;
        }
        self.last = Some(now);
        tracing::warn!(
            "worker {}: {} (since the last notice: {} idle connection(s) shed, {} caller(s) refused, {} accept error(s); cap {}, {} open)",
            worker.id,
            detail(),
            std::mem::take(&mut self.shed),
            std::mem::take(&mut self.refused),
            std::mem::take(&mut self.accept_errors),
            worker.shared.conns.cap,
            worker.shared.conns.open()
        );
    }
}

/// Room for a new connection: under the cap, or an idle keep-alive
/// connection shed for it (it may then be over the cap until the shed one
/// closes). `false`: at the cap with nothing idle, the caller is refused.
fn make_room(worker: &Worker, registry: &Registry, log: &mut CapLog) -> bool {
    let conns = &worker.shared.conns;
    if conns.try_open() {
        return true;
    }
    if registry.shed_one(worker.id) {
        conns.shed();
        conns.force_open();
        log.shed += 1;
        log.note(worker, || {
            "connection cap reached: shedding idle keep-alive connections".into()
        });
        return true;
    }
    conns.refused();
    log.refused += 1;
    log.note(worker, || {
        "connection cap reached and no connection is idle: refusing new callers".into()
    });
    false
}

/// How often a worker closes the idle upstream connections the upstreams
/// closed (see `Upstream::sweep`) and the callers' connections that waited
/// longer than `--head-timeout` for a request head (`Registry::expire_idle`).
const POOL_SWEEP: Duration = Duration::from_secs(1);

/// Sweep this worker's idle upstream connections (worker 0 also the
/// prober's, whose runtime does not sweep).
fn sweep_pools(worker: &Worker) {
    let snap = worker.shared.snapshot.load();
    for route in &snap.routes {
        for ep in &route.endpoints {
            if let Ok(up) = &ep.upstream {
                up.sweep(worker.id);
                if worker.id == 0 {
                    up.sweep(up.prober());
                }
            }
        }
    }
}

/// What a worker needs besides its listener: the gateway's connections
/// (to shed one at the cap), the hand-off of connections between workers
/// and this worker's inbox of them.
pub(crate) struct Peers {
    pub(crate) registry: Arc<Registry>,
    pub(crate) handoff: Arc<Handoff>,
    pub(crate) inbox: tokio::sync::mpsc::UnboundedReceiver<Placed>,
}

/// Serve an accepted connection on this worker (TLS handshake first when
/// the listener serves TLS).
fn start(
    conns: &mut JoinSet<()>,
    stream: tokio::net::TcpStream,
    open: Open,
    worker: &Arc<Worker>,
    tls: &Option<TlsAcceptor>,
    registry: &Arc<Registry>,
) {
    let _ = stream.set_nodelay(true);
    let (w, reg) = (worker.clone(), registry.clone());
    match tls {
        None => {
            conns.spawn(async move {
                serve_conn(stream, w, reg).await;
                drop(open)
            });
        }
        Some(acceptor) => {
            let acceptor = acceptor.clone();
            conns.spawn(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => serve_conn(s, w, reg).await,
                    Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
                drop(open)
            });
        }
    }
    while conns.try_join_next().is_some() {}
}

/// A connection this worker accepted: served here, or handed to the worker
/// serving the fewest (`ConnCounters::place`).
fn place(
    conns: &mut JoinSet<()>,
    stream: tokio::net::TcpStream,
    worker: &Arc<Worker>,
    tls: &Option<TlsAcceptor>,
    peers: &Peers,
) {
    let to = worker.shared.conns.place(worker.id);
    let open = Open::new(worker.shared.clone(), to);
    if to == worker.id {
        return start(conns, stream, open, worker, tls, &peers.registry);
    }
    match stream.into_std() {
        Ok(stream) => peers.handoff.pass(to, Placed { stream, open }),
        Err(e) => tracing::debug!("cannot hand a connection to worker {to}: {e}"),
    }
}

/// Accept and serve until `stop` turns true, then drain within `grace`.
pub(crate) async fn run_worker(
    worker: Arc<Worker>,
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    mut peers: Peers,
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
    let mut log = CapLog::new();
    let mut sweep = tokio::time::interval(POOL_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = sweep.tick() => {
                sweep_pools(&worker);
                let timeout = worker.shared.cfg.head_timeout;
                peers.registry.expire_idle(worker.id, std::time::Instant::now(), timeout);
            }
            Some(Placed { stream, open }) = peers.inbox.recv() => {
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(s) => start(&mut conns, s, open, &worker, &tls, &peers.registry),
                    Err(e) => tracing::debug!("worker {}: cannot take a handed-over connection: {e}", worker.id),
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if !make_room(&worker, &peers.registry, &mut log) {
                        // Closed at once: the caller sees a reset or EOF, not a hang.
                        drop(stream);
                        continue;
                    }
                    place(&mut conns, stream, &worker, &tls, &peers);
                }
                Err(e) => {
                    // Out of file descriptors and the like: free one by
                    // shedding an idle connection, back off, keep serving.
                    log.accept_errors += 1;
                    if peers.registry.shed_one(worker.id) {
                        worker.shared.conns.shed();
                        log.shed += 1;
                    }
                    log.note(&worker, || format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    drop(listener);
    // Connections handed over but not started yet are closed.
    peers.inbox.close();
    while peers.inbox.try_recv().is_ok() {}
    peers.registry.stop(worker.id);
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

async fn serve_conn<I>(io: I, worker: Arc<Worker>, registry: Arc<Registry>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    driver::serve(io, worker, registry).await
}
