//! QC scores with their items and pinned comments, disputes and their
//! settlement, and the QC worklist (sampled recordings with whether they
//! are scored). See `migrations/*/0008_qc_scores.sql` and `0009_…`.
//!
//! A score is `open` until its dispute window closes (`dispute_until`),
//! then `final`; a team lead's dispute makes it `disputed` until a reviewer
//! settles it, which makes it `final` with `final_total` (the original or
//! the revised total).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::calls::time_text;
use super::events::{parse_time, time_as, time_param, time_select};
use super::{off_runtime, pg_text_nulls, Db, Store, StoreError};

/// A score's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreStatus {
    Open,
    Disputed,
    Final,
}

impl ScoreStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScoreStatus::Open => "open",
            ScoreStatus::Disputed => "disputed",
            ScoreStatus::Final => "final",
        }
    }

    pub fn parse(s: &str) -> Option<ScoreStatus> {
        match s {
            "open" => Some(ScoreStatus::Open),
            "disputed" => Some(ScoreStatus::Disputed),
            "final" => Some(ScoreStatus::Final),
            _ => None,
        }
    }
}

/// One answered item of a score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreItemRow {
    pub section: String,
    pub item: String,
    /// `yes`, `no` or `na`.
    pub answer: String,
    pub weight: f64,
    pub points: f64,
    pub auto_fail: bool,
}

/// A comment pinned to a moment of the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreCommentRow {
    /// Milliseconds into the recording, if pinned.
    pub at_ms: Option<i64>,
    pub text: String,
}

/// A dispute of a score.
#[derive(Debug, Clone, PartialEq)]
pub struct DisputeRow {
    pub id: String,
    pub score_id: String,
    pub raised_by: String,
    pub reason: String,
    pub raised_at: DateTime<Utc>,
    pub settled_by: Option<String>,
    pub settled_at: Option<DateTime<Utc>>,
    /// `upheld` or `revised`.
    pub outcome: Option<String>,
    pub revised_total: Option<f64>,
    pub note: Option<String>,
}

/// A score given to a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    pub id: String,
    pub recording_id: String,
    pub scorecard: String,
    pub scorecard_version: i64,
    pub scorer: String,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub team: Option<String>,
    /// As scored (0–100).
    pub total: f64,
    pub auto_failed: bool,
    pub status: ScoreStatus,
    /// The total that counts once final (revised by a dispute, or `total`).
    pub final_total: Option<f64>,
    pub dispute_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub items: Vec<ScoreItemRow>,
    pub comments: Vec<ScoreCommentRow>,
    pub dispute: Option<DisputeRow>,
}

impl ScoreRow {
    /// The total that counts now: the settled one, else the given one.
    pub fn effective_total(&self) -> f64 {
        self.final_total.unwrap_or(self.total)
    }
}

/// Which scores to read.
#[derive(Debug, Clone, Default)]
pub struct ScoreFilter {
    pub recording_id: Option<String>,
    pub id: Option<String>,
    /// `from` ≤ created_at < `to`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub agent: Option<String>,
}

/// Which sampled recordings the worklist shows.
#[derive(Debug, Clone, Default)]
pub struct WorklistFilter {
    pub agent: Option<String>,
    pub queue: Option<String>,
    /// `from` ≤ the recording's start < `to`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub rule: Option<String>,
    /// `Some(true)`: scored only; `Some(false)`: not yet scored.
    pub scored: Option<bool>,
    /// Most recordings; 0 means 500.
    pub limit: i64,
}

/// A sampled recording on the worklist.
#[derive(Debug, Clone, PartialEq)]
pub struct WorklistRow {
    pub recording_id: String,
    pub call_id: String,
    pub agent: Option<String>,
    pub queue: Option<String>,
    pub caller: Option<String>,
    pub started_at: DateTime<Utc>,
    pub duration_ms: Option<i64>,
    /// Each rule that picked it, with its detail.
    pub picks: Vec<(String, Option<String>)>,
    pub scores: i64,
}

