//! The CLI as an operator's script drives it: every validation rule refused
//! with exit code 1 and one line `error: <field>: <problem>`, tables and
//! JSON, secrets shown once or masked, `apply -f` / `export`.

mod common;
#[path = "support/postgres.rs"]
mod pg;

use std::path::{Path, PathBuf};

use common::{Env, expect_one_line_error};
use maasctl::domain::manifest::Manifest;

const DEEPSEEK_KEY: &str = "sk-deepseek-test-key-0000000001";
const OPENAI_KEY: &str = "sk-openai-test-key-00000000002";

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/example.yaml")
}

/// The registry's revision, read from the store the binary uses.
fn revision(env: &Env) -> i64 {
    let store = maasctl::store::open(env.store_url(), env.data_dir()).expect("open store");
    store.revision().expect("revision") as i64
}

/// The same `maasctl`, on a new database of the tests' PostgreSQL server.
fn on_postgres(env: Env) -> (Env, pg::PgDb) {
    let db = pg::db();
    (env.var("MAASCTL_STORE", &db.url()), db)
}

/// Workspaces acme and beta with a key each, model DeepSeek-V3 (enabled)
/// with a rule on acme's key. Returns (env, acme key id, beta key id).
fn populated() -> (Env, String, String) {
    populated_in(Env::new())
}

/// [`populated`] on the store `env` uses.
fn populated_in(env: Env) -> (Env, String, String) {
    env.ok(&["workspace", "create", "acme"]);
    env.ok(&["workspace", "create", "beta"]);
    let a = env.json(&["key", "create", "--workspace", "acme", "--name", "bot"]);
    let b = env.json(&["key", "create", "--workspace", "beta", "--name", "bot"]);
    env.ok(&[
        "model",
        "create",
        "--name",
        "DeepSeek-V3",
        "--model-id",
        "deepseek-chat",
        "--endpoint",
        "https://api.deepseek.com",
    ]);
    env.ok(&["model", "enable", "DeepSeek-V3"]);
    env.ok(&[
        "rule",
        "add",
        "--model",
        "DeepSeek-V3",
        "--key",
        a["id"].as_str().unwrap(),
        "--workspace",
        "acme",
        "--limit",
        "10",
        "--duration",
        "60",
    ]);
    (
        env,
        a["id"].as_str().unwrap().into(),
        b["id"].as_str().unwrap().into(),
    )
}

/// `args` is refused with exactly `expected` (or a line starting with it)
/// and the store does not move.
#[track_caller]
fn refused(env: &Env, args: &[&str], expected: &str) {
    let before = revision(env);
    let line = env.fails(args);
    assert!(
        line.starts_with(expected),
        "maasctl {args:?}\n got: {line}\nwant: {expected}"
    );
    assert_eq!(revision(env), before, "a refused command changed the store");
}

mod validation {
    use super::*;

    const CREATE: [&str; 6] = [
        "model",
        "create",
        "--name",
        "Qwen2.5-72B-Instruct",
        "--model-id",
        "qwen",
    ];

    fn create(extra: &[&str]) -> Vec<String> {
        CREATE.iter().chain(extra).map(|s| s.to_string()).collect()
    }

    fn refused_create(env: &Env, extra: &[&str], expected: &str) {
        let args = create(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(env, &args, expected);
    }

    #[test]
    fn empty_and_duplicate_names() {
        let (env, _, _) = populated();
        refused(
            &env,
            &["workspace", "create", ""],
            "name: must not be empty",
        );
        refused(
            &env,
            &["cluster", "add", "", "--entry", "http://gw"],
            "name: must not be empty",
        );
        refused(
            &env,
            &["market", "add", "", "--provider", "x"],
            "name: must not be empty",
        );
        refused(
            &env,
            &["key", "create", "--workspace", "acme", "--name", ""],
            "name: must not be empty",
        );
        refused(
            &env,
            &[
                "model",
                "create",
                "--name",
                "",
                "--model-id",
                "x",
                "--endpoint",
                "http://x",
            ],
            "name: must not be empty",
        );
        refused(
            &env,
            &["workspace", "create", "acme"],
            "name: a workspace named 'acme' already exists",
        );
        refused(
            &env,
            &["cluster", "add", "local", "--entry", "http://gw"],
            "name: a cluster named 'local' already exists",
        );
        refused(
            &env,
            &["market", "add", "DeepSeek-V3", "--provider", "x"],
            "name: a marketplace entry named 'DeepSeek-V3' already exists",
        );
        refused(
            &env,
            &["key", "create", "--workspace", "acme", "--name", "bot"],
            "name: workspace 'acme' already has a key named 'bot'",
        );
        refused(
            &env,
            &[
                "model",
                "create",
                "--name",
                "DeepSeek-V3",
                "--model-id",
                "x",
                "--endpoint",
                "http://x",
            ],
            "name: a model named 'DeepSeek-V3' already exists",
        );
    }

    /// Every text field has a limit (docs/limits.md), refused with the
    /// field and the limit; at the limit is fine.
    #[test]
    fn text_fields_have_limits() {
        let (env, _, _) = populated();
        let long = "d".repeat(2000);
        let over = "description: 2000 characters is over the limit of 1024";
        refused(
            &env,
            &["workspace", "create", "ops", "--description", &long],
            over,
        );
        refused(
            &env,
            &["workspace", "edit", "acme", "--description", &long],
            over,
        );
        refused(
            &env,
            &[
                "market",
                "add",
                "New",
                "--provider",
                "x",
                "--description",
                &long,
            ],
            over,
        );
        let name = "k".repeat(65);
        refused(
            &env,
            &["key", "create", "--workspace", "acme", "--name", &name],
            "name: 65 characters is over the limit of 64",
        );
        let tags = (0..17)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        refused_create(
            &env,
            &["--endpoint", "http://x", "--tag", &tags],
            "tags: 17 tags is over the limit of 16",
        );
        let url = format!("http://x/{}", "a".repeat(2100));
        refused_create(
            &env,
            &["--endpoint", &url],
            "endpoints[0].url: 2109 characters is over the limit of 2048",
        );
        let at_limit = "d".repeat(1024);
        env.ok(&["workspace", "create", "ops", "--description", &at_limit]);
        let listed = env.json(&["workspace", "list"]);
        let ops = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "ops");
        assert_eq!(ops.unwrap()["description"], at_limit.as_str());
    }

