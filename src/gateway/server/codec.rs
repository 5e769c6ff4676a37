//! The callers' side of HTTP/1.1 as a small codec: parsing a request head
//! (and the framing of its body), and writing a response head. Pure
//! functions over buffers, unit-tested without sockets; [`driver`] does the
//! I/O. Request bodies are decoded by the same [`Decoder`] as upstream
//! answers.
//!
//! What a caller gets (RFC 9112; pinned by `tests/gateway/framing.rs`):
//!
//! - A head larger than [`MAX_HEAD`] or with more than [`MAX_HEADERS`]
//!   headers: 431. A head that does not parse (bad method, target, version,
//!   header), a bad or conflicting `Content-Length`, a `Transfer-Encoding`
//!   whose last coding is not `chunked`: 400. Both in OpenAI's error shape,
//!   and the connection is closed (the next request's start is unknown).
//! - `Transfer-Encoding: chunked` beside a `Content-Length`: the chunked body
//!   is read and the connection is closed after the answer (the framing an
//!   intermediary may have read the other way: no request smuggling).
//! - HTTP/1.0: answered in HTTP/1.0, closed after the answer unless it asked
//!   for `Connection: keep-alive` (then the answer says so, and carries a
//!   length). HTTP/1.1: kept open unless it said `Connection: close`.
//!
//! [`driver`]: super::driver

use std::io::Write;
use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use hyper::header::HeaderMap;
use hyper::{Method, StatusCode, Version};

use crate::gateway::proxy::CallerHead;
use crate::gateway::proxy::ratelimit::RateHeaders;
use crate::gateway::upstream::h1::{Framing, HeaderLines, name_is, spans_of};

/// Largest request head accepted (hyper's default buffer limit is ~400 KB,
/// nginx's 4 × 8 KB): a head this large is not an API call.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most request headers accepted (hyper's limit).
pub const MAX_HEADERS: usize = 100;

/// A request head that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadError {
    /// 400 or 431.
    pub status: StatusCode,
    /// What was wrong, in words a caller can act on.
    pub message: String,
}

impl HeadError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn head_too_large() -> Self {
        Self::too_large(format!(
            "The request head is larger than {} KB.",
            MAX_HEAD / 1024
        ))
    }

    fn too_large(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            message: message.into(),
        }
    }
}

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    pub head: CallerHead,
    /// How the body is delimited (`Empty` for none).
    pub framing: Framing,
    /// The caller lets the connection carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the caller waits for `100 Continue` before
    /// sending the body.
    pub expect_continue: bool,
}

/// Parse a request head at the start of `buf`. `Ok(None)`: more bytes are
/// needed. On success the head is split off `buf`, leaving the start of the
/// body (and of any pipelined request after it).
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, HeadError> {
    // Uninitialised slots: filling 100 empty headers (3.2 KB) for every
    // request costs more than parsing a short head.
    let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let n = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(HeadError::head_too_large());
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::too_large(format!(
                "The request has more than {MAX_HEADERS} headers."
            )));
        }
        Err(httparse::Error::Version) => {
            return Err(HeadError::bad(
                "This gateway speaks HTTP/1.1 (and HTTP/1.0) only.",
            ));
        }
        Err(e) => return Err(HeadError::bad(format!("Malformed request head: {e}."))),
    };
    if n > MAX_HEAD {
        return Err(HeadError::head_too_large());
    }
    let version = if req.version == Some(1) {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes())
        .map_err(|_| HeadError::bad("Malformed request method."))?;
    let base = buf.as_ptr() as usize;
    let path = req.path.unwrap_or_default();
    let target = (path.as_ptr() as usize - base, path.len());
    let spans = spans_of(buf, req.headers);
    let head = buf.split_to(n).freeze();
    let target = head.slice(target.0..target.0 + target.1);
    build(method, version, target, HeaderLines::new(head, spans)).map(Some)
}

