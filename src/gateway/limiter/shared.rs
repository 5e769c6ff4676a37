//! Shared mode: the windows live in Redis so N replicas together admit at
//! most `limit`.
//!
//! One Lua script (`window.lua`) checks and counts every window a request
//! matches atomically, with Redis's own `TIME`, in one round trip. A
//! background thread (its own small runtime, so no gateway worker's runtime
//! owns the connection) connects, registers this replica in a heartbeat set
//! (the live-replica count sizes the fall-back limits), and reconnects.
//!
//! When Redis fails — refused, timed out, any error — the request that saw
//! it is decided locally at once, the limiter falls back to per-replica
//! windows (each replica admitting `limit / live replicas`), logs the
//! transition once, and the background thread probes until Redis answers,
//! then switches back. No request ever fails because Redis is down.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::sync::{oneshot, watch};

use super::clock::Clock;
use super::window::Window;
use crate::domain::LimiterMode;

/// Tuning of shared mode.
#[derive(Debug, Clone)]
pub struct SharedConfig {
    /// Longest a request waits for Redis before it is decided locally and
    /// the limiter falls back (the request path's worst extra latency).
    pub timeout: Duration,
    /// Longest a (re)connection attempt may take (background only).
    pub connect_timeout: Duration,
    /// How often a shared replica re-registers itself (and so notices an
    /// idle Redis going away).
    pub heartbeat: Duration,
    /// How often a fallen-back replica tries Redis again.
    pub retry: Duration,
    /// Prefix of every key the limiter writes in Redis.
    pub key_prefix: String,
    /// Test hook: take the windows' time from this clock instead of Redis
    /// `TIME` (and set no key expiry), so a test can drive the Redis windows
    /// through exact instants. Never set in production: replicas would no
    /// longer share one clock.
    pub clock: Option<Arc<dyn Clock>>,
}

impl Default for SharedConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(1),
            heartbeat: Duration::from_secs(1),
            retry: Duration::from_millis(250),
            key_prefix: DEFAULT_PREFIX.to_owned(),
            clock: None,
        }
    }
}

/// Key prefix of the limiter's Redis keys unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "maasctl:rl";

const STARTING: u8 = 0;
const SHARED: u8 = 1;
const FALLBACK: u8 = 2;

/// A live connection, numbered so that a late failure on an old connection
/// cannot knock down a newer one.
struct Link {
    generation: u64,
    conn: MultiplexedConnection,
}

/// What Redis answered for one request's windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub admitted: bool,
    /// Redis's time of the decision (ms): where an admission was counted.
    pub now: u64,
    /// Index (into the request's windows) of the rule that blocks, if any.
    pub blocking: Option<usize>,
    /// Per window: used, ms until room, ms until fully reset.
    pub windows: Vec<(u64, u64, u64)>,
}

/// `url` with its password masked, for logs and messages: a Redis URL may
/// carry credentials (`redis://:secret@host/`), which are never logged.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("****"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparsable URL>".into(),
    }
}

/// State shared by the request path and the background thread.
struct State {
    /// The Redis URL, password masked (only ever shown, never dialled).
    url: String,
    config: SharedConfig,
    mode: AtomicU8,
    link: ArcSwapOption<Link>,
    /// Serialises link changes (the request path only reads `link`).
    switching: Mutex<()>,
    generation: AtomicU64,
    replicas: AtomicU32,
    replica_id: String,
    window: Script,
    settle: Script,
    heartbeat: Script,
}

