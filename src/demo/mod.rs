//! `maasctl demo`: the console on a throw-away store seeded with a
//! marketplace, clusters, workspaces, keys, rules and models served by a
//! built-in mock upstream, with gentle traffic, so every pane moves.

pub mod seed;
pub mod traffic;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// The demo's gateway: on `--listen` exactly (failing clearly when it is
/// taken), or on the default address, falling back to a free port on the
/// same interface when something else holds 8080 (the demo is offline and
/// throw-away: any port will do, and the header shows which).
async fn start_gateway(
    listen: Option<SocketAddr>,
    store: Arc<dyn crate::store::Store>,
) -> Result<crate::tui::embedded::Embedded, String> {
    use crate::tui::embedded;
    if let Some(addr) = listen {
        return embedded::start(addr, store, None).await;
    }
    let default: SocketAddr = DEFAULT_LISTEN.parse().expect("a valid default address");
    match embedded::try_start(default, store.clone(), None).await {
        Err(crate::gateway::GatewayError::Bind { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse =>
        {
            let free = SocketAddr::new(default.ip(), 0);
            let gateway = embedded::start(free, store, None).await?;
            tracing::warn!(
                "{DEFAULT_LISTEN} is taken by another program: the demo gateway listens on {} instead",
                gateway.listen()
            );
            Ok(gateway)
        }
        other => other.map_err(|e| {
            format!("cannot start the demo gateway: {e}; choose an address with --listen ADDR")
        }),
    }
}

/// Run the demo until the operator quits; everything it made is removed.
pub fn run(args: DemoArgs) -> Result<(), String> {
    let scratch = Scratch::new()?;
    let (ring, _log_guard) = crate::logging::init(&scratch.0)?;
    let rt = crate::tui::runtime()?;
    let result = rt.block_on(async {
        let (mocks, urls) = upstreams().await?;
        let store = crate::store::open(None, &scratch.0).map_err(|e| e.to_string())?;
        let gateway = start_gateway(args.listen, store.clone()).await?;
        let seeded = {
            let (store, listen) = (store.clone(), gateway.listen().to_string());
            tokio::task::spawn_blocking(move || seed::seed(&*store, &listen, &urls))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot seed the demo: {e}"))?
        };
        tracing::info!("demo seeded; traffic starting against {}", gateway.listen());
        let traffic = tokio::spawn(traffic::run(gateway.listen().to_string(), seeded));
        let client = crate::client::InProcessClient::start(store, Some(gateway.link()))
            .await
            .map_err(|e| e.to_string())?;
        let result = crate::tui::run::console(client, Some(ring)).await;
        traffic.abort();
        gateway.shutdown().await;
        drop(mocks);
        result
    });
    drop(rt);
    result
}
