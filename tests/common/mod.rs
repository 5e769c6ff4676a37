//! Support for integration tests: a throw-away data directory, the built
//! `maasctl` binary run against it, and polling with a deadline (never fixed
//! sleeps). Generic on purpose: any test file may `mod common;`.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `maasctl` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_maasctl")
}

/// A temporary data directory, removed on drop, and the binary bound to it.
pub struct Env {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            vars: Vec::new(),
        }
    }

    /// Set an environment variable for every command run from here.
    pub fn var(mut self, k: &str, v: &str) -> Self {
        self.vars.push((k.into(), v.into()));
        self
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The store URL set with [`var`](Self::var)`("MAASCTL_STORE", …)`, if
    /// any (else the binary uses [`db`](Self::db)).
    pub fn store_url(&self) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == "MAASCTL_STORE")
            .map(|(_, v)| v.as_str())
    }

    /// The SQLite file of the default store.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("maasctl.db")
    }

    /// `maasctl` with this data directory and no store/data-dir settings
    /// inherited from the developer's shell.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_remove("MAASCTL_STORE")
            .env("MAASCTL_DATA_DIR", self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in &self.vars {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run maasctl")
    }

    /// Run with `input` on standard input.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn maasctl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().expect("wait maasctl")
    }

    /// Run and require success; stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        expect_ok(args, self.run(args))
    }

    /// Run with `-o json` and parse stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// Run and require a refusal: exit code 1, nothing on stdout, and exactly
    /// one line on stderr, `error: …`. Returns that line without `error: `.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        expect_one_line_error(args, self.run(args), 1)
    }
}

#[track_caller]
pub fn expect_ok(args: &[&str], out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "maasctl {args:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[track_caller]
pub fn expect_one_line_error(args: &[&str], out: Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "maasctl {args:?}: exit code (stderr: {stderr})"
    );
    assert!(
        out.stdout.is_empty(),
        "maasctl {args:?}: stdout on error: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "maasctl {args:?}: not one line: {stderr:?}"
    );
    stderr
        .trim_end()
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("maasctl {args:?}: no 'error: ' prefix: {stderr:?}"))
        .to_string()
}

/// Poll `f` until it returns `Some`, or panic after `timeout` naming `what`.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// [`wait_for`] a condition.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    wait_for(what, timeout, || f().then_some(()))
}

/// The Python interpreter that has the official `openai` package:
/// `$MAASCTL_TEST_PYTHON`, else the venv `scripts/test` creates
/// (`$MAASCTL_TEST_VENV`, default `target/test-venv` of this checkout), else
/// `python3`.
pub fn test_python() -> PathBuf {
    if let Some(p) = std::env::var_os("MAASCTL_TEST_PYTHON") {
        return p.into();
    }
    let venv = std::env::var_os("MAASCTL_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-venv").into());
    let python = venv.join("bin/python");
    if python.exists() {
        python
    } else {
        "python3".into()
    }
}

/// How long a `maasctl serve` gets to print where it listens.
const SERVE_DEADLINE: Duration = Duration::from_secs(30);

/// A running `maasctl serve`; SIGTERM on drop.
pub struct Serve {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    pub fn start(env: &Env, args: &[&str]) -> Self {
        let mut child = env
            .cmd()
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--workers", "1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("maasctl serve starts");
        let out = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let lines = out.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        });
        let s = Self { child, out };
        s.line("gateway listening on");
        s
    }

    /// The first stdout line containing `needle`.
    pub fn line(&self, needle: &str) -> String {
        wait_for(needle, SERVE_DEADLINE, || {
            self.out
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
                .cloned()
        })
    }

    pub fn gateway(&self) -> String {
        url_in(&self.line("gateway listening on"))
    }

    pub fn admin(&self) -> String {
        url_in(&self.line("admin API listening on"))
    }

    /// SIGTERM and wait; everything it printed.
    pub fn stop(mut self) -> Vec<String> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve exits cleanly: {status}");
        std::mem::take(&mut *self.out.lock().unwrap())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// `http://127.0.0.1:PORT` in a startup line.
pub fn url_in(line: &str) -> String {
    let at = line.find("http://").expect("a URL");
    line[at..].split_whitespace().next().unwrap().to_string()
}
