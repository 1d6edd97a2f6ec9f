//! Persistence: call records and (later) queue events and QC data, in SQLite
//! (embedded default) or PostgreSQL, with migrations per backend. Records are
//! handed to a writer task over a bounded channel, never written on the call
//! or media path.
//!
//! One [`Store`] type serves both backends: it holds a typed sqlx pool per
//! backend and runs per-backend SQL where the dialects differ. Every query is
//! parameterized; no value is ever spliced into SQL text.
//!
//! Time storage: SQLite keeps times as fixed-width ISO-8601 UTC text
//! (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, so text order is time order), PostgreSQL as
//! `timestamptz`. Both keep microseconds; finer parts of a `DateTime` are
//! truncated on insert.
//!
//! URLs accepted by [`Store::open`]: `sqlite:PATH` (also `sqlite://PATH`; the
//! file and its parent directory are created if missing) and
//! `postgres://…` / `postgresql://…` (any sqlx connection parameter, e.g.
//! `?options[search_path]=myschema`).

/// Runs `$body` with `$pool` bound to the backend's typed pool: one body
/// for both backends where the SQL text is the same.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Db::Sqlite { pool: $pool, .. } => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

pub mod audit;
pub mod callbacks;
mod calls;
pub use calls::CallFilter;
mod demo;
#[macro_use]
pub mod events;
pub mod kpi;
mod lookup;
mod migrate;
pub mod open_calls;
pub mod qc_samples;
pub mod qc_scores;
pub mod recordings;
pub mod records;
mod registrations;
pub mod spool;
pub mod users;
pub mod writer;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

pub use audit::{AuditFilter, AuditRow};
pub use callbacks::{CallbackAttemptRow, CallbackFilter, CallbackRow};
pub use demo::{DemoAccount, DEMO_ACCOUNTS};
pub use events::{AgentStateRow, EventFilter, QueueEventRow};
pub use lookup::{check_lookup_sql, lookup_sql_params};
pub use qc_samples::{
    CallerContact, SampleCandidate, SampleFilter, SamplePick, SampleRow, SampleRunFilter,
    SampleRunRow, SampleSource,
};
pub use qc_scores::{
    DisputeRow, ScoreCommentRow, ScoreFilter, ScoreItemRow, ScoreRow, ScoreStatus, WorklistFilter,
    WorklistRow,
};
pub use recordings::{
    RecordingFilter, RecordingKind, RecordingMarkRow, RecordingRow, RecordingStatus,
};
pub use records::{CallRecord, Disposition, HangupBy, QueueOutcome};
pub use users::{SessionRow, UserRow};
pub use writer::{spawn_spooling_writer, spawn_writer, RecordSink, WriterStats};

/// PostgreSQL cannot type a bare `$n IS NULL`: there it becomes
/// `$n::text IS NULL` for each listed parameter (every optional filter
/// value is bound as text). SQLite takes the SQL as written.
fn pg_text_nulls(db: &Db, sql: String, params: impl IntoIterator<Item = usize>) -> String {
    match db {
        Db::Sqlite { .. } => sql,
        Db::Postgres(_) => params.into_iter().fold(sql, |s, n| {
            s.replace(&format!("${n} IS NULL"), &format!("${n}::text IS NULL"))
        }),
    }
}

