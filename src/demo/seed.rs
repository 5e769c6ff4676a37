//! The demo's registry: a marketplace (the default catalog), the local
//! cluster at the demo gateway plus a remote one, workspaces, keys, rules
//! and models served by the mock upstreams.

use crate::domain::budget::{BudgetPeriod, BudgetSpec, BudgetUnit};
use crate::domain::secret::{generate_key_id, generate_secret, hash_secret, secret_hint};
use crate::domain::{Change, Cluster, Endpoint, ModelSpec, Policy, RuleSpec, RuleTarget};
use crate::store::{Store, StoreError};

/// Base URLs (`http://127.0.0.1:PORT/v1`) of the mock upstreams.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// Answers at once.
    pub fast: String,
    /// Takes a few hundred milliseconds.
    pub slow: String,
    /// Fails now and then.
    pub flaky: String,
}

/// A demo key: the traffic generator needs its secret.
#[derive(Debug, Clone)]
pub struct DemoKey {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub secret: String,
}

/// The demo keys, by name.
pub struct Keys {
    pub prod: DemoKey,
    pub batch: DemoKey,
    pub notebook: DemoKey,
    /// The one the traffic generator drives over its limit.
    pub trial: DemoKey,
}

fn key(workspace: &str, name: &str) -> DemoKey {
    DemoKey {
        id: generate_key_id(),
        workspace: workspace.into(),
        name: name.into(),
        secret: generate_secret(),
    }
}

fn create(k: &DemoKey) -> Change {
    Change::CreateKey {
        id: k.id.clone(),
        workspace: k.workspace.clone(),
        name: k.name.clone(),
        secret_hash: hash_secret(&k.secret),
        secret_hint: secret_hint(&k.secret),
    }
}

fn model(
    name: &str,
    model_id: &str,
    policy: Policy,
    endpoints: Vec<Endpoint>,
    tags: &[&str],
) -> Change {
    Change::CreateModel(ModelSpec {
        name: name.into(),
        cluster: Cluster::DEFAULT.into(),
        model_id: model_id.into(),
        endpoints,
        policy,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        fallbacks: Vec::new(),
        completion_cap: None,
    })
}

fn weighted(url: &str, weight: u32) -> Endpoint {
    Endpoint {
        weight: Some(weight),
        ..Endpoint::new(url)
    }
}

/// Budgets the demo traffic does not exhaust, so `:budgets` shows spent
/// and left moving.
fn budgets() -> Vec<Change> {
    vec![
        budget(
            RuleTarget::Workspace,
            "acme",
            BudgetUnit::Usd,
            50_000_000_000,
            BudgetPeriod::Month,
        ),
        budget(
            RuleTarget::Workspace,
            "research",
            BudgetUnit::Tokens,
            5_000_000,
            BudgetPeriod::Day,
        ),
    ]
}

fn budget(
    target: RuleTarget,
    subject: &str,
    unit: BudgetUnit,
    amount: u64,
    period: BudgetPeriod,
) -> Change {
    Change::AddBudget(BudgetSpec {
        target,
        subject: subject.into(),
        unit,
        amount,
        period,
    })
}

fn rule(
    model: &str,
    target: RuleTarget,
    k: Option<&DemoKey>,
    workspace: &str,
    limit: u32,
    secs: u32,
) -> Change {
    Change::AddRule {
        model: model.into(),
        spec: RuleSpec {
            target,
            workspace: workspace.into(),
            key_id: k.map(|k| k.id.clone()),
            limit,
            duration_secs: secs,
            unit: Default::default(),
        },
    }
}

fn enable(name: &str) -> Change {
    Change::SetEnabled {
        name: name.into(),
        enabled: true,
    }
}

