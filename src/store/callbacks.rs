//! Callback requests (留置答, deferred answer) and their attempts.
//!
//! A [`CallbackRow`] is one request, keyed by the Call-ID of the call that
//! asked for it; the dialer rewrites it (through the writer task) as it
//! changes: `pending` (in the queue), `failed` (the last attempt did not
//! reach the citizen; a retry is due at `next_attempt_at`), `done`,
//! `given_up`. Requests `pending` or `failed` are read back at start and
//! put back in their queue with their original request time, so their
//! place survives a restart. A [`CallbackAttemptRow`] is one attempt
//! (agent rung, citizen called); its `uid` makes a retried write
//! idempotent.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::calls::time_text;
use super::events::{parse_time, time_param, time_select};
use super::{off_runtime, Db, Store, StoreError};

/// One callback request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallbackRow {
    /// Call-ID of the call that asked for it.
    pub call_id: String,
    /// The number to call back (the caller's number).
    pub number: String,
    pub queue: String,
    pub priority: i64,
    /// When the caller joined the queue (its place).
    pub requested_at: DateTime<Utc>,
    /// `pending`, `failed`, `done` or `given_up`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_result: Option<String>,
    pub last_agent: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One attempt at a callback.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallbackAttemptRow {
    pub call_id: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub agent: String,
    /// `answered`, `busy`, `no_answer`, `declined`, `failed`,
    /// `agent_hung_up`.
    pub result: String,
    /// Talk time, when the citizen answered.
    pub talk_ms: Option<i64>,
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct CallbackFilter {
    pub state: Option<String>,
    /// Most rows (oldest request first); 0 means 1000.
    pub limit: i64,
}

const CALLBACK_COLUMNS: &str =
    "call_id, number, queue, priority, state, attempts, last_result, last_agent";

macro_rules! callback_from_row {
    ($row:expr) => {{
        let row = $row;
        let get = |e| StoreError::query("decoding a callback request")(e);
        let requested: String = row.try_get("requested_at").map_err(get)?;
        let updated: String = row.try_get("updated_at").map_err(get)?;
        let next: Option<String> = row.try_get("next_attempt_at").map_err(get)?;
        CallbackRow {
            call_id: row.try_get("call_id").map_err(get)?,
            number: row.try_get("number").map_err(get)?,
            queue: row.try_get("queue").map_err(get)?,
            priority: row.try_get("priority").map_err(get)?,
            requested_at: parse_time("callback", &requested)?,
            state: row.try_get("state").map_err(get)?,
            attempts: row.try_get("attempts").map_err(get)?,
            next_attempt_at: next.map(|n| parse_time("callback", &n)).transpose()?,
            last_result: row.try_get("last_result").map_err(get)?,
            last_agent: row.try_get("last_agent").map_err(get)?,
            updated_at: parse_time("callback", &updated)?,
        }
    }};
}

impl Store {
    /// Inserts or updates callback requests, in one transaction.
    pub async fn save_callbacks(&self, rows: &[CallbackRow]) -> Result<(), StoreError> {
        let this = self.clone();
        let rows = rows.to_vec();
        off_runtime(async move { this.save_callbacks_now(&rows).await }).await
    }

    async fn save_callbacks_now(&self, rows: &[CallbackRow]) -> Result<(), StoreError> {
        let t = |n| time_param(&self.db, n);
        let sql = format!(
            "INSERT INTO callbacks (call_id, number, queue, priority, requested_at, state, \
             attempts, next_attempt_at, last_result, last_agent, updated_at) \
             VALUES ($1, $2, $3, $4, {}, $6, $7, {}, $9, $10, {}) \
             ON CONFLICT (call_id) DO UPDATE SET state = excluded.state, \
             attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, \
             last_result = excluded.last_result, last_agent = excluded.last_agent, \
             updated_at = excluded.updated_at",
            t(5),
            t(8),
            t(11)
        );
        with_pool!(&self.db, |pool| {
            let mut tx = pool
                .begin()
                .await
                .map_err(StoreError::query("saving callbacks"))?;
            for r in rows {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(r.call_id.clone())
                    .bind(r.number.clone())
                    .bind(r.queue.clone())
                    .bind(r.priority)
                    .bind(time_text(&r.requested_at))
                    .bind(r.state.clone())
                    .bind(r.attempts)
                    .bind(r.next_attempt_at.as_ref().map(time_text))
                    .bind(r.last_result.clone())
                    .bind(r.last_agent.clone())
                    .bind(time_text(&r.updated_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("saving callbacks"))?;
            }
            tx.commit()
                .await
                .map_err(StoreError::query("committing callbacks"))?;
        });
        Ok(())
    }

    /// Inserts attempts in one transaction (a stored `uid` is skipped).
    pub async fn insert_callback_attempts(
        &self,
        rows: &[CallbackAttemptRow],
    ) -> Result<(), StoreError> {
        let this = self.clone();
        let rows = rows.to_vec();
        off_runtime(async move { this.insert_callback_attempts_now(&rows).await }).await
    }

    async fn insert_callback_attempts_now(
        &self,
        rows: &[CallbackAttemptRow],
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO callback_attempts (uid, call_id, attempt, started_at, agent, result, \
             talk_ms) VALUES ($1, $2, $3, {}, $5, $6, $7) ON CONFLICT (uid) DO NOTHING",
            time_param(&self.db, 4)
        );
        with_pool!(&self.db, |pool| {
            let mut tx = pool
                .begin()
                .await
                .map_err(StoreError::query("saving callback attempts"))?;
            for r in rows {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(format!("{}#{}", r.call_id, r.attempt))
                    .bind(r.call_id.clone())
                    .bind(r.attempt)
                    .bind(time_text(&r.started_at))
                    .bind(r.agent.clone())
                    .bind(r.result.clone())
                    .bind(r.talk_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("saving callback attempts"))?;
            }
            tx.commit()
                .await
                .map_err(StoreError::query("committing callback attempts"))?;
        });
        Ok(())
    }

    /// Requests matching `filter`, oldest request first.
    pub async fn callbacks(&self, filter: CallbackFilter) -> Result<Vec<CallbackRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move { this.callbacks_now(&filter).await }).await
    }

    async fn callbacks_now(&self, f: &CallbackFilter) -> Result<Vec<CallbackRow>, StoreError> {
        let limit = if f.limit <= 0 {
            1000
        } else {
            f.limit.min(100_000)
        };
        let null = match self.db {
            Db::Sqlite { .. } => "$1 IS NULL",
            Db::Postgres(_) => "$1::text IS NULL",
        };
        let sql = format!(
            "SELECT {CALLBACK_COLUMNS}, {}, {}, {} FROM callbacks \
             WHERE ({null} OR state = $1) ORDER BY requested_at, call_id LIMIT $2",
            time_select(&self.db, "requested_at"),
            time_select(&self.db, "updated_at"),
            time_select(&self.db, "next_attempt_at"),
        );
        let mut out = Vec::new();
        with_pool!(&self.db, |pool| {
            let found = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(f.state.clone())
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(StoreError::query("reading callbacks"))?;
            for row in &found {
                out.push(callback_from_row!(row));
            }
        });
        Ok(out)
    }

    /// Requests still to be placed (`pending` or `failed`), oldest first.
    pub async fn open_callbacks(&self) -> Result<Vec<CallbackRow>, StoreError> {
        let mut rows = self
            .callbacks(CallbackFilter {
                state: None,
                limit: 100_000,
            })
            .await?;
        rows.retain(|r| r.state == "pending" || r.state == "failed");
        Ok(rows)
    }

    /// The attempts of one request, in order.
    pub async fn callback_attempts(
        &self,
        call_id: &str,
    ) -> Result<Vec<CallbackAttemptRow>, StoreError> {
        let this = self.clone();
        let call_id = call_id.to_string();
        off_runtime(async move {
            let sql = format!(
                "SELECT call_id, attempt, agent, result, talk_ms, {} FROM callback_attempts \
                 WHERE call_id = $1 ORDER BY attempt",
                time_select(&this.db, "started_at")
            );
            let mut out = Vec::new();
            with_pool!(&this.db, |pool| {
                let found = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(call_id)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::query("reading callback attempts"))?;
                for row in &found {
                    let get = |e| StoreError::query("decoding a callback attempt")(e);
                    let started: String = row.try_get("started_at").map_err(get)?;
                    out.push(CallbackAttemptRow {
                        call_id: row.try_get("call_id").map_err(get)?,
                        attempt: row.try_get("attempt").map_err(get)?,
                        started_at: parse_time("callback attempt", &started)?,
                        agent: row.try_get("agent").map_err(get)?,
                        result: row.try_get("result").map_err(get)?,
                        talk_ms: row.try_get("talk_ms").map_err(get)?,
                    });
                }
            });
            Ok(out)
        })
        .await
    }
}
