//! Routing that heals itself (issue 14), in a real terminal: a model with
//! two endpoints on mini upstreams; one upstream stops (its connections
//! closed, its port refusing), traffic flows, and the model detail shows
//! that endpoint `ejected` with a reason; the upstream listens again on the
//! same port and the detail shows it `half-open` (or the log says it went
//! through half-open: the trial can be brief), then `healthy`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[path = "support/tmux.rs"]
mod tmux;
use tmux::*;

/// A mini OpenAI-compatible upstream on `port` that can be stopped: its
/// listener closed (new connections refused) and every open connection
/// closed before its next answer.
struct Upstream {
    port: u16,
    on: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the port is free again");
        let port = listener.local_addr().unwrap().port();
        let on = Arc::new(AtomicBool::new(true));
        let flag = on.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if !flag.load(Ordering::SeqCst) {
                    return; // the listener closes with this thread
                }
                let flag = flag.clone();
                std::thread::spawn(move || serve(stream, &flag));
            }
        });
        Upstream {
            port,
            on,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Stop answering: the port refuses from now on.
    fn stop(mut self) -> u16 {
        self.on.store(false, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            t.join().unwrap();
        }
        self.port
    }
}

/// Answer requests on one connection while `on`.
fn serve(stream: TcpStream, on: &AtomicBool) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if !on.load(Ordering::SeqCst) {
            let _ = reader.get_ref().shutdown(Shutdown::Both);
            return;
        }
        let answer = if request_line.starts_with("GET") {
            r#"{"object":"list","data":[]}"#
        } else {
            r#"{"id":"e2e","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if reader.get_mut().write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// The state word of the endpoint row showing `url`.
fn state_of(s: &str, url: &str) -> Option<&'static str> {
    let l = line_with(s, url)?;
    ["healthy", "unknown", "ejected", "half-open"]
        .into_iter()
        .find(|w| l.contains(w))
}

#[test]
fn a_dead_endpoint_is_ejected_with_a_reason_then_half_open_then_healthy() {
    let steady = Upstream::start(0);
    let flaky = Upstream::start(0);
    let flaky_url = flaky.url();
    let data = tempfile::tempdir().unwrap();
    let secret = seed_called_model(data.path(), &steady.url());
    // The model gets its second endpoint (the one that will die).
    cli_ok(
        data.path(),
        &[
            "model",
            "edit",
            "DeepSeek-V3",
            "--endpoint",
            &steady.url(),
            "--endpoint",
            &flaky_url,
        ],
    );
    let t = Tmux::start(
        "routing-heal",
        &format!(
            "{BIN} --data-dir {} --listen 127.0.0.1:0",
            data.path().display()
        ),
    );
    let s = t.wait("the embedded gateway running", |s| {
        s.contains("gw 127.0.0.1:") && s.contains(" running") && s.contains("│DeepSeek-V3 ")
    });
    let gw = gateway_port(&s);
    t.keys(&["Enter"]);
    t.wait("the detail", |s| s.contains("rate-limit rules"));
    let _calls = Traffic::start(gw, &secret, "DeepSeek-V3");
    t.wait("both endpoints healthy under traffic", |s| {
        state_of(s, &steady.url()) == Some("healthy") && state_of(s, &flaky_url) == Some("healthy")
    });

    // The upstream dies: refused connections eject it, with the reason.
    let port = flaky.stop();
    let s = t.wait("the dead endpoint ejected", |s| {
        state_of(s, &flaky_url) == Some("ejected")
    });
    // Why, in the endpoint's popup (REASON is cut at 80 columns).
    t.keys(&["Down", "Enter"]);
    let popup = t.wait("the ejected endpoint's reason", |s| {
        s.contains("state    ejected since") && s.contains("reason   ")
    });
    let reason = line_with(&popup, "reason   ").unwrap();
    assert!(
        reason.contains("refused") || reason.contains("closed") || reason.contains("failed"),
        "an ejected endpoint says why: {reason}"
    );
    t.keys(&["Escape"]);
    t.wait("the popup closed", |s| !s.contains("reason   "));
    assert_eq!(
        state_of(&s, &steady.url()),
        Some("healthy"),
        "the other endpoint serves on:\n{s}"
    );
    // Traffic still answered: the gateway failed over.
    assert_eq!(curl(gw, &secret, "DeepSeek-V3").0, 200);

    // Back on the same port: half-open (seen, or logged), then healthy.
    let _back = Upstream::start(port);
    let deadline = Instant::now() + DEADLINE;
    let mut saw_half_open = false;
    loop {
        let s = t.screen();
        match state_of(&s, &flaky_url) {
            Some("half-open") => saw_half_open = true,
            Some("healthy") => break,
            _ => {}
        }
        assert!(Instant::now() < deadline, "never healthy again:\n{s}");
        std::thread::sleep(Duration::from_millis(50));
    }
    if !saw_half_open {
        // The trial passed between two looks: the log says it happened.
        let log = std::fs::read_to_string(data.path().join("maasctl.log")).unwrap_or_default();
        assert!(
            log.lines()
                .any(|l| l.contains(&flaky_url) && l.contains("is half-open")),
            "never half-open on screen nor in the log:\n{log}"
        );
    }
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
}
