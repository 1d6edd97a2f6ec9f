-- Scores given to recordings on a scorecard (the scorecard's name and
-- version as configured when the score was given). `total` is 0–100 after
-- weights; `auto_failed` is 1 when an auto-fail item zeroed it. `status`:
-- `open` (may be disputed), `disputed`, `final`. Times are timestamptz.
CREATE TABLE qc_scores (
    id                TEXT    PRIMARY KEY,
    recording_id      TEXT    NOT NULL,
    scorecard         TEXT    NOT NULL,
    scorecard_version BIGINT NOT NULL,
    scorer            TEXT    NOT NULL,
    agent             TEXT,
    total             DOUBLE PRECISION    NOT NULL,
    auto_failed       BIGINT NOT NULL DEFAULT 0,
    status            TEXT    NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX qc_scores_recording ON qc_scores (recording_id);
CREATE INDEX qc_scores_agent ON qc_scores (agent, created_at);
