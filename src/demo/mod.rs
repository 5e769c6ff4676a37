//! `maasctl demo`: the console on a throw-away store seeded with a
//! marketplace, clusters, workspaces, keys, rules and models served by a
//! built-in mock upstream, with gentle traffic, so every pane moves.

pub mod seed;
pub mod traffic;
pub mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use crate::compose::{GatewayPlan, Node, NodePlan};
use crate::gateway::GatewayConfig;
use seed::Upstreams;
use upstream::{MockConfig, MockUpstream};

/// Where the demo gateway listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Flags of `maasctl demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Address the demo gateway listens on [default: 127.0.0.1:8080, or a
    /// free port when that one is taken].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// A directory removed when dropped: the demo's store and log file.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Result<Self, String> {
        let mut tag = [0u8; 6];
        getrandom::fill(&mut tag).map_err(|e| format!("no random source: {e}"))?;
        let dir = std::env::temp_dir().join(format!(
            "maasctl-demo-{}-{}",
            std::process::id(),
            hex::encode(tag)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The three mock upstreams: fast, slow, and one that fails now and then.
async fn upstreams() -> Result<(Vec<MockUpstream>, Upstreams), String> {
    let start = |label: &str, latency_ms: u64, fail_rate: f64| {
        MockUpstream::start(MockConfig {
            label: label.into(),
            latency: Duration::from_millis(latency_ms),
            chunk_delay: Duration::from_millis(latency_ms / 10),
            fail_rate,
            fail_status: 503,
            prompt_tokens: 24,
            completion_tokens: 96,
            ..MockConfig::default()
        })
    };
    let err = |e: std::io::Error| format!("cannot start the mock upstream: {e}");
    let fast = start("fast", 15, 0.0).await.map_err(err)?;
    let slow = start("slow", 450, 0.0).await.map_err(err)?;
    let flaky = start("flaky", 40, 0.25).await.map_err(err)?;
    let urls = Upstreams {
        fast: fast.base_url(),
        slow: slow.base_url(),
        flaky: flaky.base_url(),
    };
    Ok((vec![fast, slow, flaky], urls))
}

/// Run the demo until the operator quits; everything it made is removed.
/// Its gateway listens on `--listen` exactly (failing clearly when it is
/// taken), or on the default address, falling back to a free port on the
/// same interface when something else holds 8080 (the demo is offline and
/// throw-away: any port will do, and the header shows which).
pub fn run(args: DemoArgs) -> Result<(), String> {
    let scratch = Scratch::new()?;
    let (ring, _log_guard) = crate::logging::init(&scratch.0)?;
    let rt = crate::compose::console_runtime()?;
    let result = rt.block_on(async {
        let (mocks, urls) = upstreams().await?;
        let store = crate::store::open(None, &scratch.0).map_err(|e| e.to_string())?;
        let plan = NodePlan {
            gateway: Some(GatewayPlan {
                config: GatewayConfig {
                    listen: args.listen.unwrap_or_else(|| {
                        DEFAULT_LISTEN.parse().expect("a valid default address")
                    }),
                    ..GatewayConfig::default()
                },
                free_port_if_taken: args.listen.is_none(),
            }),
            admin: None,
        };
        let node = Node::start(store.clone(), plan, ring.clone())
            .await
            .map_err(|e| {
                format!("cannot start the demo gateway: {e}; choose an address with --listen ADDR")
            })?;
        let listen = node
            .gateway()
            .map(|g| g.listen().to_string())
            .expect("the demo runs a gateway");
        let seeded = {
            let (store, listen) = (store.clone(), listen.clone());
            tokio::task::spawn_blocking(move || seed::seed(&*store, &listen, &urls))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot seed the demo: {e}"))?
        };
        tracing::info!("demo seeded; traffic starting against {listen}");
        let traffic = tokio::spawn(traffic::run(listen, seeded));
        let result = match node.client().await {
            Ok(client) => crate::tui::run::console(client, Some(ring)).await,
            Err(e) => Err(e),
        };
        traffic.abort();
        node.shutdown().await;
        drop(mocks);
        result
    });
    drop(rt);
    result
}
