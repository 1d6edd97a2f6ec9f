-- Callback requests (留置答 deferred answer): a caller in a queue asked to be
-- called back on its number, keeping its place. One row per request, keyed by
-- the Call-ID of the original call; `requested_at` is when the caller joined
-- the queue, so a request restored at start keeps its place. `state` is
-- pending, done, failed (an attempt failed; a retry is due at
-- `next_attempt_at`) or given_up. Times as in call_records.
CREATE TABLE callbacks (
    call_id         TEXT    PRIMARY KEY,
    number          TEXT    NOT NULL,
    queue           TEXT    NOT NULL,
    priority        INTEGER NOT NULL,
    requested_at    TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT,
    last_result     TEXT,
    last_agent      TEXT,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX callbacks_state ON callbacks (state, requested_at);

-- One row per attempt: when it started, the agent rung, how it ended
-- (answered, busy, no_answer, declined, failed, agent_hung_up) and, when the
-- citizen answered, the talk time. `uid` (call_id and attempt number) makes
-- a retried write idempotent.
CREATE TABLE callback_attempts (
    id         INTEGER PRIMARY KEY,
    uid        TEXT    NOT NULL UNIQUE,
    call_id    TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    started_at TEXT    NOT NULL,
    agent      TEXT    NOT NULL,
    result     TEXT    NOT NULL,
    talk_ms    INTEGER
);
CREATE INDEX callback_attempts_call ON callback_attempts (call_id, attempt);
