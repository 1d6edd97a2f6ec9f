//! Recordings and the marks on their timelines (see
//! `migrations/*/0006_recordings.sql`).
//!
//! A recording's row is saved when recording starts (`status` =
//! `recording`) and saved again, complete, when it ends: [`Store::save_recordings`]
//! inserts or replaces on `id`, so the writer may retry safely and the last
//! state queued wins. Marks are idempotent on `uid`.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::calls::time_text;
use super::events::{parse_time, time_param, time_select};
use super::{off_runtime, pg_text_nulls, Db, Store, StoreError};

/// What a recording holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingKind {
    /// A bridged call: caller on the left channel, agent on the right.
    Call,
    /// A caller's voice message (mono).
    VoiceMessage,
}

impl RecordingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Call => "call",
            RecordingKind::VoiceMessage => "voice_message",
        }
    }

    pub fn parse(s: &str) -> Option<RecordingKind> {
        match s {
            "call" => Some(RecordingKind::Call),
            "voice_message" => Some(RecordingKind::VoiceMessage),
            _ => None,
        }
    }
}

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    /// Being written now (or the daemon died while it was: see `interrupted`).
    Recording,
    /// Ended normally; duration, size and checksum are set.
    Complete,
    /// The daemon stopped while recording; the file was repaired at start-up.
    Interrupted,
    /// The file could not be written (disk full, folder not writable).
    Failed,
    /// Removed by the retention run (the row stays for the audit trail).
    Deleted,
}

impl RecordingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Recording => "recording",
            RecordingStatus::Complete => "complete",
            RecordingStatus::Interrupted => "interrupted",
            RecordingStatus::Failed => "failed",
            RecordingStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<RecordingStatus> {
        Some(match s {
            "recording" => RecordingStatus::Recording,
            "complete" => RecordingStatus::Complete,
            "interrupted" => RecordingStatus::Interrupted,
            "failed" => RecordingStatus::Failed,
            "deleted" => RecordingStatus::Deleted,
            _ => return None,
        })
    }
}

/// One recording.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordingRow {
    pub id: String,
    pub call_id: String,
    pub kind: RecordingKind,
    /// 0 for the first agent of a call, 1 after a transfer to a second, …
    pub segment: i64,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub caller: Option<String>,
    pub dialed: Option<String>,
    /// Relative to the data folder, `/`-separated.
    pub path: String,
    pub channels: i64,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    /// Lower-case hex SHA-256 of the finished file.
    pub sha256: Option<String>,
    /// Time the recording was masked (silence), in total.
    pub masked_ms: i64,
    pub status: RecordingStatus,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A moment on a recording's timeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordingMarkRow {
    /// Unique per mark (the writer's retry key).
    pub uid: String,
    pub recording_id: String,
    /// From the start of the recording.
    pub at_ms: i64,
    /// `hold`, `resume`, `mask`, `unmask`, `transfer`.
    pub kind: String,
    /// For hold/resume: `caller` or `agent` (who held); for transfer: the target.
    pub detail: Option<String>,
}

/// Which recordings to list.
#[derive(Debug, Clone, Default)]
pub struct RecordingFilter {
    /// `from` ≤ started_at < `to`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub call_id: Option<String>,
    pub kind: Option<RecordingKind>,
    pub status: Option<RecordingStatus>,
    /// Most rows (oldest first); 0 means 100,000.
    pub limit: i64,
}

const COLUMNS: &str = "id, call_id, kind, segment, agent, queue, caller, dialed, path, channels, \
                       duration_ms, size_bytes, sha256, masked_ms, status";

