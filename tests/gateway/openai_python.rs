//! The official `openai` Python client against the real `maasctl serve`
//! binary. Fails (never skips) when the interpreter or the package is missing.

use std::process::Stdio;
use std::time::Duration;

use maasctl::domain::Policy;
use maasctl::store::Store;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::*;

/// Kills the child if the test ends early.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_client_works_against_maasctl_serve() {
    let ts = TestStore::new();
    let (_, key) = ts.key("acme", "py");
    let up = mock("py-mock").await;
    ts.model(
        "py-model",
        "upstream-model",
        vec![ep(&up.base_url())],
        Policy::RoundRobin,
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_maasctl"))
        .arg("--data-dir")
        .arg(ts.dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
        .args(["--admin-listen", "off"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("maasctl runs");
    let stdout = child.stdout.take().unwrap();
    let mut serve = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(DEADLINE, lines.next_line())
        .await
        .expect("serve prints its address")
        .unwrap()
        .expect("serve printed a line");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    assert!(addr.starts_with("http://127.0.0.1:"), "{line}");

    // $MAASCTL_TEST_PYTHON, else the venv scripts/test makes, else python3.
    let python = crate::common::test_python().display().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/openai_client.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(&python)
            .arg(script)
            .env("MAASCTL_BASE_URL", format!("{addr}/v1"))
            .env("MAASCTL_KEY", &key)
            .env("MAASCTL_MODEL", "py-model")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("OPENAI_API_KEY")
            .output(),
    )
    .await
    .expect("the python script finishes")
    .unwrap_or_else(|e| panic!("cannot run {python} (set MAASCTL_TEST_PYTHON to an interpreter with `openai` installed): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{python} {script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    let seen = up.seen();
    assert!(
        seen.iter()
            .all(|s| s.model.as_deref().is_none_or(|m| m == "upstream-model"))
    );
    assert_eq!(seen.iter().filter(|s| s.stream).count(), 1);

    // SIGTERM: a clean stop that removes the gateway's report.
    assert!(!ts.store.reports().unwrap().is_empty());
    let pid = serve.0.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(DEADLINE, serve.0.wait())
        .await
        .expect("serve stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "serve exited with {status}");
    assert!(
        ts.store.reports().unwrap().is_empty(),
        "the report was removed"
    );
}
