//! Keep-alive connection pools: one [`Upstream`] per origin (and CA files),
//! shared by every route that points there and kept across reloads; inside
//! it, one stack of idle connections per worker thread (plus one for the
//! prober), so a connection is only ever used by the thread whose runtime
//! registered it and its lock is never contended. A connection goes back to
//! its stack when the response body has been relayed to the end; one whose
//! response was cut short is closed (that is how a cancelled request
//! reaches the upstream). Before reuse, an idle connection is checked
//! without a system call unless the socket became readable (a close, or TLS
//! housekeeping); each worker also sweeps its pools about once a second
//! ([`Upstream::sweep`]) the same way, so a connection the upstream closed
//! does not sit in CLOSE-WAIT until traffic resumes.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

// The TSC clock (one `rdtsc`): the pool stamps every connection it takes
// back and checks its age when it hands it out.
use quanta::Instant;

use bytes::BytesMut;
use parking_lot::Mutex;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::conn::{Conn, IDLE_TIMEOUT, Io, READ_CHUNK, UpBody};
use super::h1::{self, RequestHead, ResponseHead};
use super::target::UpstreamTarget;

/// Idle connections kept per worker and upstream.
const MAX_IDLE: usize = 1024;
/// Request bodies up to this size are sent in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;
/// Buffers larger than this are shrunk before a connection waits in the pool
/// (one request with huge headers must not pin memory on every idle connection).
const KEEP_BUFFER: usize = 64 * 1024;

/// Why a request could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// Nothing reached the upstream (refused, unreachable, connect timeout,
    /// TLS failure): safe to try another endpoint.
    Connect(String),
    /// The request may have reached the upstream: not retried.
    Failed(String),
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// A pooled connection that idled at least this long and then ends before
/// answering is taken as closed by the upstream's idle timeout (see `send`).
const STALE_AFTER: Duration = Duration::from_secs(1);

/// Close the connections at the bottom of a pool (the longest idle: they are
/// pushed in time order and taken from the top) that waited past their limit,
/// so a burst's extra connections do not linger after traffic calms down.
fn drop_expired(idle: &mut Vec<Idle>, now: Instant) {
    let expired = idle
        .iter()
        .take_while(|c| now.duration_since(c.since) >= c.conn.idle_limit)
        .count();
    if expired > 0 {
        idle.drain(..expired);
    }
}

/// The pools of one upstream origin.
pub struct Upstream {
    target: UpstreamTarget,
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

/// Write all of `parts`; `Err` carries how many bytes went out before the error.
async fn write_all(io: &mut Io, parts: &[&[u8]]) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            match io.write(rest).await {
                Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    written += n;
                    rest = &rest[n..];
                }
                Err(e) => return Err((written, e)),
            }
        }
    }
    io.flush().await.map_err(|e| (written, e))
}

