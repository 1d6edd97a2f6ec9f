//! The audit log: who listened to, scored, disputed or deleted what (see
//! `migrations/*/0007_qc_samples_audit.sql`). Rows go through the writer
//! ([`super::RecordSink::submit_audit`]) like every other record, so an audit
//! entry is never lost and never written twice (idempotent on `uid`).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::calls::time_text;
use super::events::{parse_time, time_param, time_select};
use super::{off_runtime, pg_text_nulls, Db, Store, StoreError};

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRow {
    /// Unique per entry (the writer's retry key).
    pub uid: String,
    pub at: DateTime<Utc>,
    /// A user name, or `system`.
    pub actor: String,
    /// `listen`, `score`, `dispute`, `settle`, `delete_recording`, `login`, …
    pub action: String,
    /// `recording:ID`, `score:ID`, `user:NAME`, …
    pub object: Option<String>,
    pub detail: Option<String>,
    /// Where the request came from (an IP address), if from the network.
    pub source: Option<String>,
}

impl AuditRow {
    /// An entry made now, with a fresh uid.
    pub fn now(
        actor: &str,
        action: &str,
        object: Option<String>,
        detail: Option<String>,
    ) -> AuditRow {
        AuditRow {
            uid: crate::store::new_uid(),
            at: Utc::now(),
            actor: actor.to_string(),
            action: action.to_string(),
            object,
            detail,
            source: None,
        }
    }
}

/// Which audit entries to read back.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub object: Option<String>,
    /// Most rows (the newest, returned oldest first); 0 means 1000.
    pub limit: i64,
}

impl Store {
    /// Inserts entries in one transaction; an entry whose `uid` is stored is skipped.
    pub async fn insert_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        let this = self.clone();
        let rows = rows.to_vec();
        off_runtime(async move {
            let sql = format!(
                "INSERT INTO audit_log (uid, at, actor, action, object, detail, source) \
                 VALUES ($1, {}, $3, $4, $5, $6, $7) ON CONFLICT (uid) DO NOTHING",
                time_param(&this.db, 2)
            );
            let err = StoreError::query("writing the audit log");
            with_pool!(&this.db, |pool| {
                let mut tx = pool.begin().await.map_err(err)?;
                for r in &rows {
                    sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(r.uid.clone())
                        .bind(time_text(&r.at))
                        .bind(r.actor.clone())
                        .bind(r.action.clone())
                        .bind(r.object.clone())
                        .bind(r.detail.clone())
                        .bind(r.source.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("writing the audit log"))?;
                }
                tx.commit()
                    .await
                    .map_err(StoreError::query("committing the audit log"))?;
            });
            Ok(())
        })
        .await
    }

    /// Entries matching `filter`, oldest first (the newest `limit`).
    pub async fn audit_log(&self, filter: AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let f = filter;
            let limit = if f.limit <= 0 {
                1000
            } else {
                f.limit.min(100_000)
            };
            let sql = format!(
                "SELECT uid, actor, action, object, detail, source, {} FROM audit_log \
                 WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) \
                 AND ($3 IS NULL OR object = $3) ORDER BY id DESC LIMIT $4",
                time_select(&this.db, "at")
            );
            let sql = pg_text_nulls(&this.db, sql, 1..=3);
            let err = StoreError::query("reading the audit log");
            let get = |e| StoreError::query("decoding an audit entry")(e);
            let mut out = Vec::new();
            with_pool!(&this.db, |pool| {
                for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(f.actor.clone())
                    .bind(f.action.clone())
                    .bind(f.object.clone())
                    .bind(limit)
                    .fetch_all(pool)
                    .await
                    .map_err(err)?
                {
                    let at: String = row.try_get("at").map_err(get)?;
                    out.push(AuditRow {
                        uid: row.try_get("uid").map_err(get)?,
                        at: parse_time("audit entry", &at)?,
                        actor: row.try_get("actor").map_err(get)?,
                        action: row.try_get("action").map_err(get)?,
                        object: row.try_get("object").map_err(get)?,
                        detail: row.try_get("detail").map_err(get)?,
                        source: row.try_get("source").map_err(get)?,
                    });
                }
            });
            out.reverse();
            Ok(out)
        })
        .await
    }
}
