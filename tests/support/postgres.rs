//! A real, throw-away PostgreSQL server for tests (Debian's `postgresql`
//! package): `initdb` into a temporary directory, `postgres` on a port the
//! OS picked on 127.0.0.1 (its socket in the same directory), trust auth on
//! loopback, one database per test. Stopped on drop; the server a whole
//! test binary shares ([`shared`]) is stopped when the binary exits, and
//! dies with it if it is killed.
//!
//! PostgreSQL refuses to run as root, and tests run as root in CI: the
//! server then runs as the `postgres` user the package creates (setgid/
//! setuid before exec), owning its directory.

#![allow(dead_code)] // each test binary uses its own subset

use std::ffi::CString;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// One PostgreSQL server.
pub struct PgServer {
    bin: PathBuf,
    /// Its directory (data in `data/`, socket, log); removed on stop.
    dir: PathBuf,
    port: u16,
    owner: Option<(libc::uid_t, libc::gid_t)>,
    child: Mutex<Option<Child>>,
}

/// A database of its own on a server.
pub struct PgDb {
    pub name: String,
    port: u16,
    bin: PathBuf,
}

impl PgDb {
    /// The store URL of this database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, self.name)
    }

    /// Run SQL in this database as the superuser (`psql`), panicking on error.
    pub fn sql(&self, sql: &str) -> String {
        psql(&self.bin, self.port, &self.name, sql)
    }

    /// [`sql`](Self::sql), with the server's refusal as an error.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        try_psql(&self.bin, self.port, &self.name, sql)
    }

    /// Everything the database holds, as `pg_dump` writes it.
    pub fn dump(&self) -> Vec<u8> {
        let out = Command::new(self.bin.join("pg_dump"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(&self.name)
            .stdin(Stdio::null())
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl PgServer {
    /// Start a server of its own (for tests that stop and restart it).
    pub fn start() -> Self {
        let bin = bin_dir();
        let owner = server_owner();
        let dir = tempfile::Builder::new()
            .prefix("maasctl-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL")
            .keep();
        if let Some((uid, gid)) = owner {
            chown(&dir, uid, gid);
        }
        let out = as_owner(Command::new(bin.join("initdb")), owner)
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}; install PostgreSQL: apt-get install -y postgresql",
                    bin.join("initdb").display()
                )
            });
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = Self {
            bin,
            dir,
            port: 0,
            owner,
            child: Mutex::new(None),
        };
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match server.launch(port) {
                Ok(child) => {
                    *server.child.lock().unwrap() = Some(child);
                    server.port = port;
                    return server;
                }
                Err(e) => last = e,
            }
        }
        panic!("PostgreSQL did not start: {last}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new, empty database.
    pub fn create_db(&self) -> PgDb {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        psql(
            &self.bin,
            self.port,
            "postgres",
            &format!("CREATE DATABASE {name}"),
        );
        PgDb {
            name,
            port: self.port,
            bin: self.bin.clone(),
        }
    }

    /// Stop at once, like a crash or `pg_ctl stop -m immediate` (clients are
    /// cut off; committed work survives), and wait until it is gone.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            // SAFETY: a plain signal to our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGQUIT) };
            let _ = child.wait();
        }
    }

    /// Start again on the same port, with the same data.
    pub fn restart(&self) {
        self.stop();
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            match self.launch(self.port) {
                Ok(child) => {
                    *self.child.lock().unwrap() = Some(child);
                    return;
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("PostgreSQL did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Stop and remove its directory.
    fn discard(&self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Run `postgres` on `port`; wait until it accepts connections (or has
    /// exited, e.g. because the port was taken).
    fn launch(&self, port: u16) -> Result<Child, String> {
        let log = self.dir.join("postgres.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        if let Some((uid, gid)) = self.owner {
            chown(&log, uid, gid);
        }
        let mut cmd = as_owner(Command::new(self.bin.join("postgres")), self.owner);
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            // A throw-away server: no need to survive an OS crash.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300", "-c", "shared_buffers=16MB"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file);
        let mut child = spawn_tied(cmd).map_err(|e| format!("cannot run postgres: {e}"))?;
        let deadline = Instant::now() + START_PATIENCE;
        while Instant::now() < deadline {
            if ready(&self.bin, port) {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                return Err(format!("exited with {status}: {}", tail.join(" / ")));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!(
            "not accepting connections on port {port} within {START_PATIENCE:?}"
        ))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.discard();
    }
}

/// The server every test of this binary shares (a database each), started
/// on first use and stopped when the test binary exits.
pub fn shared() -> &'static PgServer {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    extern "C" fn stop_shared() {
        if let Some(s) = SHARED.get() {
            s.discard();
        }
    }
    SHARED.get_or_init(|| {
        let s = PgServer::start();
        // SAFETY: registers a plain function run by exit().
        unsafe { libc::atexit(stop_shared) };
        s
    })
}

/// A fresh database on the shared server.
pub fn db() -> PgDb {
    shared().create_db()
}

/// `$MAASCTL_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`
/// (Debian puts the server binaries there, not on PATH).
fn bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("MAASCTL_PG_BIN") {
        return p.into();
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).expect(
        "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin; install them: apt-get install -y postgresql (or set MAASCTL_PG_BIN)",
    )
}

/// When running as root: the `postgres` system user to run the server as.
fn server_owner() -> Option<(libc::uid_t, libc::gid_t)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let name = CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns null or a pointer valid until the next call;
    // both fields are copied out at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root and there is no 'postgres' user to run the server as; install Debian's postgresql package"
    );
    // SAFETY: checked non-null above.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn chown(path: &Path, uid: libc::uid_t, gid: libc::gid_t) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// `cmd`, run as `owner` when given (dropping root's groups first).
fn as_owner(mut cmd: Command, owner: Option<(libc::uid_t, libc::gid_t)>) -> Command {
    if let Some((uid, gid)) = owner {
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    cmd
}

/// Spawn `cmd` so that it gets SIGQUIT (PostgreSQL's immediate shutdown)
/// if this process dies without stopping it. The parent-death signal fires
/// when the *thread* that forked the child ends, so every such child is
/// forked by one thread that lives as long as the process.
fn spawn_tied(mut cmd: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("pg-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    // SAFETY: prctl is async-signal-safe. Set after any setuid in an
    // earlier pre_exec hook (a credential change clears it).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((cmd, tx))
        .expect("spawner thread alive");
    rx.recv().expect("spawner thread answers")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Does the server on `port` accept connections (`pg_isready`)?
fn ready(bin: &Path, port: u16) -> bool {
    Command::new(bin.join("pg_isready"))
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-d", "postgres", "-t", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run `sql` in `db` with `psql`; its output (unaligned, tuples only).
fn psql(bin: &Path, port: u16, db: &str, sql: &str) -> String {
    try_psql(bin, port, db, sql).unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
}

/// `psql -c sql`: its output, or what it printed on failure.
fn try_psql(bin: &Path, port: u16, db: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(bin.join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(["-d", db, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
