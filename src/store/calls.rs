//! Call detail records: insert (idempotent on `call_id`) and read back.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row;

use super::{CallRecord, Db, Disposition, HangupBy, Store, StoreError};

const SQLITE_INSERT: &str = "INSERT INTO call_records (call_id, caller, dialed, arrived_at, \
     answered_at, ended_at, duration_ms, ivr_path, self_service_result, disposition, hangup_by, \
     hangup_reason, sip_status, codec, language, queue, voice_message, voice_message_ms, agent, \
     wait_ms, offers, talk_ms, hold_ms, wrap_up_ms, transfer_target, survey_score) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23, $24, $25, $26) \
     ON CONFLICT (call_id) DO NOTHING";

const POSTGRES_INSERT: &str = "INSERT INTO call_records (call_id, caller, dialed, arrived_at, \
     answered_at, ended_at, duration_ms, ivr_path, self_service_result, disposition, hangup_by, \
     hangup_reason, sip_status, codec, language, queue, voice_message, voice_message_ms, agent, \
     wait_ms, offers, talk_ms, hold_ms, wrap_up_ms, transfer_target, survey_score) \
     VALUES ($1, $2, $3, $4::timestamptz, $5::timestamptz, $6::timestamptz, $7, $8, $9, $10, \
     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26) \
     ON CONFLICT (call_id) DO NOTHING";

/// A call's record ends its row in the open-call journal
/// ([`super::open_calls`]).
const DELETE_OPEN: &str = "DELETE FROM open_calls WHERE call_id = $1";

/// Columns read back; times come out as the same fixed-width UTC text in both
/// backends.
const SQLITE_COLUMNS: &str = "call_id, caller, dialed, arrived_at, answered_at, ended_at, \
     duration_ms, ivr_path, self_service_result, disposition, hangup_by, hangup_reason, \
     sip_status, codec, language, queue, voice_message, voice_message_ms, agent, wait_ms, offers, \
     talk_ms, hold_ms, wrap_up_ms, transfer_target, survey_score";

const POSTGRES_COLUMNS: &str = "call_id, caller, dialed, \
     to_char(arrived_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS arrived_at, \
     to_char(answered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS answered_at, \
     to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ended_at, \
     duration_ms, ivr_path, self_service_result, disposition, hangup_by, hangup_reason, \
     CAST(sip_status AS BIGINT) AS sip_status, codec, language, queue, voice_message, voice_message_ms, \
     agent, wait_ms, offers, talk_ms, hold_ms, wrap_up_ms, transfer_target, survey_score";

/// Which call records to find ([`Store::search_call_records`]).
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// `from` ≤ arrival < `to`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub caller: Option<String>,
    pub dialed: Option<String>,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub disposition: Option<Disposition>,
    /// Most rows; 0 means 50, at most 1000.
    pub limit: i64,
}

/// Formats a time as stored: fixed-width ISO-8601 UTC with microseconds.
pub(crate) fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(call_id: &str, column: &str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            call_id: call_id.to_string(),
            detail: format!("{column} {s:?} is not an ISO-8601 time: {e}"),
        })
}

/// Binds the 16 record values, in insert-column order, on a query of either
/// backend (the same Rust types encode in both).
macro_rules! bind_record {
    ($query:expr, $rec:expr, $path:expr) => {{
        let r: &CallRecord = $rec;
        $query
            .bind(r.call_id.clone())
            .bind(r.caller.clone())
            .bind(r.dialed.clone())
            .bind(time_text(&r.arrived_at))
            .bind(r.answered_at.as_ref().map(time_text))
            .bind(time_text(&r.ended_at))
            .bind(r.duration_ms)
            .bind($path)
            .bind(r.self_service_result.clone())
            .bind(r.disposition.as_str())
            .bind(r.hangup_by.as_str())
            .bind(r.hangup_reason.clone())
            .bind(i64::from(r.sip_status))
            .bind(r.codec.clone())
            .bind(r.language.clone())
            .bind(r.queue.clone())
            .bind(r.voice_message.clone())
            .bind(r.voice_message_ms)
            .bind(r.acd.agent.clone())
            .bind(r.acd.wait_ms)
            .bind(r.acd.offers)
            .bind(r.acd.talk_ms)
            .bind(r.acd.hold_ms)
            .bind(r.acd.wrap_up_ms)
            .bind(r.acd.transfer_target.clone())
            .bind(r.acd.survey_score)
    }};
}

