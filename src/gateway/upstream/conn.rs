//! One upstream connection (plain or TLS), what has been read from it, and
//! the response body read from it as the caller's side asks for it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::io::poll_read_buf;

use super::h1::{Decoder, Framing, ResponseHead, Step};

/// An idle connection older than this is not reused (upstreams commonly
/// close keep-alive connections after 60–75 s).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(55);
/// Bytes read from an upstream at a time.
pub(super) const READ_CHUNK: usize = 8 * 1024;

/// A connection to an upstream, plain or TLS.
pub(super) enum Io {
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
pub(super) struct Conn {
    pub(super) io: Io,
    pub(super) buf: BytesMut,
    /// The outgoing request, reused from request to request.
    pub(super) out: Vec<u8>,
    /// How long it may wait in the pool: [`IDLE_TIMEOUT`], or less when the
    /// upstream said it closes idle connections sooner (`Keep-Alive:
    /// timeout=N`), with a margin so it is not reused as the upstream closes it.
    pub(super) idle_limit: Duration,
}

/// Read what is available into the spare capacity of `buf`, keeping room
/// for a useful read (tokio-util's `poll_read_buf` does the read).
fn read_more(io: &mut Io, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < READ_CHUNK / 2 {
        buf.reserve(READ_CHUNK);
    }
    poll_read_buf(Pin::new(io), cx, buf)
}

impl Conn {
    /// Whether an idle connection can take a request: nothing to read
    /// (a readable idle connection was closed by the upstream or sent
    /// something unexpected). No system call unless the socket is readable.
    pub(super) fn is_reusable(&mut self) -> bool {
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
    pub(super) fn new(mut conn: Conn, head: &ResponseHead) -> Self {
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
    pub(super) fn take_reusable(&mut self) -> Option<Conn> {
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
                    if ready!(read_more(&mut conn.io, cx, &mut conn.buf))? == 0 {
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
