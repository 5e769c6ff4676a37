//! One caller's connection, driven by its own task: read a request head,
//! run the head's phases, read the body, run the rest of the request path
//! while watching the socket, write the answer; again while the connection
//! is kept alive. The codec (parsing, framing) is [`codec`](super::codec).
//!
//! Why not hyper's server: it hands each request body to the service over a
//! channel and answers through three polls of the connection's task where
//! one does; with it, the callers' side of HTTP/1 was about a quarter of
//! the worker's instructions per request (bench/RESULTS.md). Here the task
//! reads the body straight out of its read buffer (the common request, whose
//! body came with its head, is one slice of it: no copy, no timer), and
//! writes the head and a short body in one `write`.
//!
//! What the socket does meanwhile:
//!
//! - **While the upstream works** (and while the answer is written) the
//!   task keeps reading: a pipelined request is buffered (up to
//!   [`MAX_BUFFERED`]), a reset ends the connection at once, which drops the
//!   request and so closes its upstream connection (the upstream's work is
//!   cancelled), and a read EOF is held until the answer is written: a
//!   caller that half-closed (`shutdown(SHUT_WR)` after its request) is
//!   answered. A FIN-only close looks the same, so such a caller is answered
//!   too, and the write then fails (a stream ends as cancelled).
//! - **A body not read** (an answer before the body: 401, 404, 413 on its
//!   declared length) is read and thrown away after the answer, at most
//!   [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`], so a caller still sending
//!   it reads the answer instead of a reset (closing a socket with unread
//!   data sends one, which can overtake the answer).
//! - **Closing**: graceful shutdown and shedding ask through [`ConnState`]
//!   (the registry wakes the task); an idle connection closes at once, a
//!   busy one after its answer (which then says `connection: close`). The
//!   head-timeout sweep closes connections that wait for a head too long.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::Body;
use hyper::{Method, Response, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::poll_read_buf;

use super::codec::{self, BodyFraming, HeadError, RequestHead};
use super::conn::{ConnState, Registry};
use crate::gateway::proxy::body::ResBody;
use crate::gateway::proxy::errors::ProxyError;
use crate::gateway::proxy::{OnHead, Worker, on_body, on_head};
use crate::gateway::upstream::h1::{Decoder, Framing, Step};

/// How much of a body not read is thrown away after the answer, and for
/// how long (a bounded lingering close).
pub const DRAIN_LIMIT: u64 = 64 << 20;
pub const DRAIN_TIME: Duration = Duration::from_secs(5);
/// Bytes read ahead of the request being answered (pipelined requests);
/// past this the task stops reading until the answer is written.
pub const MAX_BUFFERED: usize = 64 * 1024;
/// The write buffer is sent once it holds this much, and the response body
/// is not polled for more while it does (back-pressure from a slow caller).
const WRITE_HIGH: usize = 64 * 1024;
/// Read buffer growth per read.
const READ_CHUNK: usize = 8 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The caller reset or closed the connection (or a write failed): it ends
/// without its answer being written.
struct Gone;

/// Serve one caller's connection until it closes or is closed.
pub(super) async fn serve<I>(io: I, worker: Arc<Worker>, registry: Arc<Registry>)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let state = Arc::new(ConnState::default());
    let id = poll_fn(|cx| Poll::Ready(registry.register(worker.id, cx.waker(), &state))).await;
    let mut conn = Conn {
        io,
        rbuf: BytesMut::new(),
        wbuf: Vec::new(),
        eof: false,
        state: state.clone(),
    };
    conn.run(&worker).await;
    registry.forget(worker.id, id);
}

struct Conn<I> {
    io: I,
    /// Read ahead: the head being parsed, body bytes, pipelined requests.
    rbuf: BytesMut,
    /// The answer on its way out.
    wbuf: Vec<u8>,
    /// The caller closed its sending side (sticky).
    eof: bool,
    state: Arc<ConnState>,
}

