//! Tracing for the console: to a file in the data directory and to an
//! in-memory ring the `:logs` view reads. Never to the terminal, which the
//! console owns.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// Name of the log file in the data directory.
pub const LOG_FILE: &str = "maasctl.log";
/// Environment variable with a tracing filter (`info`, `maasctl=debug`…).
pub const LOG_ENV: &str = "MAASCTL_LOG";

/// One log line as the `:logs` view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Unix ms.
    pub at_ms: i64,
    pub level: Level,
    pub target: String,
    pub message: String,
}

/// The kept lines and how many were ever pushed (line `n`, counted from
/// 1, is the `n`th pushed: the admin API's `?after=` cursor).
#[derive(Default)]
struct Lines {
    kept: VecDeque<LogLine>,
    pushed: u64,
}

/// The last lines logged by this run; cheap to clone and share.
#[derive(Clone)]
pub struct LogRing {
    inner: Arc<Mutex<Lines>>,
    capacity: usize,
    /// Counts lines pushed, so the UI knows when to redraw the logs view.
    seq: watch::Sender<u64>,
}

impl LogRing {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Lines {
                kept: VecDeque::with_capacity(capacity),
                pushed: 0,
            })),
            capacity,
            seq: watch::Sender::new(0),
        }
    }

    pub fn push(&self, line: LogLine) {
        {
            let mut q = self.inner.lock();
            if q.kept.len() == self.capacity {
                q.kept.pop_front();
            }
            q.kept.push_back(line);
            q.pushed += 1;
        }
        self.seq.send_modify(|s| *s += 1);
    }

    /// Lines `[start, start+n)` counted from the oldest kept, plus the total.
    pub fn window(&self, start: usize, n: usize) -> (Vec<LogLine>, usize) {
        let q = self.inner.lock();
        (
            q.kept.iter().skip(start).take(n).cloned().collect(),
            q.kept.len(),
        )
    }

    /// Up to `max` kept lines pushed after line number `after`, oldest
    /// first, each with its number; and the number of the newest line (the
    /// next call's `after`). Lines already dropped from the ring are skipped.
    pub fn after(&self, after: u64, max: usize) -> (Vec<(u64, LogLine)>, u64) {
        let q = self.inner.lock();
        let first = q.pushed - q.kept.len() as u64 + 1;
        let skip = after.saturating_add(1).saturating_sub(first);
        let lines = q
            .kept
            .iter()
            .zip(first..)
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .take(max)
            .map(|(l, n)| (n, l.clone()))
            .collect();
        (lines, q.pushed)
    }

    pub fn len(&self) -> usize {
        self.inner.lock().kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes whenever a line is pushed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }
}

/// The tracing layer feeding a [`LogRing`].
struct RingLayer(LogRing);

struct MessageVisitor<'a>(&'a mut String);

impl Visit for MessageVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = String::new();
        event.record(&mut MessageVisitor(&mut message));
        self.0.push(LogLine {
            at_ms: crate::domain::now_ms(),
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            message,
        });
    }
}

/// Keeps the file writer flushing; drop it last.
pub struct LogGuard {
    _guard: tracing_appender::non_blocking::WorkerGuard,
}

/// Send tracing to `<dir>/maasctl.log` and to the returned ring. The filter
/// comes from `MAASCTL_LOG` (default `info`).
pub fn init(dir: &Path) -> Result<(LogRing, LogGuard), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
    private_log_file(&dir.join(LOG_FILE)).map_err(|e| {
        format!(
            "cannot create log file {}: {e}",
            dir.join(LOG_FILE).display()
        )
    })?;
    let appender = tracing_appender::rolling::never(dir, LOG_FILE);
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let ring = LogRing::new(2000);
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(writer).with_ansi(false))
        .with(RingLayer(ring.clone()))
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok((ring, LogGuard { _guard: guard }))
}

/// Create the log file readable by its owner only (0600, like the store:
/// log lines name models, keys and endpoints), and take read access from
/// others on a file an older maasctl or another umask left open.
fn private_log_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(drop)
    }
}

/// `maasctl serve`: tracing to standard error (filter from `RUST_LOG`,
/// default `info`) and to the returned ring, which the admin API's logs
/// route reads.
pub fn init_stderr() -> Result<LogRing, String> {
    let ring = LogRing::new(2000);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(RingLayer(ring.clone()))
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_lines_and_counts_pushes() {
        let ring = LogRing::new(3);
        let rx = ring.subscribe();
        for i in 0..5 {
            ring.push(LogLine {
                at_ms: i,
                level: Level::INFO,
                target: "t".into(),
                message: format!("line {i}"),
            });
        }
        let (lines, total) = ring.window(0, 10);
        assert_eq!(total, 3);
        assert_eq!(lines[0].message, "line 2");
        assert_eq!(*rx.borrow(), 5);
        // Numbered from 1 over every push; dropped lines are skipped.
        let (after, newest) = ring.after(0, 10);
        assert_eq!(newest, 5);
        let nums: Vec<u64> = after.iter().map(|(n, _)| *n).collect();
        assert_eq!(nums, [3, 4, 5]);
        assert_eq!(after[0].1.message, "line 2");
        let (after, _) = ring.after(4, 10);
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].1.message, "line 4");
        assert!(ring.after(5, 10).0.is_empty());
        assert_eq!(ring.after(0, 1).0.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn the_log_file_is_private_new_or_old() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let new = dir.path().join("new.log");
        private_log_file(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
        let old = dir.path().join("old.log");
        std::fs::write(&old, "kept\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        private_log_file(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "kept\n");
    }

    #[test]
    fn layer_formats_message_then_fields() {
        let ring = LogRing::new(10);
        let sub = tracing_subscriber::registry().with(RingLayer(ring.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(model = "m1", "endpoint down");
        });
        let (lines, _) = ring.window(0, 10);
        assert_eq!(lines[0].message, "endpoint down model=m1");
        assert_eq!(lines[0].level, Level::WARN);
    }
}
