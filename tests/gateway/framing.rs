//! The caller's side of HTTP/1.1 at the byte level (raw sockets): what the
//! gateway's server must keep whatever parses it (pipelining, HTTP/1.0,
//! `Expect: 100-continue`, chunked bodies, conflicting framing, oversized
//! heads, garbage).

use std::net::SocketAddr;

use maasctl::demo::upstream::MockUpstream;
use maasctl::gateway::GatewayConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;

/// Read from `s` until `n` whole answers (content-length framed) arrived,
/// or the gateway closed; the text read and whether it closed.
async fn read_answers(s: &mut TcpStream, n: usize) -> (String, bool) {
    read_answers_to(s, n, false).await
}

/// [`read_answers`]; `head`: answers to HEAD (no body whatever the length).
async fn read_answers_to(s: &mut TcpStream, n: usize, head: bool) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if complete_answers(&got, head) >= n {
            return (String::from_utf8_lossy(&got).into_owned(), false);
        }
        let read = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .expect("an answer or a close");
        match read {
            Ok(0) | Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
    }
}

/// How many whole answers `bytes` holds (1xx interim answers not counted).
fn complete_answers(bytes: &[u8], head_request: bool) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let mut rest: &str = &text;
    let mut n = 0;
    while let Some((head, after)) = rest.split_once("\r\n\r\n") {
        if head.starts_with("HTTP/1.1 1") {
            rest = after;
            continue;
        }
        let len = content_length_of(head)
            .filter(|_| !head_request)
            .unwrap_or(0);
        if after.len() < len {
            break;
        }
        n += 1;
        rest = &after[len..];
    }
    n
}

/// The status codes of the answers in `text`, in order (interim ones too).
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

async fn gateway() -> (TestStore, Gw, MockUpstream, String, SocketAddr) {
    let (ts, gw, m, key) = one_model(fast_config()).await;
    let addr = gw.handle().local_addr();
    (ts, gw, m, key, addr)
}

fn chat_head(key: &str, extra: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\n{extra}"
    )
}

/// Send `request` on a new connection; the answers (up to `n`), whether
/// the gateway closed the connection after them, and the requests the
/// upstream got meanwhile.
async fn send(addr: SocketAddr, m: &MockUpstream, request: &[u8], n: usize) -> (String, bool, u64) {
    let before = m.hits();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let (text, closed) = read_answers(&mut s, n).await;
    (text, closed || closes(&mut s).await, m.hits() - before)
}

/// Whether the gateway closes `s` (nothing more is sent on it): waits for
/// the close up to the deadline, so `false` takes that long.
async fn closes(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    match tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(k)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&b[..k])),
        Err(_) => false,
    }
}