/// What became of a request's body.
enum BodyRead {
    Complete(Bytes),
    /// The answer to send instead (413, 408, 400).
    Refused(ProxyError),
}

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<I> {
    async fn run(&mut self, worker: &Worker) {
        loop {
            let head = match self.next_head().await {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    self.state.begin();
                    let _ = self.bad_head(e).await;
                    self.state.end();
                    break;
                }
            };
            self.state.begin();
            let keep = self.exchange(worker, head).await;
            self.state.end();
            if !keep || self.state.closing() {
                break;
            }
        }
        let _ = poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
    }

    /// Read into the buffer once. `Ok(false)`: EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(READ_CHUNK);
        }
        match poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                Poll::Ready(Ok(false))
            }
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(true)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Keep an eye on the socket while a request is worked on or answered:
    /// buffer what arrives (up to [`MAX_BUFFERED`]), note an EOF; a reset
    /// is `Err`.
    fn watch(&mut self, cx: &mut Context<'_>) -> Result<(), Gone> {
        while !self.eof && self.rbuf.len() < MAX_BUFFERED {
            match self.poll_fill(cx) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(_)) => return Err(Gone),
                Poll::Pending => break,
            }
        }
        Ok(())
    }

    /// The next request head. `None`: the connection is done (EOF, closed
    /// for shutdown or shedding, or it waited past the head timeout).
    async fn next_head(&mut self) -> Result<Option<RequestHead>, HeadError> {
        loop {
            if !self.rbuf.is_empty()
                && let Some(h) = codec::parse_request(&mut self.rbuf)?
            {
                return Ok(Some(h));
            }
            if self.eof {
                return Ok(None);
            }
            let more = poll_fn(|cx| {
                if self.state.expired() || (self.state.closing() && self.rbuf.is_empty()) {
                    return Poll::Ready(false);
                }
                match self.poll_fill(cx) {
                    Poll::Ready(Ok(_)) => Poll::Ready(true),
                    Poll::Ready(Err(_)) => Poll::Ready(false),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if !more {
                return Ok(None);
            }
        }
    }

    /// A head that cannot be served: 400/431 in OpenAI's shape, then close.
    async fn bad_head(&mut self, e: HeadError) -> Result<(), Gone> {
        let code = if e.status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
            "request_header_fields_too_large"
        } else {
            "malformed_request"
        };
        let res =
            ProxyError::new(e.status, "invalid_request_error", code, e.message).into_response();
        self.respond(res, Version::HTTP_11, false, false).await?;
        self.linger().await;
        Ok(())
    }

    /// One request and its answer; whether the connection carries another.
    async fn exchange(&mut self, worker: &Worker, head: RequestHead) -> bool {
        let RequestHead {
            head,
            framing,
            mut keep_alive,
            expect_continue,
        } = head;
        let version = head.version;
        let head_only = head.method == Method::HEAD;
        let mut body = Decoder::new(framing);
        let mut continued = false;
        let res = match on_head(worker, head) {
            OnHead::Answer(res) => res,
            OnHead::ReadBody(call) => {
                let cfg = &worker.shared.cfg;
                let (limit, timeout) = (cfg.body_limit, cfg.body_timeout);
                let read = self
                    .read_body(
                        &mut body,
                        framing,
                        limit,
                        timeout,
                        expect_continue,
                        &mut continued,
                    )
                    .await;
                match read {
                    Err(Gone) => {
                        // Counted as a bad request; nobody to answer.
                        drop(call.refuse(ProxyError::bad_request_body(
                            "the caller closed the connection before the end of the body",
                        )));
                        return false;
                    }
                    Ok(BodyRead::Refused(e)) => {
                        keep_alive = false;
                        call.refuse(e)
                    }
                    Ok(BodyRead::Complete(bytes)) => {
                        let work = on_body(worker, call, bytes);
                        let mut work = std::pin::pin!(work);
                        let answer = poll_fn(|cx| {
                            if let Poll::Ready(res) = work.as_mut().poll(cx) {
                                return Poll::Ready(Ok(res));
                            }
                            self.watch(cx)?;
                            Poll::Pending
                        })
                        .await;
                        match answer {
                            Ok(res) => res,
                            // The request is dropped: its upstream
                            // connection closes, the tally counts Cancelled.
                            Err(Gone) => return false,
                        }
                    }
                }
            }
        };
        // A body the answer came before: the caller may still send it, unless
        // it waits for a `100 Continue` it was not sent.
        let unread = !body.is_done();
        if unread && expect_continue && !continued {
            keep_alive = false;
        }
        keep_alive &= !self.state.closing();
        if self
            .respond(res, version, head_only, keep_alive)
            .await
            .is_err()
        {
            return false;
        }
        if unread && keep_alive {
            keep_alive = self.discard(&mut body).await;
        }
        if !keep_alive && (unread || !self.rbuf.is_empty()) {
            // The caller may still be sending: what it sends is read and
            // dropped for a moment, so the answer is not overtaken by a reset.
            self.linger().await;
        }
        keep_alive && !(self.eof && self.rbuf.is_empty())
    }

    /// Read the whole body, refusing it past `limit` (at once for a larger
    /// declared length, without reading it) or when it is not complete
    /// `timeout` after the head. No timer for a body that came with its
    /// head.
    async fn read_body(
        &mut self,
        body: &mut Decoder,
        framing: Framing,
        limit: usize,
        timeout: Duration,
        expect_continue: bool,
        continued: &mut bool,
    ) -> Result<BodyRead, Gone> {
        if let Framing::Length(n) = framing
            && n > limit as u64
        {
            return Ok(BodyRead::Refused(ProxyError::too_large(limit, Some(n))));
        }
        let mut first: Option<Bytes> = None;
        let mut more: Option<BytesMut> = None;
        let mut total = 0usize;
        let mut deadline = None;
        loop {
            let step = match body.decode(&mut self.rbuf) {
                Ok(s) => s,
                Err(e) => return Ok(BodyRead::Refused(ProxyError::bad_request_body(&e))),
            };
            match step {
                Step::Done => break,
                Step::Data(data) => {
                    total += data.len();
                    if total > limit {
                        return Ok(BodyRead::Refused(ProxyError::too_large(limit, None)));
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
                Step::NeedMore => {
                    if expect_continue && !*continued {
                        *continued = true;
                        self.write_all(CONTINUE).await?;
                    }
                    let by = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
                    let read = poll_fn(|cx| self.poll_fill(cx));
                    match tokio::time::timeout_at(by, read).await {
                        Err(_) => {
                            return Ok(BodyRead::Refused(ProxyError::body_timeout(
                                timeout.as_secs_f64(),
                            )));
                        }
                        Ok(Ok(true)) => {}
                        // A half-close before the end of the body: it can
                        // still read the answer.
                        Ok(Ok(false)) => {
                            return Ok(BodyRead::Refused(ProxyError::bad_request_body(
                                "the caller closed its sending side before the end of the body",
                            )));
                        }
                        Ok(Err(_)) => return Err(Gone),
                    }
                }
            }
        }
        Ok(BodyRead::Complete(match more {
            Some(m) => m.freeze(),
            None => first.unwrap_or_default(),
        }))
    }

    /// Throw the rest of an unread body away (bounded); whether it was all
    /// read, so the connection can carry the next request.
    async fn discard(&mut self, body: &mut Decoder) -> bool {
        let mut left = DRAIN_LIMIT;
        let drain = async {
            loop {
                match body.decode(&mut self.rbuf) {
                    Ok(Step::Done) => return true,
                    Ok(Step::Data(d)) => match left.checked_sub(d.len() as u64) {
                        Some(l) => left = l,
                        None => return false,
                    },
                    Ok(Step::NeedMore) => {
                        if !matches!(poll_fn(|cx| self.poll_fill(cx)).await, Ok(true)) {
                            return false;
                        }
                    }
                    Err(_) => return false,
                }
            }
        };
        tokio::time::timeout(DRAIN_TIME, drain)
            .await
            .unwrap_or(false)
    }

    /// Before closing with the caller possibly still sending: stop sending,
    /// then read and drop what comes (bounded), so the answer already sent
    /// is not destroyed by a reset.
    async fn linger(&mut self) {
        let _ = poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
        let mut left = DRAIN_LIMIT as usize;
        let drain = async {
            self.rbuf.clear();
            while !self.eof && left > 0 {
                match poll_fn(|cx| self.poll_fill(cx)).await {
                    Ok(true) => {
                        left = left.saturating_sub(self.rbuf.len());
                        self.rbuf.clear();
                    }
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }

    /// Write `bytes` whole (a `100 Continue`), watching nothing else.
    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        let mut off = 0;
        while off < bytes.len() {
            let n = poll_fn(|cx| Pin::new(&mut self.io).poll_write(cx, &bytes[off..]))
                .await
                .map_err(|_| Gone)?;
            if n == 0 {
                return Err(Gone);
            }
            off += n;
        }
        poll_fn(|cx| Pin::new(&mut self.io).poll_flush(cx))
            .await
            .map_err(|_| Gone)
    }

    /// Write the answer: its head, then its body frame by frame as it comes
    /// (a stream's events are sent as they arrive), watching the socket.
    async fn respond(
        &mut self,
        res: Response<ResBody>,
        version: Version,
        head_only: bool,
        keep_alive: bool,
    ) -> Result<(), Gone> {
        let (parts, mut body) = res.into_parts();
        let framing =
            if parts.status == StatusCode::NO_CONTENT || parts.status == StatusCode::NOT_MODIFIED {
                BodyFraming::Empty
            } else {
                // A complete body's length, or the upstream's content-length.
                match body.size_hint().exact() {
                    Some(n) => BodyFraming::Length(n),
                    None if version == Version::HTTP_11 => BodyFraming::Chunked,
                    None => BodyFraming::UntilClose,
                }
            };
        let keep_alive = keep_alive && framing != BodyFraming::UntilClose;
        self.wbuf.clear();
        codec::encode_head(
            &mut self.wbuf,
            version,
            parts.status,
            &parts.headers,
            codec::Relayed {
                upstream: body.upstream_headers(),
                rate: body.rate_headers(),
            },
            framing,
            keep_alive,
        );
        let mut wrote = 0;
        if head_only || framing == BodyFraming::Empty {
            // Dropped unsent (a relayed body that has ended counts complete).
            drop(body);
            return poll_fn(|cx| self.poll_flush_out(cx, &mut wrote)).await;
        }
        let chunked = framing == BodyFraming::Chunked;
        let mut ended = false;
        poll_fn(|cx| {
            loop {
                // More of the body while there is room for it.
                let mut waiting = false;
                while !ended && self.wbuf.len() - wrote < WRITE_HIGH {
                    match Pin::new(&mut body).poll_frame(cx) {
                        Poll::Ready(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data()
                                && !data.is_empty()
                            {
                                if chunked {
                                    codec::chunk_start(&mut self.wbuf, data.len());
                                }
                                self.wbuf.extend_from_slice(&data);
                                if chunked {
                                    self.wbuf.extend_from_slice(codec::CHUNK_END);
                                }
                            }
                            ended = body.is_end_stream();
                        }
                        // The upstream broke off: end short of the last
                        // chunk (or of the length), so the caller sees a cut
                        // answer, and close.
                        Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(Gone)),
                        Poll::Ready(None) => ended = true,
                        Poll::Pending => {
                            waiting = true;
                            break;
                        }
                    }
                    if ended && chunked {
                        self.wbuf.extend_from_slice(codec::LAST_CHUNK);
                    }
                }
                match self.poll_flush_out(cx, &mut wrote) {
                    Poll::Ready(Ok(())) if ended => return Poll::Ready(Ok(())),
                    Poll::Ready(Ok(())) if waiting => break,
                    // All sent and the body has more: take it.
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            self.watch(cx)?;
            Poll::Pending
        })
        .await?;
        // Relayed to the end: the body's tally counted it complete.
        drop(body);
        if framing == BodyFraming::UntilClose {
            // Its end is the connection's.
            return Err(Gone);
        }
        Ok(())
    }

    /// Send `wbuf[*wrote..]`, then flush. `Ready(Ok)`: all sent (and
    /// `wbuf` emptied).
    fn poll_flush_out(
        &mut self,
        cx: &mut Context<'_>,
        wrote: &mut usize,
    ) -> Poll<Result<(), Gone>> {
        while *wrote < self.wbuf.len() {
            match Pin::new(&mut self.io).poll_write(cx, &self.wbuf[*wrote..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(Gone)),
                Poll::Ready(Ok(n)) => *wrote += n,
                Poll::Pending => return Poll::Pending,
            }
        }
        self.wbuf.clear();
        *wrote = 0;
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(_)) => Poll::Ready(Err(Gone)),
            Poll::Pending => Poll::Pending,
        }
    }
}
