//! The real binary in a real terminal: tmux (80×24, private socket) runs
//! `maasctl`, `send-keys` drives it, `capture-pane` reads it, as an
//! operator would. Every wait polls the screen with a generous deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_maasctl");
const DEADLINE: Duration = Duration::from_secs(30);

/// A tmux server of our own, killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Start `cmd` in an 80×24 pane; after it exits the pane shows its exit
    /// code and whether the terminal is back in canonical mode.
    fn start(name: &str, cmd: &str) -> Self {
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
                "80",
                "-y",
                "24",
                "sh",
                "-c",
                &script,
            ])
            .status
            .success();
        assert!(ok, "tmux starts");
        t
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("tmux runs")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p"]).stdout).into_owned()
    }

    /// Send tmux key names (`Enter`, `C-s`, `Tab`) or literal text (`-l`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend(keys);
        self.tmux(&args);
    }

    fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
    }

    /// Poll the screen until `pred` holds.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
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

    fn wait_for(&self, text: &str) -> String {
        self.wait(text, |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// The gateway port from the header (`gw 127.0.0.1:PORT`).
fn gateway_port(screen: &str) -> u16 {
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

/// The line of the screen holding `needle`.
fn line_with<'a>(screen: &'a str, needle: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(needle))
}

/// The numbers in the row of `name` in the model list: (req/s, thr/s).
fn rates_in_row(screen: &str, name: &str) -> Option<(f64, f64)> {
    let line = line_with(screen, &format!("│{name} "))?;
    let cols: Vec<&str> = line.trim_matches('│').split_whitespace().collect();
    let n = cols.len();
    Some((cols[n - 2].parse().ok()?, cols[n - 1].parse().ok()?))
}

/// The header's `req/s N`.
fn header_rate(screen: &str) -> f64 {
    let first = screen.lines().next().unwrap_or_default();
    let at = first.find("req/s ").map_or(first.len(), |i| i + 6);
    first[at..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A minimal OpenAI-compatible upstream for the model the test creates.
fn upstream() -> (u16, Arc<AtomicU64>) {
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

fn curl(port: u16, secret: &str, model: &str) -> (u16, String) {
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

/// The terminal is back to normal after the console exits.
fn assert_restored(t: &Tmux) {
    let s = t.wait("the exit code and terminal modes", |s| {
        s.contains("EXITED:") && s.contains("icanon")
    });
    assert!(s.contains("EXITED:0"), "clean exit:\n{s}");
    let modes = line_with(&s, "icanon").expect("stty printed");
    assert!(
        modes.contains("icanon") && !modes.contains("-icanon"),
        "{modes}"
    );
    assert!(!modes.contains("-echo"), "{modes}");
    assert!(!s.contains("┌"), "the alternate screen is gone:\n{s}");
}

#[test]
fn demo_create_enable_rule_call_and_quit() {
    let (up_port, up_hits) = upstream();
    let t = Tmux::start("demo", &format!("{BIN} demo --listen 127.0.0.1:0"));

    // Models and moving counters within seconds.
    let s = t.wait("the demo models serving with traffic", |s| {
        s.contains("DeepSeek-V3") && s.contains("serving") && header_rate(s) > 0.0
    });
    let port = gateway_port(&s);
    t.wait("DeepSeek-V3 req/s moving", |s| {
        rates_in_row(s, "DeepSeek-V3").is_some_and(|(r, _)| r > 0.0)
    });
    t.wait("the trial key throttled", |s| {
        rates_in_row(s, "DeepSeek-V3").is_some_and(|(_, thr)| thr > 0.0)
    });

    // A key to call with: its secret is shown once.
    t.keys(&[":"]);
    t.type_text("keys");
    t.keys(&["Enter"]);
    t.wait_for("keys [4/4]");
    t.keys(&["c"]);
    t.wait_for("Create API key");
    t.keys(&["Tab"]);
    t.type_text("e2e");
    t.keys(&["C-s"]);
    let s = t.wait_for("API key created");
    let secret = s
        .match_indices("sk-")
        .map(|(at, _)| {
            s[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
                .collect::<String>()
        })
        .find(|k| k.len() == 46)
        .unwrap_or_else(|| panic!("the whole secret is on screen:\n{s}"));
    t.keys(&["Escape"]);
    t.wait("the popup closed", |s| !s.contains("API key created"));

    // Create a model through the form: one rejected field, corrected.
    t.keys(&[":"]);
    t.type_text("models");
    t.keys(&["Enter"]);
    t.keys(&["c"]);
    t.wait_for("Create model");
    t.keys(&["m"]);
    t.wait_for("‹ Mistral-Large-2411 ›");
    t.keys(&["Tab", "Tab"]);
    t.type_text("mistral-large");
    t.keys(&["Tab", "Tab"]);
    t.type_text("chat,eu");
    t.keys(&["Tab"]);
    t.type_text("localhost:1");
    t.keys(&["C-s"]);
    t.wait_for("✗ scheme 'localhost' is not supported");
    for _ in 0.."localhost:1".len() {
        t.keys(&["BSpace"]);
    }
    t.type_text(&format!("http://127.0.0.1:{up_port}/v1"));
    t.wait("the error cleared", |s| !s.contains("✗"));
    t.keys(&["C-s"]);
    t.wait_for("model Mistral-Large-2411 created");
    let (code, body) = curl(port, &secret, "Mistral-Large-2411");
    assert_eq!(code, 404, "disabled models are not callable: {body}");

    // Enable it from the list (the new row is selected).
    t.keys(&["t"]);
    t.wait_for("model Mistral-Large-2411 enabled");

    // A workspace rule on it.
    t.keys(&["a"]);
    t.wait_for("Add rule to Mistral-Large-2411");
    t.keys(&["Right"]);
    t.wait("target workspace", |s| {
        s.contains("‹ workspace ›") && !s.contains("API key  ")
    });
    t.keys(&["C-s"]);
    t.wait_for("rule added to Mistral-Large-2411");

    // The gateway serves it within a second or so; its counters move.
    let start = Instant::now();
    loop {
        let (code, body) = curl(port, &secret, "Mistral-Large-2411");
        if code == 200 {
            assert!(body.contains("hi from e2e"), "{body}");
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the new model never answered: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(up_hits.load(Ordering::SeqCst) >= 1);
    let calling = Arc::new(AtomicBool::new(true));
    let caller = {
        let (calling, secret) = (calling.clone(), secret.clone());
        std::thread::spawn(move || {
            while calling.load(Ordering::SeqCst) {
                curl(port, &secret, "Mistral-Large-2411");
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    t.wait("Mistral-Large-2411 req/s in the list", |s| {
        rates_in_row(s, "Mistral-Large-2411").is_some_and(|(r, _)| r > 0.0)
    });
    t.keys(&["Enter"]);
    t.wait("the detail with traffic and the rule counting", |s| {
        s.contains("Mistral-Large-2411")
            && line_with(s, "total ").is_some_and(|l| !l.contains("total 0 "))
            && line_with(s, "workspace acme").is_some_and(|l| !l.contains("—/60"))
    });
    calling.store(false, Ordering::SeqCst);
    caller.join().unwrap();

    // Quit: the terminal is restored.
    t.keys(&["q"]);
    assert_restored(&t);
}

#[test]
fn hang_up_and_quit_restore_the_terminal() {
    let dir = std::env::temp_dir().join(format!("maasctl-e2e-hup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cmd = format!("{BIN} --data-dir {} --no-gateway", dir.display());
    let t = Tmux::start("quit", &cmd);
    let s = t.wait_for("models [0/0]");
    assert!(s.contains("gw — off"), "{s}");
    // A dirty form asks before quitting.
    t.keys(&[":"]);
    t.type_text("workspaces");
    t.keys(&["Enter", "c"]);
    t.wait_for("Create workspace");
    t.type_text("ops");
    t.keys(&["C-c"]);
    t.wait_for("Quit and discard");
    t.keys(&["y"]);
    assert_restored(&t);

    // SIGHUP (the SSH session went away) ends it too, without spinning.
    let t = Tmux::start("hup", &format!("exec {cmd}"));
    t.wait_for("models [");
    let pid = String::from_utf8_lossy(&t.tmux(&["display", "-p", "-t", "0", "#{pane_pid}"]).stdout)
        .trim()
        .to_string();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(start.elapsed() < DEADLINE, "still running after SIGHUP");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("maasctl.log")).unwrap_or_default();
    assert!(log.contains("hang-up: quitting"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
