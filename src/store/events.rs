//! The queue event log and the agents' stored states.
//!
//! Every change the ACD makes (a caller enters, an agent is offered a call,
//! answers, pauses…) is one [`QueueEventRow`]; the center's figures are
//! computed from these rows, so a restart resets nothing. Inserts are
//! idempotent on `uid`, so the writer may retry a batch safely.
//!
//! [`AgentStateRow`] keeps each agent's last stable state (logged out,
//! ready, paused with its reason), read back at start so that a restart of
//! the daemon logs nobody out.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::calls::time_text;
use super::{off_runtime, Db, Store, StoreError};

/// One line of the queue event log, with wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueEventRow {
    /// Unique per event (the writer's retry key).
    pub uid: String,
    pub at: DateTime<Utc>,
    /// `enter`, `offer`, `connect`, … (`acd::EventKind::as_str`).
    pub kind: String,
    pub queue: Option<String>,
    pub call_id: Option<String>,
    pub agent: Option<String>,
    pub position: Option<i64>,
    pub wait_ms: Option<i64>,
    pub talk_ms: Option<i64>,
    pub reason: Option<String>,
}

/// An agent's last stable state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentStateRow {
    pub agent: String,
    /// `logged_out`, `ready` or `paused`.
    pub state: String,
    /// The pause reason, when paused.
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Which events to read back.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub call_id: Option<String>,
    pub agent: Option<String>,
    pub kind: Option<String>,
    /// Most rows returned (newest last); 0 means 1000.
    pub limit: i64,
}

const EVENT_COLUMNS: &str = "uid, kind, queue, call_id, agent, position, wait_ms, talk_ms, reason";

pub(super) fn parse_time(what: &str, s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            call_id: what.to_string(),
            detail: format!("{s:?} is not an ISO-8601 time: {e}"),
        })
}

/// The time column as fixed-width UTC text, in either backend. (The SQL of
/// this file is built from constant fragments only, hence `AssertSqlSafe`.)
pub(super) fn time_select(db: &Db, column: &str) -> String {
    match db {
        Db::Sqlite { .. } => column.to_string(),
        Db::Postgres(_) => format!(
            "to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS {column}"
        ),
    }
}

/// A time expression (`r.started_at`) as fixed-width UTC text under
/// `alias`, in either backend.
pub(super) fn time_as(db: &Db, column: &str, alias: &str) -> String {
    match db {
        Db::Sqlite { .. } => format!("{column} AS {alias}"),
        Db::Postgres(_) => format!(
            "to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS {alias}"
        ),
    }
}

/// `$n` or `$n::timestamptz`.
pub(super) fn time_param(db: &Db, n: usize) -> String {
    match db {
        Db::Sqlite { .. } => format!("${n}"),
        Db::Postgres(_) => format!("${n}::timestamptz"),
    }
}

macro_rules! event_from_row {
    ($row:expr) => {{
        let row = $row;
        let get = |e| StoreError::query("decoding a queue event")(e);
        let at: String = row.try_get("at").map_err(get)?;
        QueueEventRow {
            uid: row.try_get("uid").map_err(get)?,
            at: parse_time("queue event", &at)?,
            kind: row.try_get("kind").map_err(get)?,
            queue: row.try_get("queue").map_err(get)?,
            call_id: row.try_get("call_id").map_err(get)?,
            agent: row.try_get("agent").map_err(get)?,
            position: row.try_get("position").map_err(get)?,
            wait_ms: row.try_get("wait_ms").map_err(get)?,
            talk_ms: row.try_get("talk_ms").map_err(get)?,
            reason: row.try_get("reason").map_err(get)?,
        }
    }};
}

macro_rules! bind_event {
    ($query:expr, $e:expr) => {{
        let e: &QueueEventRow = $e;
        $query
            .bind(e.uid.clone())
            .bind(time_text(&e.at))
            .bind(e.kind.clone())
            .bind(e.queue.clone())
            .bind(e.call_id.clone())
            .bind(e.agent.clone())
            .bind(e.position)
            .bind(e.wait_ms)
            .bind(e.talk_ms)
            .bind(e.reason.clone())
    }};
}

macro_rules! bind_state {
    ($query:expr, $s:expr) => {{
        let s: &AgentStateRow = $s;
        $query
            .bind(s.agent.clone())
            .bind(s.state.clone())
            .bind(s.reason.clone())
            .bind(time_text(&s.updated_at))
    }};
}

impl Store {
    /// Inserts events in one transaction; an event whose `uid` is stored
    /// already is skipped.
    pub async fn insert_queue_events(&self, events: &[QueueEventRow]) -> Result<(), StoreError> {
        let this = self.clone();
        let events = events.to_vec();
        off_runtime(async move { this.insert_queue_events_now(&events).await }).await
    }

