//! `maasctl serve`: the gateway, headless, until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::admin::{AdminListen, TokenArgs};
use crate::compose::{AdminPlan, GatewayPlan, Node, NodePlan};
use crate::domain::LimiterMode;
use crate::gateway::limiter::{Limiter, SharedConfig, redacted};
use crate::gateway::{GatewayConfig, ListenerTls, RateLimitHeaders};
use crate::logging::LogRing;
use crate::store::Store;

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, default_value = GatewayConfig::DEFAULT_LISTEN, value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Serve only the models entered in this cluster (default: every model).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,

    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Largest request body accepted, e.g. 4MiB, 512KiB or a byte count.
    #[arg(long, default_value = "4MiB", value_parser = parse_size, value_name = "SIZE")]
    pub body_limit: usize,

    /// Time a caller has to send the whole request body after its headers
    /// (then 408 and the connection closes).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub body_timeout: Duration,

    /// Longest a connection may wait for its next request head to arrive in
    /// full: idle keep-alive connections and callers sending a head too
    /// slowly are closed after it (checked once a second, so up to 2 s later).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub head_timeout: Duration,

    /// Time to connect to an upstream before trying the next endpoint (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub connect_timeout: Duration,

    /// Time to wait for an upstream's response headers before trying the
    /// next endpoint (504 when none answers).
    #[arg(long, default_value = "600s", value_parser = parse_duration, value_name = "DURATION")]
    pub upstream_timeout: Duration,

    /// Extra CA bundle (PEM) trusted for every upstream, besides the system roots.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// How often endpoints out of rotation are probed (GET <url>/models).
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub probe_interval: Duration,

    /// Keep rate-limit windows in this Redis (redis://[:password@]host:port/[db]),
    /// shared with every replica using it, so limits hold across replicas.
    /// Without it each gateway limits on its own. See docs/rate-limits.md.
    #[arg(long, env = "MAASCTL_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// Longest a request waits for Redis before the gateway limits locally
    /// (and keeps doing so until Redis answers again).
    #[arg(long, default_value = "100ms", value_parser = parse_duration, value_name = "DURATION", requires = "redis_url")]
    pub redis_timeout: Duration,

    /// Also serve /metrics (Prometheus text, no token) on this address; it
    /// is never served on --listen (the admin API has it at
    /// /admin/v1/metrics behind its token).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Keys with their own /metrics series (the busiest; the others are
    /// summed into key="other"); 0 turns per-key series off.
    #[arg(long, default_value_t = GatewayConfig::DEFAULT_METRICS_KEY_SERIES, value_name = "N")]
    pub metrics_key_series: usize,

    /// Which answers of a model with rate-limit rules carry the
    /// x-ratelimit-* headers: always (admitted answers too, as OpenAI sends
    /// them) or on-429 (only refusals; admitted answers do not show the limits).
    #[arg(long, default_value = "always", value_parser = str::parse::<RateLimitHeaders>, value_name = "WHEN")]
    pub ratelimit_headers: RateLimitHeaders,

    /// Most callers' connections open at once (at the cap, idle keep-alive
    /// connections are closed to make room). Default: from the open-file
    /// limit (raised to the hard limit at start): (limit - 64) / 2.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// Address of the admin API (JSON, bearer token; see docs/admin-api.md), or off.
    #[arg(long, default_value = crate::admin::DEFAULT_LISTEN, value_name = "ADDR|off")]
    pub admin_listen: AdminListen,

    /// How often usage is added to the store's ledger; a gateway that dies
    /// loses at most this much of its usage (docs/usage.md).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub usage_flush: Duration,

    /// Days the usage ledger keeps per-minute rows (their hour rows stay).
    #[arg(long, default_value_t = 7, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub usage_minute_days: u32,

    /// Days the usage ledger keeps hourly rows (their day rows are kept).
    #[arg(long, default_value_t = 90, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
    pub usage_hour_days: u32,
}

