//! tmux end-to-end helpers shared by `tests/tui_e2e*.rs`: a private tmux
//! server, a mini upstream, `maasctl serve`, background traffic, the CLI.
//! Included with `#[path]`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_maasctl");
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A tmux server of our own, killed on drop.
pub struct Tmux {
    pub socket: String,
}

impl Tmux {
    /// Start `cmd` in an 80×24 pane; after it exits the pane shows its exit
    /// code and whether the terminal is back in canonical mode.
    pub fn start(name: &str, cmd: &str) -> Self {
        Self::start_sized(name, cmd, 80, 24)
    }

    /// [`Tmux::start`] in a `w`×`h` pane.
    pub fn start_sized(name: &str, cmd: &str, w: u16, h: u16) -> Self {
        let socket = format!("maasctl-e2e-{name}-{}", std::process::id());
        let t = Tmux { socket };
        let script = format!(
            "{cmd}; echo EXITED:$?; stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo; sleep 600"
        );
        let ok = t
            .tmux(&[
                "new-session",
                "-d",
                "-x",
                &w.to_string(),
                "-y",
                &h.to_string(),
                "sh",
                "-c",
                &script,
            ])
            .status
            .success();
        assert!(ok, "tmux starts");
        t
    }

    pub fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux runs")
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p"]).stdout).into_owned()
    }

    /// Send tmux key names (`Enter`, `C-s`, `Tab`) or literal text (`-l`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend(keys);
        self.tmux(&args);
    }

    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
    }

    /// Poll the screen until `pred` holds.
    pub fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > DEADLINE {
                panic!("timed out waiting for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_for(&self, text: &str) -> String {
        self.wait(text, |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// The line of the screen holding `needle`.
pub fn line_with<'a>(screen: &'a str, needle: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(needle))
}

/// A minimal OpenAI-compatible upstream for the model the test creates.
pub fn upstream() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut len = 0usize;
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
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
                    counter.fetch_add(1, Ordering::SeqCst);
                    let answer = if request_line.starts_with("GET") {
                        r#"{"object":"list","data":[]}"#.to_string()
                    } else {
                        r#"{"id":"e2e","object":"chat.completion","model":"mistral-large","choices":[{"index":0,"message":{"role":"assistant","content":"hi from e2e"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#.to_string()
                    };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if reader.get_mut().write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, hits)
}

pub fn curl(port: u16, secret: &str, model: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .args(["-H", &format!("Authorization: Bearer {secret}")])
        .args(["-H", "content-type: application/json"])
        .args([
            "-d",
            &format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hello"}}]}}"#),
        ])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `maasctl serve` over `data`, its admin API on `admin_port`; SIGKILLed on drop.
pub struct Serve {
    pub child: std::process::Child,
    pub gateway_port: u16,
}

impl Serve {
    pub fn start(data: &std::path::Path, admin_port: u16) -> Self {
        Self::start_with(data, admin_port, &[])
    }

    /// The same with more `serve` flags.
    pub fn start_with(data: &std::path::Path, admin_port: u16, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .env("MAASCTL_DATA_DIR", data)
            .env_remove("MAASCTL_STORE")
            .env_remove("MAASCTL_ADMIN_TOKEN")
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("maasctl serve starts");
        // Keep reading its output: a closed pipe would fail its next print.
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let first = rx.recv_timeout(DEADLINE).expect("serve prints its address");
        let gateway_port = first
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a gateway address in {first:?}"));
        Serve {
            child,
            gateway_port,
        }
    }

    /// Gone at once, as a crashed or killed server is.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls `model` with `secret` on the gateway at `port` until dropped.
pub struct Traffic(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Traffic {
    pub fn start(port: u16, secret: &str, model: &str) -> Self {
        let on = Arc::new(AtomicBool::new(true));
        let (flag, secret, model) = (on.clone(), secret.to_string(), model.to_string());
        let t = std::thread::spawn(move || {
            while flag.load(Ordering::SeqCst) {
                curl(port, &secret, &model);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Traffic(on, Some(t))
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// Run the CLI on the store in `data` and expect success: its stdout.
pub fn cli_ok(data: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .env("MAASCTL_DATA_DIR", data)
        .env_remove("MAASCTL_STORE")
        .env_remove("MAASCTL_ADMIN_TOKEN")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Workspace `acme` with key `ci`, and `DeepSeek-V3` enabled on
/// `upstream_url`, through the CLI: the key's secret.
pub fn seed_called_model(data: &std::path::Path, upstream_url: &str) -> String {
    cli_ok(data, &["workspace", "create", "acme"]);
    let key: serde_json::Value = serde_json::from_str(&cli_ok(
        data,
        &[
            "key",
            "create",
            "--workspace",
            "acme",
            "--name",
            "ci",
            "-o",
            "json",
        ],
    ))
    .unwrap();
    cli_ok(
        data,
        &[
            "model",
            "create",
            "--name",
            "DeepSeek-V3",
            "--model-id",
            "deepseek-chat",
            "--endpoint",
            upstream_url,
        ],
    );
    cli_ok(data, &["model", "enable", "DeepSeek-V3"]);
    key["secret"].as_str().unwrap().to_string()
}

/// The gateway port from the header (`gw 127.0.0.1:PORT`).
pub fn gateway_port(screen: &str) -> u16 {
    let at = screen
        .find("gw 127.0.0.1:")
        .expect("header shows the gateway")
        + 13;
    screen[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("a port")
}

/// The numbers in the row of `name` in the model list: (req/s, thr/s).
pub fn rates_in_row(screen: &str, name: &str) -> Option<(f64, f64)> {
    let line = line_with(screen, &format!("│{name} "))?;
    let cols: Vec<&str> = line.trim_matches('│').split_whitespace().collect();
    let n = cols.len();
    Some((cols[n - 2].parse().ok()?, cols[n - 1].parse().ok()?))
}

/// The header's `req/s N`.
pub fn header_rate(screen: &str) -> f64 {
    let first = screen.lines().next().unwrap_or_default();
    let at = first.find("req/s ").map_or(first.len(), |i| i + 6);
    first[at..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