    async fn insert_queue_events_now(&self, events: &[QueueEventRow]) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO queue_events (uid, at, kind, queue, call_id, agent, position, wait_ms, \
             talk_ms, reason) VALUES ($1, {}, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (uid) DO NOTHING",
            time_param(&self.db, 2)
        );
        let err = StoreError::query("inserting queue events");
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            for e in events {
                bind_event!(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), e)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("inserting queue events"))?;
            }
            tx.commit()
                .await
                .map_err(StoreError::query("committing queue events"))?;
        });
        Ok(())
    }

    /// Events matching `filter`, oldest first (the newest `limit`).
    pub async fn queue_events(
        &self,
        filter: EventFilter,
    ) -> Result<Vec<QueueEventRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move { this.queue_events_now(&filter).await }).await
    }

    async fn queue_events_now(&self, f: &EventFilter) -> Result<Vec<QueueEventRow>, StoreError> {
        let limit = if f.limit <= 0 {
            1000
        } else {
            f.limit.min(100_000)
        };
        // Fixed SQL: a NULL parameter matches every row.
        let sql = format!(
            "SELECT {EVENT_COLUMNS}, {} FROM queue_events \
             WHERE ($1 IS NULL OR call_id = $1) AND ($2 IS NULL OR agent = $2) \
             AND ($3 IS NULL OR kind = $3) ORDER BY id DESC LIMIT $4",
            time_select(&self.db, "at")
        );
        let sql = super::pg_text_nulls(&self.db, sql, 1..=3);
        let err = StoreError::query("reading queue events");
        let mut rows = Vec::new();
        with_pool!(&self.db, |pool| {
            let found = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(f.call_id.clone())
                .bind(f.agent.clone())
                .bind(f.kind.clone())
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(err)?;
            for row in &found {
                rows.push(event_from_row!(row));
            }
        });
        rows.reverse();
        Ok(rows)
    }

    /// Stores agents' states (insert or replace), in one transaction.
    pub async fn save_agent_states(&self, states: &[AgentStateRow]) -> Result<(), StoreError> {
        let this = self.clone();
        let states = states.to_vec();
        off_runtime(async move { this.save_agent_states_now(&states).await }).await
    }

    async fn save_agent_states_now(&self, states: &[AgentStateRow]) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO agent_states (agent, state, reason, updated_at) VALUES ($1, $2, $3, {}) \
             ON CONFLICT (agent) DO UPDATE SET state = excluded.state, reason = excluded.reason, \
             updated_at = excluded.updated_at",
            time_param(&self.db, 4)
        );
        let err = StoreError::query("saving agent states");
        with_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(err)?;
            for st in states {
                bind_state!(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), st)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("saving agent states"))?;
            }
            tx.commit()
                .await
                .map_err(StoreError::query("committing agent states"))?;
        });
        Ok(())
    }

    /// Every stored agent state.
    pub async fn load_agent_states(&self) -> Result<Vec<AgentStateRow>, StoreError> {
        let this = self.clone();
        off_runtime(async move { this.load_agent_states_now().await }).await
    }

    async fn load_agent_states_now(&self) -> Result<Vec<AgentStateRow>, StoreError> {
        let sql = format!(
            "SELECT agent, state, reason, {} FROM agent_states ORDER BY agent",
            time_select(&self.db, "updated_at")
        );
        let err = StoreError::query("reading agent states");
        let get = |e| StoreError::query("decoding an agent state")(e);
        let mut out = Vec::new();
        with_pool!(&self.db, |pool| {
            for row in sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(pool)
                .await
                .map_err(err)?
            {
                let updated: String = row.try_get("updated_at").map_err(get)?;
                out.push(AgentStateRow {
                    agent: row.try_get("agent").map_err(get)?,
                    state: row.try_get("state").map_err(get)?,
                    reason: row.try_get("reason").map_err(get)?,
                    updated_at: parse_time("agent state", &updated)?,
                });
            }
        });
        Ok(out)
    }

    /// Sets the after-call work of a stored call record; returns the number
    /// of records changed (0 if the record is not stored yet).
    pub async fn set_wrap_up(&self, call_id: &str, wrap_up_ms: i64) -> Result<u64, StoreError> {
        let this = self.clone();
        let call_id = call_id.to_string();
        off_runtime(async move {
            let sql = "UPDATE call_records SET wrap_up_ms = $1 WHERE call_id = $2";
            let err = StoreError::query("setting the wrap-up time");
            let done = with_pool!(&this.db, |pool| sqlx::query(sql)
                .bind(wrap_up_ms)
                .bind(call_id.clone())
                .execute(pool)
                .await
                .map_err(err)?
                .rows_affected());
            Ok(done)
        })
        .await
    }
}