/// The Redis side of a shared limiter. Dropping it stops the background
/// thread (which then deregisters this replica, best effort).
pub struct RedisLimiter {
    state: Arc<State>,
    _stop: watch::Sender<()>,
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("url", &self.state.url)
            .field("mode", &self.mode())
            .field("replicas", &self.replicas())
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Connect to `url` (waiting for the first attempt only) and start the
    /// background thread. A bad URL is an error; an unreachable Redis is not
    /// (the limiter starts in local fallback and keeps trying).
    pub async fn start(url: &str, config: SharedConfig) -> Result<Self, String> {
        let shown = redacted(url);
        let client = Client::open(url).map_err(|e| format!("invalid Redis URL '{shown}': {e}"))?;
        let state = Arc::new(State {
            url: shown,
            replica_id: replica_id(),
            mode: AtomicU8::new(STARTING),
            link: ArcSwapOption::empty(),
            switching: Mutex::new(()),
            generation: AtomicU64::new(0),
            replicas: AtomicU32::new(1),
            window: Script::new(include_str!("window.lua")),
            settle: Script::new(include_str!("settle.lua")),
            heartbeat: Script::new(HEARTBEAT_LUA),
            config,
        });
        let (stop_tx, stop_rx) = watch::channel(());
        let (first_tx, first_rx) = oneshot::channel();
        let bg = Arc::clone(&state);
        std::thread::Builder::new()
            .name("limiter-redis".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime for the limiter's Redis connection");
                rt.block_on(bg.run(client, stop_rx, first_tx));
            })
            .map_err(|e| format!("cannot start the rate limiter's Redis thread: {e}"))?;
        // The thread always answers after its first attempt; a dropped sender
        // (it panicked) leaves the limiter in fallback, which is safe.
        let _ = first_rx.await;
        Ok(Self {
            state,
            _stop: stop_tx,
        })
    }

    pub fn mode(&self) -> LimiterMode {
        match self.state.mode.load(Ordering::Acquire) {
            SHARED => LimiterMode::Shared,
            _ => LimiterMode::LocalFallback,
        }
    }

    /// Live replicas last seen in Redis (≥ 1): the divisor of fall-back limits.
    pub fn replicas(&self) -> u32 {
        self.state.replicas.load(Ordering::Relaxed).max(1)
    }

    /// The fixed time of the scripts (tests), or '' for Redis `TIME`.
    fn fixed_now(&self) -> String {
        self.state
            .config
            .clock
            .as_ref()
            .map_or(String::new(), |c| c.now_ms().to_string())
    }

    /// Run the window script for `windows` (sorted by rule id): `hit` checks
    /// and counts (1 in a request rule, `tokens` in a token rule), otherwise
    /// it only reads. `None` when Redis is not usable (already fallen back,
    /// or it failed now: then the limiter falls back).
    pub async fn run(
        &self,
        windows: &[impl AsRef<Window>],
        hit: bool,
        tokens: Option<u64>,
    ) -> Option<Answer> {
        let link = self.state.link.load_full()?;
        let mut invocation = self.state.window.prepare_invoke();
        invocation.arg(if hit { "hit" } else { "peek" });
        invocation.arg(self.fixed_now());
        for w in windows {
            let w = w.as_ref();
            invocation
                .key(&w.redis_key)
                .arg(w.limit())
                .arg(u64::from(w.duration_secs()) * 1000)
                .arg(super::local::cost(w, tokens));
        }
        let mut conn = link.conn.clone();
        let reply = tokio::time::timeout(
            self.state.config.timeout,
            invocation.invoke_async::<Vec<i64>>(&mut conn),
        )
        .await;
        let failure = match reply {
            Ok(Ok(values)) => match parse_answer(&values, windows.len()) {
                Some(answer) => return Some(answer),
                None => format!("unexpected reply from the limiter script: {values:?}"),
            },
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "no answer within {} ms",
                self.state.config.timeout.as_millis()
            ),
        };
        self.state.lost(link.generation, &failure);
        None
    }

    /// Settle a token reservation of `reserved` counted at Redis time `at`
    /// in `windows` (with their bucket widths then) to `used`, in one call
    /// of `settle.lua`. If Redis is not usable the reservation stays
    /// counted there until its bucket leaves the window (conservative).
    pub async fn settle(&self, windows: &[(&Window, u64)], at: u64, reserved: u64, used: u64) {
        let Some(link) = self.state.link.load_full() else {
            return;
        };
        let mut invocation = self.state.settle.prepare_invoke();
        invocation
            .arg(self.fixed_now())
            .arg(at)
            .arg(reserved)
            .arg(used);
        for (w, width) in windows {
            invocation
                .key(&w.redis_key)
                .arg(*width)
                .arg(u64::from(w.duration_secs()) * 1000);
        }
        let mut conn = link.conn.clone();
        let reply = tokio::time::timeout(
            self.state.config.timeout,
            invocation.invoke_async::<i64>(&mut conn),
        )
        .await;
        let failure = match reply {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "no answer within {} ms",
                self.state.config.timeout.as_millis()
            ),
        };
        self.state.lost(link.generation, &failure);
    }
}

fn parse_answer(values: &[i64], n: usize) -> Option<Answer> {
    if values.len() != 3 + 3 * n || values.iter().any(|v| *v < 0) {
        return None;
    }
    let blocking = values[1] as usize;
    if blocking > n {
        return None;
    }
    Some(Answer {
        admitted: values[0] == 1,
        now: values[2] as u64,
        blocking: blocking.checked_sub(1),
        windows: values[3..]
            .chunks_exact(3)
            .map(|c| (c[0] as u64, c[1] as u64, c[2] as u64))
            .collect(),
    })
}

/// Registers a replica (score = Redis time), drops the silent ones, and
/// counts the live ones.
const HEARTBEAT_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return redis.call('ZCARD', KEYS[1])
"#;

/// `host:pid:random`, unique per limiter.
fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

impl State {
    fn replicas_key(&self) -> String {
        format!("{}:replicas", self.config.key_prefix)
    }

    /// A replica that missed three heartbeats no longer counts as live.
    fn replica_ttl_ms(&self) -> u64 {
        self.config.heartbeat.as_millis() as u64 * 3
    }

