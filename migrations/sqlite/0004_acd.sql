-- The agent queue (ACD).
--
-- What the call record gains for calls that reached a queue: the agent who
-- took it, time waited in the queue, offers made (agents rung), talk and hold
-- time, after-call work (filled in when the agent's wrap-up ends, which is
-- after the call), the transfer target and the caller's survey score (1-5).
ALTER TABLE call_records ADD COLUMN agent TEXT;
ALTER TABLE call_records ADD COLUMN wait_ms INTEGER;
ALTER TABLE call_records ADD COLUMN offers INTEGER;
ALTER TABLE call_records ADD COLUMN talk_ms INTEGER;
ALTER TABLE call_records ADD COLUMN hold_ms INTEGER;
ALTER TABLE call_records ADD COLUMN wrap_up_ms INTEGER;
ALTER TABLE call_records ADD COLUMN transfer_target TEXT;
ALTER TABLE call_records ADD COLUMN survey_score INTEGER;
CREATE INDEX call_records_agent ON call_records (agent, arrived_at) WHERE agent IS NOT NULL;

-- The queue event log: one row per change of a queue entry or an agent
-- (enter, offer, ring_no_answer, offer_cancelled, connect, abandon, timeout,
-- breakout, transfer, complete, pause, unpause, login, logout, wrap_up_end,
-- unreachable, reachable). The figures centers are judged by are computed
-- from these rows, so a restart resets nothing. `uid` makes a retried write
-- idempotent. Times as in call_records.
CREATE TABLE queue_events (
    id        INTEGER PRIMARY KEY,
    uid       TEXT    NOT NULL UNIQUE,
    at        TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    queue     TEXT,
    call_id   TEXT,
    agent     TEXT,
    position  INTEGER,
    wait_ms   INTEGER,
    talk_ms   INTEGER,
    reason    TEXT
);
CREATE INDEX queue_events_at ON queue_events (at);
CREATE INDEX queue_events_call ON queue_events (call_id) WHERE call_id IS NOT NULL;
CREATE INDEX queue_events_agent ON queue_events (agent, at) WHERE agent IS NOT NULL;

-- Each agent's last stable state (logged_out, ready, paused) and pause
-- reason, restored when the daemon starts: a restart logs nobody out.
CREATE TABLE agent_states (
    agent      TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    reason     TEXT,
    updated_at TEXT NOT NULL
);