fn opt_time(what: &str, s: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    s.map(|t| parse_time(what, &t)).transpose()
}

impl Store {
    /// Stores a new score with its items and comments, in one transaction.
    pub async fn save_score(&self, score: &ScoreRow) -> Result<(), StoreError> {
        let this = self.clone();
        let s = score.clone();
        off_runtime(async move {
            let head = format!(
                "INSERT INTO qc_scores (id, recording_id, scorecard, scorecard_version, scorer, \
                 agent, queue, team, total, auto_failed, status, final_total, dispute_until, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, {}, {})",
                time_param(&this.db, 13),
                time_param(&this.db, 14)
            );
            let item = "INSERT INTO qc_score_items (score_id, position, section, item, answer, \
                        weight, points, auto_fail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
            let comment =
                "INSERT INTO qc_score_comments (score_id, at_ms, text) VALUES ($1, $2, $3)";
            let err = |c| StoreError::query(c);
            with_pool!(&this.db, |pool| {
                let mut tx = pool.begin().await.map_err(err("saving a score"))?;
                sqlx::query(sqlx::AssertSqlSafe(head.clone()))
                    .bind(s.id.clone())
                    .bind(s.recording_id.clone())
                    .bind(s.scorecard.clone())
                    .bind(s.scorecard_version)
                    .bind(s.scorer.clone())
                    .bind(s.agent.clone())
                    .bind(s.queue.clone())
                    .bind(s.team.clone())
                    .bind(s.total)
                    .bind(i64::from(s.auto_failed))
                    .bind(s.status.as_str())
                    .bind(s.final_total)
                    .bind(s.dispute_until.as_ref().map(time_text))
                    .bind(time_text(&s.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err("saving a score"))?;
                for (n, i) in s.items.iter().enumerate() {
                    sqlx::query(item)
                        .bind(s.id.clone())
                        .bind(n as i64)
                        .bind(i.section.clone())
                        .bind(i.item.clone())
                        .bind(i.answer.clone())
                        .bind(i.weight)
                        .bind(i.points)
                        .bind(i64::from(i.auto_fail))
                        .execute(&mut *tx)
                        .await
                        .map_err(err("saving a score's items"))?;
                }
                for c in &s.comments {
                    sqlx::query(comment)
                        .bind(s.id.clone())
                        .bind(c.at_ms)
                        .bind(c.text.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(err("saving a score's comments"))?;
                }
                tx.commit().await.map_err(err("committing a score"))?;
            });
            Ok(())
        })
        .await
    }

    /// Open scores whose dispute window closed before `now` become final.
    pub async fn finalize_scores(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let sql = format!(
                "UPDATE qc_scores SET status = 'final', final_total = total \
                 WHERE status = 'open' AND dispute_until <= {}",
                time_param(&this.db, 1)
            );
            let n = with_pool!(&this.db, |pool| {
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(time_text(&now))
                    .execute(pool)
                    .await
                    .map_err(StoreError::query("finalizing scores"))?
                    .rows_affected()
            });
            Ok(n)
        })
        .await
    }