    /// The background loop: connect, heartbeat, reconnect, until stopped.
    async fn run(
        self: Arc<Self>,
        client: Client,
        mut stop: watch::Receiver<()>,
        first: oneshot::Sender<()>,
    ) {
        let mut first = Some(first);
        loop {
            match self.link.load_full() {
                Some(link) => {
                    let mut conn = link.conn.clone();
                    if let Err(e) = self.beat(&mut conn).await {
                        self.lost(link.generation, &e);
                    }
                }
                None => match self.connect(&client).await {
                    Ok(conn) => self.up(conn),
                    Err(e) => self.down(&e),
                },
            }
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
            let pause = if self.link.load().is_some() {
                self.config.heartbeat
            } else {
                self.config.retry
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => break,
            }
        }
        self.deregister().await;
    }

    async fn connect(&self, client: &Client) -> Result<MultiplexedConnection, String> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.config.connect_timeout)
            .set_response_timeout(self.config.connect_timeout);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        // Loaded now so the request path never pays the NOSCRIPT retry.
        for script in [&self.window, &self.settle] {
            script
                .load_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.beat(&mut conn).await?;
        Ok(conn)
    }

    async fn beat(&self, conn: &mut MultiplexedConnection) -> Result<(), String> {
        let live: u32 = tokio::time::timeout(
            self.config.connect_timeout,
            self.heartbeat
                .key(self.replicas_key())
                .arg(&self.replica_id)
                .arg(self.replica_ttl_ms())
                .invoke_async(conn),
        )
        .await
        .map_err(|_| "heartbeat timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        self.replicas.store(live.max(1), Ordering::Relaxed);
        Ok(())
    }

    /// Redis answered: share the windows (again).
    fn up(&self, conn: MultiplexedConnection) {
        let _guard = self.switching.lock();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.link.store(Some(Arc::new(Link { generation, conn })));
        if self.mode.swap(SHARED, Ordering::AcqRel) != SHARED {
            tracing::info!(
                redis = %self.url,
                replicas = self.replicas.load(Ordering::Relaxed),
                "rate limiter: Redis reachable; limits are shared across replicas"
            );
        }
    }

    /// Connection `generation` failed: fall back to local windows, unless a
    /// newer connection already replaced it.
    fn lost(&self, generation: u64, reason: &str) {
        let _guard = self.switching.lock();
        if self
            .link
            .load()
            .as_ref()
            .is_none_or(|l| l.generation != generation)
        {
            return;
        }
        self.link.store(None);
        self.down(reason);
    }

    /// Redis is not usable: local windows, logged once per transition.
    fn down(&self, reason: &str) {
        if self.mode.swap(FALLBACK, Ordering::AcqRel) != FALLBACK {
            let replicas = self.replicas.load(Ordering::Relaxed).max(1);
            tracing::warn!(
                redis = %self.url,
                replicas,
                "rate limiter: Redis unreachable ({reason}); limiting locally, each replica admitting limit/{replicas} per rule until Redis is back"
            );
        }
    }

    /// Best effort on shutdown: stop counting as a live replica.
    async fn deregister(&self) {
        let Some(link) = self.link.load_full() else {
            return;
        };
        let mut conn = link.conn.clone();
        let _ = tokio::time::timeout(
            self.config.timeout,
            redis::cmd("ZREM")
                .arg(self.replicas_key())
                .arg(&self.replica_id)
                .query_async::<()>(&mut conn),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted("redis://:hunter2@cache:6379/0"),
            "redis://:****@cache:6379/0"
        );
        assert_eq!(
            redacted("redis://app:hunter2@cache/"),
            "redis://app:****@cache/"
        );
        assert_eq!(
            redacted("redis://127.0.0.1:6379/"),
            "redis://127.0.0.1:6379/"
        );
        assert!(!redacted("not a url :hunter2@").contains("hunter2"));
    }

    #[tokio::test]
    async fn a_bad_url_error_masks_the_password() {
        let err = RedisLimiter::start("redis://:hunter2@[::1", SharedConfig::default())
            .await
            .unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn answers_are_parsed_and_malformed_ones_refused() {
        let a = parse_answer(&[0, 2, 1000, 3, 0, 500, 5, 700, 1900], 2).unwrap();
        assert!(!a.admitted);
        assert_eq!(a.blocking, Some(1));
        assert_eq!(a.windows, vec![(3, 0, 500), (5, 700, 1900)]);
        let a = parse_answer(&[1, 0, 1000, 1, 0, 2010], 1).unwrap();
        assert!(a.admitted);
        assert_eq!(a.blocking, None);
        assert!(parse_answer(&[1, 0, 1000, 1, 0], 1).is_none(), "short");
        assert!(
            parse_answer(&[0, 2, 1000, 1, 0, 5], 1).is_none(),
            "index out of range"
        );
        assert!(
            parse_answer(&[1, 0, 1000, -1, 0, 5], 1).is_none(),
            "negative"
        );
    }
}
