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
    // Whatever the console writes outside its frames (stderr) lands here:
    // nothing may, logs go to :logs and the log file only.
    let stray = std::env::temp_dir().join(format!("maasctl-e2e-stderr-{}", std::process::id()));
    let t = Tmux::start(
        "demo",
        &format!("{BIN} demo --listen 127.0.0.1:0 2>{}", stray.display()),
    );

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

    // Quit: the terminal is restored, and nothing was printed around the UI
    // (throttles, upstream errors and saves included).
    t.keys(&["q"]);
    assert_restored(&t);
    let printed = std::fs::read_to_string(&stray).unwrap_or_default();
    let _ = std::fs::remove_file(&stray);
    assert!(printed.is_empty(), "printed outside the UI:\n{printed}");
}

/// The number after `label` on the screen line holding it (`total 55`).
fn number_after(screen: &str, label: &str) -> Option<f64> {
    let line = line_with(screen, label)?;
    let at = line.find(label)? + label.len();
    line[at..].split_whitespace().next()?.parse().ok()
}

/// The last two numbers of the first row containing `needle` (req/s, thr/s
/// in the lists and the traffic tops).
fn last_two(screen: &str, needle: &str) -> Option<(f64, f64)> {
    let line = line_with(screen, needle)?;
    let nums: Vec<f64> = line
        .split(['│', ' '])
        .filter_map(|w| w.parse().ok())
        .collect();
    let n = nums.len();
    (n >= 2).then(|| (nums[n - 2], nums[n - 1]))
}

/// Wait until `read` gives a value, then until it gives a different one:
/// the pane's numbers move. Returns how long that took.
fn moves(t: &Tmux, what: &str, read: impl Fn(&str) -> Option<f64>) -> Duration {
    let start = Instant::now();
    let first = t.wait(what, |s| read(s).is_some());
    let first = read(&first);
    t.wait(&format!("{what} to move"), |s| {
        read(s).is_some_and(|v| Some(v) != first)
    });
    start.elapsed()
}