macro_rules! recording_from_row {
    ($row:expr) => {{
        let row = $row;
        let get = |e| StoreError::query("decoding a recording")(e);
        let id: String = row.try_get("id").map_err(get)?;
        let corrupt = |detail: String| StoreError::Corrupt {
            call_id: id.clone(),
            detail,
        };
        let kind: String = row.try_get("kind").map_err(get)?;
        let status: String = row.try_get("status").map_err(get)?;
        let started: String = row.try_get("started_at").map_err(get)?;
        let ended: Option<String> = row.try_get("ended_at").map_err(get)?;
        let deleted: Option<String> = row.try_get("deleted_at").map_err(get)?;
        RecordingRow {
            call_id: row.try_get("call_id").map_err(get)?,
            kind: RecordingKind::parse(&kind)
                .ok_or_else(|| corrupt(format!("unknown kind {kind:?}")))?,
            segment: row.try_get("segment").map_err(get)?,
            agent: row.try_get("agent").map_err(get)?,
            queue: row.try_get("queue").map_err(get)?,
            caller: row.try_get("caller").map_err(get)?,
            dialed: row.try_get("dialed").map_err(get)?,
            path: row.try_get("path").map_err(get)?,
            channels: row.try_get("channels").map_err(get)?,
            started_at: parse_time("recording", &started)?,
            ended_at: ended.map(|t| parse_time("recording", &t)).transpose()?,
            duration_ms: row.try_get("duration_ms").map_err(get)?,
            size_bytes: row.try_get("size_bytes").map_err(get)?,
            sha256: row.try_get("sha256").map_err(get)?,
            masked_ms: row.try_get("masked_ms").map_err(get)?,
            status: RecordingStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("unknown status {status:?}")))?,
            deleted_at: deleted.map(|t| parse_time("recording", &t)).transpose()?,
            id,
        }
    }};
}

impl Store {
    /// Inserts or replaces recordings (on `id`), in one transaction.
    pub async fn save_recordings(&self, rows: &[RecordingRow]) -> Result<(), StoreError> {
        let this = self.clone();
        let rows = rows.to_vec();
        off_runtime(async move { this.save_recordings_now(&rows).await }).await
    }