fn build(
    method: Method,
    version: Version,
    target: Bytes,
    headers: HeaderLines,
) -> Result<RequestHead, HeadError> {
    let mut chunked = false;
    let mut coded = false;
    let mut length: Option<u64> = None;
    let mut close = false;
    let mut keep_alive_asked = false;
    let mut expect_continue = false;
    for (name, raw) in headers.iter() {
        // By length first: this runs for every header of every request.
        let is = |n: &str| name_is(name, n);
        if is("content-length") {
            // Digits only (RFC 9110 §8.6): Rust's parser would take `+5`.
            let v = raw.trim_ascii();
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::bad(format!(
                    "Invalid Content-Length {:?}.",
                    String::from_utf8_lossy(raw)
                )));
            }
            let n = v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::bad("Conflicting Content-Length headers."));
            }
            length = Some(n);
        } else if is("transfer-encoding") {
            // The last coding decides (RFC 9112 §6.1).
            coded = true;
            chunked = raw
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if is("connection") {
            for t in raw.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_asked = true;
                }
            }
        } else if is("expect") {
            expect_continue = raw.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
    }
    if coded && !chunked {
        // RFC 9112 §6.3: the body's length cannot be known.
        return Err(HeadError::bad(
            "Unsupported Transfer-Encoding: its last coding must be chunked.",
        ));
    }
    let keep_alive = !close
        && match version {
            Version::HTTP_11 => true,
            _ => keep_alive_asked,
        }
        // A length beside chunked: read as chunked, then closed.
        && !(chunked && length.is_some());
    let framing = if chunked {
        Framing::Chunked
    } else {
        match length {
            Some(0) | None => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    let head = CallerHead::new(method, version, target, headers)
        .ok_or_else(|| HeadError::bad("Malformed request target."))?;
    Ok(RequestHead {
        head,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// `content-length: N` (also for a HEAD request's answer, body not sent).
    Length(u64),
    /// `transfer-encoding: chunked` (HTTP/1.1 callers, length unknown).
    Chunked,
    /// Until the connection closes (HTTP/1.0 callers, length unknown).
    UntilClose,
    /// No body and no length (204, 304).
    Empty,
}

/// The `Date` header's value, formatted once a second per thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs || c.1.is_empty() {
            *c = (secs, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(c.1.as_bytes());
    });
}

/// Write a response head: the status line in the caller's version, the
/// headers (a `content-length` or `transfer-encoding` among them is
/// replaced by `framing`'s), the gateway's `x-ratelimit-*` headers (which
/// replace an upstream's of the same names), `date`, and `connection` when
/// it differs from the version's default.
/// What a relayed answer adds to its head: the upstream's headers (after
/// the response's own, which replace an upstream's of the same name) and the
/// gateway's `x-ratelimit-*` headers.
#[derive(Default, Clone, Copy)]
pub struct Relayed<'a> {
    pub upstream: Option<&'a HeaderLines>,
    pub rate: Option<&'a RateHeaders>,
}

