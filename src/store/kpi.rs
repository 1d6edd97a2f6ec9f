//! What the center's figures (`crate::kpi`) read besides the call records:
//! the agents' log-in, log-out, pause and unpause events of a period, with
//! each agent's last such event before it (the state the period starts in).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::calls::time_text;
use super::events::{parse_time, time_as, time_param, QueueEventRow};
use super::{off_runtime, Db, Store, StoreError};

/// The event kinds that change whether an agent is staffed.
pub const AGENT_STATE_KINDS: [&str; 4] = ["login", "logout", "pause", "unpause"];

/// `kind IN (…)` of [`AGENT_STATE_KINDS`] on `alias` (constant text).
fn kinds_in(alias: &str) -> String {
    let list: Vec<String> = AGENT_STATE_KINDS.iter().map(|k| format!("'{k}'")).collect();
    format!("{alias}.kind IN ({})", list.join(", "))
}

fn columns(db: &Db) -> String {
    format!(
        "e.uid, e.kind, e.queue, e.call_id, e.agent, e.position, e.wait_ms, e.talk_ms, e.reason, {}",
        time_as(db, "e.at", "at")
    )
}

impl Store {
    /// The agents' state events (login, logout, pause, unpause) at or after
    /// `from` and before `to`, preceded by each agent's last state event
    /// before `from`; in time order (then storage order) per agent.
    pub async fn agent_state_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<QueueEventRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move { this.agent_state_events_now(from, to).await }).await
    }

    async fn agent_state_events_now(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<QueueEventRow>, StoreError> {
        let db = &self.db;
        let (p1, p2) = (time_param(db, 1), time_param(db, 2));
        // Constant SQL: the kinds are literals of this file, times are bound.
        let before = format!(
            "SELECT {cols} FROM queue_events e WHERE e.id IN (\
               SELECT (SELECT e2.id FROM queue_events e2 \
                       WHERE e2.agent = a.agent AND {k2} AND e2.at < {p1} \
                       ORDER BY e2.at DESC, e2.id DESC LIMIT 1) \
               FROM (SELECT DISTINCT e3.agent FROM queue_events e3 \
                     WHERE e3.agent IS NOT NULL AND {k3} AND e3.at < {p1}) a) \
             ORDER BY e.agent, e.at, e.id",
            cols = columns(db),
            k2 = kinds_in("e2"),
            k3 = kinds_in("e3"),
        );
        let within = format!(
            "SELECT {cols} FROM queue_events e \
             WHERE e.agent IS NOT NULL AND {k} AND e.at >= {p1} AND e.at < {p2} \
             ORDER BY e.agent, e.at, e.id",
            cols = columns(db),
            k = kinds_in("e"),
        );
        let err = StoreError::query("reading the agents' state events");
        let mut out = Vec::new();
        with_pool!(db, |pool| {
            let first = sqlx::query(sqlx::AssertSqlSafe(before))
                .bind(time_text(&from))
                .fetch_all(pool)
                .await
                .map_err(err)?;
            let then = sqlx::query(sqlx::AssertSqlSafe(within))
                .bind(time_text(&from))
                .bind(time_text(&to))
                .fetch_all(pool)
                .await
                .map_err(StoreError::query("reading the agents' state events"))?;
            for row in first.iter().chain(then.iter()) {
                out.push(event_from_row!(row));
            }
        });
        // Stable: each agent's event before the period stays first.
        out.sort_by(|a, b| a.agent.cmp(&b.agent).then(a.at.cmp(&b.at)));
        Ok(out)
    }
}