impl ServeArgs {
    /// The gateway configuration these flags ask for.
    pub fn config(&self) -> GatewayConfig {
        let d = GatewayConfig::default();
        GatewayConfig {
            listen: self.listen,
            cluster: self.cluster.clone(),
            workers: self.workers.unwrap_or(d.workers),
            body_limit: self.body_limit,
            body_timeout: self.body_timeout,
            head_timeout: self.head_timeout,
            ratelimit_headers: self.ratelimit_headers,
            metrics_listen: self.metrics_listen,
            metrics_key_series: self.metrics_key_series,
            max_connections: self
                .max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            connect_timeout: self.connect_timeout,
            upstream_timeout: self.upstream_timeout,
            ca_file: self.ca_file.clone(),
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(ListenerTls {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            probe_interval: self.probe_interval,
            usage_flush: self.usage_flush,
            usage_retention: crate::domain::usage::Retention {
                minute_days: self.usage_minute_days,
                hour_days: self.usage_hour_days,
            },
            ..d
        }
    }
}

/// Run the gateway (and its admin API) over `store` until a signal asks it
/// to stop. The admin token file, when generated, goes to `data_dir`.
/// `tokens` names the bootstrap admin token (`--admin-token-file`, else
/// `$MAASCTL_ADMIN_TOKEN`, else `admin.token` in `data_dir`).
pub fn run(
    store: Arc<dyn Store>,
    args: ServeArgs,
    tokens: &TokenArgs,
    data_dir: &Path,
) -> Result<(), String> {
    let logs = crate::logging::init_stderr().unwrap_or_else(|_| LogRing::new(1));
    if let Some(c) = &args.cluster {
        let reg = store.load().map_err(|e| e.to_string())?;
        if !reg.clusters.contains_key(c) {
            let known: Vec<&str> = reg.clusters.keys().map(String::as_str).collect();
            return Err(format!(
                "--cluster: no cluster named '{c}' (known: {})",
                known.join(", ")
            ));
        }
    }
    let describe = store.describe();
    if args.workers == Some(0) {
        return Err("--workers must be at least 1".into());
    }
    let mut cfg = args.config();
    let limits = match &args.redis_url {
        Some(url) => {
            let limiter = shared_limiter(url, args.redis_timeout)?;
            let how = match limiter.mode() {
                LimiterMode::Shared => format!("rate limits shared via {}", redacted(url)),
                _ => format!("rate limits local until Redis at {} answers", redacted(url)),
            };
            cfg.limiter = Some(limiter);
            how
        }
        None => "rate limits local to this gateway".into(),
    };
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let workers = cfg.workers;
    let plan = NodePlan {
        gateway: Some(GatewayPlan {
            config: cfg,
            free_port_if_taken: false,
        }),
        admin: Some(AdminPlan {
            listen: args.admin_listen,
            tokens: tokens.clone(),
            data_dir: data_dir.to_path_buf(),
        }),
    };
    // The admin API and the signal wait share one small runtime; the
    // gateway runs on its own threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot wait for signals: {e}"))?;
    rt.block_on(async {
        let node = Node::start(store, plan, logs)
            .await
            .map_err(|e| e.to_string())?;
        let serving = match &args.cluster {
            Some(c) => format!("models of cluster '{c}'"),
            None => "every model".to_string(),
        };
        let listen = node.gateway().map(|g| g.listen().to_string());
        println!(
            "maasctl gateway listening on {scheme}://{} ({serving}; store {describe}; {workers} workers; {limits})",
            listen.unwrap_or_default()
        );
        use std::io::Write;
        if let Some(m) = node.gateway().and_then(|g| g.metrics_addr()) {
            let _ = writeln!(std::io::stdout(), "maasctl metrics listening on http://{m}/metrics");
        }
        if let Some(b) = node.admin_banner() {
            // A reader that went away must not take the server down.
            let _ = writeln!(std::io::stdout(), "{b}");
        }
        let _ = std::io::stdout().flush();
        let waited = wait_for_signal().await;
        eprintln!("maasctl gateway: stopping (finishing requests in flight)");
        node.shutdown().await;
        waited
    })
}

/// The Redis-backed limiter of `--redis-url`. An unreachable Redis is not
/// an error (the gateway limits locally until it answers); a bad URL is.
fn shared_limiter(url: &str, timeout: Duration) -> Result<Arc<Limiter>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the rate limiter: {e}"))?;
    let config = SharedConfig {
        timeout,
        ..SharedConfig::default()
    };
    rt.block_on(Limiter::shared(url, config))
        .map_err(|e| format!("--redis-url: {e}"))
}

async fn wait_for_signal() -> Result<(), String> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot wait for SIGTERM: {e}"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| format!("cannot wait for Ctrl-C: {e}")),
        _ = term.recv() => Ok(()),
    }
}

