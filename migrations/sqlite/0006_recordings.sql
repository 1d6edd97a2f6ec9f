-- Recordings: every recorded agent call (one row per agent segment of a
-- call: a call transferred to a second agent has two) and every voice
-- message. The row is inserted when recording starts (status `recording`)
-- and completed when it ends (`complete`); a row still `recording` at
-- start-up belongs to a daemon that was killed: its file's header is
-- repaired and the row marked `interrupted`. The retention run deletes old
-- files and marks their rows `deleted` (the row stays, for the audit trail).
--
-- `path` is relative to the data folder (`recordings/YYYY/MM/DD/…wav`),
-- made by the daemon only (never from a request). `sha256` is of the whole
-- finished file. `channels` is 2 for calls (caller left, agent right), 1 for
-- voice messages. Times as in call_records.
CREATE TABLE recordings (
    id           TEXT    PRIMARY KEY,
    call_id      TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    segment      INTEGER NOT NULL DEFAULT 0,
    agent        TEXT,
    queue        TEXT,
    caller       TEXT,
    dialed       TEXT,
    path         TEXT    NOT NULL,
    channels     INTEGER NOT NULL,
    started_at   TEXT    NOT NULL,
    ended_at     TEXT,
    duration_ms  INTEGER,
    size_bytes   INTEGER,
    sha256       TEXT,
    masked_ms    INTEGER NOT NULL DEFAULT 0,
    status       TEXT    NOT NULL,
    deleted_at   TEXT
);
CREATE INDEX recordings_started ON recordings (started_at);
CREATE INDEX recordings_call ON recordings (call_id);
CREATE INDEX recordings_agent ON recordings (agent, started_at) WHERE agent IS NOT NULL;
CREATE INDEX recordings_status ON recordings (status);

-- Moments on a recording's timeline, in ms from its start: hold and resume
-- (with the side that held), mask and unmask, transfer. Shown beside the
-- player on the QC call page.
CREATE TABLE recording_marks (
    id           INTEGER PRIMARY KEY,
    uid          TEXT    NOT NULL UNIQUE,
    recording_id TEXT    NOT NULL,
    at_ms        INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    detail       TEXT
);
CREATE INDEX recording_marks_recording ON recording_marks (recording_id, at_ms);
