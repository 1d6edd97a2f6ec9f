-- Callback requests (留置答 deferred answer): a caller in a queue asked to be
-- called back on its number, keeping its place. One row per request, keyed by
-- the Call-ID of the original call; `requested_at` is when the caller joined
-- the queue, so a request restored at start keeps its place. `state` is
-- pending, done, failed (an attempt failed; a retry is due at
-- `next_attempt_at`) or given_up. Times as in call_records (timestamptz).
CREATE TABLE callbacks (
    call_id         TEXT    PRIMARY KEY,
    number          TEXT    NOT NULL,
    queue           TEXT    NOT NULL,
    priority        BIGINT  NOT NULL,
    requested_at    TIMESTAMPTZ NOT NULL,
    state           TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL,
    next_attempt_at TIMESTAMPTZ,
    last_result     TEXT,
    last_agent      TEXT,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX callbacks_state ON callbacks (state, requested_at);

-- One row per attempt: when it started, the agent rung, how it ended
-- (answered, busy, no_answer, declined, failed, agent_hung_up) and, when the
-- citizen answered, the talk time. `uid` (call_id and attempt number) makes
-- a retried write idempotent.
CREATE TABLE callback_attempts (
    id         BIGSERIAL PRIMARY KEY,
    uid        TEXT    NOT NULL UNIQUE,
    call_id    TEXT    NOT NULL,
    attempt    BIGINT  NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    agent      TEXT    NOT NULL,
    result     TEXT    NOT NULL,
    talk_ms    BIGINT
);
CREATE INDEX callback_attempts_call ON callback_attempts (call_id, attempt);