/// Seed a fresh store (one that holds only the default catalog and
/// cluster) for a gateway listening on `gateway` (`127.0.0.1:PORT`).
pub fn seed(store: &dyn Store, gateway: &str, up: &Upstreams) -> Result<Keys, StoreError> {
    let keys = Keys {
        prod: key("acme", "prod"),
        batch: key("acme", "batch"),
        notebook: key("research", "notebook"),
        trial: key("trial", "trial-1"),
    };
    let ws = |name: &str, description: &str| Change::AddWorkspace {
        name: name.into(),
        description: description.into(),
    };
    let upstream_key = crate::domain::Secret::new("sk-demo-upstream-key-0042");
    let mut changes = vec![
        Change::UpdateCluster {
            name: Cluster::DEFAULT.into(),
            cluster: Cluster {
                name: Cluster::DEFAULT.into(),
                entry_address: format!("http://{gateway}"),
            },
        },
        Change::AddCluster(Cluster {
            name: "cn-east".into(),
            entry_address: "https://gw.cn-east.example.com".into(),
        }),
        ws("acme", "Acme production apps"),
        ws("research", "Research notebooks"),
        ws("trial", "Free-trial sign-ups"),
        create(&keys.prod),
        create(&keys.batch),
        create(&keys.notebook),
        create(&keys.trial),
        model(
            "DeepSeek-V3",
            "deepseek-chat",
            Policy::Weighted,
            vec![
                Endpoint {
                    api_key: Some(upstream_key),
                    ..weighted(&up.fast, 70)
                },
                weighted(&up.slow, 30),
            ],
            &["chat", "moe"],
        ),
        model(
            "Qwen2.5-72B-Instruct",
            "qwen2.5-72b-instruct",
            Policy::RoundRobin,
            vec![Endpoint::new(&up.fast), Endpoint::new(&up.flaky)],
            &["chat"],
        ),
        model(
            "DeepSeek-R1",
            "deepseek-reasoner",
            Policy::Random,
            vec![Endpoint::new(&up.slow)],
            &["reasoning"],
        ),
        model(
            "text-embedding-3-small",
            "text-embedding-3-small",
            Policy::RoundRobin,
            vec![Endpoint::new(&up.fast)],
            &["embedding"],
        ),
        model(
            "gpt-4o-mini",
            "gpt-4o-mini",
            Policy::RoundRobin,
            vec![Endpoint::new(&up.fast)],
            &["chat"],
        ),
        // Its marketplace entry is unpublished: enabling it is refused until published.
        model(
            "Kimi-K2-Instruct",
            "kimi-k2",
            Policy::RoundRobin,
            vec![Endpoint::new(&up.fast)],
            &["chat", "moe"],
        ),
        enable("DeepSeek-V3"),
        enable("Qwen2.5-72B-Instruct"),
        enable("DeepSeek-R1"),
        enable("text-embedding-3-small"),
        rule(
            "DeepSeek-V3",
            RuleTarget::ApiKey,
            Some(&keys.trial),
            "trial",
            2,
            1,
        ),
        rule("DeepSeek-V3", RuleTarget::Workspace, None, "acme", 600, 60),
        rule(
            "Qwen2.5-72B-Instruct",
            RuleTarget::ApiKey,
            Some(&keys.notebook),
            "research",
            100,
            10,
        ),
    ];
    changes.extend(budgets());
    store.apply(
        changes,
        &crate::domain::Origin::user(crate::paths::os_user(), crate::domain::Channel::Demo),
    )?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[test]
    fn seeds_a_fresh_store() {
        let dir = std::env::temp_dir().join(format!("maasctl-seed-{}", std::process::id()));
        let store = SqliteStore::open_dir(&dir).unwrap();
        let up = Upstreams {
            fast: "http://127.0.0.1:1/v1".into(),
            slow: "http://127.0.0.1:2/v1".into(),
            flaky: "http://127.0.0.1:3/v1".into(),
        };
        let keys = seed(&store, "127.0.0.1:8080", &up).unwrap();
        let reg = store.load().unwrap();
        assert_eq!(reg.models.values().filter(|m| m.enabled).count(), 4);
        assert!(!reg.market["Kimi-K2-Instruct"].published);
        assert_eq!(reg.keys[&keys.trial.id].workspace, "trial");
        assert_eq!(reg.models["DeepSeek-V3"].rules.len(), 2);
        assert_eq!(reg.budgets.len(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }
}
