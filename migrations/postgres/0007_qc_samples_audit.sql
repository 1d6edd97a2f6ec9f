-- Quality control: sampling runs and their picks, and the audit log.
--
-- A sampling run picks recordings of one period (`period_from` ≤ the
-- recording's start < `period_to`) by the rules of the config, with a seed:
-- the same records, rules and seed give the same picks (auditable). Each
-- pick names the rule that chose it (a recording chosen by two rules has two
-- rows); `detail` says why (e.g. "312 s, 2.4× the agent's median").
-- `source` is `cli` or `scheduled`. Times are timestamptz.
CREATE TABLE qc_sample_runs (
    id          TEXT    PRIMARY KEY,
    period_from TIMESTAMPTZ NOT NULL,
    period_to   TIMESTAMPTZ NOT NULL,
    seed        BIGINT NOT NULL,
    source      TEXT    NOT NULL,
    rules       TEXT    NOT NULL,
    picked      BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX qc_sample_runs_period ON qc_sample_runs (period_from, period_to);

CREATE TABLE qc_samples (
    id           BIGSERIAL PRIMARY KEY,
    run_id       TEXT    NOT NULL,
    recording_id TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    detail       TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (run_id, recording_id, rule)
);
CREATE INDEX qc_samples_recording ON qc_samples (recording_id);

-- Who did what to which QC object: every listen, score, dispute, settlement,
-- recording deletion, login and user change. `actor` is a user name or
-- `system` (the retention run); `object` names what was acted on
-- (`recording:ID`, `score:ID`, `user:NAME`). `uid` makes a retried write
-- idempotent.
CREATE TABLE audit_log (
    id      BIGSERIAL PRIMARY KEY,
    uid     TEXT    NOT NULL UNIQUE,
    at      TIMESTAMPTZ NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    object  TEXT,
    detail  TEXT,
    source  TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_object ON audit_log (object, at) WHERE object IS NOT NULL;
