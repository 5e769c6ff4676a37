//! The real binary in tmux for the console's `:usage` view (issue 12):
//! requests through the gateway to a mock upstream that answers a known
//! `usage` (3 prompt + 4 completion tokens), the ledger flushed by the
//! gateway, `:usage` refreshed with `r` until the totals show; they must be
//! exactly what the upstream answered and what `maasctl usage -o json`
//! prints. Every wait is a poll with a deadline.

use std::cell::Cell;
use std::net::TcpListener;

#[path = "support/tmux.rs"]
mod tmux;
use tmux::*;

/// Requests each test sends.
const N: u64 = 7;

/// The figures of the `TOTAL` row: requests, 2xx, 429, errors, prompt,
/// completion, tokens (the cost cell is left out).
fn total_row(screen: &str) -> Option<Vec<u64>> {
    let line = screen.lines().find(|l| l.contains("│TOTAL "))?;
    let cells: Vec<&str> = line
        .trim_matches(|c| c == '│' || c == ' ')
        .split_whitespace()
        .collect();
    cells.get(1..8)?.iter().map(|c| c.parse().ok()).collect()
}

/// `maasctl usage -o json`'s total, in the same order.
fn cli_total(data: &std::path::Path) -> Vec<u64> {
    let out = cli_ok(data, &["usage", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let t = &report["total"];
    let n = |k: &str| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("total.{k} in {out}"))
    };
    vec![
        n("requests"),
        n("ok"),
        n("throttled"),
        n("errors"),
        n("prompt_tokens"),
        n("completion_tokens"),
        n("prompt_tokens") + n("completion_tokens"),
    ]
}

/// Open `:usage` and press `r` about once a second until the totals row
/// shows `N` requests; the row.
fn usage_totals(t: &Tmux) -> Vec<u64> {
    t.keys(&[":"]);
    t.type_text("usage");
    t.keys(&["Enter"]);
    t.wait_for("usage 7 days by workspace×model");
    let polls = Cell::new(0u32);
    let s = t.wait("the totals of the requests sent", |s| {
        polls.set(polls.get() + 1);
        if polls.get() % 10 == 0 {
            t.keys(&["r"]);
        }
        total_row(s).is_some_and(|row| row[0] == N)
    });
    assert!(
        s.lines()
            .any(|l| l.contains("│acme ") && l.contains("DeepSeek-V3")),
        "the group's row:\n{s}"
    );
    total_row(&s).unwrap()
}

/// What the mock upstream answered for `N` requests.
fn expected() -> Vec<u64> {
    vec![N, N, 0, 0, 3 * N, 4 * N, 7 * N]
}

/// Over `--connect`: `maasctl serve` flushes its ledger every second; the
/// console reads the report through `GET /admin/v1/usage`.
#[test]
fn the_remote_consoles_usage_shows_what_the_upstream_answered() {
    let (up_port, hits) = upstream();
    let data = tempfile::tempdir().unwrap();
    let console_dir = tempfile::tempdir().unwrap();
    let secret = seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    let admin_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Serve::start_with(data.path(), admin_port, &["--usage-flush", "1s"]);
    for _ in 0..N {
        assert_eq!(curl(server.gateway_port, &secret, "DeepSeek-V3").0, 200);
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), N);
    let t = Tmux::start_sized(
        "usage-remote",
        &format!(
            "{BIN} --data-dir {} --connect http://127.0.0.1:{admin_port} --admin-token-file {}",
            console_dir.path().display(),
            data.path().join("admin.token").display()
        ),
        120,
        30,
    );
    t.wait("the remote models", |s| {
        line_with(s, "│DeepSeek-V3 ").is_some()
    });
    let shown = usage_totals(&t);
    assert_eq!(shown, expected(), "the screen's totals");
    assert_eq!(cli_total(data.path()), shown, "maasctl usage -o json");
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
    drop(server);
}

/// The embedded console: its own gateway writes the ledger every 10 s
/// (the default), the view reads the store in process.
#[test]
fn the_embedded_consoles_usage_shows_what_the_upstream_answered() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    let secret = seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    let t = Tmux::start_sized(
        "usage-embedded",
        &format!(
            "{BIN} --data-dir {} --listen 127.0.0.1:0",
            data.path().display()
        ),
        120,
        30,
    );
    let s = t.wait("the console serving", |s| {
        line_with(s, "│DeepSeek-V3 ")
            .is_some_and(|l| l.contains("serving") || l.contains("unknown"))
    });
    let port = gateway_port(&s);
    for _ in 0..N {
        assert_eq!(curl(port, &secret, "DeepSeek-V3").0, 200);
    }
    let shown = usage_totals(&t);
    assert_eq!(shown, expected(), "the screen's totals");
    assert_eq!(cli_total(data.path()), shown, "maasctl usage -o json");
    t.keys(&["q"]);
    t.wait_for("EXITED:0");
}
