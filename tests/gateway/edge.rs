//! The gateway's edge under hostile or unusual callers, over raw sockets:
//! half-closed clients, slow bodies, the connection cap, where `/metrics`
//! lives, idle upstream connections the upstream closes, streams dropped
//! part-way.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use maasctl::demo::upstream::MockConfig;
use maasctl::domain::Policy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// A POST request with a JSON body, as raw bytes.
fn post(path: &str, key: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn get(path: &str, key: Option<&str>) -> Vec<u8> {
    let auth = key
        .map(|k| format!("authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nhost: gw\r\n{auth}\r\n").into_bytes()
}

/// Send `request`, shut down the sending side, read until the gateway closes.
async fn half_closed(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    s.shutdown().await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut got))
        .await
        .expect("the gateway answers and closes")
        .expect("read");
    String::from_utf8_lossy(&got).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_clients_get_every_answer() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock("m").await;
    ts.model("m", "m-up", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    let addr = gw.handle().local_addr();
    let chat = post(
        "/v1/chat/completions",
        &key,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    );
    let cases: [(&str, Vec<u8>, u16, &str); 4] = [
        ("forwarded upstream", chat, 200, "Hello from m"),
        ("/v1/models", get("/v1/models", Some(&key)), 200, "\"m\""),
        ("unknown URL", get("/nope", Some(&key)), 404, "unknown_url"),
        ("no key", get("/v1/models", None), 401, "missing_api_key"),
    ];
    for (what, request, status, body) in &cases {
        for i in 0..100 {
            let answer = half_closed(addr, request).await;
            assert_eq!(status_of(&answer), *status, "{what} #{i}: {answer}");
            assert!(answer.contains(body), "{what} #{i}: {answer}");
        }
    }
    let s = gw
        .wait_stats("the 100 forwarded requests counted", |s| {
            s.gateway.requests == 100 && s.gateway.in_flight == 0
        })
        .await;
    assert_eq!(s.gateway.success, 100, "none cancelled");
    assert_eq!(s.gateway.cancelled, 0);
    assert_eq!(m.completed(), 100);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_waits_for_a_slow_upstream() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock_with(MockConfig {
        latency: Duration::from_millis(500),
        ..MockConfig::default()
    })
    .await;
    ts.model("slow", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    let answer = half_closed(
        gw.handle().local_addr(),
        &post("/v1/chat/completions", &key, r#"{"model":"slow"}"#),
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    assert_eq!(m.cancelled(), 0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resetting_before_the_answer_cancels_the_upstream_request() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock_with(MockConfig {
        latency: Duration::from_secs(25),
        ..MockConfig::default()
    })
    .await;
    ts.model("slow", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    let mut s = TcpStream::connect(gw.handle().local_addr()).await.unwrap();
    s.write_all(&post("/v1/chat/completions", &key, r#"{"model":"slow"}"#))
        .await
        .unwrap();
    wait_for("the request to reach the upstream", || async {
        (m.hits() == 1).then_some(())
    })
    .await;
    // Linger 0: close() sends a reset, as a client that really went away.
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    wait_for("the upstream to see the cancellation", || async {
        (m.cancelled() == 1).then_some(())
    })
    .await;
    let s = gw
        .wait_stats("the request is counted as cancelled", |s| {
            s.gateway.cancelled == 1 && s.gateway.in_flight == 0
        })
        .await;
    assert_eq!(s.gateway.requests, 1);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_at_one_byte_per_second_is_cut_with_408_at_the_body_timeout() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock("m").await;
    ts.model("m", "m-up", vec![ep(&m.base_url())], Policy::RoundRobin);
    let timeout = Duration::from_millis(1500);
    let gw = Gw::start(
        &ts,
        maasctl::gateway::GatewayConfig {
            body_timeout: timeout,
            ..fast_config()
        },
    )
    .await;
    let s = TcpStream::connect(gw.handle().local_addr()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let body = r#"{"model":"m","messages":[]}"#;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {key}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    wr.write_all(head.as_bytes()).await.unwrap();
    // The slow caller: one byte a second (the scenario's pace, not a wait).
    let trickle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for b in body.bytes() {
            tick.tick().await;
            if wr.write_all(&[b]).await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, rd.read_to_end(&mut got))
        .await
        .expect("the gateway answers and closes")
        .unwrap();
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&got);
    assert_eq!(status_of(&answer), 408, "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(3),
        "cut after {took:?}, the timeout is {timeout:?}"
    );
    trickle.abort();
    assert_eq!(m.hits(), 0, "nothing went upstream");
    gw.wait_stats("the 408 counted as a bad request", |s| {
        s.gateway.bad_request == 1 && s.gateway.in_flight == 0
    })
    .await;
    gw.stop().await;
}

/// The value of the series `series` (its whole name and labels) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_on_the_callers_port_and_per_key_series_are_capped() {
    let ts = TestStore::new();
    let m = mock("m").await;
    ts.model("m", "m-up", vec![ep(&m.base_url())], Policy::RoundRobin);
    let keys: Vec<(String, String)> = (0..5).map(|i| ts.key("acme", &format!("k{i}"))).collect();
    let gw = Gw::start(
        &ts,
        maasctl::gateway::GatewayConfig {
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            metrics_key_series: 2,
            ..fast_config()
        },
    )
    .await;
    // On the callers' port: 404 in OpenAI's shape, for any method.
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let res = gw
            .http
            .request(method, gw.url("/metrics"))
            .send()
            .await
            .unwrap();
        let (status, _, err) = error_of(res).await;
        assert_eq!(status, 404);
        assert_eq!(err["code"], "unknown_url");
    }
    // Key i sends i + 1 requests: 15 in all.
    for (i, (_, secret)) in keys.iter().enumerate() {
        for _ in 0..=i {
            assert_eq!(gw.chat(secret, "m").await.status(), 200);
        }
    }
    gw.wait_stats("15 requests counted", |s| {
        s.gateway.requests == 15 && s.gateway.in_flight == 0
    })
    .await;
    let scrape = format!("http://{}/metrics", gw.handle().metrics_addr().unwrap());
    let res = gw.http.get(&scrape).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let key_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("maasctl_requests_total{scope=\"key\""))
        .collect();
    assert_eq!(key_lines.len(), 3, "the top 2 and other:\n{text}");
    let series = |id: &str| format!("maasctl_requests_total{{scope=\"key\",key=\"{id}\"}}");
    assert_eq!(sample(&text, &series(&keys[4].0)), Some(5.0), "{text}");
    assert_eq!(sample(&text, &series(&keys[3].0)), Some(4.0), "{text}");
    assert_eq!(sample(&text, &series("other")), Some(6.0), "{text}");
    let sum: f64 = key_lines
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        sample(&text, "maasctl_requests_total{scope=\"gateway\"}"),
        Some(sum),
        "the key series add up to the gateway's"
    );
    let success = |id: &str| {
        format!("maasctl_responses_total{{scope=\"key\",key=\"{id}\",outcome=\"success\"}}")
    };
    assert_eq!(sample(&text, &success("other")), Some(6.0));
    // Only /metrics there.
    let other = gw
        .http
        .get(scrape.replace("/metrics", "/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    gw.stop().await;
}

/// Send one request on a kept-alive connection and read its whole answer
/// (content-length framed).
async fn exchange(s: &mut TcpStream, request: &[u8]) -> String {
    s.write_all(request).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = content_length_of(head).expect("content-length");
            if body.len() >= len {
                return text;
            }
        }
        let n = tokio::time::timeout(DEADLINE, s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before the answer: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Whether the gateway closed `s` (EOF or reset; nothing sent to read).
fn closed(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    !matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_idle_keep_alive_connections_are_shed_for_new_callers() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock("m").await;
    ts.model("m", "m-up", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(
        &ts,
        maasctl::gateway::GatewayConfig {
            max_connections: Some(8),
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..fast_config()
        },
    )
    .await;
    let addr = gw.handle().local_addr();
    let request = get("/v1/models", Some(&key));
    // 8 callers fill the cap and stay connected, idle.
    let mut conns = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(status_of(&exchange(&mut s, &request).await), 200);
        conns.push(s);
    }
    // 8 more: each is served; an idle one makes room each time.
    for i in 0..8 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let answer = exchange(&mut s, &request).await;
        assert_eq!(status_of(&answer), 200, "new caller #{i}: {answer}");
        conns.push(s);
    }
    wait_for("8 of the 16 connections shed", || async {
        (conns.iter().filter(|s| closed(s)).count() == 8).then_some(())
    })
    .await;
    let scrape = format!("http://{}/metrics", gw.handle().metrics_addr().unwrap());
    let text = wait_for("the gauges settle", || async {
        let text = gw.http.get(&scrape).send().await.ok()?.text().await.ok()?;
        (sample(&text, "maasctl_connections_open{}") == Some(8.0)).then_some(text)
    })
    .await;
    assert_eq!(
        sample(&text, "maasctl_connections_max{}"),
        Some(8.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "maasctl_connections_shed_total{}"),
        Some(8.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "maasctl_connections_refused_total{}"),
        Some(0.0),
        "{text}"
    );
    gw.stop().await;
}

/// The per-worker gauge of `/metrics`, by worker id.
fn per_worker(text: &str, workers: usize) -> Option<Vec<f64>> {
    (0..workers)
        .map(|i| {
            sample(
                text,
                &format!("maasctl_worker_connections_open{{worker=\"{i}\"}}"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_is_spread_evenly_over_the_workers() {
    let workers = 4;
    let (_ts, gw, _m, key) = one_model(maasctl::gateway::GatewayConfig {
        workers,
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..fast_config()
    })
    .await;
    let addr = gw.handle().local_addr();
    let request = get("/v1/models", Some(&key));
    // 32 callers connect at once (a load balancer opening its pool) and
    // each is answered on whichever worker serves it.
    let conns = futures_util::future::join_all((0..32).map(|_| {
        let request = request.clone();
        async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let answer = exchange(&mut s, &request).await;
            (s, answer)
        }
    }))
    .await;
    for (_, answer) in &conns {
        assert_eq!(status_of(answer), 200, "{answer}");
    }
    let scrape = format!("http://{}/metrics", gw.handle().metrics_addr().unwrap());
    let text = wait_for("32 connections counted", || async {
        let text = gw.http.get(&scrape).send().await.ok()?.text().await.ok()?;
        (sample(&text, "maasctl_connections_open{}") == Some(32.0)).then_some(text)
    })
    .await;
    let split = per_worker(&text, workers).expect("a gauge per worker");
    assert_eq!(split.iter().sum::<f64>(), 32.0, "{text}");
    // Placements racing on two workers may land one connection off.
    let (lo, hi) = split
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &n| (lo.min(n), hi.max(n)));
    assert!(hi - lo <= 2.0, "uneven split over the workers: {split:?}");
    // Every worker answers on what it was given, again and again.
    let mut conns: Vec<TcpStream> = conns.into_iter().map(|(s, _)| s).collect();
    for s in conns.iter_mut() {
        assert_eq!(status_of(&exchange(s, &request).await), 200);
    }
    drop(conns);
    wait_for("every worker back to 0", || async {
        let text = gw.http.get(&scrape).send().await.ok()?.text().await.ok()?;
        let split = per_worker(&text, workers)?;
        split.iter().all(|&n| n == 0.0).then_some(())
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_with_nothing_idle_a_new_caller_is_closed_at_once() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let m = mock_with(MockConfig {
        latency: Duration::from_secs(20),
        ..MockConfig::default()
    })
    .await;
    ts.model("slow", "x", vec![ep(&m.base_url())], Policy::RoundRobin);
    let gw = Gw::start(
        &ts,
        maasctl::gateway::GatewayConfig {
            max_connections: Some(2),
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..fast_config()
        },
    )
    .await;
    let addr = gw.handle().local_addr();
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&post("/v1/chat/completions", &key, r#"{"model":"slow"}"#))
            .await
            .unwrap();
        busy.push(s);
    }
    wait_for("both requests upstream", || async {
        (m.hits() == 2).then_some(())
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&get("/healthz", None)).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("closed at once, not left hanging");
    assert!(
        read.is_err() || got.is_empty(),
        "served past the cap: {got:?}"
    );
    let scrape = format!("http://{}/metrics", gw.handle().metrics_addr().unwrap());
    let text = gw
        .http
        .get(&scrape)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&text, "maasctl_connections_refused_total{}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(m.cancelled(), 0, "the busy callers were not shed");
    for s in busy {
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    gw.stop().await;
}

/// An upstream that answers one request per connection (keep-alive by its
/// headers) and then closes the connection, as an upstream whose idle
/// timeout fires does. Returns its base URL and port.
async fn answer_then_close_upstream() -> (String, u16) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let text = String::from_utf8_lossy(&got).to_lowercase();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if body.len() >= len {
                            break;
                        }
                    }
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"id":"x","object":"chat.completion","choices":[]}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                // Closed while the gateway keeps it in its pool.
            });
        }
    });
    (format!("http://127.0.0.1:{port}/v1"), port)
}

/// Local sockets in CLOSE-WAIT whose peer is 127.0.0.1:`port` (/proc/net/tcp).
fn close_wait_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let peer = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2] == peer && f[3] == "08"
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_the_upstream_closes_leave_no_close_wait() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let (url, port) = answer_then_close_upstream().await;
    ts.model("m", "m-up", vec![ep(&url)], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    // Several callers at once: several pooled connections, all then closed
    // by the upstream.
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, key) = (gw.http.clone(), gw.url("/v1/chat/completions"), key.clone());
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&chat_body("m"))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), 200);
    }
    wait_for("no upstream socket left in CLOSE-WAIT", || async {
        (close_wait_to(port) == 0).then_some(())
    })
    .await;
    gw.stop().await;
}

