//! Persistence. One schema, two engines: PostgreSQL in production, SQLite as the embedded
//! default. Queries are written once with `$n` placeholders and run through `sqlx::Any`;
//! the few statements whose semantics differ (claiming a task) branch on [`Engine`].
//!
//! SQLite allows one writer at a time, and a writer that finds the database locked sleeps in
//! its busy handler (1, 2, 5 … 100 ms) instead of being woken when the lock frees: under
//! concurrent writes the unlucky ones waited hundreds of milliseconds (BENCHMARKS.md, load).
//! So every write goes through [`Store::writer`], on SQLite a pool of one connection whose
//! waiters queue in order, while reads use the main pool beside it (WAL).

mod configurations;
mod files;
mod job_tasks;
mod jobs;
mod notify;
mod pagination;
mod parse;
mod result_cache;
mod secrets;
mod stats;
mod tasks;
mod webhooks;

use std::str::FromStr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};
use tokio::sync::Notify;

pub use configurations::{ConfigurationFilter, ConfigurationRecord};
pub use files::{FileFilter, FileOrder, FileRecord, NewFile};
pub use job_tasks::TaskRecord;
pub use jobs::{JobFilter, JobRecord, JobTransition, NewJob, TaskOutcome};
pub use pagination::{Cursor, Page, SortKey};
pub use parse::{PageRanges, ParseOptions, ParsedPage, ParsedText};
pub use result_cache::CachedResult;
pub use stats::QueueStats;
pub use tasks::{ClaimedTask, TaskInputs};
pub use webhooks::{event_type, Delivery, DeliveryOutcome, WebhookConfigRecord, WebhookTarget};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A write that would break a uniqueness rule the caller can fix (e.g. a duplicate name).
    #[error("{0}")]
    Conflict(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Reads, and on PostgreSQL every statement.
    pool: AnyPool,
    /// Writes: on SQLite a single connection (see the module doc), on PostgreSQL `pool`.
    writer: AnyPool,
    engine: Engine,
    /// Wakes idle workers in this process when a task is queued.
    pub task_queued: Arc<Notify>,
    /// Where the task-queued listener connects (PostgreSQL only; see `notify.rs`).
    postgres_url: Option<Arc<str>>,
    /// Tasks committed but not yet announced to other replicas, and the announcer's wake-up
    /// (see `notify.rs`).
    unannounced: Arc<AtomicUsize>,
    announce: Arc<Notify>,
    /// Wakes idle webhook senders in this process when an event is written.
    pub webhook_queued: Arc<Notify>,
}

impl Store {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!(
                    "unsupported DATABASE_URL scheme (use postgres:// or sqlite://): {}",
                    redact_url(url)
                )
                .into(),
            )));
        };
        let pool = open_pool(engine, url, max_connections).await?;
        let writer = match engine {
            Engine::Postgres => pool.clone(),
            Engine::Sqlite => open_pool(engine, url, 1).await?,
        };
        Ok(Self {
            pool,
            writer,
            engine,
            task_queued: Arc::new(Notify::new()),
            postgres_url: (engine == Engine::Postgres).then(|| Arc::from(url)),
            unannounced: Arc::new(AtomicUsize::new(0)),
            announce: Arc::new(Notify::new()),
            webhook_queued: Arc::new(Notify::new()),
        })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match self.engine {
            Engine::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.writer)
                    .await?
            }
            Engine::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.writer)
                    .await?
            }
        }
        Ok(())
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Wakes a webhook sender after a transaction that wrote an event committed.
    fn webhook_event_written(&self, written: bool) {
        if written {
            self.webhook_queued.notify_one();
        }
    }

    /// Rewrites `$n` placeholders into SQLite's numbered `?n` form.
    fn sql(&self, query: &str) -> String {
        match self.engine {
            Engine::Postgres => query.to_string(),
            Engine::Sqlite => query.replace('$', "?"),
        }
    }
}

async fn open_pool(engine: Engine, url: &str, max_connections: u32) -> StoreResult<AnyPool> {
    let options = AnyConnectOptions::from_str(url)?;
    Ok(pool_options(engine, max_connections)
        .connect_with(options)
        .await?)
}

/// A connection idle at least this long is pinged before use (see [`pool_options`]).
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The server's pool settings; `classifyd-bench` builds its database ceiling on them too.
///
/// sqlx pings every pooled connection before handing it out unless told otherwise: a second
/// round trip for each statement (BENCHMARKS.md, worker path). Only a connection idle for a
/// second is checked — the kind a database restart or a dropped TCP session has killed; a
/// failed check discards it and another is taken. As with HikariCP's half-second bypass, a
/// connection killed less than a second after its last use fails one statement.
pub fn pool_options(engine: Engine, max_connections: u32) -> AnyPoolOptions {
    let pool_options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        });
    if engine != Engine::Sqlite {
        return pool_options;
    }
    pool_options.after_connect(|conn, _meta| {
        Box::pin(async move {
            // WAL lets readers run beside the writer; the busy timeout covers what the
            // single writer connection cannot: another process writing the same file.
            conn.execute("PRAGMA journal_mode = WAL").await?;
            conn.execute("PRAGMA busy_timeout = 10000").await?;
            conn.execute("PRAGMA synchronous = NORMAL").await?;
            conn.execute("PRAGMA foreign_keys = ON").await?;
            Ok(())
        })
    })
}

/// Microseconds since the Unix epoch: the stored form of every timestamp. Responses carry
/// the full precision so that a timestamp read back into a filter matches its own row.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub fn micros_to_rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn redact_url(url: &str) -> String {
    match url.split_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => url.to_string(),
    }
}
