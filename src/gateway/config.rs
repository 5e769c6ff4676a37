//! How a gateway is started (`maasctl serve` flags, the console's embedded
//! gateway, tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::gateway::limiter::Limiter;

/// Certificate and key (PEM files) for serving TLS on the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which answers carry the `x-ratelimit-*` headers of a model's rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RateLimitHeaders {
    /// Every answer of a model with rules, admitted ones included (as
    /// OpenAI sends them).
    #[default]
    Always,
    /// Only the 429s: admitted answers do not show callers the limits
    /// (like Kong's `hide_client_headers`); the headers cost ~2,250
    /// instructions per request (bench/RESULTS.md).
    On429,
}

impl std::str::FromStr for RateLimitHeaders {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "always" => Ok(Self::Always),
            "on-429" => Ok(Self::On429),
            other => Err(format!("'{other}' is not a choice; use always or on-429")),
        }
    }
}

/// Everything a gateway needs besides the store.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Where to listen (port 0 picks a free one; see `GatewayHandle::local_addr`).
    pub listen: SocketAddr,
    /// Serve only models entered in this cluster; `None` serves every model.
    pub cluster: Option<String>,
    /// Worker threads, each with its own runtime (accepting from one shared socket)
    /// and upstream pools. Default: the number of cores.
    pub workers: usize,
    /// Largest request body accepted (413 above it).
    pub body_limit: usize,
    /// Time a caller has to send the whole request body after its headers
    /// (408 after it).
    pub body_timeout: Duration,
    /// Longest a connection may go without a request being answered: an
    /// idle keep-alive connection, or one whose request head has not fully
    /// arrived, is closed after it (checked once a second).
    pub head_timeout: Duration,
    /// Which answers carry the `x-ratelimit-*` headers.
    pub ratelimit_headers: RateLimitHeaders,
    /// Time to open a connection to an upstream (then the next endpoint is tried).
    pub connect_timeout: Duration,
    /// Time from sending a request to the upstream's response headers (then
    /// the next endpoint is tried; 504 when none answers). Streams are not
    /// cut once they started.
    pub upstream_timeout: Duration,
    /// Extra CA bundle (PEM) trusted for every upstream, beside the system roots.
    pub ca_file: Option<PathBuf>,
    /// Serve TLS on the listener.
    pub tls: Option<ListenerTls>,
    /// How often the store's revision is checked (changes apply within this
    /// plus the time to load the registry; kept ≤ 250 ms).
    pub reload_poll: Duration,
    /// How often the gateway writes its report (heartbeat, applied revision,
    /// endpoint health) to the store.
    pub report_interval: Duration,
    /// How often counters are sampled and published (when they changed).
    pub stats_interval: Duration,
    /// Failures (connect error, timeout, 5xx) in the last 10 s that eject
    /// an endpoint: at least this many ...
    pub eject_min_failures: u32,
    /// ... and at least this share (%) of its tries in the window.
    pub eject_ratio_pct: u32,
    /// How often endpoints out of rotation are probed (`GET <url>/models`).
    pub probe_interval: Duration,
    /// First back-off of an ejected endpoint before its trial (a probe, or
    /// half-open for probe `none`); doubled after each failed trial.
    pub cooldown: Duration,
    /// The longest back-off.
    pub cooldown_max: Duration,
    /// On shutdown, how long requests in flight may take to finish.
    pub shutdown_grace: Duration,
    /// The rate limiter; `None` makes a local one (`Limiter::local()`). A
    /// shared (Redis) limiter is passed here by `serve --redis-url`.
    pub limiter: Option<Arc<Limiter>>,
    /// Where `/metrics` is served without a token besides the admin API
    /// (`--metrics-listen`); never on the callers' port.
    pub metrics_listen: Option<SocketAddr>,
    /// Keys with their own `/metrics` series (the busiest; the rest are
    /// summed into `key="other"`); 0: none.
    pub metrics_key_series: usize,
    /// Most callers' connections open at once; `None`: derived from the
    /// open-file limit (see `server::limits`).
    pub max_connections: Option<usize>,
    /// Base URL of the admin API serving this gateway, written into its
    /// report so CLIs can find it; `None` when there is none.
    pub admin: Option<String>,
    /// How often usage is added to the store's ledger (docs/usage.md); a
    /// gateway that dies loses at most this much of its usage.
    pub usage_flush: Duration,
    /// How long minute and hour rows of the ledger are kept.
    pub usage_retention: crate::domain::usage::Retention,
}

impl GatewayConfig {
    /// Default body limit: 4 MiB.
    pub const DEFAULT_BODY_LIMIT: usize = 4 << 20;
    /// Default number of keys with their own `/metrics` series.
    pub const DEFAULT_METRICS_KEY_SERIES: usize = 100;
    /// Default listen address.
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
}

impl GatewayConfig {
    /// The ejection rule of these settings.
    pub fn eject_rule(&self) -> crate::gateway::upstream::health::EjectRule {
        crate::gateway::upstream::health::EjectRule {
            min_failures: self.eject_min_failures,
            ratio_pct: self.eject_ratio_pct,
            base: self.cooldown,
            max: self.cooldown_max,
        }
    }
}

/// Cores available to this process (at least 1).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: Self::DEFAULT_LISTEN.parse().expect("static address parses"),
            cluster: None,
            workers: default_workers(),
            body_limit: Self::DEFAULT_BODY_LIMIT,
            body_timeout: Duration::from_secs(30),
            head_timeout: Duration::from_secs(30),
            ratelimit_headers: RateLimitHeaders::Always,
            connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(600),
            ca_file: None,
            tls: None,
            reload_poll: Duration::from_millis(200),
            report_interval: Duration::from_secs(2),
            stats_interval: Duration::from_millis(250),
            eject_min_failures: 5,
            eject_ratio_pct: 20,
            probe_interval: Duration::from_secs(2),
            cooldown: Duration::from_secs(2),
            cooldown_max: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
            limiter: None,
            metrics_listen: None,
            metrics_key_series: Self::DEFAULT_METRICS_KEY_SERIES,
            max_connections: None,
            admin: None,
            usage_flush: Duration::from_secs(10),
            usage_retention: crate::domain::usage::Retention::default(),
        }
    }
}