/// A fresh unique id (128 random bits, hex): the retry key of rows the
/// writer may write twice.
pub fn new_uid() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A value bound to, or read from, a parameterized look-up query.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Text(String),
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no backend we support.
    #[error(
        "unsupported database URL scheme {scheme:?}: expected `sqlite:PATH` or `postgres://…`"
    )]
    UnknownScheme { scheme: String },
    /// The URL has a supported scheme but cannot be used.
    #[error("invalid database URL: {0}")]
    BadUrl(String),
    /// The directory for the SQLite file could not be created.
    #[error("cannot create the directory {path} for the SQLite database: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Opening the database (or its pool) failed.
    #[error("cannot open the {backend} database: {source}")]
    Connect {
        backend: Backend,
        source: sqlx::Error,
    },
    /// Applying the embedded migrations failed; the schema is left at the last
    /// migration that succeeded (each runs in its own transaction).
    #[error("{backend} schema migration failed: {source}")]
    Migrate {
        backend: Backend,
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed.
    #[error("database error while {context}: {source}")]
    Query {
        context: &'static str,
        source: sqlx::Error,
    },
    /// Look-up SQL from the configuration is not acceptable.
    #[error("invalid look-up SQL: {0}")]
    LookupSql(String),
    /// The look-up was called with the wrong number of values.
    #[error(
        "look-up SQL uses {expected} parameter(s) ($1…${expected}) but {given} value(s) were given"
    )]
    LookupParams { expected: usize, given: usize },
    /// A look-up result column has a type the IVR cannot use.
    #[error("look-up column {column:?} has type {type_name}, which is not supported: cast it to text or an integer in the SQL")]
    LookupType { column: String, type_name: String },
    /// A stored call record could not be read back.
    #[error("stored call record {call_id:?} is invalid: {detail}")]
    Corrupt { call_id: String, detail: String },
    /// The record writer has shut down; nothing more can be submitted.
    #[error("the call-record writer has stopped")]
    WriterClosed,
    /// The record writer's spool on disk could not be written or read.
    #[error("the record spool: {0}")]
    Spool(std::io::Error),
}

impl StoreError {
    pub(crate) fn query(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { context, source }
    }

    /// The database could not be reached or is refusing work for now
    /// (network, server stopping, locked, disk full): trying again later
    /// can succeed. False for errors in the data or the SQL.
    pub fn is_unavailable(&self) -> bool {
        let source = match self {
            StoreError::Connect { .. } => return true,
            StoreError::Query { source, .. } => source,
            _ => return false,
        };
        match source {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // BUSY, LOCKED, IOERR, FULL, CANTOPEN (primary codes).
                    code.parse::<u32>()
                        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
                } else {
                    // PostgreSQL: connection exception, insufficient
                    // resources, operator intervention (shutdown), system
                    // error, transaction rollback (serialization, deadlock).
                    ["08", "53", "57", "58", "40"]
                        .iter()
                        .any(|class| code.starts_with(class))
                }
            }
            _ => false,
        }
    }
}

#[derive(Clone)]
enum Db {
    Sqlite {
        /// Read-write pool: inserts, migrations.
        pool: SqlitePool,
        /// Pool whose connections have `PRAGMA query_only = ON`: IVR look-ups
        /// run here so configured SQL can never modify data.
        lookup: SqlitePool,
    },
    Postgres(PgPool),
}

/// The database handle. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Db,
    /// Set once the migrations are applied: at open, or, for a store
    /// opened while its database did not answer
    /// ([`Store::open_unreachable`]), at the first [`Store::ping`] it
    /// answers.
    migrated: Arc<tokio::sync::OnceCell<()>>,
}

/// Shows the backend only: connection options may hold a password.
impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Runs a database operation on a blocking-pool thread of the runtime.
///
/// Two reasons. The SQLite driver works on its own thread; under tokio's
/// paused clock (the call tests) the runtime would see itself idle while a
/// query runs and jump the clock to the next timer, firing time-outs that
/// real time would never fire. A task on the blocking pool holds the clock
/// still until it finishes. And no database round trip ever occupies a
/// runtime worker that call and media tasks need.
pub(crate) async fn off_runtime<T, F>(fut: F) -> T
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || handle.block_on(fut)).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// SQLite waits this long for a lock held by another connection.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

