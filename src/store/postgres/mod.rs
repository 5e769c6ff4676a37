//! PostgreSQL backend: several processes (`serve` replicas on several
//! machines, CLIs, consoles) share one registry.
//!
//! # Why a connection thread
//!
//! The [`Store`] trait is synchronous and is called from plain threads (the
//! CLI), from tokio's blocking pool (gateway control loop, console) and
//! possibly from async code. The synchronous `postgres` crate panics when it
//! is called on a thread that runs a tokio runtime, so every caller would
//! have to remember `spawn_blocking`. Instead each `PostgresStore` owns one
//! thread running a current-thread tokio runtime with one `tokio-postgres`
//! connection; the trait methods send it a job and wait on a std channel.
//! That works from any thread, cannot panic on a runtime, and serializes the
//! process's store calls on one connection exactly as the SQLite backend
//! does on its one connection (the callers are a handful of loops; a pool
//! would add a crate and buy nothing measurable). The runtime is driven all
//! the time, so a connection the server closed is noticed at once.
//!
//! # Changes and revisions
//!
//! `apply` runs in one transaction that first locks the revision row
//! (`SELECT … FOR UPDATE`): writers from every process serialize there, each
//! loads the registry as the previous writer committed it, runs
//! [`Registry::apply_all`], writes what it touched and moves the revision.
//! `load` reads in one `REPEATABLE READ` snapshot. `revision` is one indexed
//! row read, one round trip.
//!
//! # Losing the server
//!
//! A lost connection (server restarted, network cut) is replaced on the
//! next call; a job that failed because the connection was lost before it
//! committed is retried once on a new connection. Errors name the server as
//! `postgres://USER@HOST:PORT/DB`, never with the password. A gateway keeps
//! serving its last snapshot while calls fail and picks up changes once they
//! work again.

mod rows;
mod schema;
mod target;

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{Client, IsolationLevel, NoTls};

use super::sql::{Query, Rows, Statement};
use super::{Applied, Store, StoreError, batch, mapping};
use crate::domain::history::Journal;
use crate::domain::token::{AdminTokenRecord, TokenChange};
use crate::domain::usage::{Retention, UsageRow};
use crate::domain::{
    AuditEntry, AuditQuery, Change, DomainError, GatewayReport, Origin, ProbeLease, Registry,
    now_ms,
};

pub use schema::SCHEMA_VERSION;
pub use target::{Target, mask_url};

/// How long one store call may wait on the server (a lock held by another
/// writer included) before it fails: as long as SQLite's busy timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The PostgreSQL store.
pub struct PostgresStore {
    jobs: mpsc::UnboundedSender<Job>,
    target: Arc<Target>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Reply<T> = std_mpsc::SyncSender<Result<T, StoreError>>;

/// Decodes the rows of a ledger read.
type LedgerRows = fn(&Rows) -> Result<Vec<UsageRow>, StoreError>;

/// One call, sent to the connection thread.
enum Job {
    Open(Reply<()>),
    Load(Reply<Registry>),
    Revision(Reply<u64>),
    Apply(Vec<Change>, Box<Origin>, Reply<super::Applied>),
    Audit(Box<AuditQuery>, Reply<Vec<AuditEntry>>),
    Journals(u64, Reply<Vec<(u64, Journal)>>),
    Tokens(Reply<Vec<AdminTokenRecord>>),
    ChangeToken(Box<(TokenChange, Origin)>, Reply<AdminTokenRecord>),
    PutReport(Box<GatewayReport>, Reply<()>),
    RemoveReport(String, Reply<()>),
    Reports(i64, Reply<Vec<GatewayReport>>),
    SchemaVersion(Reply<i64>),
    /// Usage ledger writes (additive), each batch in one transaction; the
    /// `bool` says whether to take the ledger lock (compaction).
    LedgerWrite(Vec<Statement>, bool, Reply<()>),
    /// A read of the ledger and how to decode its rows.
    LedgerRead(Query, LedgerRows, Reply<Vec<UsageRow>>),
    /// Shared probes: statements, then the lease of a key, in one transaction.
    ProbeLease(Vec<Statement>, String, Reply<Option<ProbeLease>>),
}

impl PostgresStore {
    /// Connect to the database `url` names, migrate it to the current schema
    /// and, when new, seed the default catalog and cluster.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(Target::parse(url)?)
    }