#[test]
fn demo_every_live_pane_moves() {
    let t = Tmux::start("moves", &format!("{BIN} demo --listen 127.0.0.1:0"));
    t.wait_for("DeepSeek-V3");
    let go = |view: &str| {
        t.keys(&[":"]);
        t.type_text(view);
        t.keys(&["Enter"]);
    };
    let busy = |s: &str, row: &str| last_two(s, row).is_some_and(|(r, _)| r > 0.0);
    let throttled = |s: &str, row: &str| last_two(s, row).is_some_and(|(_, thr)| thr > 0.0);

    // The list: rates of the busy model and the throttled one.
    t.wait("DeepSeek-V3 busy and throttled", |s| {
        busy(s, "│DeepSeek-V3 ") && throttled(s, "│DeepSeek-V3 ")
    });
    let list = moves(&t, "the header's total req/s", |s| {
        (header_rate(s) > 0.0).then(|| header_rate(s))
    });

    // The detail: totals, the rule counters and the sparklines. The list is
    // sorted by name (DeepSeek-R1 first): filter to the busy model.
    t.keys(&["/"]);
    t.type_text("DeepSeek-V3");
    t.keys(&["Enter"]);
    t.wait("the list filtered", |s| !s.contains("DeepSeek-R1"));
    t.keys(&["Enter"]);
    t.wait("DeepSeek-V3's detail", |s| {
        s.contains("rate-limit rules") && s.contains("DeepSeek-V3")
    });
    let detail = moves(&t, "DeepSeek-V3's total", |s| number_after(s, "total "));
    t.wait("the sparklines drawn", |s| {
        line_with(s, "requests/s").is_some() && s.contains('█')
    });
    // The trial key's rule (limit 2 per second) throttles; its throttled
    // total (the row's last column) keeps climbing.
    let rule_throttled = |s: &str| -> Option<f64> {
        let l = line_with(s, "api-key")?;
        l.contains("/2 ").then_some(())?;
        l.trim_end_matches(['│', ' '])
            .split_whitespace()
            .last()?
            .parse()
            .ok()
    };
    let throttling = moves(&t, "the trial key's rule throttled total", rule_throttled);
    let rule = moves(&t, "the workspace rule's used count", |s| {
        let l = line_with(s, "workspace acme")?;
        l.split_whitespace()
            .find_map(|w| w.strip_suffix("/600"))
            .and_then(|u| u.parse().ok())
    });
    t.keys(&["Escape"]);

    // Traffic: totals and the three tops.
    go("traffic");
    t.wait("the tops with traffic", |s| {
        busy(s, "DeepSeek-V3") && busy(s, "trial/trial") && busy(s, "│acme ")
    });
    let traffic = moves(&t, "the traffic total", |s| number_after(s, "requests "));

    // Keys and workspaces: the trial key over its limit.
    go("keys");
    t.wait("the trial key busy and throttled", |s| {
        busy(s, " trial ") && throttled(s, " trial ")
    });
    go("workspaces");
    t.wait("the workspaces busy", |s| {
        busy(s, "│acme ") && throttled(s, "│trial ")
    });
    eprintln!(
        "moved after: list {list:?}, detail {detail:?}, throttling {throttling:?}, rule {rule:?}, traffic {traffic:?}"
    );
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

#[test]
fn a_panic_restores_the_terminal_and_its_message_stays_readable() {
    let dir = std::env::temp_dir().join(format!("maasctl-e2e-panic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Debug builds only: MAASCTL_DEBUG_PANIC makes F12 panic in the loop
    // (no backtrace, so the message fits the pane).
    let cmd = format!(
        "MAASCTL_DEBUG_PANIC=1 RUST_BACKTRACE=0 {BIN} --data-dir {} --no-gateway",
        dir.display()
    );
    let t = Tmux::start("panic", &cmd);
    t.wait_for("models [0/0]");
    t.keys(&["F12"]);
    let s = t.wait("the exit code and terminal modes", |s| {
        s.contains("EXITED:") && s.contains("icanon")
    });
    assert!(s.contains("EXITED:101"), "a panic exits with 101:\n{s}");
    // The hook left the alternate screen before printing: the message is
    // on the normal screen, not wiped with the console's frame.
    assert!(
        s.contains("panicked at") && s.contains("debug panic requested"),
        "the panic message is visible:\n{s}"
    );
    assert!(!s.contains("┌"), "the alternate screen is gone:\n{s}");
    let modes = line_with(&s, "icanon").expect("stty printed");
    assert!(
        modes.contains("icanon") && !modes.contains("-icanon") && !modes.contains("-echo"),
        "raw mode is off: {modes}"
    );
    let log = std::fs::read_to_string(dir.join("maasctl.log")).unwrap_or_default();
    assert!(log.contains("panic: "), "the log file has it: {log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `maasctl serve` over `data`, its admin API on `admin_port`; SIGKILLed on drop.
struct Serve {
    child: std::process::Child,
    gateway_port: u16,
}

impl Serve {
    fn start(data: &std::path::Path, admin_port: u16) -> Self {
        let mut child = Command::new(BIN)
            .env("MAASCTL_DATA_DIR", data)
            .env_remove("MAASCTL_STORE")
            .env_remove("MAASCTL_ADMIN_TOKEN")
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
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
    fn kill(mut self) {
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
struct Traffic(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Traffic {
    fn start(port: u16, secret: &str, model: &str) -> Self {
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
fn cli_ok(data: &std::path::Path, args: &[&str]) -> String {
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
fn seed_called_model(data: &std::path::Path, upstream_url: &str) -> String {
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

#[test]
fn remote_console_follows_serve_through_an_outage() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    let console_dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| cli_ok(data.path(), args);
    let upstream_url = format!("http://127.0.0.1:{up_port}/v1");
    let secret = seed_called_model(data.path(), &upstream_url);
    let admin_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Serve::start(data.path(), admin_port);
    let gw = server.gateway_port;

    // The console attaches: no gateway or store of its own.
    let t = Tmux::start(
        "remote",
        &format!(
            "{BIN} --data-dir {} --connect http://127.0.0.1:{admin_port} --admin-token-file {}",
            console_dir.path().display(),
            data.path().join("admin.token").display()
        ),
    );
    // Never called yet: its endpoints are unknown, and so is the model.
    t.wait("the remote gateway's models", |s| {
        s.contains(&format!("gw 127.0.0.1:{gw} running"))
            && line_with(s, "│DeepSeek-V3 ").is_some_and(|l| l.contains("unknown"))
    });
    {
        let _calls = Traffic::start(gw, &secret, "DeepSeek-V3");
        t.wait("counters moving with traffic", |s| {
            rates_in_row(s, "DeepSeek-V3").is_some_and(|(r, _)| r > 0.0) && header_rate(s) > 0.0
        });
    }

    // A model created in the remote console is in the server's registry.
    t.keys(&["c"]);
    t.wait_for("Create model");
    t.keys(&["m"]);
    t.wait_for("‹ Mistral-Large-2411 ›");
    t.keys(&["Tab", "Tab"]);
    t.type_text("mistral-large");
    t.keys(&["Tab", "Tab", "Tab"]);
    t.type_text(&upstream_url);
    t.keys(&["C-s"]);
    t.wait_for("model Mistral-Large-2411 created");
    let list = cli(&["model", "list"]);
    assert!(list.contains("Mistral-Large-2411"), "{list}");
    t.wait("the new model listed", |s| {
        s.contains("│Mistral-Large-2411 ")
    });

    // The server dies: the console says so and stays.
    server.kill();
    let s = t.wait_for("disconnected, retrying");
    assert!(!s.contains("EXITED"), "{s}");
    assert!(s.contains("Mistral-Large-2411"), "the last data stays: {s}");

    // It comes back on the same admin address: the console recovers.
    let server = Serve::start(data.path(), admin_port);
    let gw = server.gateway_port;
    t.wait("reconnected to the new gateway", |s| {
        s.contains(&format!("gw 127.0.0.1:{gw} running")) && !s.contains("disconnected")
    });
    {
        let _calls = Traffic::start(gw, &secret, "DeepSeek-V3");
        t.wait("counters moving again", |s| {
            rates_in_row(s, "DeepSeek-V3").is_some_and(|(r, _)| r > 0.0)
        });
    }

    t.keys(&["q"]);
    assert_restored(&t);
    assert!(
        !console_dir.path().join("maasctl.db").exists(),
        "the remote console keeps no store"
    );
    drop(server);
}

/// The console's embedded gateway serves the admin API too: `rule explain`
/// finds it through the store and shows its live counts.
#[test]
fn rule_explain_asks_the_consoles_embedded_gateway() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    let ok = |args: &[&str]| cli_ok(data.path(), args);
    let secret = seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    // The data directory already exists (the CLI made it): the console's log
    // file in it is still private.
    let log = data.path().join("maasctl.log");
    ok(&[
        "rule",
        "add",
        "--model",
        "DeepSeek-V3",
        "--key",
        "ci",
        "--limit",
        "6",
        "--duration",
        "600",
    ]);
    let t = Tmux::start(
        "embedded-admin",
        &format!(
            "{BIN} --data-dir {} --listen 127.0.0.1:0",
            data.path().display()
        ),
    );
    // Serving the model (never called yet: gateway status unknown).
    let s = t.wait("the console serving", |s| {
        line_with(s, "│DeepSeek-V3 ").is_some_and(|l| l.contains("unknown"))
    });
    let port = gateway_port(&s);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log)
            .expect("the log file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", log.display());
    }
    for _ in 0..3 {
        assert_eq!(curl(port, &secret, "DeepSeek-V3").0, 200);
    }
    let out = ok(&["rule", "explain", "--model", "DeepSeek-V3", "--key", "ci"]);
    assert!(
        out.contains(&format!("live counts from the gateway at 127.0.0.1:{port}")),
        "{out}"
    );
    assert!(
        line_with(&out, "api-key").is_some_and(|l| l.contains("3/6")),
        "{out}"
    );
    t.keys(&["q"]);
    assert_restored(&t);
}

/// `maasctl demo` without `--listen` takes a free port when 8080 is taken
/// (and says which, in the header and in :logs); with `--listen` on a taken
/// address it fails and says so, since there the address was asked for.
#[test]
fn demo_takes_a_free_port_when_8080_is_taken() {
    // Hold 8080 ourselves; if another program holds it, it is taken anyway.
    let _held = TcpListener::bind("127.0.0.1:8080");
    assert!(
        TcpListener::bind("127.0.0.1:8080").is_err(),
        "8080 is taken for this test"
    );
    let t = Tmux::start("demo-port", &format!("{BIN} demo"));
    let s = t.wait("the demo serving with traffic", |s| {
        s.contains("DeepSeek-V3") && s.contains("serving") && header_rate(s) > 0.0
    });
    let port = gateway_port(&s);
    assert_ne!(port, 8080, "{s}");
    t.keys(&[":"]);
    t.type_text("logs");
    t.keys(&["Enter"]);
    t.wait("the log says which port", |s| {
        s.contains("127.0.0.1:8080 is taken") && s.contains(&format!("127.0.0.1:{port}"))
    });
    t.keys(&["q"]);
    assert_restored(&t);

    // An explicit address that is taken: a clear refusal, before any screen.
    let held = TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let addr = held.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["demo", "--listen", &addr])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run maasctl demo");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("--listen"),
        "{err}"
    );
}

// ---- operations: :audit, read-only, the form guard ------------------------

/// Run the CLI on the store in `data` as the OS user `user`: its stdout.
fn cli_as(data: &std::path::Path, user: &str, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .env("MAASCTL_DATA_DIR", data)
        .env("USER", user)
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

/// A change the CLI makes (another process, same store) shows up in an
/// open console's `:audit`, as the OS user who ran it, through `cli`;
/// `enter` shows it field by field.
#[test]
fn audit_shows_a_change_made_by_another_process() {
    let data = tempfile::tempdir().unwrap();
    cli_as(data.path(), "seed-e2e", &["workspace", "create", "acme"]);
    let t = Tmux::start(
        "audit",
        &format!(
            "{BIN} --data-dir {} --listen 127.0.0.1:0",
            data.path().display()
        ),
    );
    t.wait_for("‹models›");
    t.keys(&[":"]);
    t.type_text("audit");
    t.keys(&["Enter"]);
    t.wait("the trail so far", |s| {
        line_with(s, "seed-e2e").is_some_and(|l| l.contains("workspace/acme"))
    });
    cli_as(
        data.path(),
        "ops-e2e",
        &[
            "workspace",
            "create",
            "ops",
            "--description",
            "on-call tools",
        ],
    );
    let s = t.wait("the CLI's change in the console's :audit", |s| {
        line_with(s, "ops-e2e").is_some_and(|l| l.contains("cli") && l.contains("workspace/ops"))
    });
    // Newest first: the new entry is the first row, the seed's under it.
    let first = s.lines().position(|l| l.contains("ops-e2e")).unwrap();
    let seed = s.lines().position(|l| l.contains("seed-e2e")).unwrap();
    assert!(first < seed, "{s}");
    t.keys(&["Enter"]);
    t.wait("the entry's diff", |s| {
        s.contains("by ops-e2e through cli") && s.contains("description: — → on-call tools")
    });
    t.keys(&["Escape"]);
    t.keys(&["q"]);
    assert_restored(&t);
}

/// A console attached with a `read` token says read-only, offers no
/// changing key (pressing one says why), and its counters still move.
#[test]
fn a_read_token_console_is_read_only_and_live() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    let console_dir = tempfile::tempdir().unwrap();
    let secret = seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    let made: serde_json::Value = serde_json::from_str(&cli_ok(
        data.path(),
        &["token", "create", "grafana", "--role", "read", "-o", "json"],
    ))
    .unwrap();
    let token_file = console_dir.path().join("read.token");
    std::fs::write(&token_file, made["secret"].as_str().unwrap()).unwrap();
    let admin_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Serve::start(data.path(), admin_port);
    let gw = server.gateway_port;
    let t = Tmux::start(
        "readonly",
        &format!(
            "{BIN} --data-dir {} --connect http://127.0.0.1:{admin_port} --admin-token-file {}",
            console_dir.path().display(),
            token_file.display()
        ),
    );
    let s = t.wait("the read-only console", |s| {
        s.lines().next().is_some_and(|h| h.contains("read-only"))
            && line_with(s, "│DeepSeek-V3 ").is_some_and(|l| l.contains("serving"))
    });
    let footer = s.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert!(
        !footer.contains("create") && !footer.contains("edit"),
        "{s}"
    );
    t.keys(&["c"]);
    let s = t.wait_for("read-only: this token has role read");
    assert!(!s.contains("Create model"), "{s}");
    {
        let _calls = Traffic::start(gw, &secret, "DeepSeek-V3");
        t.wait("counters moving with traffic", |s| {
            rates_in_row(s, "DeepSeek-V3").is_some_and(|(r, _)| r > 0.0) && header_rate(s) > 0.0
        });
    }
    // The trail reads through the admin API too.
    t.keys(&[":"]);
    t.type_text("audit");
    t.keys(&["Enter"]);
    t.wait("the trail over the admin API", |s| {
        line_with(s, "model/DeepSeek-V3").is_some_and(|l| l.contains("cli"))
            && line_with(s, "token/grafana").is_some()
    });
    t.keys(&["R"]);
    t.wait_for("read-only: this token has role read");
    t.keys(&["q"]);
    assert_restored(&t);
    drop(server);
}

/// A CLI edit lands while a console form is open on the same model: the
/// form's save does not overwrite it; it says so and offers reload (the
/// CLI's values) or overwrite.
#[test]
fn a_form_save_does_not_overwrite_a_cli_edit_made_meanwhile() {
    let (up_port, _) = upstream();
    let data = tempfile::tempdir().unwrap();
    seed_called_model(data.path(), &format!("http://127.0.0.1:{up_port}/v1"));
    let model_id = || {
        let v: serde_json::Value = serde_json::from_str(&cli_ok(
            data.path(),
            &["model", "show", "DeepSeek-V3", "-o", "json"],
        ))
        .unwrap();
        v["model_id"]
            .as_str()
            .or_else(|| v["spec"]["model_id"].as_str())
            .unwrap_or_else(|| panic!("a model_id in {v}"))
            .to_string()
    };
    let t = Tmux::start(
        "guard",
        &format!(
            "{BIN} --data-dir {} --listen 127.0.0.1:0",
            data.path().display()
        ),
    );
    t.wait("the model listed", |s| {
        line_with(s, "│DeepSeek-V3 ").is_some()
    });
    t.keys(&["e"]);
    t.wait_for("Edit model DeepSeek-V3");
    t.keys(&["Tab", "Tab"]);
    // (Text starting with `-` would read as a tmux flag.)
    t.type_text("v2");
    t.wait_for("deepseek-chatv2");
    cli_ok(
        data.path(),
        &["model", "edit", "DeepSeek-V3", "--model-id", "from-cli"],
    );
    assert_eq!(model_id(), "from-cli");
    t.keys(&["C-s"]);
    t.wait_for("model DeepSeek-V3 changed elsewhere since you opened");
    assert_eq!(model_id(), "from-cli", "the CLI's edit is not overwritten");
    // Reload: the form shows the CLI's value, nothing typed kept.
    t.keys(&["r"]);
    t.wait("the reloaded form", |s| {
        s.contains("Edit model DeepSeek-V3")
            && s.contains("from-cli")
            && !s.contains("Changed elsewhere")
    });
    t.keys(&["Tab", "Tab"]);
    t.type_text("v2");
    t.keys(&["C-s"]);
    t.wait_for("model DeepSeek-V3 saved");
    assert_eq!(model_id(), "from-cliv2");
    t.keys(&["q"]);
    assert_restored(&t);
}
