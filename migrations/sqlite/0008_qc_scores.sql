-- Scores given to recordings on a scorecard (the scorecard's name and
-- version as configured when the score was given). `total` is 0–100 after
-- weights; `auto_failed` is 1 when an auto-fail item zeroed it. `status`:
-- `open` (may be disputed), `disputed`, `final`. Times as in call_records.
CREATE TABLE qc_scores (
    id                TEXT    PRIMARY KEY,
    recording_id      TEXT    NOT NULL,
    scorecard         TEXT    NOT NULL,
    scorecard_version INTEGER NOT NULL,
    scorer            TEXT    NOT NULL,
    agent             TEXT,
    total             REAL    NOT NULL,
    auto_failed       INTEGER NOT NULL DEFAULT 0,
    status            TEXT    NOT NULL,
    created_at        TEXT    NOT NULL
);
CREATE INDEX qc_scores_recording ON qc_scores (recording_id);
CREATE INDEX qc_scores_agent ON qc_scores (agent, created_at);