    /// [`connect`](Self::connect) to a parsed target.
    pub fn open(target: Target) -> Result<Self, StoreError> {
        let target = Arc::new(target);
        let (jobs, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot start the PostgreSQL client: {e}")))?;
        let worker = Worker {
            target: target.clone(),
            client: None,
            lost: false,
        };
        let thread = std::thread::Builder::new()
            .name("maasctl-postgres".into())
            .spawn(move || runtime.block_on(worker.serve(rx)))
            .map_err(|e| StoreError::Backend(format!("cannot start the PostgreSQL client: {e}")))?;
        let store = Self {
            jobs,
            target,
            thread: Some(thread),
        };
        store.call(Job::Open)?;
        Ok(store)
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.call(Job::SchemaVersion)
    }

    /// Where it connects, without the password.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn call<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, StoreError> {
        let (tx, rx) = std_mpsc::sync_channel(1);
        let stopped = || {
            StoreError::Backend(format!(
                "the connection thread for PostgreSQL {} stopped",
                self.target
            ))
        };
        self.jobs.send(job(tx)).map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop, which closes the
        // connection; wait for it so the server sees a clean goodbye.
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.jobs, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store for PostgresStore {
    fn load(&self) -> Result<Registry, StoreError> {
        self.call(Job::Load)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        self.call(Job::Revision)
    }

    fn apply(&self, changes: Vec<Change>, origin: &Origin) -> Result<Applied, StoreError> {
        self.call(|r| Job::Apply(changes, Box::new(origin.clone()), r))
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.call(|r| Job::Audit(Box::new(query.clone()), r))
    }

    fn journals(&self, after: u64) -> Result<Vec<(u64, Journal)>, StoreError> {
        self.call(|r| Job::Journals(after, r))
    }

    fn tokens(&self) -> Result<Vec<AdminTokenRecord>, StoreError> {
        self.call(Job::Tokens)
    }

    fn change_token(
        &self,
        change: TokenChange,
        origin: &Origin,
    ) -> Result<AdminTokenRecord, StoreError> {
        self.call(|r| Job::ChangeToken(Box::new((change, origin.clone())), r))
    }

    fn put_report(&self, report: &GatewayReport) -> Result<(), StoreError> {
        self.call(|r| Job::PutReport(Box::new(report.clone()), r))
    }

    fn remove_report(&self, id: &str) -> Result<(), StoreError> {
        self.call(|r| Job::RemoveReport(id.to_string(), r))
    }

    fn reports_at(&self, now_ms: i64) -> Result<Vec<GatewayReport>, StoreError> {
        self.call(|r| Job::Reports(now_ms, r))
    }

    fn add_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        let statements = mapping::add_usage(rows)?;
        self.call(|r| Job::LedgerWrite(statements, false, r))
    }

    fn usage(&self, since_ms: i64, until_ms: i64) -> Result<Vec<UsageRow>, StoreError> {
        let q = mapping::usage_query(since_ms, until_ms);
        self.call(|r| Job::LedgerRead(q, mapping::usage_rows, r))
    }

    fn usage_totals(&self, since_ms: i64, split_ms: i64) -> Result<Vec<UsageRow>, StoreError> {
        let q = mapping::usage_totals_query(since_ms, split_ms);
        self.call(|r| Job::LedgerRead(q, mapping::usage_totals, r))
    }

    fn usage_summary(
        &self,
        since_ms: i64,
        until_ms: i64,
        step_ms: i64,
        open_end: bool,
    ) -> Result<Vec<UsageRow>, StoreError> {
        let q = mapping::usage_summary_query(since_ms, until_ms, step_ms, open_end);
        self.call(|r| Job::LedgerRead(q, mapping::usage_rows, r))
    }

    fn compact_usage(&self, now_ms: i64, keep: &Retention) -> Result<(), StoreError> {
        let statements = mapping::compact_usage(now_ms, keep);
        self.call(|r| Job::LedgerWrite(statements, true, r))
    }

    fn probe_lease(
        &self,
        key: &str,
        write: Vec<Statement>,
    ) -> Result<Option<ProbeLease>, StoreError> {
        self.call(|r| Job::ProbeLease(write, key.to_string(), r))
    }

    fn describe(&self) -> String {
        self.target.to_string()
    }
}

/// Why one attempt at a job failed.
enum Failure {
    /// From the server or the connection.
    Pg(tokio_postgres::Error),
    /// The connection failed while committing: the outcome is unknown, so
    /// the job is not retried.
    Commit(tokio_postgres::Error),
    /// Refused by the registry, or data this build cannot read.
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        Failure::Store(StoreError::Domain(e))
    }
}

