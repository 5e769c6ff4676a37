//! Operations (issue 13) with the real binary: the audit trail as `maasctl
//! audit` shows it (actor and channel, local and remote); history, diff and
//! rollback (a rollback restores what a file declared, keys as documented,
//! and the gateway serves it within a second); the CLI through `--server`
//! (the same output, errors and exit codes as on a local store); scoped
//! admin tokens (a `read` token is refused every change with 403 and the
//! reason).

mod common;
#[path = "support/postgres.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Env, Serve, expect_one_line_error, wait_for};
use maasctl::domain::manifest::Manifest;
use serde_json::Value;

const DEEPSEEK_KEY: &str = "sk-deepseek-test-key-0000000001";
const OPENAI_KEY: &str = "sk-openai-test-key-00000000002";
const PATIENCE: Duration = Duration::from_secs(30);

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/example.yaml")
}

fn parse_yaml(s: &str) -> Manifest {
    serde_yaml_ng::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The CLI's environment for these tests: the upstream keys the example
/// file references, and a known OS user.
fn with_keys(env: Env) -> Env {
    env.var("DEEPSEEK_API_KEY", DEEPSEEK_KEY)
        .var("OPENAI_API_KEY", OPENAI_KEY)
        .var("USER", "alice")
}

/// A running `maasctl serve` over `env`'s store, its admin API's URL and
/// bootstrap token.
struct Server {
    env: Env,
    serve: Serve,
    admin: String,
    token: String,
}

impl Server {
    fn start(env: Env, args: &[&str]) -> Self {
        let mut all = vec!["--admin-listen", "127.0.0.1:0"];
        all.extend(args);
        let serve = Serve::start(&env, &all);
        let admin = serve.admin();
        let token = std::fs::read_to_string(env.data_dir().join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        Self {
            env,
            serve,
            admin,
            token,
        }
    }

    /// `maasctl` on another machine: an empty data directory (no store),
    /// `--server` and the token from the environment.
    fn client(&self, token: &str) -> Env {
        with_keys(Env::new())
            .var("MAASCTL_SERVER", &self.admin)
            .var("MAASCTL_ADMIN_TOKEN", token)
    }
}

/// Exit code, stdout and stderr of a run.
fn outcome(env: &Env, args: &[&str]) -> (Option<i32>, String, String) {
    let out = env.run(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replace what differs between two stores by nature (generated key ids
/// and secrets, times, ports, who made a change) by placeholders.
fn normalize(s: &str) -> String {
    fn replace_runs(
        s: &str,
        prefix: &str,
        len: usize,
        ok: impl Fn(char) -> bool,
        with: &str,
    ) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find(prefix) {
            out.push_str(&rest[..i]);
            let after = &rest[i + prefix.len()..];
            let run: String = after.chars().take_while(|c| ok(*c)).collect();
            if run.chars().count() >= len {
                out.push_str(with);
                rest = &after[run.len()..];
            } else {
                out.push_str(prefix);
                rest = after;
            }
        }
        out.push_str(rest);
        out
    }
    let hex = |c: char| c.is_ascii_hexdigit();
    let b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut s = replace_runs(s, "key_", 8, hex, "key_ID");
    s = replace_runs(&s, "sk-", 40, b64, "sk-SECRET");
    s = replace_runs(
        &s,
        "127.0.0.1:",
        2,
        |c| c.is_ascii_digit(),
        "127.0.0.1:PORT",
    );
    // The hint of a generated secret (`sk-…abcd`).
    s = replace_runs(&s, "sk-…", 4, b64, "sk-…HINT");
    // 2026-11-25 22:06Z, and Unix times in JSON.
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let at = |k: usize| chars.get(i + k).copied().unwrap_or(' ');
        let is_date = (0..4).all(|k| at(k).is_ascii_digit())
            && at(4) == '-'
            && at(7) == '-'
            && at(10) == ' '
            && at(13) == ':'
            && at(16) == 'Z';
        if is_date {
            out.push_str("DATE");
            i += 17;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    for field in [
        "\"created\": ",
        "\"updated\": ",
        "\"revoked\": ",
        "\"at_ms\": ",
    ] {
        out = replace_runs(&out, field, 1, |c| c.is_ascii_digit(), &format!("{field}0"));
    }
    out
}

/// The main flows of the CLI suite, refusals included (marked `!`): every
/// entity created, listed, shown, edited and deleted, enable/disable,
/// rules, keys, `apply -f` (and again, and a dry run), `export`, the
/// history.
fn flows(bad_file: &str) -> Vec<Vec<String>> {
    let example = example().display().to_string();
    let lines = [
        "workspace create acme --description Acme",
        "workspace create beta",
        "! workspace create acme",
        "workspace list",
        "workspace edit beta --description B",
        "key create --workspace acme --name bot -o json",
        "! key create --workspace acme --name bot",
        "key list",
        "key list -o json",
        "market add Own-1 --provider Acme --tag chat",
        "! market add Own-1 --provider Acme",
        "market publish Own-1",
        "market list --published",
        "cluster add eu --entry https://eu.example",
        "cluster edit eu --entry https://eu2.example",
        "! cluster add bad --entry ftp://x",
        "cluster list",
        "model create --name Own-1 --model-id own --policy weighted --endpoint https://up.example,key=env:DEEPSEEK_API_KEY,weight=100",
        "! model create --name Own-1 --model-id own --endpoint not-a-url",
        "model enable Own-1",
        "model list",
        "model show Own-1",
        "model show Own-1 -o json",
        "model edit Own-1 --model-id own-2 --endpoint https://up.example,weight=60 --endpoint https://b.example,weight=40",
        "model show Own-1",
        "model edit Own-1 --model-id own-2",
        "rule add --model Own-1 --key bot --limit 10 --duration 60",
        "! rule add --model Own-1 --workspace acme --limit 0 --duration 60",
        "rule list",
        "rule list --model Own-1 -o json",
        "rule edit 1 --limit 20",
        "rule delete 1",
        "! rule delete 9",
        "model disable Own-1",
        "model create --name GLM-4.5 --model-id glm --endpoint https://glm.example",
        "! model enable GLM-4.5",
        "! workspace delete acme",
        "key revoke bot --workspace acme",
        "key delete bot --workspace acme",
        "market unpublish Own-1",
        "model delete GLM-4.5",
        "model delete Own-1",
        "market delete Own-1",
        "cluster delete eu",
        "workspace delete beta",
    ];
    let mut out: Vec<Vec<String>> = lines
        .iter()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    for args in [
        vec!["apply", "-f", &example],
        vec!["apply", "-f", &example],
        vec!["apply", "-f", &example, "--dry-run"],
        vec!["apply", "-f", &example, "-o", "json"],
        vec!["!", "apply", "-f", bad_file],
        vec!["export"],
        vec!["export", "--format", "json"],
        vec!["export", "--all", "--format", "toml"],
        vec!["history"],
        vec!["audit", "--entity", "model/Own-1"],
        vec!["!", "audit", "--entity", "nonsense"],
        vec!["diff", "2", "6"],
        vec!["diff", "6"],
        vec!["diff", "2", "6", "-o", "json"],
        vec!["rollback", "20", "--dry-run"],
        vec!["rollback", "20"],
        vec!["!", "rollback", "9999"],
        vec!["model", "list", "-o", "json"],
        vec!["token", "list"],
    ] {
        out.push(args.into_iter().map(str::to_string).collect());
    }
    out
}

/// A file with a mistake, for a refusal naming the place.
fn bad_file(dir: &Path) -> String {
    let p = dir.join("bad.yaml");
    std::fs::write(
        &p,
        "workspaces:\n  - name: w\nmodels:\n  - name: DeepSeek-V3\n    model_id: x\n    endpoints:\n      - url: https://x.example\n    rules:\n      - target: workspace\n        workspace: w\n        limit: 0\n        duration: 60\n",
    )
    .unwrap();
    p.display().to_string()
}

/// Start a server whose gateway serves only cluster `edge` (no model here
/// uses it: every model shows `offline` on both sides).
fn edge_server(env: Env) -> Server {
    env.ok(&["cluster", "add", "edge", "--entry", "https://edge.example"]);
    Server::start(env, &["--cluster", "edge"])
}

#[test]
fn the_cli_through_a_server_answers_as_on_a_local_store() {
    // Both sides: a store with cluster `edge` (revision 1) and a gateway
    // serving it. Locally the OS user is named as the server names its
    // bootstrap token, so the history reads the same.
    let local = edge_server(with_keys(Env::new()).var("USER", "token:bootstrap"));
    let local = &local.env;
    let server = edge_server(Env::new().var("USER", "token:bootstrap"));
    let remote = server.client(&server.token);
    let bad = bad_file(local.data_dir());
    for args in flows(&bad) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (refused, args) = match args.split_first() {
            Some((&"!", rest)) => (true, rest.to_vec()),
            _ => (false, args),
        };
        let (lc, lout, lerr) = outcome(local, &args);
        let (rc, rout, rerr) = outcome(&remote, &args);
        let want = if refused { 1 } else { 0 };
        assert_eq!(lc, Some(want), "exit code of {args:?} locally: {lerr}");
        assert_eq!(
            rc,
            Some(want),
            "exit code of {args:?} through the server: {rerr}"
        );
        if refused {
            assert_eq!(rerr.lines().count(), 1, "{args:?}: {rerr}");
            assert!(rout.is_empty(), "{args:?}: {rout}");
        }
        assert_eq!(normalize(&lout), normalize(&rout), "stdout of {args:?}");
        assert_eq!(normalize(&lerr), normalize(&rerr), "stderr of {args:?}");
    }
    // Nothing went to the remote client's own data directory.
    assert!(!remote.data_dir().join("maasctl.db").exists());
    // The server's trail names the token and the channels.
    let trail = server
        .client(&server.token)
        .json(&["audit", "--limit", "1000"]);
    let trail = trail.as_array().unwrap();
    assert!(trail.len() > 20, "{trail:?}");
    for e in trail.iter().filter(|e| e["revision"].as_u64() > Some(1)) {
        assert_eq!(
            e["actor"],
            serde_json::json!({"kind": "token", "name": "bootstrap"}),
            "{e}"
        );
        let want = if e["summary"].as_str().unwrap().starts_with("apply -f") {
            "apply"
        } else {
            "cli"
        };
        assert_eq!(e["channel"], want, "{e}");
    }
    drop(server.serve);
}

/// The audit trail from the CLI: who (the OS user locally), through what,
/// the entity and the fields; filters; secrets never.
#[test]
fn audit_shows_who_changed_what_through_what() {
    let env = with_keys(Env::new());
    env.ok(&["workspace", "create", "acme"]);
    let key = env.json(&["key", "create", "--workspace", "acme", "--name", "ci"]);
    env.ok(&[
        "model",
        "create",
        "--name",
        "DeepSeek-V3",
        "--model-id",
        "deepseek-chat",
        "--endpoint",
        "https://api.deepseek.com,key=env:DEEPSEEK_API_KEY",
    ]);
    env.ok(&[
        "rule",
        "add",
        "--model",
        "DeepSeek-V3",
        "--key",
        "ci",
        "--limit",
        "60",
        "--duration",
        "60",
    ]);
    env.ok(&["rule", "edit", "1", "--limit", "100"]);
    env.fails(&["workspace", "create", "acme"]);
    let bob = env
        .cmd()
        .env("USER", "bob")
        .args(["apply", "-f", example().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(bob.status.success(), "{bob:?}");

    let trail = env.json(&["audit"]);
    let trail = trail.as_array().unwrap();
    assert_eq!(
        trail.len(),
        6,
        "one entry per change, none for the refusal: {trail:?}"
    );
    let rule_edit = &trail[4];
    assert_eq!(rule_edit["actor"]["name"], "alice");
    assert_eq!(rule_edit["channel"], "cli");
    assert_eq!(rule_edit["summary"], "update-rule DeepSeek-V3");
    assert_eq!(rule_edit["changes"][0]["entity"], "model/DeepSeek-V3");
    assert_eq!(
        rule_edit["changes"][0]["fields"],
        serde_json::json!([{"field": "rules[#1].limit", "before": 60, "after": 100}])
    );
    assert_eq!(trail[5]["actor"]["name"], "bob");
    assert_eq!(trail[5]["channel"], "apply");
    assert_eq!(trail[5]["summary"], "apply -f example.yaml");
    let text = env.ok(&["audit"]);
    assert!(
        !text.contains(DEEPSEEK_KEY) && !text.contains(OPENAI_KEY),
        "{text}"
    );
    assert!(!text.contains(key["secret"].as_str().unwrap()), "{text}");
    assert!(text.contains("alice via cli · revision 5 · update-rule DeepSeek-V3\n  model/DeepSeek-V3 updated\n    rules[#1].limit: 60 → 100\n"), "{text}");
    assert!(
        text.contains("endpoints[0].api_key: - → sk-…0001"),
        "{text}"
    );

    let model = env.ok(&["audit", "--entity", "model/DeepSeek-V3"]);
    assert!(
        model.contains("· revision 6 · apply -f example.yaml\n  model/DeepSeek-V3 updated\n"),
        "{model}"
    );
    assert!(
        model.contains("other entities)\n"),
        "only the model's fields: {model}"
    );
    assert!(!model.contains("workspace/"), "{model}");
    let acme = env.json(&["audit", "--entity", "workspace/acme"]);
    let ids: Vec<u64> = acme
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 6]);
    assert_eq!(
        env.json(&["audit", "--limit", "2"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        env.json(&["audit", "--since", "1h"])
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert!(
        env.json(&["audit", "--since", "2999-01-01"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let e = env.fails(&["audit", "--entity", "acme"]);
    assert!(e.starts_with("entity: 'acme' is not KIND/NAME"), "{e}");
    let e = env.fails(&["audit", "--since", "yesterday"]);
    assert!(e.starts_with("since: 'yesterday' is not a time"), "{e}");
}

/// Ten changes of every kind after applying the example file; a rollback
/// to the file's revision makes `export` give the file back (keys as
/// documented: revoked since and deleted since show `revoked: true`,
/// created since are gone), and the gateway serves it within a second.
fn rollback_restores_the_file(env: Env) {
    let env = with_keys(env);
    let applied = env.json(&["apply", "-f", example().to_str().unwrap()]);
    let first = applied["revision"].as_u64().unwrap();
    let secret_of = |name: &str| {
        applied["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ci, notebook, backend) = (secret_of("ci"), secret_of("notebook"), secret_of("backend"));
    let server = Server::start(env, &[]);
    let env = &server.env;
    let gateway = server.serve.gateway();
    let other = Path::new(env.data_dir()).join("other.yaml");
    std::fs::write(&other, "workspaces:\n  - name: from-file\n").unwrap();
    for change in [
        "market publish GLM-4.5",
        "market add Own-1 --provider Acme --publish",
        "cluster add eu --entry https://eu.example",
        "cluster edit cn-east --entry https://elsewhere.example",
        "workspace create beta",
        "workspace edit acme --description changed",
        "key create --workspace acme --name extra",
        "key revoke notebook --workspace research",
        "key delete backend --workspace acme",
        "model edit DeepSeek-V3 --model-id other --policy round-robin",
        "model disable acme-support-8b",
        "model delete gpt-4o-mini",
        "model create --name GLM-4.5 --model-id glm --endpoint https://glm.example",
        "model enable GLM-4.5",
        "rule add --model GLM-4.5 --workspace acme --limit 5 --duration 10",
        "rule edit 1 --limit 999",
        "rule delete 2",
    ] {
        env.ok(&change.split(' ').collect::<Vec<_>>());
    }
    env.ok(&["apply", "-f", other.to_str().unwrap()]);
    let models = |secret: &str| -> Option<Vec<String>> {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-H",
                &format!("Authorization: Bearer {secret}"),
                &format!("{gateway}/v1/models"),
            ])
            .output()
            .expect("curl runs");
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let mut ids: Vec<String> = v["data"]
            .as_array()?
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        Some(ids)
    };
    wait_for("the gateway serving the changed registry", PATIENCE, || {
        (models(&ci)? == ["DeepSeek-V3", "GLM-4.5"]).then_some(())
    });

    let dry = env.json(&["rollback", &first.to_string(), "--dry-run"]);
    assert_eq!(dry["changed"], true);
    let now = env.json(&["history"]);
    let before = now.as_array().unwrap().last().unwrap()["revision"]
        .as_u64()
        .unwrap();
    assert_eq!(
        dry["revision"].as_u64(),
        Some(before),
        "a dry run changes nothing"
    );
    let text = env.ok(&["rollback", &first.to_string()]);
    let rolled_back = Instant::now();
    assert!(
        text.starts_with(&format!(
            "rolled back to revision {first} as revision {}",
            before + 1
        )),
        "{text}"
    );
    assert!(text.contains("keys created since, deleted"), "{text}");
    assert!(text.contains("keys deleted since, back revoked"), "{text}");
    assert!(text.contains("keys revoked since, stay revoked"), "{text}");

    // The file, but for the keys revoked or deleted since (revoked) and
    // those created since (gone).
    let mut expected = parse_yaml(&std::fs::read_to_string(example()).unwrap());
    for w in &mut expected.workspaces {
        for k in &mut w.keys {
            if k.name == "notebook" || k.name == "backend" {
                k.revoked = true;
            }
        }
    }
    assert_eq!(parse_yaml(&env.ok(&["export"])), expected);

    // The gateway serves it within a second: the file's enabled models,
    // the revoked keys refused.
    loop {
        if models(&ci).as_deref()
            == Some(&["DeepSeek-V3".to_string(), "acme-support-8b".to_string()][..])
        {
            break;
        }
        assert!(
            rolled_back.elapsed() < Duration::from_secs(1),
            "not served within 1 s: {:?}",
            models(&ci)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(models(&notebook), None, "a revoked key stays revoked");
    assert_eq!(models(&backend), None, "a deleted key comes back revoked");
    let history = env.json(&["history"]);
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["summary"], format!("rollback to revision {first}"));
    assert_eq!(last["actor"]["name"], "alice");
}

#[test]
fn rollback_restores_the_file_on_sqlite() {
    rollback_restores_the_file(Env::new());
}

#[test]
fn rollback_restores_the_file_on_postgres() {
    let db = pg::db();
    rollback_restores_the_file(Env::new().var("MAASCTL_STORE", &db.url()));
}

/// `diff` shows the declarative file's lines that changed.
#[test]
fn diff_shows_what_changed_as_the_file_declares_it() {
    let env = with_keys(Env::new());
    env.ok(&["workspace", "create", "acme", "--description", "first"]);
    env.ok(&["workspace", "edit", "acme", "--description", "second"]);
    env.ok(&["cluster", "add", "eu", "--entry", "https://eu.example"]);
    let d = env.ok(&["diff", "1", "3"]);
    assert!(d.starts_with("--- revision 1\n+++ revision 3\n"), "{d}");
    assert!(
        d.contains("-  description: first\n+  description: second\n"),
        "{d}"
    );
    assert!(
        d.contains("+- name: eu\n+  entry_address: https://eu.example\n"),
        "{d}"
    );
    assert_eq!(
        env.ok(&["diff", "3"]),
        "revisions 3 and 3 declare the same registry\n"
    );
    let e = env.fails(&["diff", "9"]);
    assert_eq!(
        e,
        "revision: there is no revision 9; the registry is at revision 3"
    );
}

/// A `read` token watches (lists, audit, explain, info says so) and is
/// refused every change with 403 and the reason; a revoked token fails at
/// once; tokens are managed with the CLI, locally or through the server.
#[test]
fn read_tokens_watch_and_are_refused_every_change() {
    let env = with_keys(Env::new());
    env.ok(&["apply", "-f", example().to_str().unwrap()]);
    let server = Server::start(env, &[]);
    let admin = server.client(&server.token);
    let made = admin.json(&["token", "create", "watcher", "--role", "read"]);
    let secret = made["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("maasadm_"));
    let text = server
        .env
        .ok(&["token", "create", "ops", "--role", "admin"]);
    assert!(
        text.starts_with("created admin token ops (admin)\nsecret: maasadm_"),
        "{text}"
    );
    let list = admin.ok(&["token", "list"]);
    assert!(
        list.contains("watcher  read") && list.contains("ops      admin"),
        "{list}"
    );
    assert!(!list.contains(&secret), "{list}");

    let reader = server.client(&secret);
    for read in [
        "model list",
        "workspace list",
        "key list",
        "export",
        "history",
        "audit",
        "diff 1",
        "rule explain --model DeepSeek-V3 --key ci",
    ] {
        reader.ok(&read.split(' ').collect::<Vec<_>>());
    }
    let example = example().display().to_string();
    let changes: Vec<Vec<&str>> = [
        "workspace create w",
        "workspace edit acme --description x",
        "workspace delete research",
        "key create --workspace acme --name k",
        "key revoke ci --workspace acme",
        "key delete backend --workspace acme",
        "market add M --provider p",
        "market publish GLM-4.5",
        "market unpublish Kimi-K2-Instruct",
        "market delete GLM-4.5",
        "cluster add c --entry https://c.example",
        "cluster edit cn-east --entry https://x.example",
        "cluster delete cn-east",
        "model create --name GLM-4.5 --model-id g --endpoint https://g.example",
        "model edit DeepSeek-V3 --model-id x",
        "model enable gpt-4o-mini",
        "model disable DeepSeek-V3",
        "model delete acme-support-8b",
        "rule add --model DeepSeek-V3 --workspace acme --limit 1 --duration 1",
        "rule edit 1 --limit 2",
        "rule delete 1",
        "rollback 1",
        "token create t --role read",
        "token revoke watcher",
        "token list",
    ]
    .iter()
    .map(|l| l.split(' ').collect())
    .chain([vec!["apply", "-f", example.as_str()]])
    .collect();
    let before = admin.json(&["history"]).as_array().unwrap().len();
    for args in &changes {
        let line = expect_one_line_error(args, reader.run(args), 1);
        assert!(
            line.starts_with(
                "role: the admin token 'watcher' has the read role, which changes nothing; "
            ) && line.ends_with(" needs a token with the admin role"),
            "{args:?}: {line}"
        );
    }
    assert_eq!(
        admin.json(&["history"]).as_array().unwrap().len(),
        before,
        "nothing changed"
    );

    // What a console attached with it needs to know.
    let info = curl(&server.admin, "/admin/v1/info", &secret);
    assert_eq!(
        info["caller"],
        serde_json::json!({"name": "watcher", "role": "read"})
    );
    let info = curl(&server.admin, "/admin/v1/info", &server.token);
    assert_eq!(
        info["caller"],
        serde_json::json!({"name": "bootstrap", "role": "admin"})
    );

    // An admin token changes things, recorded under its name.
    let ops = server.client(text.lines().nth(1).unwrap().trim_start_matches("secret: "));
    ops.ok(&["workspace", "create", "by-ops"]);
    let last = ops.json(&["audit", "--limit", "1"]);
    assert_eq!(
        last[0]["actor"],
        serde_json::json!({"kind": "token", "name": "ops"})
    );

    // Revoked: refused at once.
    admin.ok(&["token", "revoke", "watcher"]);
    let line = reader.fails(&["model", "list"]);
    assert!(
        line.contains("the admin token 'watcher' was revoked"),
        "{line}"
    );
    let trail = admin.json(&["audit", "--entity", "token/watcher"]);
    let summaries: Vec<&str> = trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        ["create-token watcher (read)", "revoke-token watcher"]
    );
}

fn curl(base: &str, path: &str, token: &str) -> Value {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-H",
            &format!("Authorization: Bearer {token}"),
            &format!("{base}{path}"),
        ])
        .output()
        .expect("curl runs");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// `rule explain` through `--server` asks the server's gateway.
#[test]
fn rule_explain_through_a_server_has_live_counts() {
    let env = with_keys(Env::new());
    env.ok(&["apply", "-f", example().to_str().unwrap()]);
    let server = Server::start(env, &[]);
    let remote = server.client(&server.token);
    let out = wait_for("live counts", PATIENCE, || {
        let out = remote.ok(&["rule", "explain", "--model", "DeepSeek-V3", "--key", "ci"]);
        out.starts_with("live counts from the gateway at")
            .then_some(out)
    });
    assert!(out.contains("model DeepSeek-V3 · key key_"), "{out}");
    // `serve`, `demo` run here only.
    let e = remote.fails(&["serve"]);
    assert!(
        e.starts_with("--server: maasctl serve runs here, not on a server"),
        "{e}"
    );
}
