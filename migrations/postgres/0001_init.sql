-- hotline schema, version 1 (PostgreSQL).
--
-- Times are timestamptz (microsecond precision). Range queries such as
-- `arrived_at >= $1 AND arrived_at < $2` use the index.

-- One row per call (call detail record). `call_id` is the SIP Call-ID; an
-- insert that repeats it is ignored, so the writer may retry safely.
CREATE TABLE call_records (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id             TEXT        NOT NULL UNIQUE,
    caller              TEXT        NOT NULL,
    dialed              TEXT        NOT NULL,
    arrived_at          TIMESTAMPTZ NOT NULL,
    answered_at         TIMESTAMPTZ,
    ended_at            TIMESTAMPTZ NOT NULL,
    duration_ms         BIGINT      NOT NULL,
    -- IVR node ids visited, as a JSON array of strings (text, as in SQLite).
    ivr_path            TEXT        NOT NULL DEFAULT '[]',
    self_service_result TEXT,
    disposition         TEXT        NOT NULL,
    hangup_by           TEXT        NOT NULL,
    hangup_reason       TEXT        NOT NULL,
    sip_status          INTEGER     NOT NULL,
    codec               TEXT,
    language            TEXT,
    queue               TEXT
);

CREATE INDEX call_records_arrived_at ON call_records (arrived_at);
CREATE INDEX call_records_dialed ON call_records (dialed, arrived_at);
CREATE INDEX call_records_caller ON call_records (caller, arrived_at);

-- DEMO DATA TABLE. Stands in for the social-insurance back end of the 12333
-- self-service menu: `Store::seed_demo` fills it with made-up accounts. A real
-- center points the IVR look-up SQL at its own view instead and never seeds.
-- `id_number` is the 18-character resident ID in canonical form (a final check
-- character X is stored as upper-case 'X'; callers key it as '*', which the
-- IVR maps to 'X' before the look-up).
CREATE TABLE si_accounts (
    id_number       TEXT    PRIMARY KEY,
    pin             TEXT    NOT NULL,
    name            TEXT,
    balance_fen     BIGINT  NOT NULL,
    last_paid_year  INT,
    last_paid_month INT
);