/// A tokio-postgres error in words: the server's message (with its detail
/// and hint) for errors the server sent, the cause chain otherwise.
fn describe_pg(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" hint: {h}"));
            }
            s
        }
        None => target::chain(e),
    }
}

/// The connection thread's state.
struct Worker {
    target: Arc<Target>,
    client: Option<Client>,
    /// A connection was lost and not yet replaced (log the reconnect).
    lost: bool,
}

impl Worker {
    async fn serve(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        while let Some(job) = jobs.recv().await {
            // A caller that gave up (it cannot: it waits) would make send fail; ignore.
            match job {
                Job::Open(r) => {
                    let shown = self.target.to_string();
                    let _ = r.send(
                        self.run("open the store", async |c| schema::migrate(c, &shown).await)
                            .await,
                    );
                }
                Job::Load(r) => {
                    let _ = r.send(self.run("load the registry", async |c| load(c).await).await);
                }
                Job::Revision(r) => {
                    let _ = r.send(
                        self.run("read the revision", async |c| revision(c).await)
                            .await,
                    );
                }
                Job::Apply(changes, origin, r) => {
                    let _ = r.send(
                        self.run("apply a change", async |c| {
                            apply(c, changes.clone(), &origin).await
                        })
                        .await,
                    );
                }
                Job::Audit(q, r) => {
                    let _ = r.send(
                        self.run("read the audit trail", async |c| {
                            let rows = rows::fetch(&*c, &mapping::audit_query(&q)).await?;
                            Ok(mapping::audit_entries(&rows)?)
                        })
                        .await,
                    );
                }
                Job::Journals(after, r) => {
                    let _ = r.send(
                        self.run("read the history", async |c| {
                            let rows = rows::fetch(&*c, &mapping::journals_query(after)).await?;
                            Ok(mapping::journals(&rows)?)
                        })
                        .await,
                    );
                }
                Job::Tokens(r) => {
                    let _ = r.send(
                        self.run("read the admin tokens", async |c| {
                            let rows =
                                rows::fetch(&*c, &Query::all(&mapping::ADMIN_TOKENS)).await?;
                            Ok(mapping::tokens(&rows)?)
                        })
                        .await,
                    );
                }
                Job::ChangeToken(job, r) => {
                    let (change, origin) = &*job;
                    let _ = r.send(
                        self.run("change an admin token", async |c| {
                            change_token(c, change, origin).await
                        })
                        .await,
                    );
                }
                Job::PutReport(report, r) => {
                    let _ = r.send(
                        self.run("write a gateway report", async |c| {
                            put_report(c, &report).await
                        })
                        .await,
                    );
                }
                job @ (Job::LedgerWrite(..) | Job::LedgerRead(..) | Job::ProbeLease(..)) => {
                    self.serve_side(job).await
                }
                Job::RemoveReport(id, r) => {
                    let _ = r.send(
                        self.run("remove a gateway report", async |c| {
                            rows::execute(&*c, &[mapping::remove_report(&id)]).await
                        })
                        .await,
                    );
                }
                Job::Reports(now_ms, r) => {
                    let _ = r.send(
                        self.run("read gateway reports", async |c| reports(c, now_ms).await)
                            .await,
                    );
                }
                Job::SchemaVersion(r) => {
                    let _ = r.send(
                        self.run("read the schema version", async |c| {
                            let tx = c.build_transaction().read_only(true).start().await?;
                            schema::version(&tx).await
                        })
                        .await,
                    );
                }
            }
        }
    }
    /// The jobs beside the registry: the usage ledger and shared probes.
    async fn serve_side(&mut self, job: Job) {
        match job {
            Job::LedgerWrite(statements, lock, r) => {
                let _ = r.send(
                    self.run("write the usage ledger", async |c| {
                        ledger_write(c, &statements, lock).await
                    })
                    .await,
                );
            }
            Job::LedgerRead(q, decode, r) => {
                let _ = r.send(
                    self.run("read the usage ledger", async |c| {
                        Ok(decode(&rows::fetch(&*c, &q).await?)?)
                    })
                    .await,
                );
            }
            Job::ProbeLease(statements, key, r) => {
                let lease = self.run("share a probe", async |c| {
                    probe_lease(c, &statements, &key).await
                });
                let _ = r.send(lease.await);
            }
            _ => unreachable!("serve_side gets ledger and probe jobs only"),
        }
    }

