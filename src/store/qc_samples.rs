//! QC sampling runs and their picks (see
//! `migrations/*/0007_qc_samples_audit.sql`), and the records a run chooses
//! from: recordings with their call's survey score, and the callers' calls
//! for the repeat-caller rule.
//!
//! A run is saved with its picks and its audit entry in one transaction, so
//! a run in the table is always complete and always audited.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::calls::time_text;
use super::events::{parse_time, time_as, time_param};
use super::{
    off_runtime, pg_text_nulls, AuditRow, Db, RecordingKind, RecordingStatus, Store, StoreError,
};

/// A recording a sampling run may pick (or whose length makes a baseline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleCandidate {
    pub recording_id: String,
    pub call_id: String,
    pub kind: RecordingKind,
    pub status: RecordingStatus,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub caller: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: Option<i64>,
    /// The caller's rating of the call (1-5), from its call record.
    pub survey_score: Option<i64>,
}

/// A call to the hotline by a caller (from the call records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerContact {
    pub call_id: String,
    pub caller: String,
    pub arrived_at: DateTime<Utc>,
}

/// One pick: the recording, the rule that chose it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplePick {
    pub recording_id: String,
    pub rule: String,
    pub detail: String,
}

/// Where a run came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleSource {
    Cli,
    Scheduled,
}

impl SampleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            SampleSource::Cli => "cli",
            SampleSource::Scheduled => "scheduled",
        }
    }

    pub fn parse(s: &str) -> Option<SampleSource> {
        match s {
            "cli" => Some(SampleSource::Cli),
            "scheduled" => Some(SampleSource::Scheduled),
            _ => None,
        }
    }
}

/// A sampling run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRunRow {
    pub id: String,
    /// `period_from` ≤ a picked recording's start < `period_to`.
    pub period_from: DateTime<Utc>,
    pub period_to: DateTime<Utc>,
    /// 0 ..= i64::MAX.
    pub seed: u64,
    pub source: SampleSource,
    /// The sampling configuration the run used, as JSON.
    pub rules: String,
    pub picked: i64,
    pub created_at: DateTime<Utc>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct SampleRunFilter {
    /// Runs of exactly this period.
    pub period: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub source: Option<SampleSource>,
    /// Most rows (the newest, returned oldest first); 0 means 1000.
    pub limit: i64,
}

/// A stored pick, with its recording's agent, queue and start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRow {
    pub run_id: String,
    pub recording_id: String,
    pub rule: String,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: Option<i64>,
}

/// Which picks to list (the QC worklist).
#[derive(Debug, Clone, Default)]
pub struct SampleFilter {
    pub run_id: Option<String>,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub rule: Option<String>,
    /// `from` ≤ the recording's start < `to`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Most rows (the first by start); 0 means 10,000.
    pub limit: i64,
}

fn seed_param(seed: u64) -> Result<i64, StoreError> {
    i64::try_from(seed).map_err(|_| StoreError::Corrupt {
        call_id: "qc sample run".into(),
        detail: format!("seed {seed} is above {}", i64::MAX),
    })
}

