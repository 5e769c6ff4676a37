//! Console numbers that never lie (issue 15), in a real terminal: tmux
//! drives the real binary, every wait polls the screen with a generous
//! deadline. Rates fall to zero within 3 s of the traffic stopping (in an
//! embedded console and one attached with `--connect`); a server restart
//! is shown stale, then fresh, never with old rates as current; an action
//! while the server is down says so at once; an unreachable new endpoint
//! is `unknown`, then `down`, never `healthy`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

#[path = "support/tmux.rs"]
mod tmux;
use tmux::*;

/// Within this long of the traffic stopping, the console shows zero.
const DECAY: Duration = Duration::from_secs(3);

/// The header's first line.
fn header(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

/// The header's `req/s` token as shown (`0`, `12.5`, `—`).
fn header_rate_text(s: &str) -> Option<&str> {
    let h = header(s);
    let at = h.find("req/s ")? + 6;
    h[at..].split_whitespace().next()
}

/// A free port the OS picked (for an admin API that must come back on the
/// same address).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Traffic until the header and the row show it, then none: the header
/// and the row read exactly 0 within [`DECAY`].
fn rates_fall_to_zero(t: &Tmux, gw: u16, secret: &str) {
    {
        let _calls = Traffic::start(gw, secret, "DeepSeek-V3");
        t.wait("traffic in the header and the model's row", |s| {
            header_rate(s) > 0.0 && rates_in_row(s, "DeepSeek-V3").is_some_and(|(r, _)| r > 0.0)
        });
    } // Dropped: the last call has been answered.
    let stopped = Instant::now();
    let s = t.wait("the rates back at zero", |s| {
        header_rate_text(s) == Some("0") && rates_in_row(s, "DeepSeek-V3") == Some((0.0, 0.0))
    });
    let took = stopped.elapsed();
    assert!(took < DECAY, "rates took {took:?} to fall to zero:\n{s}");
    assert!(!header(&s).contains("stale"), "idle is not stale: {s}");
}

#[test]
fn rates_fall_to_zero_within_3s_in_an_embedded_console() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    let secret = seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    let t = Tmux::start(
        "truth-local",
        &format!(
            "{BIN} --data-dir {} --listen 127.0.0.1:0",
            data.path().display()
        ),
    );
    let s = t.wait("the embedded gateway running", |s| {
        s.contains("gw 127.0.0.1:") && s.contains(" running") && s.contains("│DeepSeek-V3 ")
    });
    assert!(!header(&s).contains("remote"), "{s}");
    rates_fall_to_zero(&t, gateway_port(&s), &secret);
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
}

#[test]
fn rates_fall_to_zero_within_3s_in_a_remote_console() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    let console_dir = tempfile::tempdir().unwrap();
    let secret = seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    let admin_port = free_port();
    let server = Serve::start(data.path(), admin_port);
    let t = Tmux::start(
        "truth-remote",
        &format!(
            "{BIN} --data-dir {} --connect http://127.0.0.1:{admin_port} --admin-token-file {}",
            console_dir.path().display(),
            data.path().join("admin.token").display()
        ),
    );
    let s = t.wait("attached", |s| {
        s.contains(&format!("gw 127.0.0.1:{} running", server.gateway_port))
            && s.contains("│DeepSeek-V3 ")
    });
    assert!(
        header(&s).contains(&format!("remote 127.0.0.1:{admin_port} ")),
        "the header names the server: {s}"
    );
    rates_fall_to_zero(&t, server.gateway_port, &secret);
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
}