/// Builds a record from a row selected with `*_COLUMNS` (either backend).
macro_rules! record_from_row {
    ($row:expr) => {{
        let row = $row;
        let get = |e| StoreError::query("decoding a call record")(e);
        let call_id: String = row.try_get("call_id").map_err(get)?;
        let corrupt = |detail: String| StoreError::Corrupt {
            call_id: call_id.clone(),
            detail,
        };
        let arrived_at: String = row.try_get("arrived_at").map_err(get)?;
        let answered_at: Option<String> = row.try_get("answered_at").map_err(get)?;
        let ended_at: String = row.try_get("ended_at").map_err(get)?;
        let ivr_path: String = row.try_get("ivr_path").map_err(get)?;
        let disposition: String = row.try_get("disposition").map_err(get)?;
        let hangup_by: String = row.try_get("hangup_by").map_err(get)?;
        let sip_status: i64 = row.try_get("sip_status").map_err(get)?;
        CallRecord {
            caller: row.try_get("caller").map_err(get)?,
            dialed: row.try_get("dialed").map_err(get)?,
            arrived_at: parse_time(&call_id, "arrived_at", &arrived_at)?,
            answered_at: match answered_at {
                Some(t) => Some(parse_time(&call_id, "answered_at", &t)?),
                None => None,
            },
            ended_at: parse_time(&call_id, "ended_at", &ended_at)?,
            duration_ms: row.try_get("duration_ms").map_err(get)?,
            ivr_path: serde_json::from_str(&ivr_path).map_err(|e| {
                corrupt(format!(
                    "ivr_path {ivr_path:?} is not a JSON string array: {e}"
                ))
            })?,
            self_service_result: row.try_get("self_service_result").map_err(get)?,
            disposition: Disposition::parse(&disposition)
                .ok_or_else(|| corrupt(format!("unknown disposition {disposition:?}")))?,
            hangup_by: HangupBy::parse(&hangup_by)
                .ok_or_else(|| corrupt(format!("unknown hangup_by {hangup_by:?}")))?,
            hangup_reason: row.try_get("hangup_reason").map_err(get)?,
            sip_status: u16::try_from(sip_status)
                .map_err(|_| corrupt(format!("sip_status {sip_status} out of range")))?,
            codec: row.try_get("codec").map_err(get)?,
            language: row.try_get("language").map_err(get)?,
            queue: row.try_get("queue").map_err(get)?,
            voice_message: row.try_get("voice_message").map_err(get)?,
            voice_message_ms: row.try_get("voice_message_ms").map_err(get)?,
            acd: super::QueueOutcome {
                agent: row.try_get("agent").map_err(get)?,
                wait_ms: row.try_get("wait_ms").map_err(get)?,
                offers: row.try_get("offers").map_err(get)?,
                talk_ms: row.try_get("talk_ms").map_err(get)?,
                hold_ms: row.try_get("hold_ms").map_err(get)?,
                wrap_up_ms: row.try_get("wrap_up_ms").map_err(get)?,
                transfer_target: row.try_get("transfer_target").map_err(get)?,
                survey_score: row.try_get("survey_score").map_err(get)?,
            },
            call_id,
        }
    }};
}

/// Runs `SELECT <columns> FROM call_records <tail>` on either backend
/// with the given binds and decodes every row. The tails are constant SQL
/// (values only ever bound), hence `AssertSqlSafe`.
macro_rules! select_records {
    ($db:expr, $err:expr, sqlite: $sqlite:expr, postgres: $pg:expr, $($bind:expr),*) => {{
        let mut out = Vec::new();
        match $db {
            Db::Sqlite { pool, .. } => {
                let sql = format!("SELECT {SQLITE_COLUMNS} FROM call_records {}", $sqlite);
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    $(.bind($bind))*
                    .fetch_all(pool)
                    .await
                    .map_err($err)?;
                for row in &rows {
                    out.push(record_from_row!(row));
                }
            }
            Db::Postgres(pool) => {
                let sql = format!("SELECT {POSTGRES_COLUMNS} FROM call_records {}", $pg);
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    $(.bind($bind))*
                    .fetch_all(pool)
                    .await
                    .map_err($err)?;
                for row in &rows {
                    out.push(record_from_row!(row));
                }
            }
        }
        out
    }};
}

