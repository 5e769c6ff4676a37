//! The real binary in tmux for the console's live tail, clipboard and
//! palette (issue 15): keys sent with `send-keys`, the screen read with
//! `capture-pane`, every wait a poll with a deadline.

use std::net::TcpListener;

#[path = "support/tmux.rs"]
mod tmux;
use tmux::*;

/// A line of the tail holding all of `parts`.
fn tail_line<'a>(screen: &'a str, parts: &[&str]) -> Option<&'a str> {
    screen.lines().find(|l| parts.iter().all(|p| l.contains(p)))
}

/// `:tail` in the embedded console: a curl's request shows with its
/// status, key, tokens and endpoint; a call for an unknown model shows its
/// 404; `l` on the model opens the tail filtered on it.
#[test]
fn a_curl_shows_in_the_embedded_consoles_tail() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    let secret = seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    let t = Tmux::start_sized(
        "tail-embedded",
        &format!(
            "{BIN} --data-dir {} --listen 127.0.0.1:0",
            data.path().display()
        ),
        160,
        30,
    );
    // Served; its endpoint is `unknown` until the first call.
    let s = t.wait("the console serving", |s| {
        line_with(s, "│DeepSeek-V3 ")
            .is_some_and(|l| l.contains("serving") || l.contains("unknown"))
    });
    let port = gateway_port(&s);
    t.keys(&[":"]);
    t.type_text("tail");
    t.keys(&["Enter"]);
    t.wait_for("tail [0]");
    assert_eq!(curl(port, &secret, "DeepSeek-V3").0, 200);
    let endpoint = format!("#0 127.0.0.1:{up_port}/v1");
    t.wait("the request's line", |s| {
        tail_line(s, &[" 200 ", "DeepSeek-V3", "acme/ci", "3/4", &endpoint]).is_some()
    });
    assert_eq!(curl(port, &secret, "no-such-model").0, 404);
    t.wait("the 404's line", |s| {
        tail_line(s, &[" 404 ", "acme/ci"]).is_some()
    });

    // Paused: a new request is counted, not shown, until space.
    t.keys(&["Space"]);
    t.wait_for("PAUSED: 0 new");
    assert_eq!(curl(port, &secret, "DeepSeek-V3").0, 200);
    let s = t.wait_for("PAUSED: 1 new");
    assert!(s.contains("tail [2]"), "{s}");
    t.keys(&["Space"]);
    t.wait_for("tail [3]");

    // From the models list, `l` shows only that model's lines.
    t.keys(&["Escape"]);
    t.wait("the models list", |s| {
        line_with(s, "│DeepSeek-V3 ").is_some()
    });
    t.keys(&["l"]);
    t.wait_for("tail [2] /DeepSeek-V3");
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
}

/// The same over `--connect`: the tail comes from `GET /admin/v1/tail`.
#[test]
fn a_curl_shows_in_the_remote_consoles_tail() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    let console_dir = tempfile::tempdir().unwrap();
    let secret = seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    let admin_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Serve::start(data.path(), admin_port);
    let gw = server.gateway_port;
    let t = Tmux::start_sized(
        "tail-remote",
        &format!(
            "{BIN} --data-dir {} --connect http://127.0.0.1:{admin_port} --admin-token-file {}",
            console_dir.path().display(),
            data.path().join("admin.token").display()
        ),
        160,
        30,
    );
    t.wait("the remote gateway's models", |s| {
        line_with(s, "│DeepSeek-V3 ")
            .is_some_and(|l| l.contains("serving") || l.contains("unknown"))
    });
    t.keys(&[":"]);
    t.type_text("tail");
    t.keys(&["Enter"]);
    t.wait_for("tail [");
    assert_eq!(curl(gw, &secret, "DeepSeek-V3").0, 200);
    let endpoint = format!("#0 127.0.0.1:{up_port}/v1");
    t.wait("the request's line", |s| {
        tail_line(s, &[" 200 ", "DeepSeek-V3", "acme/ci", &endpoint]).is_some()
    });
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
    drop(server);
}

/// `y` on a model inside tmux with `set-clipboard on`: tmux takes the OSC 52
/// sequence into its paste buffer (what it passes on to the operator's
/// terminal over SSH); the buffer holds the curl call.
#[test]
fn y_copies_a_curl_call_through_tmux() {
    let data = tempfile::tempdir().unwrap();
    cli_ok(
        data.path(),
        &[
            "model",
            "create",
            "--name",
            "DeepSeek-V3",
            "--model-id",
            "deepseek-chat",
            "--endpoint",
            "http://127.0.0.1:9/v1",
        ],
    );
    let t = Tmux::start_sized(
        "copy",
        &format!(
            "{BIN} --data-dir {} --listen 127.0.0.1:0",
            data.path().display()
        ),
        120,
        30,
    );
    t.tmux(&["set-option", "-g", "set-clipboard", "on"]);
    t.wait("the model list", |s| {
        line_with(s, "│DeepSeek-V3 ").is_some()
    });
    t.keys(&["y"]);
    t.wait_for("copied a curl call of DeepSeek-V3");
    let start = std::time::Instant::now();
    let buffer = loop {
        let b = String::from_utf8_lossy(&t.tmux(&["show-buffer"]).stdout).into_owned();
        if b.starts_with("curl ") || start.elapsed() > DEADLINE {
            break b;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        buffer.contains("/v1/chat/completions")
            && buffer.contains("Bearer $MAASCTL_KEY")
            && buffer.contains(r#""model":"DeepSeek-V3""#),
        "tmux's buffer: {buffer:?}"
    );
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
}

/// With `TERM=xterm` the console sends only the 16 basic colours: tmux's
/// `capture-pane -e` shows no 256-colour (`38;5;`) or RGB (`38;2;`)
/// escape; with `TERM=xterm-256color` dim text is the mid grey `38;5;244`.
#[test]
fn term_xterm_gets_only_basic_colours() {
    let data = tempfile::tempdir().unwrap();
    cli_ok(
        data.path(),
        &[
            "model",
            "create",
            "--name",
            "DeepSeek-V3",
            "--model-id",
            "deepseek-chat",
            "--endpoint",
            "http://127.0.0.1:9/v1",
        ],
    );
    for (term, basic) in [("xterm", true), ("xterm-256color", false)] {
        let t = Tmux::start(
            &format!("palette-{term}"),
            &format!(
                "env -u COLORTERM TERM={term} {BIN} --data-dir {} --listen 127.0.0.1:0",
                data.path().display()
            ),
        );
        // "disabled" is dim text; the status line shows colours too.
        t.wait("the model list", |s| {
            line_with(s, "│DeepSeek-V3 ").is_some_and(|l| l.contains("disabled"))
        });
        let coloured =
            String::from_utf8_lossy(&t.tmux(&["capture-pane", "-p", "-e"]).stdout).into_owned();
        if basic {
            assert!(
                !coloured.contains("38;5;") && !coloured.contains("38;2;"),
                "TERM=xterm: {coloured:?}"
            );
            assert!(
                coloured.contains("\x1b["),
                "it has some styling: {coloured:?}"
            );
        } else {
            assert!(coloured.contains("38;5;244"), "TERM={term}: {coloured:?}");
        }
        t.keys(&["q"]);
        t.wait_for("EXITED:0");
    }
}