/// An upstream that streams SSE chunks carrying `usage` (as vLLM does with
/// continuous usage stats) every 50 ms for 20 s; counts the streams whose
/// caller closed the connection before the end.
async fn usage_streaming_upstream() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let cut = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !String::from_utf8_lossy(&got).contains("}") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                for n in 1..=400 {
                    tick.tick().await;
                    let data = format!(
                        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"x\"}}}}],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":{n}}}}}\n\n"
                    );
                    let chunk = format!("{:x}\r\n{data}\r\n", data.len());
                    if s.write_all(chunk.as_bytes()).await.is_err() {
                        seen.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    (format!("http://127.0.0.1:{port}/v1"), cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_part_way_is_counted_cancelled_with_the_tokens_it_used() {
    use futures_util::StreamExt;
    let ts = TestStore::new();
    let (key_id, key) = ts.key("acme", "k");
    let (url, cut) = usage_streaming_upstream().await;
    ts.model("s", "s-up", vec![ep(&url)], Policy::RoundRobin);
    let gw = Gw::start(&ts, fast_config()).await;
    let http = client();
    let res = http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"model": "s", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"completion_tokens\":3") {
        let chunk = stream.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);
    drop(http);
    wait_for("the upstream to see the stream cut", || async {
        (cut.load(std::sync::atomic::Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let s = gw
        .wait_stats("the dropped stream is counted", |s| {
            s.gateway.requests == 1 && s.gateway.in_flight == 0
        })
        .await;
    assert_eq!(s.gateway.cancelled, 1, "{s:?}");
    assert_eq!(s.gateway.success, 0);
    assert_eq!(s.keys[&key_id].cancelled, 1);
    assert_eq!(s.models["s"].cancelled, 1);
    assert_eq!(s.gateway.prompt_tokens, 5, "the tokens it used are counted");
    assert!(
        s.gateway.completion_tokens >= 3 && s.gateway.completion_tokens < 400,
        "{}",
        s.gateway.completion_tokens
    );
    assert_eq!(s.gateway.latency_count, 0, "no latency for a cut stream");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_waiting_longer_than_the_head_timeout_are_closed_and_busy_ones_are_not() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "k");
    let fast = mock("fast").await;
    let slow = mock_with(MockConfig {
        latency: Duration::from_secs(3),
        ..MockConfig::default()
    })
    .await;
    ts.model("m", "m-up", vec![ep(&fast.base_url())], Policy::RoundRobin);
    ts.model(
        "slow",
        "s-up",
        vec![ep(&slow.base_url())],
        Policy::RoundRobin,
    );
    let timeout = Duration::from_secs(1);
    let gw = Gw::start(
        &ts,
        maasctl::gateway::GatewayConfig {
            head_timeout: timeout,
            ..fast_config()
        },
    )
    .await;
    let addr = gw.handle().local_addr();
    let started = Instant::now();
    // A caller that sends half a head and stalls (slowloris).
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n")
        .await
        .unwrap();
    // A keep-alive connection that answered one request, then idles.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert_eq!(
        status_of(&exchange(&mut idle, &get("/v1/models", Some(&key))).await),
        200
    );
    // A request that takes three head timeouts to answer.
    let body = r#"{"model":"slow","messages":[{"role":"user","content":"hi"}]}"#;
    let slow_call = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        exchange(&mut s, &post("/v1/chat/completions", &key, body)).await
    });
    wait_for(
        "the stalled head and the idle connection closed",
        || async { (closed(&partial) && closed(&idle)).then_some(()) },
    )
    .await;
    assert!(
        started.elapsed() >= timeout,
        "closed after {:?}, before the {timeout:?} head timeout",
        started.elapsed()
    );
    // The busy connection was left to finish its answer.
    let answer = slow_call.await.unwrap();
    assert_eq!(status_of(&answer), 200, "{answer}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_sending_requests_more_often_than_the_head_timeout_stays_open() {
    let timeout = Duration::from_secs(1);
    let (_ts, gw, _m, key) = one_model(maasctl::gateway::GatewayConfig {
        head_timeout: timeout,
        ..fast_config()
    })
    .await;
    let mut s = TcpStream::connect(gw.handle().local_addr()).await.unwrap();
    let request = get("/v1/models", Some(&key));
    // Three timeouts' worth of requests, one every 300 ms, on one connection.
    let until = Instant::now() + 3 * timeout;
    let mut answered = 0;
    while Instant::now() < until {
        assert_eq!(status_of(&exchange(&mut s, &request).await), 200);
        answered += 1;
        let mut interval = tokio::time::interval(Duration::from_millis(300));
        interval.tick().await;
        interval.tick().await;
    }
    assert!(answered >= 5, "{answered}");
    assert!(!closed(&s), "a busy keep-alive connection was closed");
    gw.stop().await;
}