    /// Run `f` on a live connection (connecting first if there is none),
    /// within [`CALL_TIMEOUT`]. If the connection turns out lost before a
    /// commit, try once more on a new one.
    async fn run<T>(
        &mut self,
        what: &str,
        mut f: impl AsyncFnMut(&mut Client) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let mut retried = false;
        loop {
            let attempt = tokio::time::timeout(CALL_TIMEOUT, async {
                let client = self.client().await?;
                Ok::<_, StoreError>(f(client).await)
            })
            .await;
            let failure = match attempt {
                Ok(Ok(Ok(v))) => return Ok(v),
                Ok(Err(connect)) => return Err(connect),
                Ok(Ok(Err(failure))) => failure,
                Err(_) => {
                    // Whatever the connection was doing, its state is unknown now.
                    self.forget();
                    return Err(StoreError::Backend(format!(
                        "PostgreSQL {} did not answer within {}s ({what})",
                        self.target,
                        CALL_TIMEOUT.as_secs()
                    )));
                }
            };
            let closed = self.client.as_ref().is_none_or(Client::is_closed);
            if closed {
                self.forget();
            }
            match failure {
                Failure::Store(e) => return Err(e),
                Failure::Pg(_) if closed && !retried => {
                    retried = true;
                    continue;
                }
                Failure::Pg(e) => {
                    return Err(StoreError::Backend(format!(
                        "PostgreSQL {}: cannot {what}: {}",
                        self.target,
                        describe_pg(&e)
                    )));
                }
                Failure::Commit(e) => {
                    return Err(StoreError::Backend(format!(
                        "PostgreSQL {}: the connection failed while committing ({}); the change may or may not have been saved: check before trying again",
                        self.target,
                        describe_pg(&e)
                    )));
                }
            }
        }
    }

    /// Drop the current connection (it is closed or in an unknown state).
    fn forget(&mut self) {
        if self.client.take().is_some() {
            tracing::warn!("lost the connection to PostgreSQL {}", self.target);
            self.lost = true;
        }
    }

    /// The live connection, made if there is none.
    async fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.forget();
        }
        if self.client.is_none() {
            let (client, connection) = self.target.config().connect(NoTls).await.map_err(|e| {
                StoreError::Backend(format!(
                    "cannot connect to PostgreSQL {}: {}",
                    self.target,
                    describe_pg(&e)
                ))
            })?;
            let shown = self.target.clone();
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(
                        "connection to PostgreSQL {shown} ended: {}",
                        describe_pg(&e)
                    );
                }
            });
            if std::mem::take(&mut self.lost) {
                tracing::info!("reconnected to PostgreSQL {}", self.target);
            }
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