    /// The scores given in `from..to` as they stand at `now` (open ones
    /// whose window closed made final first): what a QC report counts.
    pub async fn scores_given(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ScoreRow>, StoreError> {
        self.finalize_scores(now).await?;
        self.scores(ScoreFilter {
            from: Some(from),
            to: Some(to),
            ..ScoreFilter::default()
        })
        .await
    }

    /// Scores matching `filter` with their items, comments and dispute,
    /// oldest first.
    pub async fn scores(&self, filter: ScoreFilter) -> Result<Vec<ScoreRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let f = filter;
            let db = &this.db;
            let sql = pg_text_nulls(
                db,
                format!(
                    "SELECT id, recording_id, scorecard, scorecard_version, scorer, agent, queue, \
                     team, total, auto_failed, status, final_total, {}, {} FROM qc_scores \
                     WHERE ($1 IS NULL OR recording_id = $1) AND ($2 IS NULL OR id = $2) \
                     AND ($3 IS NULL OR created_at >= {}) AND ($4 IS NULL OR created_at < {}) \
                     AND ($5 IS NULL OR agent = $5) ORDER BY created_at, id",
                    time_select(db, "dispute_until"),
                    time_select(db, "created_at"),
                    time_param(db, 3),
                    time_param(db, 4),
                ),
                [1, 2, 3, 4, 5],
            );
            let items_sql = "SELECT section, item, answer, weight, points, auto_fail \
                             FROM qc_score_items WHERE score_id = $1 ORDER BY position";
            let comments_sql =
                "SELECT at_ms, text FROM qc_score_comments WHERE score_id = $1 ORDER BY id";
            let dispute_sql = format!(
                "SELECT id, score_id, raised_by, reason, {}, settled_by, {}, outcome, \
                 revised_total, note FROM qc_disputes WHERE score_id = $1",
                time_select(db, "raised_at"),
                time_select(db, "settled_at"),
            );
            let get = |e| StoreError::query("decoding a score")(e);
            let read = |c| StoreError::query(c);
            let mut out = Vec::new();
            with_pool!(db, |pool| {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(f.recording_id.clone())
                    .bind(f.id.clone())
                    .bind(f.from.as_ref().map(time_text))
                    .bind(f.to.as_ref().map(time_text))
                    .bind(f.agent.clone())
                    .fetch_all(pool)
                    .await
                    .map_err(read("reading scores"))?;
                for row in rows {
                    let id: String = row.try_get("id").map_err(get)?;
                    let status: String = row.try_get("status").map_err(get)?;
                    let created: String = row.try_get("created_at").map_err(get)?;
                    let auto_failed: i64 = row.try_get("auto_failed").map_err(get)?;
                    let mut items = Vec::new();
                    for r in sqlx::query(items_sql)
                        .bind(id.clone())
                        .fetch_all(pool)
                        .await
                        .map_err(read("reading a score's items"))?
                    {
                        let af: i64 = r.try_get("auto_fail").map_err(get)?;
                        items.push(ScoreItemRow {
                            section: r.try_get("section").map_err(get)?,
                            item: r.try_get("item").map_err(get)?,
                            answer: r.try_get("answer").map_err(get)?,
                            weight: r.try_get("weight").map_err(get)?,
                            points: r.try_get("points").map_err(get)?,
                            auto_fail: af != 0,
                        });
                    }
                    let mut comments = Vec::new();
                    for r in sqlx::query(comments_sql)
                        .bind(id.clone())
                        .fetch_all(pool)
                        .await
                        .map_err(read("reading a score's comments"))?
                    {
                        comments.push(ScoreCommentRow {
                            at_ms: r.try_get("at_ms").map_err(get)?,
                            text: r.try_get("text").map_err(get)?,
                        });
                    }
                    let mut dispute = None;
                    if let Some(r) = sqlx::query(sqlx::AssertSqlSafe(dispute_sql.clone()))
                        .bind(id.clone())
                        .fetch_optional(pool)
                        .await
                        .map_err(read("reading a dispute"))?
                    {
                        let raised: String = r.try_get("raised_at").map_err(get)?;
                        dispute = Some(DisputeRow {
                            id: r.try_get("id").map_err(get)?,
                            score_id: r.try_get("score_id").map_err(get)?,
                            raised_by: r.try_get("raised_by").map_err(get)?,
                            reason: r.try_get("reason").map_err(get)?,
                            raised_at: parse_time("dispute", &raised)?,
                            settled_by: r.try_get("settled_by").map_err(get)?,
                            settled_at: opt_time("dispute", r.try_get("settled_at").map_err(get)?)?,
                            outcome: r.try_get("outcome").map_err(get)?,
                            revised_total: r.try_get("revised_total").map_err(get)?,
                            note: r.try_get("note").map_err(get)?,
                        });
                    }
                    out.push(ScoreRow {
                        recording_id: row.try_get("recording_id").map_err(get)?,
                        scorecard: row.try_get("scorecard").map_err(get)?,
                        scorecard_version: row.try_get("scorecard_version").map_err(get)?,
                        scorer: row.try_get("scorer").map_err(get)?,
                        agent: row.try_get("agent").map_err(get)?,
                        queue: row.try_get("queue").map_err(get)?,
                        team: row.try_get("team").map_err(get)?,
                        total: row.try_get("total").map_err(get)?,
                        auto_failed: auto_failed != 0,
                        status: ScoreStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                            call_id: id.clone(),
                            detail: format!("unknown score status {status:?}"),
                        })?,
                        final_total: row.try_get("final_total").map_err(get)?,
                        dispute_until: opt_time(
                            "score",
                            row.try_get("dispute_until").map_err(get)?,
                        )?,
                        created_at: parse_time("score", &created)?,
                        items,
                        comments,
                        dispute,
                        id,
                    });
                }
            });
            Ok(out)
        })
        .await
    }

    /// Records a dispute of an open score whose window has not closed at
    /// `d.raised_at`; `false` (nothing changed) when the score is not open
    /// or its window closed.
    pub async fn raise_dispute(&self, d: &DisputeRow) -> Result<bool, StoreError> {
        let this = self.clone();
        let d = d.clone();
        off_runtime(async move {
            let db = &this.db;
            let mark = format!(
                "UPDATE qc_scores SET status = 'disputed' WHERE id = $1 AND status = 'open' \
                 AND dispute_until > {}",
                time_param(db, 2)
            );
            let insert = format!(
                "INSERT INTO qc_disputes (id, score_id, raised_by, reason, raised_at) \
                 VALUES ($1, $2, $3, $4, {})",
                time_param(db, 5)
            );
            let err = |c| StoreError::query(c);
            let mut ok = false;
            with_pool!(db, |pool| {
                let mut tx = pool.begin().await.map_err(err("raising a dispute"))?;
                let n = sqlx::query(sqlx::AssertSqlSafe(mark.clone()))
                    .bind(d.score_id.clone())
                    .bind(time_text(&d.raised_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(err("raising a dispute"))?
                    .rows_affected();
                if n == 1 {
                    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                        .bind(d.id.clone())
                        .bind(d.score_id.clone())
                        .bind(d.raised_by.clone())
                        .bind(d.reason.clone())
                        .bind(time_text(&d.raised_at))
                        .execute(&mut *tx)
                        .await
                        .map_err(err("raising a dispute"))?;
                    tx.commit().await.map_err(err("committing a dispute"))?;
                    ok = true;
                }
            });
            Ok(ok)
        })
        .await
    }

    /// Settles the dispute of a disputed score: the score becomes final
    /// with `revised_total` (revised) or its own total (upheld). `false`
    /// when the score is not disputed.
    #[allow(clippy::too_many_arguments)]
    pub async fn settle_dispute(
        &self,
        score_id: &str,
        settled_by: &str,
        at: DateTime<Utc>,
        revised_total: Option<f64>,
        note: &str,
    ) -> Result<bool, StoreError> {
        let this = self.clone();
        let (score_id, settled_by, note) = (
            score_id.to_string(),
            settled_by.to_string(),
            note.to_string(),
        );
        off_runtime(async move {
            let db = &this.db;
            let mark = "UPDATE qc_scores SET status = 'final', \
                        final_total = COALESCE($2, total) WHERE id = $1 AND status = 'disputed'";
            let settle = format!(
                "UPDATE qc_disputes SET settled_by = $2, settled_at = {}, outcome = $4, \
                 revised_total = $5, note = $6 WHERE score_id = $1",
                time_param(db, 3)
            );
            let outcome = if revised_total.is_some() {
                "revised"
            } else {
                "upheld"
            };
            let err = |c| StoreError::query(c);
            let mut ok = false;
            with_pool!(db, |pool| {
                let mut tx = pool.begin().await.map_err(err("settling a dispute"))?;
                let n = sqlx::query(mark)
                    .bind(score_id.clone())
                    .bind(revised_total)
                    .execute(&mut *tx)
                    .await
                    .map_err(err("settling a dispute"))?
                    .rows_affected();
                if n == 1 {
                    sqlx::query(sqlx::AssertSqlSafe(settle.clone()))
                        .bind(score_id.clone())
                        .bind(settled_by.clone())
                        .bind(time_text(&at))
                        .bind(outcome)
                        .bind(revised_total)
                        .bind(note.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(err("settling a dispute"))?;
                    tx.commit().await.map_err(err("committing a settlement"))?;
                    ok = true;
                }
            });
            Ok(ok)
        })
        .await
    }

    /// The sampled recordings matching `filter`, newest first, each with
    /// the rules that picked it and its number of scores.
    pub async fn worklist(&self, filter: WorklistFilter) -> Result<Vec<WorklistRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let f = filter;
            let db = &this.db;
            let limit = if f.limit <= 0 { 500 } else { f.limit.min(5000) };
            let scored = f.scored.map(|b| if b { "yes" } else { "no" });
            let sql = pg_text_nulls(
                db,
                format!(
                    "SELECT r.id, r.call_id, r.agent, r.queue, r.caller, {}, r.duration_ms, \
                     s.rule, s.detail, \
                     (SELECT COUNT(*) FROM qc_scores q WHERE q.recording_id = r.id) AS scores \
                     FROM recordings r JOIN qc_samples s ON s.recording_id = r.id \
                     WHERE r.deleted_at IS NULL AND ($1 IS NULL OR r.agent = $1) \
                     AND ($2 IS NULL OR r.queue = $2) AND ($3 IS NULL OR r.started_at >= {}) \
                     AND ($4 IS NULL OR r.started_at < {}) \
                     AND ($5 IS NULL OR r.id IN (SELECT recording_id FROM qc_samples WHERE rule = $5)) \
                     AND ($6 IS NULL OR ($6 = 'yes') = EXISTS \
                          (SELECT 1 FROM qc_scores q2 WHERE q2.recording_id = r.id)) \
                     ORDER BY r.started_at DESC, r.id, s.rule",
                    time_as(db, "r.started_at", "started_at"),
                    time_param(db, 3),
                    time_param(db, 4),
                ),
                [1, 2, 3, 4, 5, 6],
            );
            let get = |e| StoreError::query("decoding the worklist")(e);
            let mut out: Vec<WorklistRow> = Vec::new();
            with_pool!(db, |pool| {
                for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(f.agent.clone())
                    .bind(f.queue.clone())
                    .bind(f.from.as_ref().map(time_text))
                    .bind(f.to.as_ref().map(time_text))
                    .bind(f.rule.clone())
                    .bind(scored)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::query("reading the worklist"))?
                {
                    let id: String = row.try_get("id").map_err(get)?;
                    let rule: String = row.try_get("rule").map_err(get)?;
                    let detail: Option<String> = row.try_get("detail").map_err(get)?;
                    if let Some(last) = out.last_mut().filter(|w| w.recording_id == id) {
                        last.picks.push((rule, detail));
                        continue;
                    }
                    if out.len() as i64 >= limit {
                        break;
                    }
                    let started: String = row.try_get("started_at").map_err(get)?;
                    out.push(WorklistRow {
                        call_id: row.try_get("call_id").map_err(get)?,
                        agent: row.try_get("agent").map_err(get)?,
                        queue: row.try_get("queue").map_err(get)?,
                        caller: row.try_get("caller").map_err(get)?,
                        started_at: parse_time("recording", &started)?,
                        duration_ms: row.try_get("duration_ms").map_err(get)?,
                        picks: vec![(rule, detail)],
                        scores: row.try_get("scores").map_err(get)?,
                        recording_id: id,
                    });
                }
            });
            Ok(out)
        })
        .await
    }
}
