//! Reaching upstreams: where a request goes, keep-alive connection pools,
//! and the I/O around the [`h1`](super::h1) codec.
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
//! connections per worker thread (plus one for the prober), so a
//! connection is only ever used by the thread whose runtime registered it
//! and its lock is never contended. A connection goes back to its stack
//! when the response body has been relayed to the end; one whose response
//! was cut short is closed (that is how a cancelled request reaches the
//! upstream). Before reuse, an idle connection is checked without a system
//! call unless the socket became readable (a close, or TLS housekeeping).

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hyper::Uri;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::HeaderValue;
use hyper::http::uri::Scheme;
use parking_lot::Mutex;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::h1::{self, Decoder, Framing, RequestHead, ResponseHead, Step};

/// An idle connection older than this is not reused (upstreams commonly
/// close keep-alive connections after 60–75 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(55);
/// Idle connections kept per worker and upstream.
const MAX_IDLE: usize = 1024;
/// Bytes read from an upstream at a time.
const READ_CHUNK: usize = 8 * 1024;
/// Request bodies up to this size are sent in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;

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
    /// `/v1`, with its query), in two pieces to write back to back.
    pub fn path<'a>(&'a self, rest: &'a str) -> [&'a str; 2] {
        if self.prefix.is_empty() && rest.is_empty() {
            ["/", ""]
        } else {
            [&self.prefix, rest]
        }
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

/// A connection to an upstream, plain or TLS.
enum Io {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection and what has been read from it but not yet used.
pub struct Conn {
    io: Io,
    buf: BytesMut,
    /// The outgoing request, reused from request to request.
    out: Vec<u8>,
    /// How long it may wait in the pool: [`IDLE_TIMEOUT`], or less when the
    /// upstream said it closes idle connections sooner (`Keep-Alive:
    /// timeout=N`), with a margin so it is not reused as the upstream closes it.
    idle_limit: Duration,
}

/// Buffers larger than this are shrunk before a connection waits in the pool
/// (one request with huge headers must not pin memory on every idle connection).
const KEEP_BUFFER: usize = 64 * 1024;

/// Read what is available into the spare capacity of `buf`.
fn poll_read_buf(io: &mut Io, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    let n = {
        let spare = buf.chunk_mut();
        // SAFETY: `UninitSlice` is a view of the buffer's spare capacity;
        // `ReadBuf::uninit` never reads it and only reports what was written.
        let spare = unsafe { &mut *(spare as *mut _ as *mut [MaybeUninit<u8>]) };
        let mut rb = ReadBuf::uninit(spare);
        ready!(Pin::new(io).poll_read(cx, &mut rb))?;
        rb.filled().len()
    };
    // SAFETY: `n` bytes of the spare capacity were just initialised by the read.
    unsafe { buf.advance_mut(n) };
    Poll::Ready(Ok(n))
}

impl Conn {
    /// Whether an idle connection can take a request: nothing to read
    /// (a readable idle connection was closed by the upstream or sent
    /// something unexpected). No system call unless the socket is readable.
    fn is_reusable(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        Pin::new(&mut self.io)
            .poll_read(&mut cx, &mut probe)
            .is_pending()
    }
}

/// The body of an upstream's response, read as the caller's side asks for it.
pub struct UpBody {
    conn: Option<Conn>,
    decoder: Decoder,
    keep_alive: bool,
    /// Body bytes still expected (content-length framing), for the size hint.
    left: Option<u64>,
}

impl UpBody {
    fn new(mut conn: Conn, head: &ResponseHead) -> Self {
        if let Some(t) = head.idle_timeout {
            conn.idle_limit = t
                .saturating_sub(Duration::from_secs(1).min(t / 2))
                .min(IDLE_TIMEOUT);
        }
        Self {
            conn: Some(conn),
            decoder: Decoder::new(head.framing),
            keep_alive: head.keep_alive,
            left: match head.framing {
                Framing::Length(n) => Some(n),
                Framing::Empty => Some(0),
                _ => None,
            },
        }
    }

    /// The connection, if the body was read to its end and the connection
    /// can carry another request.
    pub fn take_reusable(&mut self) -> Option<Conn> {
        if self.decoder.is_done()
            && self.keep_alive
            && self.conn.as_ref().is_some_and(|c| c.buf.is_empty())
        {
            self.conn.take()
        } else {
            None
        }
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        let Some(conn) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match this
                .decoder
                .decode(&mut conn.buf)
                .map_err(io::Error::other)?
            {
                Step::Data(b) => {
                    if let Some(left) = &mut this.left {
                        *left -= b.len() as u64;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Step::Done => return Poll::Ready(None),
                Step::NeedMore => {
                    if ready!(poll_read_buf(&mut conn.io, cx, &mut conn.buf))? == 0 {
                        this.keep_alive = false;
                        this.decoder.at_eof().map_err(io::Error::other)?;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
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

    /// Give a connection back after its response was read to the end.
    pub fn release(&self, worker: usize, mut conn: Conn) {
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
    use http_body_util::BodyExt;
    use hyper::header::HeaderMap;
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
    async fn closing_upstream() -> (Target, Arc<std::sync::atomic::AtomicUsize>) {
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
            Target::parse(&format!("http://127.0.0.1:{port}/v1")).unwrap(),
            conns,
        )
    }

    async fn get(up: &Upstream, t: &Target) -> Result<Bytes, SendError> {
        let headers = HeaderMap::new();
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
        up.release(0, body.take_reusable().expect("reusable"));
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
    async fn expired_idle_connections_at_the_bottom_of_the_pool_are_closed() {
        let (t, _) = closing_upstream().await;
        let up = Upstream::new(&t, 1, None, Duration::from_secs(5)).unwrap();
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(up.connect().await.ok().unwrap());
        }
        let fresh = conns.pop().unwrap();
        for c in conns {
            up.release(0, c);
        }
        for c in up.slot(0).lock().iter_mut() {
            c.since = Instant::now() - IDLE_TIMEOUT * 2;
        }
        up.release(0, fresh);
        assert_eq!(up.slot(0).lock().len(), 1, "only the fresh one stays");
    }

    #[test]
    fn joins_the_path_after_v1_to_the_base_url() {
        let t = Target::parse("http://127.0.0.1:9000/v1").unwrap();
        assert_eq!(
            t.path("/chat/completions?x=1").concat(),
            "/v1/chat/completions?x=1"
        );
        assert_eq!(t.host_header(), "127.0.0.1:9000");
        assert_eq!(t.origin(), "http://127.0.0.1:9000");
        let t = Target::parse("https://api.deepseek.com/").unwrap();
        assert_eq!(t.path("/chat/completions").concat(), "/chat/completions");
        assert_eq!(t.path("").concat(), "/");
        assert_eq!(
            (t.port, t.host_header().to_str().unwrap()),
            (443, "api.deepseek.com")
        );
        let t = Target::parse("https://h.example/openai/v1/").unwrap();
        assert_eq!(t.path("/models").concat(), "/openai/v1/models");
        let t = Target::parse("http://[::1]:8000/v1").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8000));
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("not a url").is_err());
    }
}
