//! Response bodies: the gateway's own (small, complete) and relayed upstream
//! bodies, passed through frame by frame as they arrive (no buffering), with
//! the `usage` scanner looking at the bytes on their way and the request's
//! [`Tally`] finished when the body ends or is dropped: its outcome is
//! counted then (the answer's, relayed to the end; `Cancelled` when the
//! caller left part-way, with the tokens seen so far).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::StatusCode;
use hyper::body::{Body, Frame, SizeHint};

use crate::gateway::limiter::Reservation;
use crate::gateway::proxy::ratelimit::RateHeaders;
use crate::gateway::proxy::tally::Tally;
use crate::gateway::telemetry::counters::RequestOutcome;
use crate::gateway::telemetry::usage::UsageScanner;
use crate::gateway::upstream::UpBody;
use crate::gateway::upstream::h1::HeaderLines;

/// Every response body the gateway sends.
pub enum ResBody {
    /// A complete body (errors, `/v1/models`, `/metrics`).
    Full(Option<Bytes>),
    /// An upstream's body, relayed.
    Relay(Box<Relay>),
}

impl ResBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        ResBody::Full(Some(b.into()))
    }

    /// Relay `inner` (its upstream's `headers` are written into the
    /// answer's head by the server, after the response's own); `outcome` is counted when it has been relayed to the
    /// end (a caller that leaves part-way counts `Cancelled`, an upstream
    /// that breaks off `UpstreamError`), unless the tally was decided already.
    pub fn relay(
        inner: UpBody,
        headers: HeaderLines,
        tally: Tally,
        outcome: RequestOutcome,
    ) -> Self {
        ResBody::Relay(Box::new(Relay {
            inner,
            headers,
            tally,
            outcome,
            usage: UsageScanner::default(),
            ended: false,
            settle: None,
            rate: None,
        }))
    }

    /// Send `x-ratelimit-*` headers with this relayed answer (written into
    /// its head by the server: [`RateHeaders`]).
    pub fn with_rate_headers(mut self, rate: RateHeaders) -> Self {
        if let ResBody::Relay(r) = &mut self
            && (rate.requests.is_some() || rate.tokens.is_some())
        {
            r.rate = Some(rate);
        }
        self
    }

    /// The upstream's headers to write into the answer's head.
    pub fn upstream_headers(&self) -> Option<&HeaderLines> {
        match self {
            ResBody::Relay(r) => Some(&r.headers),
            ResBody::Full(_) => None,
        }
    }

    /// The `x-ratelimit-*` headers to write into the answer's head.
    pub fn rate_headers(&self) -> Option<&RateHeaders> {
        match self {
            ResBody::Relay(r) => r.rate.as_ref(),
            ResBody::Full(_) => None,
        }
    }

    /// Settle `reservation` (token rules) when this relayed body ends.
    pub fn settling(mut self, reservation: Option<Reservation>, status: StatusCode) -> Self {
        if let (ResBody::Relay(r), Some(reservation)) = (&mut self, reservation) {
            let stream = r
                .headers
                .get("content-type")
                .is_some_and(|v| v.starts_with(b"text/event-stream"));
            r.settle = Some(Settle {
                reservation,
                ok: status.is_success(),
                stream,
                events: 0,
                blank: false,
            });
        }
        self
    }
}

/// A token reservation waiting for the end of its answer
/// (docs/rate-limits.md, "Token rules": settlement).
struct Settle {
    reservation: Reservation,
    /// The upstream answered 2xx.
    ok: bool,
    /// A server-sent event stream (then its events are counted).
    stream: bool,
    /// Events relayed so far (blank lines of the stream).
    events: u64,
    /// The current line of the stream is empty so far.
    blank: bool,
}

impl Settle {
    fn feed(&mut self, chunk: &[u8]) {
        if !self.stream {
            return;
        }
        for &b in chunk {
            if b == b'\n' {
                self.events += u64::from(self.blank);
                self.blank = true;
            } else if b != b'\r' {
                self.blank = false;
            }
        }
    }

    /// What the answer used: the upstream's usage when it reported it (the
    /// prompt estimate standing in for a missing prompt count); else 0 for
    /// an error answer (not billed), the prompt estimate plus one token per
    /// relayed event for a stream without usage, the whole reservation for
    /// any other answer without usage.
    fn used(&self, usage: &UsageScanner) -> u64 {
        let est = self.reservation.estimate();
        let completion_unknown = if self.stream {
            self.events
        } else {
            est.completion
        };
        match (usage.prompt, usage.completion) {
            (None, None) if !self.ok => 0,
            (None, None) => est.prompt + completion_unknown,
            (p, c) => p.unwrap_or(est.prompt) + c.unwrap_or(completion_unknown),
        }
    }
}

/// An upstream body on its way to the caller.
pub struct Relay {
    inner: UpBody,
    /// The upstream's headers (hop-by-hop ones left out).
    headers: HeaderLines,
    tally: Tally,
    /// Counted when the body has been relayed to the end.
    outcome: RequestOutcome,
    usage: UsageScanner,
    ended: bool,
    /// Models with token rules only.
    settle: Option<Settle>,
    /// Limited models only (unless `--ratelimit-headers on-429`).
    rate: Option<RateHeaders>,
}

/// How a relayed body ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Relayed to the end.
    Complete,
    /// The upstream broke off (read error, bad framing).
    UpstreamFailed,
    /// Dropped part-way: the caller went away (or its write failed).
    Dropped,
}

impl Relay {
    fn end(&mut self, how: End) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(s) = self.settle.take() {
            let used = s.used(&self.usage);
            s.reservation.settle(used);
        }
        self.tally.tokens(
            self.usage.prompt.unwrap_or(0),
            self.usage.completion.unwrap_or(0),
        );
        self.tally.decide(match how {
            End::Complete => self.outcome,
            End::UpstreamFailed => RequestOutcome::UpstreamError,
            End::Dropped => RequestOutcome::Cancelled,
        });
        if how == End::Complete {
            self.tally.latency();
            // Read to the end: the connection can serve the next request.
            if let Some(ep) = self.tally.endpoint()
                && let Ok(upstream) = &ep.upstream
            {
                upstream.release(self.tally.worker(), &mut self.inner);
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // hyper drops a body that says it has ended without polling it (an
        // empty answer: content-length 0, 204, 304): that one is complete and
        // its connection goes back to the pool. Otherwise the caller went away
        // mid-body: dropping `inner` closes the upstream connection
        // (cancelling its work); count the tokens seen so far.
        let how = if self.inner.is_end_stream() {
            End::Complete
        } else {
            End::Dropped
        };
        self.end(how);
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ResBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResBody::Relay(r) => {
                let r = &mut **r;
                let next = ready!(Pin::new(&mut r.inner).poll_frame(cx));
                match &next {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            r.usage.feed(d);
                            if let Some(s) = &mut r.settle {
                                s.feed(d);
                            }
                        }
                        if r.inner.is_end_stream() {
                            r.end(End::Complete);
                        }
                    }
                    Some(Err(_)) => r.end(End::UpstreamFailed),
                    None => r.end(End::Complete),
                }
                Poll::Ready(next)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Full(b) => b.is_none(),
            ResBody::Relay(r) => r.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ResBody::Full(None) => SizeHint::with_exact(0),
            ResBody::Relay(r) => r.inner.size_hint(),
        }
    }
}