/// `4MiB`, `512KiB`, `1MB`, `2048` (bytes).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size; use e.g. 4MiB, 512KiB or a byte count"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "'{other}' is not a size unit; use B, KiB, MiB, GiB (or KB, MB, GB)"
            ));
        }
    };
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if v == 0 {
        return Err("the size must be at least 1 byte".into());
    }
    Ok(v)
}

/// `500ms`, `5s`, `2m`, `1h`, or a number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration; use e.g. 500ms, 5s, 2m"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "'{other}' is not a duration unit; use ms, s, m or h"
            ));
        }
    };
    if !(secs > 0.0 && secs.is_finite() && secs < 1e9) {
        return Err(format!("'{s}': the duration must be more than 0"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse_with_units() {
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("0").is_err());
        assert!(parse_size("4 parsecs").unwrap_err().contains("parsecs"));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[derive(clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn serve(args: &[&str]) -> Result<GatewayConfig, String> {
        use clap::Parser;
        let argv = std::iter::once("serve").chain(args.iter().copied());
        Cmd::try_parse_from(argv)
            .map(|c| c.serve.config())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_edge_flags_reach_the_gateway_and_bad_values_name_the_flag() {
        let d = serve(&[]).unwrap();
        assert_eq!(d.body_timeout, Duration::from_secs(30));
        assert_eq!(d.head_timeout, Duration::from_secs(30));
        assert_eq!(d.ratelimit_headers, RateLimitHeaders::Always);
        assert_eq!(
            serve(&["--ratelimit-headers", "on-429"])
                .unwrap()
                .ratelimit_headers,
            RateLimitHeaders::On429
        );
        assert_eq!(d.metrics_listen, None);
        assert_eq!(d.metrics_key_series, 100);
        assert_eq!(d.max_connections, None);
        assert_eq!(d.usage_flush, Duration::from_secs(10));
        assert_eq!(
            d.usage_retention,
            crate::domain::usage::Retention::default()
        );
        let u = serve(&[
            "--usage-flush",
            "5s",
            "--usage-minute-days",
            "2",
            "--usage-hour-days",
            "30",
        ])
        .unwrap();
        assert_eq!(u.usage_flush, Duration::from_secs(5));
        assert_eq!(
            (u.usage_retention.minute_days, u.usage_retention.hour_days),
            (2, 30)
        );
        let c = serve(&[
            "--body-timeout",
            "2s",
            "--head-timeout",
            "3s",
            "--metrics-listen",
            "127.0.0.1:9100",
            "--metrics-key-series",
            "0",
            "--max-connections",
            "8",
        ])
        .unwrap();
        assert_eq!(c.body_timeout, Duration::from_secs(2));
        assert_eq!(c.head_timeout, Duration::from_secs(3));
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.metrics_key_series, 0);
        assert_eq!(c.max_connections, Some(8));
        for (flag, value) in [
            ("--max-connections", "0"),
            ("--body-timeout", "0s"),
            ("--head-timeout", "0s"),
            ("--ratelimit-headers", "never"),
            ("--metrics-listen", "9100"),
            ("--metrics-key-series", "many"),
            ("--usage-flush", "0s"),
            ("--usage-minute-days", "0"),
            ("--usage-hour-days", "x"),
        ] {
            let e = serve(&[flag, value]).unwrap_err();
            assert!(e.contains(flag), "{flag} {value}: {e}");
        }
    }
}
