//! The HTTP/1.1 client side of the proxy, as a small codec: writing a
//! request head, parsing a response head, and decoding the response body's
//! framing (content-length, chunked, or until close). Pure functions over
//! buffers, so every edge (a chunk split anywhere, a 1xx before the answer,
//! a close-delimited body) is unit-tested without sockets; `pool` and `conn` do
//! the I/O.
//!
//! Why not hyper's client: it drives each connection from a separate task
//! and hands requests and responses over channels, which cost more CPU per
//! request than the rest of the gateway's request path together. Here the
//! request's own task writes the request and reads the answer.
//!
//! Headers are forwarded while writing: the caller's headers go out as they
//! came except hop-by-hop ones (RFC 9110 §7.6.1, including those the
//! `Connection` header names), the caller's `Authorization` (replaced by
//! the endpoint's key or dropped), `Host` and `Content-Length` (set for the
//! upstream), `Expect`, and `Accept-Encoding` (sent as `identity`: the usage
//! scanner reads the response bytes, so the response must not be
//! compressed; a request without the header would accept any coding). The
//! response head keeps everything but hop-by-hop headers.

use std::io::Write;

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{StatusCode, Version};

/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most response headers accepted (hyper's limit).
const MAX_HEADERS: usize = 100;

/// Headers that belong to one hop and never pass a proxy.
pub const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Header lines as they were read: each name and value a slice of the head
/// they came in (no header map, no copy per header; names keep the
/// sender's case). The caller's request headers travel to the upstream
/// like this: building a `HeaderMap` of them (hashing, name lookup, one
/// shared slice per value) only to write them out again cost about as much
/// as the rest of reading the request.
#[derive(Debug, Clone, Default)]
pub struct HeaderLines {
    head: Bytes,
    /// Name start, name length, value start, value length, in `head` (a
    /// head is at most 64 KiB: `server::codec::MAX_HEAD`).
    spans: smallvec::SmallVec<[Span; 16]>,
}

/// Where one header line's name and value are in its head.
pub type Span = (u16, u16, u16, u16);

impl HeaderLines {
    /// The lines at `spans` of `head` (validated by the parser: names are
    /// tokens, values have no control characters but tab).
    pub fn new(head: Bytes, spans: smallvec::SmallVec<[Span; 16]>) -> Self {
        Self { head, spans }
    }

    /// Lines from name/value pairs (tests, probes).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let mut raw = Vec::new();
        let mut spans = smallvec::SmallVec::new();
        for (n, v) in pairs {
            let ns = raw.len() as u16;
            raw.extend_from_slice(n.as_bytes());
            raw.extend_from_slice(b": ");
            let vs = raw.len() as u16;
            raw.extend_from_slice(v.as_bytes());
            raw.extend_from_slice(b"\r\n");
            spans.push((ns, n.len() as u16, vs, v.len() as u16));
        }
        Self::new(Bytes::from(raw), spans)
    }

    /// Each header's name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|&(ns, nl, vs, vl)| {
            let (ns, nl, vs, vl) = (ns as usize, nl as usize, vs as usize, vl as usize);
            (&self.head[ns..ns + nl], &self.head[vs..vs + vl])
        })
    }

    /// The first value of header `name` (lowercase: see [`name_is`]),
    /// whatever its case.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.spans.iter().find_map(|&(ns, nl, vs, vl)| {
            let (ns, vs) = (ns as usize, vs as usize);
            name_is(&self.head[ns..ns + nl as usize], name)
                .then(|| &self.head[vs..vs + vl as usize])
        })
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Keep only the headers whose name passes `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let head = &self.head;
        self.spans
            .retain(|&mut (ns, nl, _, _)| keep(&head[ns as usize..ns as usize + nl as usize]));
    }

    /// Whether a `Connection` header is among them (which may name more
    /// hop-by-hop headers).
    fn has_connection(&self) -> bool {
        self.get("connection").is_some()
    }
}

/// Whether the header name `name` is `lower`, whatever `name`'s case: the
/// name comparison of every header of every request and answer, so done
/// eight bytes at a time. `name` must be a token (RFC 9110 §5.6.2), as
/// both parsers (`httparse`) ensure; `lower` is lowercase letters, digits
/// and `-`. Every byte of `lower` has bit 5 (0x20) set, so `b | 0x20`
/// equals it only for that byte or, for a letter, its capital; the other
/// byte with that property (a control character, for a digit or `-`) is
/// never in a token.
#[inline]
pub fn name_is(name: &[u8], lower: &str) -> bool {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let lower = lower.as_bytes();
    debug_assert!(
        lower
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "{lower:?}"
    );
    let n = name.len();
    if n != lower.len() {
        return false;
    }
    if n < 8 {
        return name.iter().zip(lower).all(|(&a, &b)| a | 0x20 == b);
    }
    let word = |s: &[u8], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let mut i = 0;
    while i + 8 < n {
        if word(name, i) | FOLD != word(lower, i) {
            return false;
        }
        i += 8;
    }
    // The last eight bytes (overlapping the previous word when `n` is not
    // a multiple of eight).
    word(name, n - 8) | FOLD == word(lower, n - 8)
}

/// Whether a caller's header `name` (any case) is not forwarded as it is:
/// hop-by-hop ([`HOP_BY_HOP`]), or one the gateway sets itself or must not
/// forward (`authorization`, `host`, `content-length`, `expect`,
/// `accept-encoding`). Matched by length first: this runs for every header
/// of every request.
fn not_forwarded(name: &[u8]) -> bool {
    let is = |n: &str| name_is(name, n);
    hop_by_hop(name)
        || match name.len() {
            4 => is("host"),
            6 => is("expect"),
            13 => is("authorization"),
            14 => is("content-length"),
            15 => is("accept-encoding"),
            _ => false,
        }
}

/// Where each header `httparse` parsed out of `head` is in it. The offsets
/// fit u16: a head is at most 64 KiB (`MAX_HEAD` here and in
/// `server::codec`), checked before this is called.
pub fn spans_of(head: &[u8], headers: &[httparse::Header<'_>]) -> smallvec::SmallVec<[Span; 16]> {
    let base = head.as_ptr() as usize;
    headers
        .iter()
        .map(|h| {
            (
                (h.name.as_ptr() as usize - base) as u16,
                h.name.len() as u16,
                (h.value.as_ptr() as usize - base) as u16,
                h.value.len() as u16,
            )
        })
        .collect()
}

/// Whether a `Connection` header of `h` lists `name` (besides
/// `keep-alive`/`close`, which are hop-by-hop anyway).
fn listed_by_connection(h: &HeaderLines, name: &[u8]) -> bool {
    h.iter()
        .filter(|(n, _)| name_is(n, "connection"))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
}

/// What to put in the request head besides the caller's headers.
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// Origin-form target in pieces written back to back: the endpoint's
    /// path prefix and the caller's path after `/v1` (`/v1` +
    /// `/chat/completions?x=1`).
    pub target: [&'a str; 2],
    pub host: &'a HeaderValue,
    /// `Bearer <endpoint key>`; `None` sends no `Authorization`.
    pub authorization: Option<&'a HeaderValue>,
    /// The caller's headers (filtered while writing).
    pub headers: &'a HeaderLines,
    pub content_length: Option<usize>,
}

/// Append the request head to `out`.
pub fn encode_request(out: &mut Vec<u8>, r: &RequestHead<'_>) {
    out.extend_from_slice(r.method.as_bytes());
    out.push(b' ');
    for piece in r.target {
        out.extend_from_slice(piece.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(r.host.as_bytes());
    out.extend_from_slice(b"\r\naccept-encoding: identity\r\n");
    let connection = r.headers.has_connection();
    for (name, value) in r.headers.iter() {
        if not_forwarded(name) || (connection && listed_by_connection(r.headers, name)) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(auth) = r.authorization {
        out.extend_from_slice(b"authorization: ");
        out.extend_from_slice(auth.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(n) = r.content_length {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "content-length: {n}\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304, or a HEAD request).
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    /// Without hop-by-hop headers, as they came (see [`HeaderLines`]).
    pub headers: HeaderLines,
    pub framing: Framing,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
    /// How long the upstream keeps the connection open when idle, from a
    /// `Keep-Alive: timeout=N` header (Node, Apache and others send it).
    pub idle_timeout: Option<std::time::Duration>,
}

/// Parse a response head at the start of `buf`. `Ok(None)` means more
/// bytes are needed; on success the head is split off `buf`, leaving the
/// start of the body. Informational (1xx) responses are skipped.
pub fn parse_response(
    buf: &mut BytesMut,
    head_request: bool,
) -> Result<Option<ResponseHead>, String> {
    loop {
        // Left uninitialised: filling 100 empty slots (3.2 KB) for every
        // response cost more than parsing a short head.
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut slots);
        let n = match parsed {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(format!("response head larger than {MAX_HEAD} bytes"));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("invalid response head: {e}")),
        };
        let code = res.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| format!("invalid status code {code}"))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err("answer 101 Switching Protocols: the gateway speaks HTTP only".into());
        }
        if status.is_informational() {
            buf.advance(n);
            continue;
        }
        let version = if res.version == Some(1) {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        if n > MAX_HEAD {
            return Err(format!("response head larger than {MAX_HEAD} bytes"));
        }
        // The headers become spans of the frozen head (no copy, no map).
        let offsets = spans_of(buf, res.headers);
        let head = buf.split_to(n).freeze();
        return build_head(&head, &offsets, status, version, head_request).map(Some);
    }
}

fn build_head(
    head: &Bytes,
    offsets: &[Span],
    status: StatusCode,
    version: Version,
    head_request: bool,
) -> Result<ResponseHead, String> {
    let mut kept: smallvec::SmallVec<[Span; 16]> = smallvec::SmallVec::new();
    let mut chunked = false;
    let mut other_coding = false;
    let mut length: Option<u64> = None;
    let mut close = version != Version::HTTP_11;
    let mut idle_timeout = None;
    // The `Connection` header lists more hop-by-hop names (rare).
    let mut lists_more = false;
    let text = |at: u16, len: u16| &head[at as usize..at as usize + len as usize];
    for &span in offsets {
        let (na, nl, va, vl) = span;
        let name = text(na, nl);
        let value = text(va, vl);
        let is = |n: &str| name_is(name, n);
        if is("transfer-encoding") {
            // The last coding decides (RFC 9112 §6.1).
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            // Chunked is re-framed towards the caller; another coding last
            // (never seen in practice) means the body runs to the close and
            // stays coded, so the header stays.
            other_coding = !chunked;
            if other_coding {
                kept.push(span);
            }
            continue;
        } else if is("content-length") {
            // Digits only (RFC 9110 §8.6): Rust's parser would take `+5`.
            let v = value.trim_ascii();
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(format!(
                    "invalid content-length {:?}",
                    String::from_utf8_lossy(value)
                ));
            }
            let n = v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length headers".into());
            }
            length = Some(n);
        } else if is("connection") {
            for t in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    close &= version != Version::HTTP_10;
                } else if !t.is_empty() {
                    lists_more = true;
                }
            }
            continue;
        } else if is("keep-alive") {
            idle_timeout = keep_alive_timeout(value).or(idle_timeout);
            continue;
        }
        if hop_by_hop(name) {
            continue;
        }
        kept.push(span);
    }
    let mut headers = HeaderLines::new(head.clone(), kept);
    if lists_more {
        let listed = HeaderLines::new(head.clone(), offsets.iter().copied().collect());
        headers.retain(|name| !listed_by_connection(&listed, name));
    }
    // Framing an upstream could mean two ways (RFC 9112 §6.1, §6.3):
    // transfer-coded HTTP/1.0, or a coding beside a length. The body is read
    // as chunked wins, but the connection is not trusted with another
    // request.
    if (chunked || other_coding) && (version == Version::HTTP_10 || length.is_some()) {
        close = true;
    }
    let framing =
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else if chunked {
            // A length beside chunked is ignored (and dropped: the body is re-framed).
            headers.retain(|name| !name.eq_ignore_ascii_case(b"content-length"));
            Framing::Chunked
        } else if other_coding {
            headers.retain(|name| !name.eq_ignore_ascii_case(b"content-length"));
            Framing::UntilClose
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
    let keep_alive = !close && framing != Framing::UntilClose;
    Ok(ResponseHead {
        status,
        headers,
        framing,
        keep_alive,
        idle_timeout,
    })
}

/// Whether `name` (any case) is one of [`HOP_BY_HOP`]; by length first.
fn hop_by_hop(name: &[u8]) -> bool {
    let is = |n: &str| name_is(name, n);
    match name.len() {
        2 => is("te"),
        7 => is("trailer") || is("upgrade"),
        10 => is("connection") || is("keep-alive"),
        16 => is("proxy-connection"),
        17 => is("transfer-encoding"),
        19 => is("proxy-authorization"),
        _ => false,
    }
}

/// `timeout=N` of a `Keep-Alive` header value (`timeout=5, max=1000`).
fn keep_alive_timeout(value: &[u8]) -> Option<std::time::Duration> {
    value.split(|&b| b == b',').find_map(|p| {
        let eq = p.iter().position(|&b| b == b'=')?;
        if !p[..eq].trim_ascii().eq_ignore_ascii_case(b"timeout") {
            return None;
        }
        let secs = std::str::from_utf8(p[eq + 1..].trim_ascii())
            .ok()?
            .parse()
            .ok()?;
        Some(std::time::Duration::from_secs(secs))
    })
}

/// One step of body decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes, in order.
    Data(Bytes),
    /// Read more from the connection first.
    NeedMore,
    /// The body is complete.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// This many data bytes of the current chunk are left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines after the last chunk, until an empty line.
    Trailers,
}

/// Decodes one response body out of the connection's read buffer.
#[derive(Debug, Clone)]
pub struct Decoder {
    framing: Framing,
    left: u64,
    chunk: Chunk,
    done: bool,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

impl Decoder {
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            left: if let Framing::Length(n) = framing {
                n
            } else {
                0
            },
            chunk: Chunk::Size,
            done: matches!(framing, Framing::Empty | Framing::Length(0)),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Take the next piece of body out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
        if self.done {
            return Ok(Step::Done);
        }
        match self.framing {
            Framing::Empty => {
                self.done = true;
                Ok(Step::Done)
            }
            Framing::UntilClose => {
                if buf.is_empty() {
                    Ok(Step::NeedMore)
                } else {
                    Ok(Step::Data(buf.split().freeze()))
                }
            }
            Framing::Length(_) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = (buf.len() as u64).min(self.left) as usize;
                self.left -= n as u64;
                if self.left == 0 {
                    self.done = true;
                }
                Ok(Step::Data(buf.split_to(n).freeze()))
            }
            Framing::Chunked => self.decode_chunked(buf),
        }
    }

    fn decode_chunked(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
        loop {
            match self.chunk {
                Chunk::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::NeedMore);
                    };
                    let digits = line[..]
                        .split(|&b| b == b';')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii();
                    // Hex digits only: `from_str_radix` would take `+5`.
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .filter(|s| {
                            !s.is_empty()
                                && s.len() <= 16
                                && s.bytes().all(|b| b.is_ascii_hexdigit())
                        })
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or_else(|| {
                            format!("invalid chunk size {:?}", String::from_utf8_lossy(digits))
                        })?;
                    self.chunk = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Step::NeedMore);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    self.chunk = if n as u64 == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n as u64)
                    };
                    return Ok(Step::Data(buf.split_to(n).freeze()));
                }
                Chunk::DataEnd => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::NeedMore);
                    };
                    if !line.is_empty() {
                        return Err("chunk data longer than its size".into());
                    }
                    self.chunk = Chunk::Size;
                }
                Chunk::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::NeedMore);
                    };
                    if line.is_empty() {
                        self.done = true;
                        return Ok(Step::Done);
                    }
                }
            }
        }
    }

    /// The connection reached its end (EOF). Fine only for a body that runs
    /// to the close (or one already complete).
    pub fn at_eof(&mut self) -> Result<(), String> {
        if self.done || self.framing == Framing::UntilClose {
            self.done = true;
            Ok(())
        } else {
            Err("the upstream closed the connection before the end of the response".into())
        }
    }
}

/// Split one CRLF- (or LF-) terminated line off `buf`, without its end.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, String> {
    match memchr::memchr(b'\n', buf) {
        Some(i) => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err("chunk line too long".into()),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_match_in_any_case_and_only_themselves() {
        // Every length class: under eight bytes, exactly eight, a multiple
        // of eight, and the overlapping tail.
        for lower in [
            "te",
            "expect",
            "trailers",
            "connection",
            "content-type",
            "x-ratelimit-reset-tokens",
            "proxy-authorization",
        ] {
            let upper = lower.to_ascii_uppercase();
            let mixed: String = lower
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            for name in [lower, upper.as_str(), mixed.as_str()] {
                assert!(name_is(name.as_bytes(), lower), "{name} is {lower}");
            }
            // One byte off anywhere, or one longer or shorter: not it.
            for i in 0..lower.len() {
                let mut near = lower.as_bytes().to_vec();
                near[i] = if near[i] == b'-' { b'_' } else { b'-' };
                assert!(
                    !name_is(&near, lower),
                    "{:?} is not {lower}",
                    String::from_utf8_lossy(&near)
                );
            }
            assert!(!name_is(format!("{lower}s").as_bytes(), lower));
            assert!(!name_is(&lower.as_bytes()[1..], lower));
        }
        // `_` is `-` with bits 4 and 6 flipped; a digit's case is itself.
        assert!(!name_is(b"a_b", "a-b") && !name_is(b"content-lengtH1", "content-length2"));
        // Lines are found through it, whatever the sender's case.
        let h = HeaderLines::from_pairs(&[
            ("X-Long-Header-Name-Here", "1"),
            ("CONTENT-TYPE", "text/plain"),
        ]);
        assert_eq!(h.get("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(h.get("x-long-header-name-here"), Some(&b"1"[..]));
        assert_eq!(h.get("x-long-header-name-her"), None);
    }

    fn head(raw: &str) -> ResponseHead {
        let mut b = BytesMut::from(raw);
        parse_response(&mut b, false).unwrap().unwrap()
    }

    #[test]
    fn writes_the_request_head_with_forwarded_and_replaced_headers() {
        // Names in any case: matched case-insensitively, written as sent.
        let h = HeaderLines::from_pairs(&[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer sk-caller"),
            ("HOST", "gateway.example"),
            ("content-length", "999"),
            ("Accept-Encoding", "gzip"),
            ("Connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("TE", "trailers"),
            ("OpenAI-Organization", "org-1"),
        ]);
        assert_eq!(h.get("openai-organization"), Some(&b"org-1"[..]));
        assert_eq!(h.get("x-missing"), None);
        let host = HeaderValue::from_static("127.0.0.1:9000");
        let auth = HeaderValue::from_static("Bearer sk-upstream");
        let mut out = Vec::new();
        encode_request(
            &mut out,
            &RequestHead {
                method: "POST",
                target: ["/v1", "/chat/completions?x=1"],
                host: &host,
                authorization: Some(&auth),
                headers: &h,
                content_length: Some(42),
            },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:9000\r\naccept-encoding: identity\r\nContent-Type: application/json\r\n\
             OpenAI-Organization: org-1\r\nauthorization: Bearer sk-upstream\r\ncontent-length: 42\r\n\r\n"
        );
    }

    #[test]
    fn the_names_not_forwarded_are_the_hop_by_hop_and_replaced_ones_in_any_case() {
        let replaced = [
            "authorization",
            "host",
            "content-length",
            "expect",
            "accept-encoding",
        ];
        for name in HOP_BY_HOP.iter().map(|h| h.as_str()).chain(replaced) {
            assert!(not_forwarded(name.as_bytes()), "{name}");
            assert!(
                not_forwarded(name.to_ascii_uppercase().as_bytes()),
                "{name}"
            );
        }
        for name in [
            "content-type",
            "openai-organization",
            "x-hop",
            "hosts",
            "te2",
            "",
        ] {
            assert!(!not_forwarded(name.as_bytes()), "{name}");
        }
        // An upstream's answer loses the hop-by-hop ones only.
        for h in &HOP_BY_HOP {
            assert!(
                hop_by_hop(h.as_str().to_ascii_uppercase().as_bytes()),
                "{h}"
            );
        }
        for name in replaced {
            assert!(!hop_by_hop(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn response_framing_headers_are_read_in_any_case() {
        let h = head("HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.headers.get("transfer-encoding").is_none());
        let h = head("HTTP/1.1 200 OK\r\ncontent-LENGTH: 12\r\nCONNECTION: close\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(12));
        assert!(!h.keep_alive && h.headers.get("connection").is_none());
        assert_eq!(h.headers.get("content-length"), Some(&b"12"[..]));
        // A look-alike is an ordinary header, passed on.
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent_Length: 9\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.keep_alive && h.headers.iter().any(|(n, _)| n == b"Content_Length"));
    }

    #[test]
    fn parses_heads_and_picks_the_framing() {
        let h = head(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n",
        );
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (StatusCode::OK, Framing::Length(12), true)
        );
        assert_eq!(h.headers.get("content-type").unwrap(), b"application/json");
        assert_eq!(h.headers.get("content-length").unwrap(), b"12");
        assert!(h.headers.get("connection").is_none() && h.headers.get("keep-alive").is_none());
        assert_eq!(h.idle_timeout, Some(std::time::Duration::from_secs(5)));
        let h = head(
            "HTTP/1.1 200 OK\r\nKeep-Alive: max=100, timeout = 2\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(h.idle_timeout, Some(std::time::Duration::from_secs(2)));

        // Chunked wins over a length, but such a connection is not reused;
        // nor is one of transfer-coded HTTP/1.0.
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        assert!(
            h.headers.get("transfer-encoding").is_none()
                && h.headers.get("content-length").is_none()
        );
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
        let h =
            head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        let many: String = (0..99).map(|i| format!("x-h{i}: {i}\r\n")).collect();
        let h = head(&format!(
            "HTTP/1.1 200 OK\r\n{many}Content-Length: 0\r\n\r\n"
        ));
        assert_eq!(h.headers.len(), 100, "up to 100 headers");

        let h = head("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = head("HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        assert_eq!(
            (h.status.as_u16(), h.framing, h.keep_alive),
            (503, Framing::Length(0), false)
        );
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        let h = head(
            "HTTP/1.1 200 OK\r\nConnection: x-private\r\nX-Private: 1\r\nX-Public: 2\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(h.headers.get("x-private").is_none() && h.headers.get("x-public").is_some());
    }

    #[test]
    fn skips_informational_responses_and_waits_for_a_whole_head() {
        let mut b = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        );
        let h = parse_response(&mut b, false).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        assert_eq!(&b[..], b"ok");
        let mut partial = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(parse_response(&mut partial, false).unwrap().is_none());
        assert_eq!(partial.len(), 27, "a partial head is left untouched");
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(
                parse_response(&mut BytesMut::from(bad), false).is_err(),
                "{bad}"
            );
        }
    }

    /// Decode `body` fed in pieces of `size` bytes; returns the data and whether it completed.
    fn decode_in_pieces(
        framing: Framing,
        body: &[u8],
        size: usize,
    ) -> Result<(Vec<u8>, bool), String> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Step::Data(b) => out.extend_from_slice(&b),
                Step::Done => return Ok((out, true)),
                Step::NeedMore if fed < body.len() => {
                    let n = size.min(body.len() - fed);
                    buf.extend_from_slice(&body[fed..fed + n]);
                    fed += n;
                }
                Step::NeedMore => {
                    d.at_eof()?;
                    return Ok((out, d.is_done()));
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_sizes() {
        let pieces = ["data: a\n", "\r\ndata: bcdefghijklmnop\n\n", "x"];
        let mut body = String::new();
        for (i, p) in pieces.iter().enumerate() {
            // One chunk with an extension, one with a bare LF line end.
            match i {
                0 => body.push_str(&format!("{:x};ext=1\r\n{p}\r\n", p.len())),
                1 => body.push_str(&format!("{:X}\n{p}\n", p.len())),
                _ => body.push_str(&format!("{:x}\r\n{p}\r\n", p.len())),
            }
        }
        body.push_str("0\r\nx-trailer: 1\r\n\r\n");
        let body = body.as_bytes();
        for size in 1..body.len() + 1 {
            let (data, done) = decode_in_pieces(Framing::Chunked, body, size).unwrap();
            assert!(done, "size {size}");
            assert_eq!(data, pieces.concat().as_bytes(), "size {size}");
        }
        assert!(decode_in_pieces(Framing::Chunked, b"zz\r\n", 4).is_err());
        assert!(decode_in_pieces(Framing::Chunked, b"+5\r\nhello\r\n0\r\n\r\n", 4).is_err());
        assert!(decode_in_pieces(Framing::Chunked, b"+0\r\n\r\n", 4).is_err());
        assert!(decode_in_pieces(Framing::Chunked, b"2\r\nabc\r\n", 9).is_err());
        assert!(
            decode_in_pieces(Framing::Chunked, b"5\r\nab", 9).is_err(),
            "cut short"
        );
    }

    #[test]
    fn length_and_close_delimited_bodies() {
        let (data, done) = decode_in_pieces(Framing::Length(5), b"hello", 2).unwrap();
        assert_eq!((data.as_slice(), done), (&b"hello"[..], true));
        assert!(
            decode_in_pieces(Framing::Length(9), b"hello", 2).is_err(),
            "cut short"
        );
        let (data, done) = decode_in_pieces(Framing::UntilClose, b"data: x\n\n", 3).unwrap();
        assert_eq!((data.as_slice(), done), (&b"data: x\n\n"[..], true));
        let mut d = Decoder::new(Framing::Length(2));
        let mut buf = BytesMut::from("okEXTRA");
        assert_eq!(
            d.decode(&mut buf).unwrap(),
            Step::Data(Bytes::from_static(b"ok"))
        );
        assert_eq!(d.decode(&mut buf).unwrap(), Step::Done);
        assert_eq!(&buf[..], b"EXTRA", "bytes past the body stay in the buffer");
        assert_eq!(
            Decoder::new(Framing::Empty)
                .decode(&mut BytesMut::new())
                .unwrap(),
            Step::Done
        );
    }
}