/// Framing headers the head writer sets itself, whoever else sent them.
fn own(name: &[u8]) -> bool {
    let is = |n: &str| name_is(name, n);
    match name.len() {
        4 => is("date"),
        10 => is("connection"),
        14 => is("content-length"),
        17 => is("transfer-encoding"),
        _ => false,
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub fn encode_head(
    out: &mut Vec<u8>,
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    relayed: Relayed<'_>,
    framing: BodyFraming,
    keep_alive: bool,
) {
    let rate = relayed.rate;
    out.extend_from_slice(if version == Version::HTTP_11 {
        b"HTTP/1.1 "
    } else {
        b"HTTP/1.0 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if own(name.as_str().as_bytes()) {
            continue;
        }
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if let Some(up) = relayed.upstream {
        for (name, value) in up.iter() {
            if own(name)
                || headers
                    .keys()
                    .any(|k| k.as_str().as_bytes().eq_ignore_ascii_case(name))
            {
                continue;
            }
            if let Some(r) = rate
                && r.covers(name)
            {
                // The gateway's own limits replace an upstream's.
                continue;
            }
            header_line(out, name, value);
        }
    }
    if let Some(r) = rate {
        r.write(out);
    }
    match framing {
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyFraming::UntilClose | BodyFraming::Empty => {}
    }
    if !keep_alive && version == Version::HTTP_11 {
        out.extend_from_slice(b"connection: close\r\n");
    } else if keep_alive && version != Version::HTTP_11 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"date: ");
    date(out);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Start a chunk of `len` bytes (its size line).
pub fn chunk_start(out: &mut Vec<u8>, len: usize) {
    let _ = write!(out, "{len:x}\r\n");
}

/// The end of a chunk's data.
pub const CHUNK_END: &[u8] = b"\r\n";
/// The last chunk of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn parse(raw: &str) -> Result<Option<RequestHead>, HeadError> {
        parse_request(&mut BytesMut::from(raw))
    }

    #[test]
    fn parses_a_head_and_leaves_the_body_and_the_next_request() {
        let mut buf = BytesMut::from(
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\
             Authorization: Bearer sk-1\r\n\r\n{}GET /healthz HTTP/1.1\r\n\r\n",
        );
        let h = parse_request(&mut buf).unwrap().unwrap();
        assert_eq!(h.head.method, Method::POST);
        assert_eq!(h.head.path(), "/v1/chat/completions");
        assert_eq!(h.head.path_and_query(), "/v1/chat/completions?x=1");
        assert_eq!(h.head.version, Version::HTTP_11);
        assert_eq!(
            h.head.headers.get("authorization"),
            Some(&b"Bearer sk-1"[..])
        );
        assert_eq!(h.framing, Framing::Length(2));
        assert!(h.keep_alive && !h.expect_continue);
        assert_eq!(&buf[..2], b"{}");
        let _ = buf.split_to(2);
        let next = parse_request(&mut buf).unwrap().unwrap();
        assert_eq!(next.head.method, Method::GET);
        assert_eq!(next.framing, Framing::Empty);
        assert!(buf.is_empty());
    }

    #[test]
    fn a_target_that_is_not_utf8_is_a_400() {
        // httparse refuses these itself; `CallerHead::new` checks again,
        // and its reads trust that check.
        for raw in [
            &b"GET /v1/\xff\xfe HTTP/1.1\r\n\r\n"[..],
            b"GET /v1/caf\xe9x HTTP/1.1\r\n\r\n",
            b"GET /v1/caf\xc3 HTTP/1.1\r\n\r\n",
        ] {
            match parse_request(&mut BytesMut::from(raw)) {
                Err(e) => assert!(
                    e.status == StatusCode::BAD_REQUEST
                        && e.message.starts_with("Malformed request"),
                    "{}",
                    e.message
                ),
                Ok(h) => panic!("parsed: {:?}", h.map(|h| h.head)),
            }
        }
        let h = parse("GET /v1/caf\u{e9}?q=%E9 HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.head.path_and_query(), "/v1/caf\u{e9}?q=%E9");
        assert_eq!(h.head.path(), "/v1/caf\u{e9}");
    }

    #[test]
    fn a_partial_head_asks_for_more_until_it_is_too_large() {
        assert!(
            parse("POST /v1/chat/completions HTTP/1.1\r\nHost: g")
                .unwrap()
                .is_none()
        );
        let mut big = "GET / HTTP/1.1\r\n".to_string();
        while big.len() <= MAX_HEAD {
            big.push_str("x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        // 1,100+ headers of a partial head: too many headers first.
        let e = parse(&big).unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let one_long = format!("GET / HTTP/1.1\r\nx-long: {}", "a".repeat(MAX_HEAD + 1));
        let e = parse(&one_long).unwrap_err();
        assert_eq!(e.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(e.message.contains("64 KB"), "{}", e.message);
    }

    #[test]
    fn framing_headers_are_read_in_any_case_and_only_by_their_names() {
        // A framing header missed for its case would let a body be read
        // as the next request (smuggling).
        let h = parse("POST / HTTP/1.1\r\nCONTENT-LENGTH: 2\r\nEXPECT: 100-Continue\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(2));
        assert!(h.expect_continue);
        let h = parse("POST / HTTP/1.1\r\ntRaNsFeR-eNcOdInG: chunked\r\nCONNECTION: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive);
        // Look-alike names are other headers: no body, kept alive.
        let h = parse("POST / HTTP/1.1\r\nContent_Length: 5\r\nTransfer-Encodings: chunked\r\nConnectio: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        assert!(h.keep_alive && !h.expect_continue);
    }

    #[test]
    fn framing_and_connection_follow_rfc_9112() {
        let h = parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.keep_alive);
        let h = parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.keep_alive, "ambiguous framing closes after the answer");
        let h = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        assert_eq!(h.head.version, Version::HTTP_10);
        let h = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.expect_continue);
        let h = parse("POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
    }

    #[test]
    fn absolute_targets_give_their_path() {
        for (target, path, pq) in [
            ("/v1/models", "/v1/models", "/v1/models"),
            ("/v1/x?a=b://c", "/v1/x", "/v1/x?a=b://c"),
            (
                "http://gw:8080/v1/models?x=1",
                "/v1/models",
                "/v1/models?x=1",
            ),
            (
                "HTTPS://gw/v1/embeddings",
                "/v1/embeddings",
                "/v1/embeddings",
            ),
            ("http://gw", "", ""),
            ("*", "*", "*"),
        ] {
            let h = parse(&format!("GET {target} HTTP/1.1\r\n\r\n"))
                .unwrap()
                .unwrap();
            assert_eq!(
                (h.head.path(), h.head.path_and_query()),
                (path, pq),
                "{target}"
            );
        }
    }

    #[test]
    fn bad_heads_are_400_naming_the_part() {
        for (raw, part) in [
            (
                "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
                "Content-Length",
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                "Content-Length",
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                "Transfer-Encoding",
            ),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/1.1"),
            ("POST / HTTP/1.1\r\nBad Header: 1\r\n\r\n", "head"),
        ] {
            let e = parse(raw).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{raw:?}");
            assert!(e.message.contains(part), "{raw:?}: {}", e.message);
        }
    }

    #[test]
    fn writes_heads_with_the_framing_and_connection_the_caller_needs() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("content-length", HeaderValue::from_static("999"));
        h.insert("connection", HeaderValue::from_static("keep-alive"));
        let mut out = Vec::new();
        encode_head(
            &mut out,
            Version::HTTP_11,
            StatusCode::OK,
            &h,
            Relayed::default(),
            BodyFraming::Length(12),
            true,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\ndate: "
            ),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
        assert!(
            !text.contains("999") && !text.contains("connection"),
            "{text}"
        );

        let mut out = Vec::new();
        encode_head(
            &mut out,
            Version::HTTP_11,
            StatusCode::from_u16(599).unwrap(),
            &HeaderMap::new(),
            Relayed::default(),
            BodyFraming::Chunked,
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 599 \r\ntransfer-encoding: chunked\r\nconnection: close\r\n"
            ),
            "{text}"
        );

        let mut out = Vec::new();
        encode_head(
            &mut out,
            Version::HTTP_10,
            StatusCode::OK,
            &HeaderMap::new(),
            Relayed::default(),
            BodyFraming::Length(0),
            true,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.0 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n"),
            "{text}"
        );

        // The upstream's headers follow the response's own, which replace
        // an upstream's of the same name; the gateway's x-ratelimit-* replace
        // an upstream's of the same names (in any case), its other ones pass;
        // framing headers are the writer's.
        let up = HeaderLines::from_pairs(&[
            ("Content-Type", "application/json"),
            ("X-RateLimit-Limit", "5000"),
            ("x-ratelimit-limit-tokens", "800000"),
            ("Retry-After", "30"),
            ("Content-Length", "999"),
            ("Date", "yesterday"),
        ]);
        let mut own = HeaderMap::new();
        own.insert("x-maasctl-model", HeaderValue::from_static("m"));
        own.insert("retry-after", HeaderValue::from_static("2"));
        let rate = RateHeaders {
            requests: Some((60, 59, 1_000)),
            tokens: None,
        };
        let mut out = Vec::new();
        encode_head(
            &mut out,
            Version::HTTP_11,
            StatusCode::OK,
            &own,
            Relayed {
                upstream: Some(&up),
                rate: Some(&rate),
            },
            BodyFraming::Length(0),
            true,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 200 OK\r\nx-maasctl-model: m\r\nretry-after: 2\r\n\
                 Content-Type: application/json\r\nx-ratelimit-limit-tokens: 800000\r\n\
                 x-ratelimit-limit: 60\r\nx-ratelimit-remaining: 59\r\nx-ratelimit-reset: 1\r\n\
                 content-length: 0\r\ndate: "
            ),
            "{text}"
        );
        assert!(
            !text.contains("5000") && !text.contains("30") && !text.contains("yesterday"),
            "{text}"
        );

        let mut out = Vec::new();
        chunk_start(&mut out, 300);
        assert_eq!(out, b"12c\r\n");
    }
}