fn with_length(key: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{}{extra}content-length: {}\r\n\r\n{body}",
        chat_head(key, ""),
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (_ts, gw, m, key, addr) = gateway().await;
    let mut request = with_length(&key, "", CHAT);
    request.extend(with_length(&key, "", CHAT));
    request.extend(
        format!("GET /v1/models HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {key}\r\n\r\n")
            .into_bytes(),
    );
    let before = m.hits();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&request).await.unwrap();
    let (text, closed) = read_answers(&mut s, 3).await;
    assert_eq!(statuses(&text), [200, 200, 200], "{text}");
    assert!(
        text.contains("\"object\":\"list\""),
        "the third answer is the model list: {text}"
    );
    assert!(
        !closed && !closes(&mut s).await,
        "kept alive after pipelined requests"
    );
    assert_eq!(m.hits() - before, 2);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_caller_is_answered_in_http_1_0_and_closed() {
    let (_ts, gw, m, key, addr) = gateway().await;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.0\r\nhost: gw\r\nauthorization: Bearer {key}\r\ncontent-length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    );
    let (text, closed, hits) = send(addr, &m, request.as_bytes(), 1).await;
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(
        closed,
        "HTTP/1.0 without keep-alive is closed after the answer"
    );
    assert_eq!(hits, 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_request_body_reaches_the_upstream_whole_with_a_length() {
    let (_ts, gw, m, key, addr) = gateway().await;
    // The body in three chunks, with a chunk extension.
    let (a, b) = CHAT.split_at(20);
    let (b, c) = b.split_at(15);
    let request = format!(
        "{}transfer-encoding: chunked\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n{:x}\r\n{c}\r\n0\r\n\r\n",
        chat_head(&key, ""),
        a.len(),
        b.len(),
        c.len()
    );
    let (text, closed, hits) = send(addr, &m, request.as_bytes(), 1).await;
    assert_eq!(statuses(&text), [200], "{text}");
    assert!(!closed);
    assert_eq!(hits, 1);
    let seen = m.seen().pop().expect("the upstream's request");
    assert_eq!(seen.model.as_deref(), Some("m-up"));
    assert_eq!(
        seen.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(seen.body.len().to_string().as_str())
    );
    assert!(seen.headers.get("transfer-encoding").is_none());
    let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(sent["messages"][0]["content"], "hi");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_beside_chunked_reads_the_chunked_body_and_closes() {
    // Request smuggling's classic: a front end reading 5 bytes and a back
    // end reading the chunks disagree on where the next request starts.
    // The chunked framing wins (RFC 9112 §6.3) and the connection is not
    // reused, so nothing after the body is taken for a request.
    let (_ts, gw, m, key, addr) = gateway().await;
    let request = format!(
        "{}content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{CHAT}\r\n0\r\n\r\nGET /v1/models HTTP/1.1\r\nhost: gw\r\n\r\n",
        chat_head(&key, ""),
        CHAT.len()
    );
    let (text, closed, hits) = send(addr, &m, request.as_bytes(), 1).await;
    assert_eq!(statuses(&text), [200], "{text}");
    assert!(closed, "closed after an answer to ambiguous framing");
    assert_eq!(hits, 1);
    assert_eq!(m.seen().pop().unwrap().model.as_deref(), Some("m-up"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_framing_is_refused_with_400_and_never_forwarded() {
    let (_ts, gw, m, key, addr) = gateway().await;
    // Each with the part of the request its message names.
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "two different content-lengths",
            with_length(&key, "content-length: 5\r\n", CHAT),
            "Conflicting Content-Length",
        ),
        (
            "a content-length that is not a number",
            format!("{}content-length: 12x\r\n\r\n{CHAT}", chat_head(&key, "")).into_bytes(),
            "Invalid Content-Length \\\"12x\\\"",
        ),
        (
            "a transfer coding other than chunked",
            format!(
                "{}transfer-encoding: gzip\r\n\r\n{CHAT}",
                chat_head(&key, "")
            )
            .into_bytes(),
            "Transfer-Encoding",
        ),
        (
            "a chunk size that is not hexadecimal",
            format!(
                "{}transfer-encoding: chunked\r\n\r\nzz\r\n{CHAT}\r\n0\r\n\r\n",
                chat_head(&key, "")
            )
            .into_bytes(),
            "invalid chunk size",
        ),
        ("not HTTP", b"HELLO THERE\r\n\r\n".to_vec(), "HTTP/1.1"),
    ];
    for (what, request, names) in cases {
        let (text, closed, hits) = send(addr, &m, &request, 1).await;
        assert_eq!(statuses(&text), [400], "{what}: {text}");
        // OpenAI's error shape, like every other refusal.
        assert!(
            text.contains("\"type\":\"invalid_request_error\"") && text.contains(names),
            "{what}: {text}"
        );
        assert!(closed, "{what}: the connection is closed after the 400");
        assert_eq!(hits, 0, "{what}: forwarded");
    }
    // The gateway still serves.
    let (text, _, hits) = send(addr, &m, &with_length(&key, "", CHAT), 1).await;
    assert_eq!((statuses(&text), hits), (vec![200], 1), "{text}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_with_more_than_100_headers_or_over_64_kb_is_refused_with_431() {
    let (_ts, gw, m, key, addr) = gateway().await;
    let many: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let long = format!("x-long: {}\r\n", "a".repeat(65 * 1024));
    for (what, extra, names) in [
        ("200 headers", many, "more than 100 headers"),
        ("one 65 KB header", long, "larger than 64 KB"),
    ] {
        let (text, closed, hits) = send(addr, &m, &with_length(&key, &extra, CHAT), 1).await;
        assert_eq!(statuses(&text), [431], "{what}: {text}");
        assert!(
            text.contains("request_header_fields_too_large") && text.contains(names),
            "{what}: {text}"
        );
        assert!(closed, "{what}");
        assert_eq!(hits, 0, "{what}");
    }
    // Just under the limit is served.
    let fits = format!("x-long: {}\r\n", "a".repeat(60 * 1024));
    let (text, _, hits) = send(addr, &m, &with_length(&key, &fits, CHAT), 1).await;
    assert_eq!((statuses(&text), hits), (vec![200], 1), "{text}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (_ts, gw, m, key, addr) = gateway().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{}expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        chat_head(&key, ""),
        CHAT.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The caller waits for the interim answer before sending its body.
    let mut buf = [0u8; 256];
    let k = tokio::time::timeout(DEADLINE, s.read(&mut buf))
        .await
        .expect("100 Continue")
        .unwrap();
    assert_eq!(&buf[..k], b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(CHAT.as_bytes()).await.unwrap();
    let (text, _) = read_answers(&mut s, 1).await;
    assert_eq!(statuses(&text), [200], "{text}");
    assert_eq!(m.hits(), 1);
    assert!(
        m.seen()[0].headers.get("expect").is_none(),
        "Expect is not forwarded"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_head_and_absolute_targets_are_honoured() {
    let (_ts, gw, m, key, addr) = gateway().await;
    // `Connection: close`: answered, then closed.
    let (text, closed, _) = send(
        addr,
        &m,
        &with_length(&key, "connection: close\r\n", CHAT),
        1,
    )
    .await;
    assert_eq!(statuses(&text), [200], "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(closed);
    // An absolute request target (as proxies send) routes like its path.
    let absolute = format!(
        "POST http://gw/v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {key}\r\ncontent-length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    );
    let (text, closed, hits) = send(addr, &m, absolute.as_bytes(), 1).await;
    assert_eq!(
        (statuses(&text), closed, hits),
        (vec![200], false, 1),
        "{text}"
    );
    // HEAD: the head only, and the connection stays usable.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let list = |method: &str| {
        format!("{method} /v1/models HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {key}\r\n\r\n")
    };
    s.write_all(list("HEAD").as_bytes()).await.unwrap();
    let (text, _) = read_answers_to(&mut s, 1, true).await;
    assert_eq!(statuses(&text), [200], "{text}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "HEAD answered with a body: {text:?}"
    );
    s.write_all(list("GET").as_bytes()).await.unwrap();
    let (text, _) = read_answers(&mut s, 1).await;
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("\"object\":\"list\""),
        "{text}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_preface_is_refused_and_closed_and_the_gateway_keeps_serving() {
    let (_ts, gw, m, key, addr) = gateway().await;
    let (text, closed, hits) = send(addr, &m, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1).await;
    assert_eq!(statuses(&text), [400], "{text}");
    assert!(text.contains("speaks HTTP/1.1"), "{text}");
    assert!(closed, "{text}");
    assert_eq!(hits, 0);
    let (text, _, hits) = send(addr, &m, &with_length(&key, "", CHAT), 1).await;
    assert_eq!((statuses(&text), hits), (vec![200], 1), "{text}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_answered_before_it_was_read_is_skipped_and_the_connection_serves_on() {
    // A 401 (bad key) and a 404 (unknown URL) are answered from the head;
    // their bodies, pipelined behind them with the next request, are read
    // past, and the next request on the same connection is served.
    let (_ts, gw, m, key, addr) = gateway().await;
    let mut request = with_length("sk-not-a-key", "", CHAT);
    request.extend_from_slice(
        format!(
            "POST /v1/nowhere HTTP/1.1\r\nhost: gw\r\ncontent-length: {}\r\n\r\n{CHAT}",
            CHAT.len()
        )
        .as_bytes(),
    );
    // A chunked body, too.
    request.extend_from_slice(
        format!(
            "{}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            chat_head("sk-not-a-key", "")
        )
        .as_bytes(),
    );
    request.extend_from_slice(&with_length(&key, "", CHAT));
    let (text, closed, hits) = send(addr, &m, &request, 4).await;
    assert_eq!(statuses(&text), [401, 404, 401, 200], "{text}");
    assert!(!closed, "{text}");
    assert_eq!(hits, 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expect_100_continue_refused_from_its_head_gets_no_100_and_is_closed() {
    // A caller waiting for `100 Continue` never sends the body of a refused
    // request: the gateway answers and closes instead of waiting for it.
    let (_ts, gw, m, _key, addr) = gateway().await;
    let head = format!(
        "{}expect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        chat_head("sk-not-a-key", ""),
        CHAT.len()
    );
    let (text, closed, hits) = send(addr, &m, head.as_bytes(), 1).await;
    assert_eq!(statuses(&text), [401], "{text}");
    assert!(text.contains("connection: close"), "{text}");
    assert!(closed, "{text}");
    assert_eq!(hits, 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_half_closes_before_the_end_of_its_body_gets_a_400_at_once() {
    let cfg = GatewayConfig {
        body_timeout: std::time::Duration::from_secs(120),
        ..fast_config()
    };
    let (_ts, gw, m, key) = one_model(cfg).await;
    let addr = gw.handle().local_addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let partial = format!(
        "{}content-length: {}\r\n\r\n{}",
        chat_head(&key, ""),
        CHAT.len(),
        &CHAT[..10]
    );
    s.write_all(partial.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
    // At once, not at the body timeout: `read_answers` gives up after
    // DEADLINE (30 s), a quarter of it.
    let (text, closed) = read_answers(&mut s, 1).await;
    assert_eq!(statuses(&text), [400], "{text}");
    assert!(
        text.contains("closed its sending side before the end of the body"),
        "{text}"
    );
    assert!(closed || closes(&mut s).await);
    assert_eq!(m.hits(), 0);
    gw.stop().await;
}