impl Store {
    /// Recordings that started in `from..to`, each with its call's survey
    /// score, by recording id.
    pub async fn sample_candidates(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SampleCandidate>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let db = &this.db;
            let sql = format!(
                "SELECT r.id, r.call_id, r.kind, r.status, r.agent, r.queue, r.caller, \
                 r.duration_ms, c.survey_score, {} FROM recordings r \
                 LEFT JOIN call_records c ON c.call_id = r.call_id \
                 WHERE r.started_at >= {} AND r.started_at < {} ORDER BY r.id",
                time_as(db, "r.started_at", "started_at"),
                time_param(db, 1),
                time_param(db, 2),
            );
            let err = StoreError::query("reading recordings to sample");
            let get = |e| StoreError::query("decoding a recording to sample")(e);
            let mut out = Vec::new();
            with_pool!(db, |pool| {
                for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(time_text(&from))
                    .bind(time_text(&to))
                    .fetch_all(pool)
                    .await
                    .map_err(err)?
                {
                    let id: String = row.try_get("id").map_err(get)?;
                    let corrupt = |detail: String| StoreError::Corrupt {
                        call_id: id.clone(),
                        detail,
                    };
                    let kind: String = row.try_get("kind").map_err(get)?;
                    let status: String = row.try_get("status").map_err(get)?;
                    let started: String = row.try_get("started_at").map_err(get)?;
                    out.push(SampleCandidate {
                        call_id: row.try_get("call_id").map_err(get)?,
                        kind: RecordingKind::parse(&kind)
                            .ok_or_else(|| corrupt(format!("unknown kind {kind:?}")))?,
                        status: RecordingStatus::parse(&status)
                            .ok_or_else(|| corrupt(format!("unknown status {status:?}")))?,
                        agent: row.try_get("agent").map_err(get)?,
                        queue: row.try_get("queue").map_err(get)?,
                        caller: row.try_get("caller").map_err(get)?,
                        started_at: parse_time("recording", &started)?,
                        duration_ms: row.try_get("duration_ms").map_err(get)?,
                        survey_score: row.try_get("survey_score").map_err(get)?,
                        recording_id: id,
                    });
                }
            });
            Ok(out)
        })
        .await
    }

    /// Calls that arrived in `from..to` (caller and time), oldest first.
    pub async fn caller_contacts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CallerContact>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let db = &this.db;
            let sql = format!(
                "SELECT call_id, caller, {} FROM call_records \
                 WHERE arrived_at >= {} AND arrived_at < {} ORDER BY arrived_at, call_id",
                time_as(db, "arrived_at", "arrived_at"),
                time_param(db, 1),
                time_param(db, 2),
            );
            let err = StoreError::query("reading callers' calls");
            let get = |e| StoreError::query("decoding a caller's call")(e);
            let mut out = Vec::new();
            with_pool!(db, |pool| {
                for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(time_text(&from))
                    .bind(time_text(&to))
                    .fetch_all(pool)
                    .await
                    .map_err(err)?
                {
                    let at: String = row.try_get("arrived_at").map_err(get)?;
                    out.push(CallerContact {
                        call_id: row.try_get("call_id").map_err(get)?,
                        caller: row.try_get("caller").map_err(get)?,
                        arrived_at: parse_time("call record", &at)?,
                    });
                }
            });
            Ok(out)
        })
        .await
    }

    /// Saves a run, its picks and its audit entry, in one transaction.
    /// A scheduled run is saved only if no scheduled run of the same period
    /// is stored: two daemons on one database both sample a day at its
    /// scheduled time, and the one that comes second saves nothing and
    /// gets `false`. (On PostgreSQL a transaction-scoped advisory lock on
    /// the period serializes them; SQLite has one writer at a time and the
    /// check is part of the insert.)
    pub async fn save_sample_run(
        &self,
        run: &SampleRunRow,
        picks: &[SamplePick],
        audit: &AuditRow,
    ) -> Result<bool, StoreError> {
        let this = self.clone();
        let (run, picks, audit) = (run.clone(), picks.to_vec(), audit.clone());
        off_runtime(async move {
            let db = &this.db;
            let (from, to) = (time_param(db, 2), time_param(db, 3));
            let run_sql = format!(
                "INSERT INTO qc_sample_runs (id, period_from, period_to, seed, source, rules, \
                 picked, created_at) SELECT $1, {from}, {to}, $4, $5, $6, $7, {} \
                 WHERE $5 <> 'scheduled' OR NOT EXISTS (SELECT 1 FROM qc_sample_runs \
                 WHERE source = 'scheduled' AND period_from = {from} AND period_to = {to})",
                time_param(db, 8),
            );
            let lock_sql = match db {
                Db::Postgres(_) => Some("SELECT pg_advisory_xact_lock(hashtext($1))"),
                Db::Sqlite { .. } => None,
            };
            let pick_sql = format!(
                "INSERT INTO qc_samples (run_id, recording_id, rule, detail, created_at) \
                 VALUES ($1, $2, $3, $4, {}) ON CONFLICT (run_id, recording_id, rule) DO NOTHING",
                time_param(db, 5),
            );
            let audit_sql = format!(
                "INSERT INTO audit_log (uid, at, actor, action, object, detail, source) \
                 VALUES ($1, {}, $3, $4, $5, $6, $7) ON CONFLICT (uid) DO NOTHING",
                time_param(db, 2)
            );
            let seed = seed_param(run.seed)?;
            let err = StoreError::query("saving a sampling run");
            with_pool!(db, |pool| {
                let mut tx = pool.begin().await.map_err(err)?;
                if let (Some(lock), SampleSource::Scheduled) = (lock_sql, run.source) {
                    sqlx::query(lock)
                        .bind(format!("qc_sample_run {}", time_text(&run.period_from)))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("locking a sampling period"))?;
                }
                let inserted = sqlx::query(sqlx::AssertSqlSafe(run_sql.clone()))
                    .bind(run.id.clone())
                    .bind(time_text(&run.period_from))
                    .bind(time_text(&run.period_to))
                    .bind(seed)
                    .bind(run.source.as_str())
                    .bind(run.rules.clone())
                    .bind(run.picked)
                    .bind(time_text(&run.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("saving a sampling run"))?
                    .rows_affected();
                if inserted == 0 {
                    // Another daemon's scheduled run has the period.
                    tx.rollback()
                        .await
                        .map_err(StoreError::query("rolling back a sampling run"))?;
                    return Ok(false);
                }
                for p in &picks {
                    sqlx::query(sqlx::AssertSqlSafe(pick_sql.clone()))
                        .bind(run.id.clone())
                        .bind(p.recording_id.clone())
                        .bind(p.rule.clone())
                        .bind(p.detail.clone())
                        .bind(time_text(&run.created_at))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("saving a sampling pick"))?;
                }
                sqlx::query(sqlx::AssertSqlSafe(audit_sql.clone()))
                    .bind(audit.uid.clone())
                    .bind(time_text(&audit.at))
                    .bind(audit.actor.clone())
                    .bind(audit.action.clone())
                    .bind(audit.object.clone())
                    .bind(audit.detail.clone())
                    .bind(audit.source.clone())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("auditing a sampling run"))?;
                tx.commit()
                    .await
                    .map_err(StoreError::query("committing a sampling run"))?;
            });
            Ok(true)
        })
        .await
    }

    /// Runs matching `filter`, oldest first (the newest `limit`).
    pub async fn sample_runs(
        &self,
        filter: SampleRunFilter,
    ) -> Result<Vec<SampleRunRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let db = &this.db;
            let f = filter;
            let limit = if f.limit <= 0 {
                1000
            } else {
                f.limit.min(100_000)
            };
            let sql = pg_text_nulls(
                db,
                format!(
                    "SELECT id, seed, source, rules, picked, {}, {}, {} FROM qc_sample_runs \
                     WHERE ($1 IS NULL OR period_from = {}) AND ($2 IS NULL OR period_to = {}) \
                     AND ($3 IS NULL OR source = $3) \
                     ORDER BY created_at DESC, id DESC LIMIT $4",
                    time_as(db, "period_from", "period_from"),
                    time_as(db, "period_to", "period_to"),
                    time_as(db, "created_at", "created_at"),
                    time_param(db, 1),
                    time_param(db, 2),
                ),
                1..=3,
            );
            let err = StoreError::query("listing sampling runs");
            let get = |e| StoreError::query("decoding a sampling run")(e);
            let mut out = Vec::new();
            with_pool!(db, |pool| {
                for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(f.period.map(|p| time_text(&p.0)))
                    .bind(f.period.map(|p| time_text(&p.1)))
                    .bind(f.source.map(SampleSource::as_str))
                    .bind(limit)
                    .fetch_all(pool)
                    .await
                    .map_err(err)?
                {
                    let id: String = row.try_get("id").map_err(get)?;
                    let corrupt = |detail: String| StoreError::Corrupt {
                        call_id: format!("qc sample run {id}"),
                        detail,
                    };
                    let source: String = row.try_get("source").map_err(get)?;
                    let seed: i64 = row.try_get("seed").map_err(get)?;
                    let from: String = row.try_get("period_from").map_err(get)?;
                    let to: String = row.try_get("period_to").map_err(get)?;
                    let created: String = row.try_get("created_at").map_err(get)?;
                    out.push(SampleRunRow {
                        period_from: parse_time("qc sample run", &from)?,
                        period_to: parse_time("qc sample run", &to)?,
                        seed: u64::try_from(seed)
                            .map_err(|_| corrupt(format!("negative seed {seed}")))?,
                        source: SampleSource::parse(&source)
                            .ok_or_else(|| corrupt(format!("unknown source {source:?}")))?,
                        rules: row.try_get("rules").map_err(get)?,
                        picked: row.try_get("picked").map_err(get)?,
                        created_at: parse_time("qc sample run", &created)?,
                        id,
                    });
                }
            });
            out.reverse();
            Ok(out)
        })
        .await
    }

    /// Picks matching `filter`, by their recording's start.
    pub async fn samples(&self, filter: SampleFilter) -> Result<Vec<SampleRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let db = &this.db;
            let f = filter;
            let limit = if f.limit <= 0 {
                10_000
            } else {
                f.limit.min(1_000_000)
            };
            let sql = pg_text_nulls(
                db,
                format!(
                    "SELECT s.run_id, s.recording_id, s.rule, s.detail, r.agent, r.queue, \
                     r.duration_ms, {}, {} FROM qc_samples s \
                     JOIN recordings r ON r.id = s.recording_id \
                     WHERE ($1 IS NULL OR s.run_id = $1) AND ($2 IS NULL OR r.agent = $2) \
                     AND ($3 IS NULL OR r.queue = $3) AND ($4 IS NULL OR s.rule = $4) \
                     AND ($5 IS NULL OR r.started_at >= {}) AND ($6 IS NULL OR r.started_at < {}) \
                     ORDER BY r.started_at, s.recording_id, s.id LIMIT $7",
                    time_as(db, "s.created_at", "created_at"),
                    time_as(db, "r.started_at", "started_at"),
                    time_param(db, 5),
                    time_param(db, 6),
                ),
                1..=6,
            );
            let err = StoreError::query("listing sampled recordings");
            let get = |e| StoreError::query("decoding a sampled recording")(e);
            let mut out = Vec::new();
            with_pool!(db, |pool| {
                for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(f.run_id.clone())
                    .bind(f.agent.clone())
                    .bind(f.queue.clone())
                    .bind(f.rule.clone())
                    .bind(f.from.as_ref().map(time_text))
                    .bind(f.to.as_ref().map(time_text))
                    .bind(limit)
                    .fetch_all(pool)
                    .await
                    .map_err(err)?
                {
                    let created: String = row.try_get("created_at").map_err(get)?;
                    let started: String = row.try_get("started_at").map_err(get)?;
                    out.push(SampleRow {
                        run_id: row.try_get("run_id").map_err(get)?,
                        recording_id: row.try_get("recording_id").map_err(get)?,
                        rule: row.try_get("rule").map_err(get)?,
                        detail: row.try_get("detail").map_err(get)?,
                        created_at: parse_time("qc sample", &created)?,
                        agent: row.try_get("agent").map_err(get)?,
                        queue: row.try_get("queue").map_err(get)?,
                        started_at: parse_time("qc sample", &started)?,
                        duration_ms: row.try_get("duration_ms").map_err(get)?,
                    });
                }
            });
            Ok(out)
        })
        .await
    }
}
