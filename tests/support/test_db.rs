//! The test databases of the store-level tests (`tests/store.rs`,
//! `tests/qc_sampling.rs`, `tests/registrar.rs`): a fresh SQLite file, or a fresh schema in the
//! PostgreSQL database of `HOTLINE_TEST_POSTGRES`, and `both_backends!`,
//! which runs a test body on each. Included with `#[path]` by each test.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chrono::Utc;
use hotline::store::{Backend, Store};
use sqlx::Connection;

/// One test database: its URL and how to clean it up.
#[derive(Clone)]
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<Arc<tempfile::TempDir>>,
    /// PostgreSQL: the admin URL and the schema to drop.
    pg: Option<(String, String)>,
}

pub static SCHEMA_SEQ: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        // A missing sub-directory: open must create it.
        let path = dir.path().join("var/lib/hotline/hotline.db");
        TestDb {
            url: format!("sqlite:{}", path.display()),
            backend: Backend::Sqlite,
            _dir: Some(Arc::new(dir)),
            pg: None,
        }
    }

    pub async fn postgres() -> Option<TestDb> {
        let admin = std::env::var("HOTLINE_TEST_POSTGRES").ok()?;
        let schema = format!(
            "hotline_test_{}_{}_{}",
            std::process::id(),
            Utc::now().timestamp_micros(),
            SCHEMA_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("connect to HOTLINE_TEST_POSTGRES");
        // The schema name is made here, not taken from input.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let sep = if admin.contains('?') { '&' } else { '?' };
        Some(TestDb {
            url: format!("{admin}{sep}options[search_path]={schema}"),
            backend: Backend::Postgres,
            _dir: None,
            pg: Some((admin, schema)),
        })
    }

    pub async fn open(&self) -> Store {
        let store = Store::open(&self.url).await.expect("open store");
        assert_eq!(store.backend(), self.backend);
        store
    }

    /// Runs SQL on a connection of its own (not the store's).
    pub async fn exec(&self, sql: &str) {
        self.try_exec(sql).await.unwrap();
    }

    /// Like `exec`, the database's error as text (a constraint refused).
    pub async fn try_exec(&self, sql: &str) -> Result<(), String> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let r = match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                let r = sqlx::raw_sql(sql).execute(&mut c).await.map(drop);
                c.close().await.unwrap();
                r
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let r = sqlx::raw_sql(sql).execute(&mut c).await.map(drop);
                c.close().await.unwrap();
                r
            }
        };
        r.map_err(|e| e.to_string())
    }

    /// Runs a query returning one integer, on a connection of its own.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self.backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }

    pub async fn cleanup(&self) {
        if let Some((admin, schema)) = &self.pg {
            let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// Defines `NAME::sqlite` and `NAME::postgres` tests running `async fn NAME(TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::run(super::TestDb::sqlite(), super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            pub async fn postgres() {
                match super::TestDb::postgres().await {
                    Some(db) => super::run(db, super::$name).await,
                    None => eprintln!(
                        "skipped {}::postgres: set HOTLINE_TEST_POSTGRES=postgres://…",
                        stringify!($name)
                    ),
                }
            }
        }
    )*};
}

/// Runs a test body, then cleans up even if it panicked.
pub async fn run<F, Fut>(db: TestDb, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let result = tokio::spawn(body(db.clone())).await;
    db.cleanup().await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}