fn ivr_path_json(rec: &CallRecord) -> String {
    // Serializing a Vec<String> cannot fail.
    serde_json::to_string(&rec.ivr_path).unwrap_or_else(|_| "[]".to_string())
}

use super::off_runtime;

impl Store {
    /// Inserts one call record. Idempotent: a record whose `call_id` is
    /// already stored is left as it is (a retry never makes a second row).
    pub async fn insert_call_record(&self, rec: &CallRecord) -> Result<(), StoreError> {
        self.insert_call_records(std::slice::from_ref(rec)).await
    }

    /// Inserts records in one transaction (all or none), each idempotent on
    /// `call_id` as in [`Store::insert_call_record`]; each ends its call's
    /// row in the open-call journal.
    pub async fn insert_call_records(&self, recs: &[CallRecord]) -> Result<(), StoreError> {
        let this = self.clone();
        let recs = recs.to_vec();
        off_runtime(async move { this.insert_call_records_now(&recs).await }).await
    }

    pub(super) async fn insert_call_records_now(
        &self,
        recs: &[CallRecord],
    ) -> Result<(), StoreError> {
        let err = StoreError::query("inserting call records");
        match &self.db {
            Db::Sqlite { pool, .. } => {
                let mut tx = pool.begin().await.map_err(err)?;
                for rec in recs {
                    bind_record!(sqlx::query(SQLITE_INSERT), rec, ivr_path_json(rec))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("inserting call records"))?;
                    sqlx::query(DELETE_OPEN)
                        .bind(&rec.call_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("closing open calls"))?;
                }
                tx.commit()
                    .await
                    .map_err(StoreError::query("committing call records"))?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(err)?;
                for rec in recs {
                    bind_record!(sqlx::query(POSTGRES_INSERT), rec, ivr_path_json(rec))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("inserting call records"))?;
                    sqlx::query(DELETE_OPEN)
                        .bind(&rec.call_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("closing open calls"))?;
                }
                tx.commit()
                    .await
                    .map_err(StoreError::query("committing call records"))?;
            }
        }
        Ok(())
    }

    /// The record of one call, if stored.
    pub async fn call_record(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let this = self.clone();
        let call_id = call_id.to_string();
        off_runtime(async move { this.call_record_now(&call_id).await }).await
    }

    async fn call_record_now(&self, call_id: &str) -> Result<Option<CallRecord>, StoreError> {
        let err = StoreError::query("reading a call record");
        match &self.db {
            Db::Sqlite { pool, .. } => {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {SQLITE_COLUMNS} FROM call_records WHERE call_id = $1"
                ));
                let row = sqlx::query(sql)
                    .bind(call_id)
                    .fetch_optional(pool)
                    .await
                    .map_err(err)?;
                Ok(match row {
                    Some(row) => Some(record_from_row!(&row)),
                    None => None,
                })
            }
            Db::Postgres(pool) => {
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {POSTGRES_COLUMNS} FROM call_records WHERE call_id = $1"
                ));
                let row = sqlx::query(sql)
                    .bind(call_id)
                    .fetch_optional(pool)
                    .await
                    .map_err(err)?;
                Ok(match row {
                    Some(row) => Some(record_from_row!(&row)),
                    None => None,
                })
            }
        }
    }

    /// The `limit` most recent records by arrival time, newest first.
    pub async fn recent_call_records(&self, limit: i64) -> Result<Vec<CallRecord>, StoreError> {
        let this = self.clone();
        off_runtime(async move { this.recent_call_records_now(limit).await }).await
    }

    async fn recent_call_records_now(&self, limit: i64) -> Result<Vec<CallRecord>, StoreError> {
        let tail = "ORDER BY arrived_at DESC, id DESC LIMIT $1";
        Ok(select_records!(
            &self.db,
            StoreError::query("reading recent call records"),
            sqlite: tail,
            postgres: tail,
            limit.max(0)
        ))
    }

    /// Records matching `f`, newest first (at most `f.limit`, clamped to
    /// 1..=1000; 0 means 50). Every field left `None` matches all.
    pub async fn search_call_records(&self, f: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        let this = self.clone();
        let f = f.clone();
        off_runtime(async move {
            // Fixed SQL: a NULL value matches every row; values only bound.
            let limit = if f.limit == 0 { 50 } else { f.limit.clamp(1, 1000) };
            Ok(select_records!(
                &this.db,
                StoreError::query("searching call records"),
                sqlite: "WHERE ($1 IS NULL OR arrived_at >= $1) AND ($2 IS NULL OR arrived_at < $2) \
                         AND ($3 IS NULL OR caller = $3) AND ($4 IS NULL OR dialed = $4) \
                         AND ($5 IS NULL OR agent = $5) AND ($6 IS NULL OR queue = $6) \
                         AND ($7 IS NULL OR disposition = $7) \
                         ORDER BY arrived_at DESC, id DESC LIMIT $8",
                postgres: "WHERE ($1::timestamptz IS NULL OR arrived_at >= $1::timestamptz) \
                         AND ($2::timestamptz IS NULL OR arrived_at < $2::timestamptz) \
                         AND ($3::text IS NULL OR caller = $3) AND ($4::text IS NULL OR dialed = $4) \
                         AND ($5::text IS NULL OR agent = $5) AND ($6::text IS NULL OR queue = $6) \
                         AND ($7::text IS NULL OR disposition = $7) \
                         ORDER BY arrived_at DESC, id DESC LIMIT $8",
                f.from.as_ref().map(time_text),
                f.to.as_ref().map(time_text),
                f.caller.clone(),
                f.dialed.clone(),
                f.agent.clone(),
                f.queue.clone(),
                f.disposition.map(|d| d.as_str().to_string()),
                limit
            ))
        })
        .await
    }

    /// Calls that left a voice message, newest first: at most `limit`
    /// (clamped to 1..=1000), arrived at or after `from` and before `to`
    /// when given.
    pub async fn voice_message_records(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let this = self.clone();
        off_runtime(async move { this.voice_message_records_now(from, to, limit).await }).await
    }

    async fn voice_message_records_now(
        &self,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        // Fixed SQL: a NULL bound matches every row. SQLite compares the
        // fixed-width UTC text, PostgreSQL the timestamptz.
        Ok(select_records!(
            &self.db,
            StoreError::query("reading voice messages"),
            sqlite: "WHERE voice_message IS NOT NULL \
                     AND ($1 IS NULL OR arrived_at >= $1) AND ($2 IS NULL OR arrived_at < $2) \
                     ORDER BY arrived_at DESC, id DESC LIMIT $3",
            postgres: "WHERE voice_message IS NOT NULL \
                     AND ($1::timestamptz IS NULL OR arrived_at >= $1::timestamptz) \
                     AND ($2::timestamptz IS NULL OR arrived_at < $2::timestamptz) \
                     ORDER BY arrived_at DESC, id DESC LIMIT $3",
            from.as_ref().map(time_text),
            to.as_ref().map(time_text),
            limit.clamp(1, 1000)
        ))
    }

    /// Every record that arrived at or after `from` and before `to`, oldest
    /// first (monitor legs included: the caller decides what counts), for
    /// the center's figures (`crate::kpi`).
    pub async fn call_records_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            Ok(select_records!(
                &this.db,
                StoreError::query("reading the call records of a period"),
                sqlite: "WHERE arrived_at >= $1 AND arrived_at < $2 ORDER BY arrived_at, id",
                postgres: "WHERE arrived_at >= $1::timestamptz AND arrived_at < $2::timestamptz \
                           ORDER BY arrived_at, id",
                time_text(&from),
                time_text(&to)
            ))
        })
        .await
    }

    /// How many call records are stored.
    pub async fn count_call_records(&self) -> Result<i64, StoreError> {
        let this = self.clone();
        off_runtime(async move { this.count_call_records_now().await }).await
    }

    async fn count_call_records_now(&self) -> Result<i64, StoreError> {
        let err = StoreError::query("counting call records");
        let sql = "SELECT COUNT(*) FROM call_records";
        let n: i64 = match &self.db {
            Db::Sqlite { pool, .. } => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .map_err(err)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_text_is_fixed_width_utc_micros() {
        let t = Utc.with_ymd_and_hms(2026, 3, 7, 8, 5, 9).unwrap();
        assert_eq!(time_text(&t), "2026-03-07T08:05:09.000000Z");
        let t = t + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(time_text(&t), "2026-03-07T08:05:09.123456Z");
        assert_eq!(
            parse_time("x", "t", &time_text(&t)).unwrap(),
            t - chrono::Duration::nanoseconds(789)
        );
    }
}