async fn load(c: &mut Client) -> Result<Registry, Failure> {
    let tx = c
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let reg = mapping::registry(&rows::fetch_all(&tx, &mapping::load_queries()).await?)?;
    tx.commit().await?;
    Ok(reg)
}

async fn revision(c: &mut Client) -> Result<u64, Failure> {
    Ok(mapping::revision(
        &rows::fetch(&*c, &mapping::revision_query()).await?,
    )?)
}

/// Writers from every process (registry changes and admin token changes
/// alike: both append to the audit trail) queue on the revision row.
const WRITE_LOCK: &str = "SELECT value FROM meta WHERE key = 'revision' FOR UPDATE";

async fn apply(c: &mut Client, changes: Vec<Change>, origin: &Origin) -> Result<Applied, Failure> {
    let tx = c.transaction().await?;
    // What is loaded below is what the previous writer committed.
    tx.execute(WRITE_LOCK, &[]).await?;
    let reg = mapping::registry(&rows::fetch_all(&tx, &mapping::load_queries()).await?)?;
    let planned = batch::plan(reg, changes, origin, now_ms())?;
    // Nothing changed: nothing is written, the revision stays (the
    // transaction rolls back when dropped).
    if !planned.statements.is_empty() {
        rows::execute(&tx, &planned.statements).await?;
        tx.commit().await.map_err(Failure::Commit)?;
    }
    Ok(planned.applied)
}

async fn change_token(
    c: &mut Client,
    change: &TokenChange,
    origin: &Origin,
) -> Result<AdminTokenRecord, Failure> {
    let tx = c.transaction().await?;
    tx.execute(WRITE_LOCK, &[]).await?;
    let tokens = mapping::tokens(&rows::fetch(&tx, &Query::all(&mapping::ADMIN_TOKENS)).await?)?;
    let (written, statements) = batch::plan_token(&tokens, change, origin, now_ms())?;
    rows::execute(&tx, &statements).await?;
    tx.commit().await.map_err(Failure::Commit)?;
    Ok(written)
}

async fn put_report(c: &mut Client, report: &GatewayReport) -> Result<(), Failure> {
    let statements = mapping::put_report(report)?;
    let tx = c.transaction().await?;
    rows::execute(&tx, &statements).await?;
    tx.commit().await?;
    Ok(())
}

async fn reports(c: &mut Client, now_ms: i64) -> Result<Vec<GatewayReport>, Failure> {
    Ok(mapping::reports(
        &rows::fetch(&*c, &mapping::reports_query(now_ms)).await?,
    )?)
}

/// Serializes ledger compactions across replicas (an arbitrary constant).
const LEDGER_LOCK: &str = "SELECT pg_advisory_xact_lock(7243020512)";

/// Run ledger statements in one transaction. A compaction first takes the
/// ledger lock, so two replicas never age the ledger at once; additive
/// writes need none (`ON CONFLICT … DO UPDATE` adds under the row lock).
/// A commit whose outcome is unknown is not retried (no double count).
async fn ledger_write(c: &mut Client, statements: &[Statement], lock: bool) -> Result<(), Failure> {
    let tx = c.transaction().await?;
    if lock {
        tx.execute(LEDGER_LOCK, &[]).await?;
    }
    rows::execute(&tx, statements).await?;
    tx.commit().await.map_err(Failure::Commit)?;
    Ok(())
}

async fn probe_lease(
    c: &mut Client,
    statements: &[Statement],
    key: &str,
) -> Result<Option<ProbeLease>, Failure> {
    let tx = c.transaction().await?;
    rows::execute(&tx, statements).await?;
    let rows = rows::fetch(&tx, &mapping::probe_lease_query(key)).await?;
    tx.commit().await.map_err(Failure::Commit)?;
    Ok(mapping::probe_lease(&rows)?)
}