    #[test]
    fn endpoint_urls() {
        let env = Env::new();
        refused_create(
            &env,
            &["--endpoint", "not a url"],
            "endpoints[0].url: 'not a url' is not a valid URL",
        );
        refused_create(
            &env,
            &[
                "--endpoint",
                "https://ok.example",
                "--endpoint",
                "ftp://files.example",
            ],
            "endpoints[1].url: scheme 'ftp' is not supported; use http or https",
        );
        refused_create(&env, &[], "endpoints: at least one endpoint is required");
        refused_create(
            &env,
            &["--endpoint", "http://x,colour=red"],
            "endpoints[0]: unknown option 'colour'",
        );
    }

    #[test]
    fn weights() {
        let env = Env::new();
        refused_create(
            &env,
            &[
                "--policy",
                "weighted",
                "--endpoint",
                "http://a,weight=60",
                "--endpoint",
                "http://b,weight=30",
            ],
            "weight: endpoint weights sum to 90; under the weighted policy they must sum to exactly 100",
        );
        refused_create(
            &env,
            &[
                "--policy",
                "weighted",
                "--endpoint",
                "http://a,weight=100",
                "--endpoint",
                "http://b",
            ],
            "endpoints[1].weight: is required under the weighted policy",
        );
        refused_create(
            &env,
            &["--endpoint", "http://a,weight=50"],
            "endpoints[0].weight: weights are only used by the weighted policy (policy is round-robin)",
        );
        refused_create(
            &env,
            &["--endpoint", "http://a,weight=lots"],
            "endpoints[0].weight: 'lots' is not a whole number",
        );
        env.ok(&create(&[
            "--policy",
            "weighted",
            "--endpoint",
            "http://a,weight=70",
            "--endpoint",
            "http://b,weight=30",
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    }

    #[test]
    fn rules() {
        let (env, acme_key, beta_key) = populated();
        let add = |extra: &[&str]| -> Vec<String> {
            ["rule", "add", "--model", "DeepSeek-V3"]
                .iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect()
        };
        let check = |extra: &[&str], expected: &str| {
            let args = add(extra);
            refused(
                &env,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
                expected,
            );
        };
        check(
            &["--workspace", "acme", "--limit", "0", "--duration", "60"],
            "limit: 0 is less than 1",
        );
        check(
            &["--workspace", "acme", "--limit", "5", "--duration", "0"],
            "duration: 0 is less than 1 second",
        );
        check(
            &["--workspace", "nope", "--limit", "5", "--duration", "60"],
            "workspace: no workspace named 'nope'",
        );
        check(
            &[
                "--workspace",
                "acme",
                "--key",
                "key_zzzz9999",
                "--limit",
                "5",
                "--duration",
                "60",
            ],
            "key: no API key with id 'key_zzzz9999'",
        );
        check(
            &[
                "--workspace",
                "acme",
                "--key",
                &beta_key,
                "--limit",
                "5",
                "--duration",
                "60",
            ],
            &format!("key: key '{beta_key}' belongs to workspace 'beta', not 'acme'"),
        );
        check(
            &[
                "--target",
                "api-key",
                "--workspace",
                "acme",
                "--limit",
                "5",
                "--duration",
                "60",
            ],
            "key: is required when the target is api-key",
        );
        refused(
            &env,
            &[
                "rule",
                "add",
                "--model",
                "Nope",
                "--workspace",
                "acme",
                "--limit",
                "1",
                "--duration",
                "1",
            ],
            "model: no model named 'Nope'",
        );
        refused(
            &env,
            &["rule", "edit", "1", "--limit", "0"],
            "limit: 0 is less than 1",
        );
        refused(&env, &["rule", "delete", "99"], "rule: no rule #99");
        // A key named without --workspace brings its own; an ambiguous name is refused.
        refused(
            &env,
            &[
                "rule",
                "add",
                "--model",
                "DeepSeek-V3",
                "--key",
                "bot",
                "--limit",
                "1",
                "--duration",
                "1",
            ],
            "key: 'bot' names keys in several workspaces",
        );
        let rule = env.json(&[
            "rule",
            "add",
            "--model",
            "DeepSeek-V3",
            "--key",
            &acme_key,
            "--limit",
            "1",
            "--duration",
            "1",
        ]);
        assert_eq!(
            (rule["workspace"].as_str(), rule["target"].as_str()),
            (Some("acme"), Some("api-key"))
        );
    }

    #[test]
    fn enabling_needs_a_published_entry() {
        enabling_needs_a_published_entry_in(&Env::new());
    }

    pub fn enabling_needs_a_published_entry_in(env: &Env) {
        env.ok(&[
            "model",
            "create",
            "--name",
            "GLM-4.5",
            "--model-id",
            "glm-4.5",
            "--endpoint",
            "https://open.bigmodel.cn/api/paas/v4",
        ]);
        refused(
            env,
            &["model", "enable", "GLM-4.5"],
            "status: model 'GLM-4.5' cannot be enabled: marketplace entry 'GLM-4.5' is not published; publish it first (maasctl market publish GLM-4.5)",
        );
        env.ok(&["market", "publish", "GLM-4.5"]);
        env.ok(&["model", "enable", "GLM-4.5"]);
        refused(
            env,
            &["market", "unpublish", "GLM-4.5"],
            "published: model 'GLM-4.5' is enabled and needs this entry published; disable the model first",
        );
        refused(
            env,
            &[
                "model",
                "create",
                "--name",
                "Not-In-Market",
                "--model-id",
                "x",
                "--endpoint",
                "http://x",
            ],
            "name: 'Not-In-Market' is not in the marketplace",
        );
        refused(
            env,
            &[
                "model",
                "create",
                "--name",
                "DeepSeek-R1",
                "--model-id",
                "x",
                "--endpoint",
                "http://x",
                "--cluster",
                "mars",
            ],
            "cluster: no cluster named 'mars'",
        );
    }

    #[test]
    fn deleting_what_rules_use_says_which_rules() {
        let (env, acme_key, _) = populated();
        refused(
            &env,
            &["workspace", "delete", "acme"],
            &format!(
                "name: workspace 'acme' is used by model DeepSeek-V3 rule #1 (api-key {acme_key}: 10 per 60s); delete those rules first"
            ),
        );
        refused(
            &env,
            &["key", "delete", &acme_key],
            &format!(
                "key: key '{acme_key}' is used by model DeepSeek-V3 rule #1 (api-key {acme_key}: 10 per 60s); delete those rules first"
            ),
        );
        refused(
            &env,
            &["workspace", "delete", "beta"],
            "name: workspace 'beta' still has active keys",
        );
        refused(
            &env,
            &["cluster", "delete", "local"],
            "name: 'local' is the default cluster; it cannot be deleted",
        );
        // Once the rule is gone, both go.
        env.ok(&["rule", "delete", "1"]);
        env.ok(&["key", "delete", &acme_key]);
        env.ok(&["workspace", "delete", "acme"]);
    }

    #[test]
    fn fallbacks_are_set_shown_and_guard_their_models() {
        let (env, _, _) = populated();
        env.ok(&["market", "publish", "GLM-4.5"]);
        refused(
            &env,
            &[
                "model",
                "create",
                "--name",
                "GLM-4.5",
                "--model-id",
                "glm",
                "--endpoint",
                "https://x.example",
                "--fallback",
                "Nope",
            ],
            "fallbacks: 'Nope' is not a model",
        );
        env.ok(&[
            "model",
            "create",
            "--name",
            "GLM-4.5",
            "--model-id",
            "glm",
            "--endpoint",
            "https://x.example",
            "--fallback",
            "DeepSeek-V3",
        ]);
        let v = env.json(&["model", "show", "GLM-4.5"]);
        assert_eq!(v["fallbacks"], serde_json::json!(["DeepSeek-V3"]));
        assert!(
            env.ok(&["model", "show", "GLM-4.5"])
                .contains("fallbacks:    DeepSeek-V3")
        );
        refused(
            &env,
            &["model", "edit", "DeepSeek-V3", "--fallback", "GLM-4.5"],
            "fallbacks: 'GLM-4.5' would make a cycle: DeepSeek-V3 -> GLM-4.5 -> DeepSeek-V3",
        );
        refused(
            &env,
            &["model", "delete", "DeepSeek-V3"],
            "fallbacks: model 'DeepSeek-V3' cannot be deleted: it is a fallback of GLM-4.5",
        );
        env.ok(&["model", "edit", "GLM-4.5", "--fallback", ""]);
        assert_eq!(
            env.json(&["model", "show", "GLM-4.5"])["fallbacks"],
            serde_json::json!([])
        );
        env.ok(&["model", "delete", "DeepSeek-V3"]);
    }

    #[test]
    fn a_completion_cap_is_set_shown_exported_and_cleared() {
        let (env, _, _) = populated();
        let args = ["model", "edit", "DeepSeek-V3", "--completion-cap", "0"];
        let line = expect_one_line_error(&args, env.run(&args), 2);
        assert!(
            line.starts_with("invalid value '0' for '--completion-cap <TOKENS>': '0' is not a completion cap: use a token count from 1 to 1000000, or default (4096)"),
            "{line}"
        );
        assert!(env.json(&["model", "show", "DeepSeek-V3"])["completion_cap"].is_null());
        env.ok(&["model", "edit", "DeepSeek-V3", "--completion-cap", "100"]);
        assert_eq!(
            env.json(&["model", "show", "DeepSeek-V3"])["completion_cap"],
            100
        );
        assert!(
            env.ok(&["model", "show", "DeepSeek-V3"])
                .contains("compl. cap:   100\n")
        );
        let exported = env.ok(&["export"]);
        assert!(exported.contains("completion_cap: 100"), "{exported}");
        // A file out of range is refused naming the field.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.yaml");
        std::fs::write(
            &file,
            exported.replace("completion_cap: 100", "completion_cap: 2000000"),
        )
        .unwrap();
        let line = env.fails(&["apply", "-f", file.to_str().unwrap()]);
        assert!(
            line.contains(
                "completion_cap: 2000000 is out of range: a completion cap is 1 to 1000000 tokens"
            ),
            "{line}"
        );
        env.ok(&[
            "model",
            "edit",
            "DeepSeek-V3",
            "--completion-cap",
            "default",
        ]);
        assert!(env.json(&["model", "show", "DeepSeek-V3"])["completion_cap"].is_null());
        assert!(!env.ok(&["export"]).contains("completion_cap"));
    }

    #[test]
    fn command_line_mistakes_are_one_line_too() {
        let env = Env::new();
        let args = ["model", "create", "--nmae", "x"];
        let line = expect_one_line_error(&args, env.run(&args), 2);
        assert!(
            line.starts_with("unexpected argument '--nmae' found"),
            "{line}"
        );
        let args = ["rule", "delete", "abc"];
        let line = expect_one_line_error(&args, env.run(&args), 2);
        assert!(line.contains("invalid value 'abc'"), "{line}");
        let line = env.fails(&["model", "show", "Nope"]);
        assert_eq!(line, "model: no model named 'Nope'");
    }
}

mod output {
    use super::*;

    #[test]
    fn model_list_shows_the_columns_operators_need() {
        model_list_shows_the_columns_operators_need_in(Env::new());
    }

    pub fn model_list_shows_the_columns_operators_need_in(env: Env) {
        let (env, _, _) = populated_in(env);
        env.ok(&[
            "cluster",
            "add",
            "east",
            "--entry",
            "https://gw.east.example.com",
        ]);
        env.ok(&["market", "publish", "GLM-4.5"]);
        env.ok(&[
            "model",
            "create",
            "--name",
            "GLM-4.5",
            "--model-id",
            "glm-4.5",
            "--cluster",
            "east",
            "--endpoint",
            "https://open.bigmodel.cn/api/paas/v4",
            "--tag",
            "chat,agent",
        ]);
        let table = env.ok(&["model", "list"]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>().join(" "),
            "NAME MODEL ID TAGS STATUS ACCESS PATH GATEWAY"
        );
        let cells = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        assert_eq!(
            cells(lines[1]),
            [
                "DeepSeek-V3",
                "deepseek-chat",
                "-",
                "enabled",
                "http://127.0.0.1:8080/v1",
                "offline"
            ]
        );
        assert_eq!(
            cells(lines[2]),
            [
                "GLM-4.5",
                "glm-4.5",
                "chat,agent",
                "disabled",
                "https://gw.east.example.com/v1",
                "off"
            ]
        );
        // Columns line up.
        let col = lines[0].find("STATUS").unwrap();
        assert!(
            lines[1..]
                .iter()
                .all(|l| l[col..].starts_with("enabled") || l[col..].starts_with("disabled"))
        );

        let json = env.json(&["model", "list"]);
        assert_eq!(json[1]["access_path"], "https://gw.east.example.com/v1");
        assert_eq!(json[0]["gateway_status"], "offline");
        assert_eq!(
            env.json(&["model", "list", "--tag", "agent"])
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_reader_that_goes_away_is_not_an_error() {
        let env = Env::new();
        let mut child = env
            .cmd()
            .args(["market", "list"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // like `| head -0`
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn platform_key_secrets_are_shown_once() {
        let env = Env::new().var("BENCH_SECRET", BENCH_SECRET);
        let stored = || std::fs::read(env.db()).unwrap();
        platform_key_secrets_are_shown_once_in(&env, stored);
    }

    pub const BENCH_SECRET: &str = "sk-benchmark-imported-secret-0001";

    /// `env` has `BENCH_SECRET` set; `stored` returns every byte the store keeps.
    pub fn platform_key_secrets_are_shown_once_in(env: &Env, stored: impl Fn() -> Vec<u8>) {
        env.ok(&["workspace", "create", "acme"]);
        let out = env.ok(&["key", "create", "--workspace", "acme", "--name", "backend"]);
        let secret = out
            .lines()
            .find_map(|l| l.strip_prefix("secret: "))
            .expect("the secret is printed")
            .to_string();
        assert!(secret.starts_with("sk-") && secret.len() >= 46, "{secret}");
        assert!(out.contains("cannot be shown again"));
        let hint = &secret[secret.len() - 4..];
        let list = env.ok(&["key", "list"]);
        assert!(
            list.contains(&format!("sk-…{hint}")) && !list.contains(&secret),
            "{list}"
        );
        assert!(!env.ok(&["key", "list", "-o", "json"]).contains(&secret));
        // Only the hash is stored.
        assert!(
            !stored()
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        );

        let imported = env.json(&[
            "key",
            "create",
            "--workspace",
            "acme",
            "--name",
            "bench",
            "--secret-from-env",
            "BENCH_SECRET",
        ]);
        assert!(
            imported.get("secret").is_none(),
            "an imported secret is not echoed"
        );
        assert_eq!(imported["secret_hint"], "sk-…0001");
        refused(
            env,
            &[
                "key",
                "create",
                "--workspace",
                "acme",
                "--name",
                "again",
                "--secret-from-env",
                "BENCH_SECRET",
            ],
            "secret: another key already has this secret",
        );
        refused(
            env,
            &[
                "key",
                "create",
                "--workspace",
                "acme",
                "--name",
                "x",
                "--secret-from-env",
                "UNSET_VARIABLE_XYZ",
            ],
            "secret: environment variable UNSET_VARIABLE_XYZ is not set",
        );
        let id = imported["id"].as_str().unwrap();
        let revoked = env.json(&["key", "revoke", id]);
        assert!(revoked["revoked"].is_i64());
        assert!(env.ok(&["key", "list"]).contains("revoked"));
    }

    #[test]
    fn upstream_keys_are_masked_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("openai.key");
        std::fs::write(&key_file, format!("{OPENAI_KEY}\n")).unwrap();
        let env = Env::new().var("DEEPSEEK_API_KEY", DEEPSEEK_KEY);
        let file_ref = format!("https://api.openai.com/v1,key=file:{}", key_file.display());
        env.ok(&[
            "model",
            "create",
            "--name",
            "DeepSeek-V3",
            "--model-id",
            "deepseek-chat",
            "--endpoint",
            "https://api.deepseek.com,key=env:DEEPSEEK_API_KEY",
            "--endpoint",
            &file_ref,
        ]);
        let stdin_key = "sk-from-standard-input-000003";
        let out = env.run_with_stdin(
            &[
                "model",
                "create",
                "--name",
                "gpt-4o",
                "--model-id",
                "gpt-4o",
                "--endpoint",
                "https://api.openai.com/v1,key=stdin",
            ],
            &format!("{stdin_key}\n"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut shown = String::new();
        for args in [
            &["model", "list"][..],
            &["model", "list", "-o", "json"],
            &["model", "show", "DeepSeek-V3"],
            &["model", "show", "DeepSeek-V3", "-o", "json"],
            &["model", "show", "gpt-4o", "-o", "json"],
            &["export"],
        ] {
            shown += &env.ok(args);
        }
        for secret in [DEEPSEEK_KEY, OPENAI_KEY, stdin_key] {
            assert!(!shown.contains(secret), "{secret} shown");
        }
        let v = env.json(&["model", "show", "DeepSeek-V3"]);
        assert_eq!(v["endpoints"][0]["api_key"], "sk-…0001");
        assert_eq!(v["endpoints"][0]["api_key_ref"], "env:DEEPSEEK_API_KEY");
        assert_eq!(v["endpoints"][1]["api_key"], "sk-…0002");
        assert_eq!(
            env.json(&["model", "show", "gpt-4o"])["endpoints"][0]["api_key"],
            "sk-…0003"
        );

        // Editing weights without key= keeps the keys; key=none removes one.
        env.ok(&[
            "model",
            "edit",
            "DeepSeek-V3",
            "--policy",
            "weighted",
            "--endpoint",
            "https://api.deepseek.com,weight=80",
            "--endpoint",
            "https://api.openai.com/v1,weight=20,key=none",
        ]);
        let v = env.json(&["model", "show", "DeepSeek-V3"]);
        assert_eq!(v["endpoints"][0]["api_key"], "sk-…0001");
        assert_eq!(v["endpoints"][0]["weight"], 80);
        assert!(v["endpoints"][1]["api_key"].is_null());
        // Leaving the weighted policy drops the weights.
        env.ok(&["model", "edit", "DeepSeek-V3", "--policy", "random"]);
        assert!(env.json(&["model", "show", "DeepSeek-V3"])["endpoints"][0]["weight"].is_null());
        refused(
            &env,
            &[
                "model",
                "create",
                "--name",
                "o3-mini",
                "--model-id",
                "o3-mini",
                "--endpoint",
                "https://api.openai.com/v1,key=env:UNSET_VARIABLE_XYZ",
            ],
            "endpoints[0].api_key: environment variable UNSET_VARIABLE_XYZ is not set",
        );
    }

    #[test]
    fn every_entity_has_list_and_edit_commands() {
        let (env, _, _) = populated();
        env.ok(&[
            "cluster",
            "add",
            "east",
            "--entry",
            "https://gw.east.example.com",
        ]);
        env.ok(&[
            "cluster",
            "edit",
            "east",
            "--entry",
            "https://gw2.east.example.com",
        ]);
        let clusters = env.json(&["cluster", "list"]);
        assert_eq!(clusters[0]["name"], "east");
        assert_eq!(
            clusters[0]["access_path"],
            "https://gw2.east.example.com/v1"
        );
        env.ok(&["cluster", "edit", "east", "--name", "east-2"]);
        env.ok(&["cluster", "delete", "east-2"]);
        env.ok(&["workspace", "edit", "acme", "--description", "Acme Corp"]);
        assert_eq!(
            env.json(&["workspace", "list"])[0]["description"],
            "Acme Corp"
        );
        env.ok(&[
            "market",
            "add",
            "Own-7B",
            "--provider",
            "Acme",
            "--tag",
            "chat",
            "--publish",
        ]);
        let market = env.json(&["market", "list", "--published"]);
        assert!(
            market
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "Own-7B")
        );
        env.ok(&["market", "delete", "Own-7B"]);
        env.ok(&["rule", "edit", "1", "--limit", "20", "--duration", "30"]);
        let rules = env.json(&["rule", "list", "--model", "DeepSeek-V3"]);
        assert_eq!(
            (rules[0]["id"].as_u64(), rules[0]["limit"].as_u64()),
            (Some(1), Some(20))
        );
        env.ok(&["rule", "edit", "1", "--target", "workspace"]);
        assert!(env.json(&["rule", "list"])[0]["key"].is_null());
        env.ok(&[
            "model",
            "edit",
            "DeepSeek-V3",
            "--model-id",
            "deepseek-v3",
            "--tag",
            "chat",
        ]);
        env.ok(&["model", "disable", "DeepSeek-V3"]);
        let m = env.json(&["model", "show", "DeepSeek-V3"]);
        assert_eq!(
            (m["model_id"].as_str(), m["status"].as_str()),
            (Some("deepseek-v3"), Some("disabled"))
        );
        env.ok(&["model", "delete", "DeepSeek-V3"]);
        assert_eq!(env.json(&["model", "list"]), serde_json::json!([]));
    }
}

mod declarative {
    use super::*;

    fn with_keys() -> Env {
        with_keys_in(Env::new())
    }

    pub fn with_keys_in(env: Env) -> Env {
        env.var("DEEPSEEK_API_KEY", DEEPSEEK_KEY)
            .var("OPENAI_API_KEY", OPENAI_KEY)
    }

    fn parse_yaml(s: &str) -> Manifest {
        serde_yaml_ng::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    fn apply(env: &Env, file: &Path) -> serde_json::Value {
        env.json(&["apply", "-f", file.to_str().unwrap()])
    }

    #[test]
    fn apply_example_then_export_gives_it_back_and_twice_changes_nothing() {
        apply_example_then_export_gives_it_back_and_twice_changes_nothing_in(&with_keys());
    }

    pub fn apply_example_then_export_gives_it_back_and_twice_changes_nothing_in(env: &Env) {
        let first = apply(env, &example());
        assert_eq!(first["changed"], true);
        let report = first["report"].as_array().unwrap();
        let action = |name: &str| {
            report
                .iter()
                .find(|r| r["name"] == name)
                .map(|r| r["action"].clone())
        };
        assert_eq!(
            action("Kimi-K2-Instruct").unwrap(),
            "changed",
            "a catalog entry gets published"
        );
        assert_eq!(action("cn-east").unwrap(), "created");
        assert_eq!(action("acme/ci").unwrap(), "created");
        assert_eq!(action("DeepSeek-V3").unwrap(), "created");
        assert_eq!(
            first["secrets"].as_array().unwrap().len(),
            3,
            "one per new key, shown once"
        );
        let rev = revision(env);

        let exported = env.ok(&["export"]);
        let original = std::fs::read_to_string(example()).unwrap();
        assert_eq!(parse_yaml(&exported), parse_yaml(&original));
        assert!(!exported.contains(DEEPSEEK_KEY) && !exported.contains(OPENAI_KEY));

        let second = apply(env, &example());
        assert_eq!(second["changed"], false);
        assert!(
            second["report"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["action"] == "unchanged")
        );
        assert!(second["secrets"].as_array().unwrap().is_empty());
        assert_eq!(second["revision"].as_i64(), Some(rev));
        assert_eq!(revision(env), rev);

        // Re-applying where the referenced variables are not set keeps the stored keys.
        let out = env
            .cmd()
            .env_remove("DEEPSEEK_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .args(["apply", "-f", example().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(revision(env), rev);
        let m = env.json(&["model", "show", "DeepSeek-V3"]);
        assert_eq!(m["endpoints"][0]["api_key"], "sk-…0001");
        assert_eq!(m["gateway_status"], "offline");
    }

    #[test]
    fn toml_and_json_exports_apply_to_a_new_store() {
        let env = with_keys();
        apply(&env, &example());
        let dir = tempfile::tempdir().unwrap();
        for format in ["toml", "json"] {
            let file = dir.path().join(format!("registry.{format}"));
            std::fs::write(&file, env.ok(&["export", "--format", format])).unwrap();
            let fresh = with_keys();
            apply(&fresh, &file);
            assert_eq!(
                parse_yaml(&fresh.ok(&["export"])),
                parse_yaml(&env.ok(&["export"])),
                "{format}"
            );
        }
        // --all includes the default catalog and cluster.
        let all = parse_yaml(&env.ok(&["export", "--all"]));
        assert!(all.market.len() > 10 && all.clusters.iter().any(|c| c.name == "local"));
    }

    #[test]
    fn rules_are_updated_in_place_and_the_report_says_what_changed() {
        let env = with_keys();
        apply(&env, &example());
        let ids = |env: &Env| -> Vec<u64> {
            env.json(&["rule", "list", "--model", "DeepSeek-V3"])
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_u64().unwrap())
                .collect()
        };
        let before = ids(&env);
        let dir = tempfile::tempdir().unwrap();
        let edited = dir.path().join("edited.yaml");
        let text = std::fs::read_to_string(example()).unwrap();
        std::fs::write(
            &edited,
            text.replacen("limit: 60", "limit: 30", 1)
                .replace("enabled: false", "enabled: true"),
        )
        .unwrap();
        let out = env.ok(&["apply", "-f", edited.to_str().unwrap()]);
        let line = |name: &str| {
            out.lines()
                .find(|l| l.split_whitespace().nth(1) == Some(name))
                .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        assert_eq!(line("DeepSeek-V3"), "changed rules: 1 changed", "{out}");
        assert_eq!(line("gpt-4o-mini"), "changed enabled", "{out}");
        assert_eq!(line("acme"), "unchanged", "{out}");
        assert!(out.contains("applied at revision"), "{out}");
        assert_eq!(ids(&env), before);
        assert_eq!(
            env.json(&["rule", "list", "--model", "DeepSeek-V3"])[0]["limit"],
            30
        );
    }

    #[test]
    fn a_bad_file_changes_nothing_and_names_the_place() {
        let env = with_keys();
        apply(&env, &example());
        let rev = revision(&env);
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(example()).unwrap();
        let bad = |name: &str, content: String, expected: &str| {
            let file = dir.path().join(name);
            std::fs::write(&file, content).unwrap();
            let args = ["apply", "-f", file.to_str().unwrap()];
            let line = env.fails(&args);
            assert!(line.contains(expected), "{name}: {line}");
            assert_eq!(revision(&env), rev, "{name}");
        };
        bad(
            "scheme.yaml",
            text.replace("http://vllm-b.internal:8000/v1", "ftp://vllm-b.internal"),
            "models[1].endpoints[1].url: scheme 'ftp' is not supported",
        );
        bad(
            "limit.yaml",
            text.replace("limit: 20", "limit: 0"),
            "models[1].rules[0].limit: 0 is less than 1",
        );
        bad(
            "typo.yaml",
            text.replace("model_id: gpt-4o-mini", "modelid: gpt-4o-mini"),
            "unknown field `modelid`",
        );
        bad(
            "syntax.toml",
            "[[models]\nname = 1".into(),
            "syntax.toml: line 1:",
        );
        // An unknown key is refused with its place: the path and line in
        // YAML, the line in TOML.
        bad(
            "unknown.yaml",
            text.replace(
                "      - url: http://vllm-b.internal:8000/v1\n",
                "      - url: http://vllm-b.internal:8000/v1\n        weigth: 3\n",
            ),
            "models[1].endpoints[1]: unknown field `weigth`, expected one of `url`",
        );
        bad(
            "unknown_line.yaml",
            text.replace(
                "      - url: http://vllm-b.internal:8000/v1\n",
                "      - url: http://vllm-b.internal:8000/v1\n        weigth: 3\n",
            ),
            "at line 77 column 9",
        );
        bad(
            "unknown.toml",
            "[[workspaces]]\nname = \"ops\"\ndescripton = \"x\"\n".into(),
            "unknown.toml: line 3: unknown field `descripton`, expected one of `name`, `description`, `keys`",
        );
        // Limits hold in files as everywhere (docs/limits.md).
        bad(
            "long.yaml",
            format!(
                "workspaces:\n  - name: ops\n    description: {}\n",
                "d".repeat(5000)
            ),
            "workspaces[0].description: 5000 characters is over the limit of 1024",
        );
        bad(
            "long_model_id.yaml",
            text.replace(
                "model_id: gpt-4o-mini",
                &format!("model_id: {}", "m".repeat(300)),
            ),
            "models[2].model_id: 300 characters is over the limit of 256",
        );
        bad("x.txt", text.clone(), "file: ");
        let missing = dir.path().join("missing.yaml");
        let line = env.fails(&["apply", "-f", missing.to_str().unwrap()]);
        assert!(line.starts_with("file: cannot read "), "{line}");
    }

    #[test]
    fn dry_run_reports_and_changes_nothing() {
        let env = with_keys();
        let rev = revision(&env);
        let out = env.ok(&["apply", "-f", example().to_str().unwrap(), "--dry-run"]);
        assert!(out.contains("dry run: would apply"), "{out}");
        assert!(
            !out.contains("sk-"),
            "no secret for keys not created: {out}"
        );
        assert_eq!(revision(&env), rev);
        assert!(
            env.json(&["workspace", "list"])
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn keys_can_be_imported_from_the_environment() {
        let env = with_keys().var("CI_SECRET", "sk-ci-secret-from-the-environment-01");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.yaml");
        std::fs::write(&file, "workspaces:\n  - name: bench\n    keys:\n      - name: load\n        secret: env:CI_SECRET\n").unwrap();
        let out = apply(&env, &file);
        assert!(
            out["secrets"].as_array().unwrap().is_empty(),
            "imported secrets are not printed"
        );
        assert_eq!(env.json(&["key", "list"])[0]["secret_hint"], "sk-…t-01");
        // Applying again is a no-op; a different secret for the same key is refused.
        assert_eq!(apply(&env, &file)["changed"], false);
        let other = env
            .cmd()
            .env("CI_SECRET", "sk-some-other-secret-0000000002")
            .args(["apply", "-f", file.to_str().unwrap()])
            .output()
            .unwrap();
        let line = expect_one_line_error(&["apply"], other, 1);
        assert!(
            line.starts_with("workspaces[0].keys[0].secret: key 'bench/load'"),
            "{line}"
        );
    }

    /// Token rules: `rule add --unit tokens`, shown in `rule list`, exported
    /// with `unit: tokens` and applied back as they were; a bad unit is
    /// refused naming the option (CLI) or the field (file).
    #[test]
    fn token_rules_round_trip_through_the_cli_export_and_apply() {
        let (env, _, _) = populated();
        let added = env.json(&[
            "rule",
            "add",
            "--model",
            "DeepSeek-V3",
            "--workspace",
            "acme",
            "--limit",
            "90000",
            "--duration",
            "60",
            "--unit",
            "tokens",
        ]);
        assert_eq!(
            (added["unit"].as_str(), added["limit"].as_u64()),
            (Some("tokens"), Some(90000))
        );
        let id = added["id"].as_u64().unwrap();
        let listed = env.ok(&["rule", "list", "--model", "DeepSeek-V3"]);
        assert!(listed.contains("90000 tokens"), "{listed}");
        // The rule populated() made counts requests, and says so.
        assert_eq!(env.json(&["rule", "list"])[0]["unit"], "requests");
        let rev = revision(&env);
        let args = [
            "rule",
            "add",
            "--model",
            "DeepSeek-V3",
            "--workspace",
            "acme",
            "--limit",
            "5",
            "--duration",
            "60",
            "--unit",
            "bytes",
        ];
        let line = common::expect_one_line_error(&args, env.run(&args), 2);
        assert_eq!(revision(&env), rev);
        assert!(
            line.contains("--unit")
                && line.contains("'bytes' is not a rule unit; use requests or tokens"),
            "{line}"
        );
        // Export says `unit: tokens` for the token rule only; applying the
        // export to a fresh store gives the same rules back.
        let exported = env.ok(&["export"]);
        assert_eq!(exported.matches("unit: tokens").count(), 1, "{exported}");
        assert!(!exported.contains("unit: requests"), "{exported}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.yaml");
        std::fs::write(&file, &exported).unwrap();
        let fresh = Env::new();
        fresh.ok(&["apply", "-f", file.to_str().unwrap()]);
        assert_eq!(parse_yaml(&fresh.ok(&["export"])), parse_yaml(&exported));
        let rules = fresh.json(&["rule", "list", "--model", "DeepSeek-V3"]);
        let units: Vec<&str> = rules
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["unit"].as_str().unwrap())
            .collect();
        assert_eq!(units, ["requests", "tokens"]);
        // `rule explain` (no gateway running: the registry's rules) says
        // what each rule counts.
        let (env2, acme_key, _) = populated();
        env2.ok(&[
            "rule",
            "add",
            "--model",
            "DeepSeek-V3",
            "--workspace",
            "acme",
            "--limit",
            "90000",
            "--duration",
            "60",
            "--unit",
            "tokens",
        ]);
        let out = env2.ok(&[
            "rule",
            "explain",
            "--model",
            "DeepSeek-V3",
            "--key",
            &acme_key,
        ]);
        let row = |id: &str| {
            out.lines()
                .find(|l| l.starts_with(id))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(
            row("#2 ").contains("90000 tokens") && !row("#1 ").contains("tokens"),
            "{out}"
        );
        let v = env2.json(&[
            "rule",
            "explain",
            "--model",
            "DeepSeek-V3",
            "--key",
            &acme_key,
        ]);
        assert_eq!(v["rules"][1]["unit"], "tokens", "{v}");
        // Edit the unit back: the same rule, now counting requests.
        env.ok(&["rule", "edit", &id.to_string(), "--unit", "requests"]);
        assert_eq!(env.json(&["rule", "list"])[1]["unit"], "requests");
        // A file with a bad unit names the field.
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, exported.replace("unit: tokens", "unit: words")).unwrap();
        let line = env.fails(&["apply", "-f", bad.to_str().unwrap()]);
        assert!(line.contains("unit") && line.contains("words"), "{line}");
    }
}

/// The main flows again with `--store postgres://…` (via `MAASCTL_STORE`):
/// create, list, enable (and its refusals), rules, keys, apply, export.
mod postgres {
    use super::*;

    #[test]
    fn model_list_shows_the_columns_operators_need() {
        let (env, _db) = on_postgres(Env::new());
        output::model_list_shows_the_columns_operators_need_in(env);
    }

    #[test]
    fn enabling_needs_a_published_entry() {
        let (env, _db) = on_postgres(Env::new());
        validation::enabling_needs_a_published_entry_in(&env);
    }

    #[test]
    fn platform_key_secrets_are_shown_once() {
        let (env, db) = on_postgres(Env::new().var("BENCH_SECRET", output::BENCH_SECRET));
        output::platform_key_secrets_are_shown_once_in(&env, || db.dump());
    }

    #[test]
    fn apply_example_then_export_gives_it_back_and_twice_changes_nothing() {
        let (env, _db) = on_postgres(declarative::with_keys_in(Env::new()));
        declarative::apply_example_then_export_gives_it_back_and_twice_changes_nothing_in(&env);
    }

    /// `--store` on the command line works as `MAASCTL_STORE` does.
    #[test]
    fn the_store_flag_selects_postgres() {
        let db = pg::db();
        let env = Env::new();
        let url = db.url();
        env.ok(&["--store", &url, "workspace", "create", "acme"]);
        assert!(
            !env.db().exists(),
            "nothing written to the default SQLite file"
        );
        let listed = env.json(&["--store", &url, "workspace", "list"]);
        assert_eq!(listed[0]["name"], "acme");
        assert_eq!(db.sql("SELECT name FROM workspaces"), "acme");
    }
}

/// `model endpoint drain|undrain NAME INDEX` (issue 14): stored, shown,
/// exported, and a missing index is refused naming the endpoint.
#[test]
fn an_endpoint_is_drained_and_undrained_by_index() {
    let (env, _, _) = populated();
    let v = env.json(&["model", "endpoint", "drain", "DeepSeek-V3", "0"]);
    assert_eq!(v["endpoints"][0]["drain"], true, "{v}");
    let shown = env.json(&["model", "show", "DeepSeek-V3"]);
    assert_eq!(shown["endpoints"][0]["drain"], true);
    let exported = env.ok(&["export"]);
    assert!(exported.contains("drain: true"), "{exported}");
    refused(
        &env,
        &["model", "endpoint", "drain", "DeepSeek-V3", "3"],
        "endpoint: model 'DeepSeek-V3' has 1 endpoint(s); there is no endpoint 3",
    );
    let v = env.json(&["model", "endpoint", "undrain", "DeepSeek-V3", "0"]);
    assert_eq!(v["endpoints"][0]["drain"], false);
    // An endpoint spec can say it too.
    env.ok(&[
        "model",
        "edit",
        "DeepSeek-V3",
        "--endpoint",
        "https://api.deepseek.com,drain",
    ]);
    assert_eq!(
        env.json(&["model", "show", "DeepSeek-V3"])["endpoints"][0]["drain"],
        true
    );
}

/// `model routes NAME` without a gateway: every endpoint listed, no state,
/// no share (the states and shares over a running gateway are checked in
/// tests/gateway/routing_heal.rs).
#[test]
fn routes_list_every_endpoint_even_without_a_gateway() {
    let (env, _, _) = populated();
    let out = env.ok(&["model", "routes", "DeepSeek-V3"]);
    assert!(
        out.contains("SHARE 1M") && out.contains("https://api.deepseek.com"),
        "{out}"
    );
    let v = env.json(&["model", "routes", "DeepSeek-V3"]);
    assert_eq!(v["model"], "DeepSeek-V3");
    assert_eq!(v["endpoints"][0]["state"], serde_json::Value::Null);
    assert_eq!(v["endpoints"][0]["share"], serde_json::Value::Null);
    env.fails(&["model", "routes", "nope"]);
}