impl Store {
    /// Opens (creating if needed) the database at `url` and applies any pending
    /// migrations embedded in the binary.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let url = url.to_string();
        off_runtime(async move { Store::open_now(&url).await }).await
    }

    async fn open_now(url: &str) -> Result<Store, StoreError> {
        let url = url.trim();
        let store = if let Some(rest) = url.strip_prefix("sqlite:") {
            Store::open_sqlite(rest).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Store::open_postgres(url).await?
        } else {
            let scheme = url.split(':').next().unwrap_or_default().to_string();
            return Err(StoreError::UnknownScheme { scheme });
        };
        store.migrate_now().await?;
        let _ = store.migrated.set(());
        Ok(store)
    }

    /// A PostgreSQL store whose database does not answer now (the daemon
    /// starts anyway and spools): no connection is made until one is
    /// needed, and the migrations are applied at the first [`Store::ping`]
    /// that reaches the database. Until then every query fails as the
    /// database being unavailable.
    pub async fn open_unreachable(url: &str) -> Result<Store, StoreError> {
        let url = url.trim().to_string();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::BadUrl(
                "only a PostgreSQL store can start without its database".into(),
            ));
        }
        off_runtime(async move {
            let options =
                PgConnectOptions::from_str(&url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(options);
            Ok(Store {
                db: Db::Postgres(pool),
                migrated: Arc::default(),
            })
        })
        .await
    }

    /// Whether the migrations are applied (always, but for a store from
    /// [`Store::open_unreachable`] whose database has not answered yet).
    pub fn is_migrated(&self) -> bool {
        self.migrated.initialized()
    }

    async fn open_sqlite(rest: &str) -> Result<Store, StoreError> {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(StoreError::BadUrl("`sqlite:` needs a file path".into()));
        }
        if path.starts_with(':') || path.contains("mode=memory") {
            return Err(StoreError::BadUrl(
                "in-memory SQLite is not supported; give a file path (a temporary directory in tests)"
                    .into(),
            ));
        }
        let path = PathBuf::from(path);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        let connect = |source| StoreError::Connect {
            backend: Backend::Sqlite,
            source,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.clone())
            .await
            .map_err(connect)?;
        let lookup = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.pragma("query_only", "ON"))
            .await
            .map_err(connect)?;
        Ok(Store {
            db: Db::Sqlite { pool, lookup },
            migrated: Arc::default(),
        })
    }

    async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            // sqlx's message does not echo the URL, so no password leaks here.
            StoreError::BadUrl(e.to_string())
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                backend: Backend::Postgres,
                source,
            })?;
        Ok(Store {
            db: Db::Postgres(pool),
            migrated: Arc::default(),
        })
    }

    /// Runs a trivial query: does the database answer now? A store whose
    /// migrations wait ([`Store::open_unreachable`]) applies them first.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let this = self.clone();
        off_runtime(async move {
            this.migrated
                .get_or_try_init(|| async {
                    this.migrate_now().await?;
                    tracing::info!("the database answers: migrations applied");
                    Ok::<(), StoreError>(())
                })
                .await?;
            with_pool!(&this.db, |pool| sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(StoreError::query("checking the database answers")))
        })
        .await
    }

    /// Applies pending migrations of this backend (already done by
    /// [`Store::open`]; running it again is a no-op).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let this = self.clone();
        off_runtime(async move { this.migrate_now().await }).await
    }

    async fn migrate_now(&self) -> Result<(), StoreError> {
        let backend = self.backend();
        let migrator = migrate::migrator(backend);
        let result = match &self.db {
            Db::Sqlite { pool, .. } => migrator.run(pool).await,
            Db::Postgres(pool) => migrator.run(pool).await,
        };
        result.map_err(|source| StoreError::Migrate { backend, source })
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection; waits for queries in flight.
    pub async fn close(&self) {
        let this = self.clone();
        off_runtime(async move { this.close_now().await }).await
    }

    async fn close_now(&self) {
        match &self.db {
            Db::Sqlite { pool, lookup } => {
                lookup.close().await;
                pool.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}