    async fn save_recordings_now(&self, rows: &[RecordingRow]) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO recordings (id, call_id, kind, segment, agent, queue, caller, dialed, \
             path, channels, started_at, ended_at, duration_ms, size_bytes, sha256, masked_ms, \
             status, deleted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {}, {}, $13, \
             $14, $15, $16, $17, {}) ON CONFLICT (id) DO UPDATE SET ended_at = excluded.ended_at, \
             duration_ms = excluded.duration_ms, size_bytes = excluded.size_bytes, \
             sha256 = excluded.sha256, masked_ms = excluded.masked_ms, status = excluded.status, \
             deleted_at = excluded.deleted_at",
            time_param(&self.db, 11),
            time_param(&self.db, 12),
            time_param(&self.db, 18),
        );
        let err = StoreError::query("saving recordings");
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            for r in rows {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(r.id.clone())
                    .bind(r.call_id.clone())
                    .bind(r.kind.as_str())
                    .bind(r.segment)
                    .bind(r.agent.clone())
                    .bind(r.queue.clone())
                    .bind(r.caller.clone())
                    .bind(r.dialed.clone())
                    .bind(r.path.clone())
                    .bind(r.channels)
                    .bind(time_text(&r.started_at))
                    .bind(r.ended_at.as_ref().map(time_text))
                    .bind(r.duration_ms)
                    .bind(r.size_bytes)
                    .bind(r.sha256.clone())
                    .bind(r.masked_ms)
                    .bind(r.status.as_str())
                    .bind(r.deleted_at.as_ref().map(time_text))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("saving recordings"))?;
            }
            tx.commit()
                .await
                .map_err(StoreError::query("committing recordings"))?;
        });
        Ok(())
    }

    /// Inserts marks in one transaction; a mark whose `uid` is stored is skipped.
    pub async fn insert_recording_marks(
        &self,
        marks: &[RecordingMarkRow],
    ) -> Result<(), StoreError> {
        let this = self.clone();
        let marks = marks.to_vec();
        off_runtime(async move {
            let sql = "INSERT INTO recording_marks (uid, recording_id, at_ms, kind, detail) \
                       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uid) DO NOTHING";
            let err = StoreError::query("inserting recording marks");
            with_pool!(&this.db, |pool| {
                let mut tx = pool.begin().await.map_err(err)?;
                for m in &marks {
                    sqlx::query(sql)
                        .bind(m.uid.clone())
                        .bind(m.recording_id.clone())
                        .bind(m.at_ms)
                        .bind(m.kind.clone())
                        .bind(m.detail.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("inserting recording marks"))?;
                }
                tx.commit()
                    .await
                    .map_err(StoreError::query("committing recording marks"))?;
            });
            Ok(())
        })
        .await
    }

    /// The marks of one recording, in time order.
    pub async fn recording_marks(
        &self,
        recording_id: &str,
    ) -> Result<Vec<RecordingMarkRow>, StoreError> {
        let this = self.clone();
        let id = recording_id.to_string();
        off_runtime(async move {
            let sql = "SELECT uid, recording_id, at_ms, kind, detail FROM recording_marks \
                       WHERE recording_id = $1 ORDER BY at_ms, id";
            let err = StoreError::query("reading recording marks");
            let get = |e| StoreError::query("decoding a recording mark")(e);
            let mut out = Vec::new();
            with_pool!(&this.db, |pool| {
                for row in sqlx::query(sql)
                    .bind(id.clone())
                    .fetch_all(pool)
                    .await
                    .map_err(err)?
                {
                    out.push(RecordingMarkRow {
                        uid: row.try_get("uid").map_err(get)?,
                        recording_id: row.try_get("recording_id").map_err(get)?,
                        at_ms: row.try_get("at_ms").map_err(get)?,
                        kind: row.try_get("kind").map_err(get)?,
                        detail: row.try_get("detail").map_err(get)?,
                    });
                }
            });
            Ok(out)
        })
        .await
    }

    /// One recording by id.
    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRow>, StoreError> {
        let this = self.clone();
        let id = id.to_string();
        off_runtime(async move {
            let sql = format!(
                "SELECT {COLUMNS}, {}, {}, {} FROM recordings WHERE id = $1",
                time_select(&this.db, "started_at"),
                time_select(&this.db, "ended_at"),
                time_select(&this.db, "deleted_at"),
            );
            let err = StoreError::query("reading a recording");
            let mut out = None;
            with_pool!(&this.db, |pool| {
                if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(id.clone())
                    .fetch_optional(pool)
                    .await
                    .map_err(err)?
                {
                    out = Some(recording_from_row!(&row));
                }
            });
            Ok(out)
        })
        .await
    }

    /// Recordings matching `filter`, oldest first.
    pub async fn recordings(
        &self,
        filter: RecordingFilter,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move { this.recordings_now(&filter).await }).await
    }

    async fn recordings_now(&self, f: &RecordingFilter) -> Result<Vec<RecordingRow>, StoreError> {
        let limit = if f.limit <= 0 {
            100_000
        } else {
            f.limit.min(1_000_000)
        };
        // Fixed SQL: a NULL parameter matches every row.
        let sql = format!(
            "SELECT {COLUMNS}, {}, {}, {} FROM recordings \
             WHERE ($1 IS NULL OR started_at >= {}) AND ($2 IS NULL OR started_at < {}) \
             AND ($3 IS NULL OR agent = $3) AND ($4 IS NULL OR queue = $4) \
             AND ($5 IS NULL OR call_id = $5) AND ($6 IS NULL OR kind = $6) \
             AND ($7 IS NULL OR status = $7) ORDER BY started_at, id LIMIT $8",
            time_select(&self.db, "started_at"),
            time_select(&self.db, "ended_at"),
            time_select(&self.db, "deleted_at"),
            time_param(&self.db, 1),
            time_param(&self.db, 2),
        );
        let sql = pg_text_nulls(&self.db, sql, 1..=7);
        let err = StoreError::query("listing recordings");
        let mut out = Vec::new();
        with_pool!(&self.db, |pool| {
            for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(f.from.as_ref().map(time_text))
                .bind(f.to.as_ref().map(time_text))
                .bind(f.agent.clone())
                .bind(f.queue.clone())
                .bind(f.call_id.clone())
                .bind(f.kind.map(RecordingKind::as_str))
                .bind(f.status.map(RecordingStatus::as_str))
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(err)?
            {
                out.push(recording_from_row!(&row));
            }
        });
        Ok(out)
    }
}