impl Upstream {
    /// Pools for `target` with one stack per worker plus the prober's.
    /// `tls` is required for https targets.
    pub fn new(
        target: &UpstreamTarget,
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

    /// Send a request on an idle connection of this worker (or a new one)
    /// and read the answer's head; the body is read through the returned
    /// [`UpBody`]. The request body is given in pieces sent back to back
    /// (the caller's body around the rewritten `model` token), so it is
    /// never assembled in a buffer of its own.
    pub async fn send(
        &self,
        worker: usize,
        head: &RequestHead<'_>,
        body: &[&[u8]],
    ) -> Result<(ResponseHead, UpBody), SendError> {
        let body_len: usize = body.iter().map(|p| p.len()).sum();
        let inline = body_len <= INLINE_BODY;
        let head_request = head.method == "HEAD";
        // Set after a pooled connection turned out closed by the upstream:
        // the next try takes a new connection.
        let mut fresh = false;
        loop {
            let pooled = if fresh { None } else { self.checkout(worker) };
            let (mut conn, idled) = match pooled {
                Some((c, idled)) => (c, Some(idled)),
                // Boxed: the rare path's large state (TCP + TLS handshake)
                // would otherwise be copied with every request's future.
                None => (Box::pin(self.connect()).await?, None),
            };
            let reused = idled.is_some();
            let Conn { io, out, .. } = &mut conn;
            out.clear();
            h1::encode_request(out, head);
            let written = if inline {
                for piece in body {
                    out.extend_from_slice(piece);
                }
                write_all(io, &[out]).await
            } else {
                let mut parts = vec![out.as_slice()];
                parts.extend_from_slice(body);
                write_all(io, &parts).await
            };
            match written {
                Ok(()) => {}
                // A pooled connection the upstream had closed: nothing was sent.
                Err((0, _)) if reused => continue,
                Err((0, e)) => {
                    return Err(SendError::Connect(format!("{}: {e}", self.target.origin())));
                }
                Err((_, e)) => {
                    return Err(SendError::Failed(format!(
                        "sending to {} failed: {e}",
                        self.target.origin()
                    )));
                }
            }
            loop {
                match h1::parse_response(&mut conn.buf, head_request) {
                    Ok(Some(h)) => {
                        let body = UpBody::new(conn, &h);
                        return Ok((h, body));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        return Err(SendError::Failed(format!(
                            "{} sent an {e}",
                            self.target.origin()
                        )));
                    }
                }
                conn.buf.reserve(READ_CHUNK);
                let read = conn.io.read_buf(&mut conn.buf).await;
                // A pooled connection that had idled a while and ends without
                // a byte of answer was closed by the upstream as it was reused
                // (its idle timeout, unknown to us, raced the request): the
                // upstream closed it before reading, so the request goes out
                // once more, on a new connection. A connection used a moment
                // ago that ends like this means the upstream failed on the
                // request; that is not repeated.
                let closed_idle = conn.buf.is_empty()
                    && !fresh
                    && idled.is_some_and(|d| d >= STALE_AFTER)
                    && match &read {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) => matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                        ),
                    };
                if closed_idle {
                    fresh = true;
                    break;
                }
                match read {
                    Ok(0) => {
                        return Err(SendError::Failed(format!(
                            "{} closed the connection without answering",
                            self.target.origin()
                        )));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Err(SendError::Failed(format!(
                            "reading from {} failed: {e}",
                            self.target.origin()
                        )));
                    }
                }
            }
        }
    }

    /// The most recently used idle connection that is still usable, and how
    /// long it idled.
    fn checkout(&self, worker: usize) -> Option<(Conn, Duration)> {
        let mut idle = self.slot(worker).lock();
        while let Some(mut c) = idle.pop() {
            let idled = c.since.elapsed();
            if idled < c.conn.idle_limit && c.conn.is_reusable() {
                return Some((c.conn, idled));
            }
        }
        None
    }

    /// Close `worker`'s idle connections the upstream closed (or that sent
    /// something unexpected) and those past their idle limit, so none waits
    /// in CLOSE-WAIT until traffic resumes. Called about once a second by
    /// the worker (off the request path); a connection whose socket is not
    /// readable costs no system call.
    pub fn sweep(&self, worker: usize) {
        let now = Instant::now();
        self.slot(worker).lock().retain_mut(|c| {
            now.duration_since(c.since) < c.conn.idle_limit && c.conn.is_reusable()
        });
    }

    /// Idle connections in `worker`'s pool.
    pub fn idle_count(&self, worker: usize) -> usize {
        self.slot(worker).lock().len()
    }

    /// Give the connection of a response back to `worker`'s pool when the
    /// body was read to its end and the connection can carry another
    /// request; otherwise it stays in `body` and closes with it (a response
    /// cut short: that is how a cancelled request reaches the upstream).
    pub fn release(&self, worker: usize, body: &mut UpBody) {
        if let Some(conn) = body.take_reusable() {
            self.put_back(worker, conn);
        }
    }

    /// Push an idle connection on `worker`'s stack.
    fn put_back(&self, worker: usize, mut conn: Conn) {
        if conn.out.capacity() > KEEP_BUFFER {
            conn.out = Vec::with_capacity(1024);
        }
        if conn.buf.capacity() > KEEP_BUFFER {
            conn.buf = BytesMut::with_capacity(READ_CHUNK);
        }
        // One clock read stamps this connection and expires the oldest.
        let now = Instant::now();
        let mut idle = self.slot(worker).lock();
        drop_expired(&mut idle, now);
        if idle.len() < MAX_IDLE {
            idle.push(Idle { conn, since: now });
        }
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let t = &self.target;
        let work = async {
            let tcp = match t.host.parse::<IpAddr>() {
                Ok(ip) => TcpStream::connect(SocketAddr::new(ip, t.port)).await,
                Err(_) => TcpStream::connect((t.host.as_str(), t.port)).await,
            }
            .map_err(|e| format!("cannot connect to {}: {e}", t.origin()))?;
            let _ = tcp.set_nodelay(true);
            let io = match &self.tls {
                None => Io::Tcp(tcp),
                Some((connector, name)) => Io::Tls(Box::new(
                    connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| format!("TLS handshake with {} failed: {e}", t.origin()))?,
                )),
            };
            Ok(Conn {
                io,
                buf: BytesMut::with_capacity(READ_CHUNK),
                out: Vec::with_capacity(1024),
                idle_limit: IDLE_TIMEOUT,
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Read one request head (the tests send no body).
    async fn read_head(s: &mut TcpStream) -> bool {
        let mut got = Vec::new();
        let mut b = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
        true
    }

    /// An upstream whose first connection answers one request and then
    /// closes on the next one without answering (as a server does whose idle
    /// timeout fires as the request arrives); later connections answer.
    async fn closing_upstream() -> (UpstreamTarget, Arc<std::sync::atomic::AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let first = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
                tokio::spawn(async move {
                    while read_head(&mut s).await {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                        if first && read_head(&mut s).await {
                            return; // closed without answering
                        }
                    }
                });
            }
        });
        (
            UpstreamTarget::parse(&format!("http://127.0.0.1:{port}/v1")).unwrap(),
            conns,
        )
    }

    async fn get(up: &Upstream, t: &UpstreamTarget) -> Result<Bytes, SendError> {
        let headers = super::h1::HeaderLines::default();
        let head = RequestHead {
            method: "GET",
            target: t.path("/models"),
            host: t.host_header(),
            authorization: None,
            headers: &headers,
            content_length: None,
        };
        let (h, mut body) = up.send(0, &head, &[]).await?;
        assert_eq!(h.status, 200);
        let data = (&mut body).collect().await.unwrap().to_bytes();
        up.put_back(0, body.take_reusable().expect("reusable"));
        Ok(data)
    }

    #[tokio::test]
    async fn a_pooled_connection_closed_by_the_upstream_after_idling_is_retried_once() {
        let (t, conns) = closing_upstream().await;
        let up = Upstream::new(&t, 1, None, Duration::from_secs(5)).unwrap();
        assert_eq!(&get(&up, &t).await.ok().unwrap()[..], b"ok");
        // It idled past STALE_AFTER (set back rather than slept).
        for c in up.slot(0).lock().iter_mut() {
            c.since = Instant::now() - STALE_AFTER * 2;
        }
        assert_eq!(&get(&up, &t).await.ok().unwrap()[..], b"ok");
        assert_eq!(
            conns.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "a new connection"
        );
    }

    #[tokio::test]
    async fn a_connection_used_a_moment_ago_that_fails_is_not_retried() {
        let (t, conns) = closing_upstream().await;
        let up = Upstream::new(&t, 1, None, Duration::from_secs(5)).unwrap();
        get(&up, &t).await.ok().unwrap();
        match get(&up, &t).await {
            Err(SendError::Failed(e)) => assert!(e.contains("without answering"), "{e}"),
            Err(SendError::Connect(e)) => panic!("{e}"),
            Ok(_) => panic!("answered"),
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_sweep_closes_idle_connections_the_upstream_closed() {
        let (t, _) = closing_upstream().await;
        let up = Upstream::new(&t, 1, None, Duration::from_secs(5)).unwrap();
        // An upstream that closes each connection right after accepting it.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let closer = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        });
        let gone = Upstream::new(
            &UpstreamTarget::parse(&format!("http://127.0.0.1:{port}/v1")).unwrap(),
            1,
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        let kept = up.connect().await.ok().unwrap();
        up.put_back(0, kept);
        let closed = gone.connect().await.ok().unwrap();
        gone.put_back(0, closed);
        let start = Instant::now();
        while gone.idle_count(0) > 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "never swept");
            tokio::task::yield_now().await;
            gone.sweep(0);
        }
        up.sweep(0);
        assert_eq!(up.idle_count(0), 1, "an open idle connection stays");
        closer.abort();
    }

    #[tokio::test]
    async fn expired_idle_connections_at_the_bottom_of_the_pool_are_closed() {
        let (t, _) = closing_upstream().await;
        let up = Upstream::new(&t, 1, None, Duration::from_secs(5)).unwrap();
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(up.connect().await.ok().unwrap());
        }
        let fresh = conns.pop().unwrap();
        for c in conns {
            up.put_back(0, c);
        }
        for c in up.slot(0).lock().iter_mut() {
            c.since = Instant::now() - IDLE_TIMEOUT * 2;
        }
        up.put_back(0, fresh);
        assert_eq!(up.slot(0).lock().len(), 1, "only the fresh one stays");
    }
}
