//! Calls up now, journaled in `open_calls` so that a daemon killed with
//! calls up (kill -9, a crash, power lost) still leaves a record of each:
//! the record writer saves a row when a call is answered (and again when it
//! reaches an agent), the call's final record deletes it in the same
//! transaction, and at the next start the rows an earlier run of this node
//! left behind become call records marked `interrupted`
//! ([`Store::recover_open_calls`]).

use chrono::{DateTime, Utc};

use super::calls::time_text;
use super::events::parse_time;
use super::{off_runtime, CallRecord, Db, Disposition, HangupBy, Store, StoreError};

/// Why a recovered record ended, as its `hangup_reason`.
pub const INTERRUPTED_REASON: &str = "daemon_killed";

/// This host's name: the `node` of the open-call rows this daemon writes.
pub fn this_node() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_string(),
        _ => "localhost".to_string(),
    }
}

/// A row saved again keeps its `opened_at`.
const UPSERT: &str = "INSERT INTO open_calls (call_id, node, run, opened_at, seen_at, record) \
     VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (call_id) DO UPDATE SET node = excluded.node, \
     run = excluded.run, seen_at = excluded.seen_at, record = excluded.record";

impl Store {
    /// Saves (or replaces) the rows of calls up now in `run` of `node`;
    /// `at` is the system clock's time.
    pub async fn save_open_calls(
        &self,
        node: &str,
        run: &str,
        at: DateTime<Utc>,
        recs: &[CallRecord],
    ) -> Result<(), StoreError> {
        let this = self.clone();
        let (node, run, recs) = (node.to_string(), run.to_string(), recs.to_vec());
        off_runtime(async move {
            let err = StoreError::query("saving open calls");
            let mut rows = Vec::with_capacity(recs.len());
            for rec in &recs {
                let json = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt {
                    call_id: rec.call_id.clone(),
                    detail: format!("cannot encode the open call: {e}"),
                })?;
                rows.push((rec.call_id.clone(), json));
            }
            with_pool!(&this.db, |pool| {
                let mut tx = pool.begin().await.map_err(err)?;
                for (call_id, json) in &rows {
                    sqlx::query(UPSERT)
                        .bind(call_id)
                        .bind(&node)
                        .bind(&run)
                        .bind(time_text(&at))
                        .bind(json)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("saving open calls"))?;
                }
                tx.commit()
                    .await
                    .map_err(StoreError::query("committing open calls"))?;
            });
            Ok(())
        })
        .await
    }

    /// The calls journaled as up now (by any node and run), sorted.
    pub async fn open_call_ids(&self) -> Result<Vec<String>, StoreError> {
        let this = self.clone();
        off_runtime(async move {
            let sql = "SELECT call_id FROM open_calls ORDER BY call_id";
            let ids = with_pool!(&this.db, |pool| sqlx::query_scalar::<_, String>(sql)
                .fetch_all(pool)
                .await);
            ids.map_err(StoreError::query("listing open calls"))
        })
        .await
    }

    /// Marks every open call of `run` as still up at `at`.
    pub async fn touch_open_calls(&self, run: &str, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let this = self.clone();
        let run = run.to_string();
        off_runtime(async move {
            let sql = "UPDATE open_calls SET seen_at = $1 WHERE run = $2";
            let done = with_pool!(&this.db, |pool| sqlx::query(sql)
                .bind(time_text(&at))
                .bind(&run)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()));
            done.map_err(StoreError::query("refreshing open calls"))
        })
        .await
    }

    /// Writes a call record marked `interrupted` for every call an earlier
    /// run of `node` (not `run`, the one starting now) left up, and deletes
    /// their rows; returns the records. Each lasts from its answer for as
    /// long as its run was known alive with it up (at most the refresh
    /// interval short): measured by the system clock, so a call clock
    /// pinned for a demo does not matter. Idempotent: a record already
    /// written stays.
    pub async fn recover_open_calls(
        &self,
        node: &str,
        run: &str,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let this = self.clone();
        let (node, run) = (node.to_string(), run.to_string());
        off_runtime(async move {
            let sql = "SELECT call_id, opened_at, seen_at, record FROM open_calls \
                       WHERE node = $1 AND run <> $2 ORDER BY call_id";
            let rows: Vec<(String, String, String, String)> =
                with_pool!(&this.db, |pool| sqlx::query_as(sql)
                    .bind(&node)
                    .bind(&run)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::query("reading open calls"))?);
            let mut recs = Vec::with_capacity(rows.len());
            for (call_id, opened_at, seen_at, json) in rows {
                let opened = parse_time("open_calls.opened_at", &opened_at)?;
                let seen = parse_time("open_calls.seen_at", &seen_at)?;
                let rec: CallRecord =
                    serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                        call_id: call_id.clone(),
                        detail: format!("open call record is not valid JSON: {e}"),
                    })?;
                recs.push(interrupted(rec, seen - opened));
            }
            // Inserting a record deletes its open row, in one transaction.
            this.insert_call_records_now(&recs).await?;
            Ok(recs)
        })
        .await
    }
}

/// The record of a call that was up when its daemon died, known up for
/// `up` after it was journaled (at its answer).
fn interrupted(mut rec: CallRecord, up: chrono::Duration) -> CallRecord {
    // Whole milliseconds, so that the end is the answer plus the duration.
    let up = chrono::Duration::milliseconds(up.num_milliseconds().max(0));
    let start = rec.answered_at.unwrap_or(rec.arrived_at);
    rec.ended_at = start + up;
    rec.duration_ms = if rec.answered_at.is_some() {
        up.num_milliseconds()
    } else {
        0
    };
    rec.disposition = Disposition::Interrupted;
    rec.hangup_by = HangupBy::System;
    rec.hangup_reason = INTERRUPTED_REASON.to_string();
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_record_lasts_from_its_answer_as_long_as_it_was_seen_up() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let rec = CallRecord {
            call_id: "c".into(),
            caller: "1".into(),
            dialed: "12345".into(),
            arrived_at: t("2026-12-06T10:00:00Z"),
            answered_at: Some(t("2026-12-06T10:00:01Z")),
            ended_at: t("2026-12-06T10:00:00Z"),
            duration_ms: 0,
            ivr_path: vec![],
            self_service_result: None,
            disposition: Disposition::Rejected,
            hangup_by: HangupBy::Caller,
            hangup_reason: String::new(),
            sip_status: 200,
            codec: None,
            language: None,
            queue: None,
            voice_message: None,
            voice_message_ms: None,
            acd: Default::default(),
        };
        let r = interrupted(rec.clone(), chrono::Duration::seconds(30));
        assert_eq!(r.duration_ms, 30_000);
        assert_eq!(r.ended_at, t("2026-12-06T10:00:31Z"));
        assert_eq!(r.disposition, Disposition::Interrupted);
        assert_eq!(r.hangup_by, HangupBy::System);
        assert_eq!(r.hangup_reason, INTERRUPTED_REASON);
        // The system clock stepped back meanwhile: it ends at the answer.
        let r = interrupted(rec, chrono::Duration::seconds(-5));
        assert_eq!(r.ended_at, t("2026-12-06T10:00:01Z"));
        assert_eq!(r.duration_ms, 0);
    }
}