#[test]
fn a_server_restart_is_stale_then_fresh_never_old_rates() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    let console_dir = tempfile::tempdir().unwrap();
    let secret = seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    let admin_port = free_port();
    let server = Serve::start(data.path(), admin_port);
    let old_gw = server.gateway_port;
    let t = Tmux::start(
        "truth-restart",
        &format!(
            "{BIN} --data-dir {} --connect http://127.0.0.1:{admin_port} --admin-token-file {}",
            console_dir.path().display(),
            data.path().join("admin.token").display()
        ),
    );
    // Traffic keeps going to the old gateway's port the whole time: after
    // the restart it fails to connect, so any rate shown then is old.
    let calls = Traffic::start(old_gw, &secret, "DeepSeek-V3");
    t.wait("traffic shown", |s| {
        header_rate(s) > 0.0 && rates_in_row(s, "DeepSeek-V3").is_some_and(|(r, _)| r > 0.0)
    });

    // Killed: stale at once, with its age, and no rate at all.
    server.kill();
    let s = t.wait("the data marked stale", |s| header(s).contains(" stale "));
    // At 80 columns the failure's reason may push the rates off the line:
    // either way, no number.
    assert!(header_rate_text(&s).is_none_or(|r| r == "—"), "{s}");
    assert_eq!(rates_in_row(&s, "DeepSeek-V3"), Some((0.0, 0.0)), "{s}");
    let s = t.wait("the age moving", |s| {
        let h = header(s);
        h.contains(" stale ") && !h.contains(" stale 0s")
    });
    assert!(header(&s).contains("failed: disconnect"), "{s}");

    // An action (disable the selected model) now says at once that it was
    // not sent.
    t.keys(&["t"]);
    let asked = Instant::now();
    let s = t.wait_for("not sent");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "took {:?}:\n{s}",
        asked.elapsed()
    );
    t.keys(&["Escape"]);
    t.wait("the message closed", |s| !s.contains("not sent"));

    // Back on the same admin address, counters from zero: never the old
    // rates as current, before or after it is fresh again.
    let server = Serve::start(data.path(), admin_port);
    let gw = server.gateway_port;
    let fresh = format!("gw 127.0.0.1:{gw} running");
    let deadline = Instant::now() + DEADLINE;
    let mut fresh_since: Option<Instant> = None;
    while fresh_since.is_none_or(|at| at.elapsed() < Duration::from_secs(2)) {
        let s = t.screen();
        assert!(
            header_rate(&s) == 0.0 && rates_in_row(&s, "DeepSeek-V3").is_none_or(|(r, _)| r == 0.0),
            "an old rate shown as current:\n{s}"
        );
        if fresh_since.is_none() && header(&s).contains(&fresh) && !header(&s).contains("stale") {
            fresh_since = Some(Instant::now());
        }
        assert!(Instant::now() < deadline, "never fresh again:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(calls);
    // Fresh data: the new gateway's traffic shows.
    let _calls = Traffic::start(gw, &secret, "DeepSeek-V3");
    t.wait("the new gateway's traffic", |s| {
        header_rate(s) > 0.0 && !header(s).contains("stale")
    });
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
}

/// A port that accepts connections and never answers.
fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

#[test]
fn an_unreachable_new_endpoint_is_unknown_then_down_never_healthy() {
    let data = tempfile::tempdir().unwrap();
    let console_dir = tempfile::tempdir().unwrap();
    let admin_port = free_port();
    // Short timeouts: the silent endpoint's probe gives up after 3 s.
    let _server = Serve::start_with(
        data.path(),
        admin_port,
        &["--connect-timeout", "1s", "--upstream-timeout", "2s"],
    );
    let t = Tmux::start(
        "truth-unknown",
        &format!(
            "{BIN} --data-dir {} --connect http://127.0.0.1:{admin_port} --admin-token-file {}",
            console_dir.path().display(),
            data.path().join("admin.token").display()
        ),
    );
    t.wait("the console up", |s| s.contains(" running"));
    // Saved while the gateway runs: one refusing, one silent.
    let refusing = "http://127.0.0.1:9/v1";
    let silent = format!("http://127.0.0.1:{}/v1", silent_port());
    cli_ok(
        data.path(),
        &[
            "model",
            "create",
            "--name",
            "Mistral-Large-2411",
            "--model-id",
            "mistral-large",
            "--endpoint",
            refusing,
            "--endpoint",
            &silent,
        ],
    );
    cli_ok(data.path(), &["model", "enable", "Mistral-Large-2411"]);
    t.wait_for("│Mistral-Large-2411 ");
    t.keys(&["/"]);
    t.type_text("Mistral");
    t.keys(&["Enter"]);
    t.keys(&["Enter"]);
    t.wait("the detail", |s| s.contains("rate-limit rules"));
    let state = |s: &str, url: &str| -> Option<&'static str> {
        let l = line_with(s, url)?;
        ["healthy", "unknown", "ejected"]
            .into_iter()
            .find(|w| l.contains(w))
    };
    let deadline = Instant::now() + DEADLINE;
    let mut silent_unknown = false;
    loop {
        let s = t.screen();
        let (a, b) = (state(&s, refusing), state(&s, &silent));
        assert_ne!(
            a,
            Some("healthy"),
            "a refusing endpoint shown healthy:\n{s}"
        );
        assert_ne!(b, Some("healthy"), "a silent endpoint shown healthy:\n{s}");
        if b == Some("unknown") {
            silent_unknown = true;
        }
        if a == Some("ejected") && b == Some("ejected") {
            break;
        }
        assert!(Instant::now() < deadline, "never both down:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        silent_unknown,
        "the silent endpoint was unknown until its probe gave up"
    );
    // Every endpoint down: the model is down (once the report says so).
    t.wait("the model down", |s| s.contains("gateway down"));
    // The popup says why.
    t.keys(&["Enter"]);
    let s = t.wait_for("probe failed");
    assert!(s.contains("refused"), "{s}");
    t.keys(&["Escape", "q"]);
    t.wait_for("EXITED:0");
}
