-- Calls up now: a row per answered call from its answer until its call
-- record is written (the record's insert deletes the row, in the same
-- transaction). A daemon killed with calls up leaves their rows behind; at
-- its next start it writes each as a call record marked `interrupted` and
-- deletes the row. `node` is the host the daemon runs on and `run` one
-- start of it, so a start recovers only its own node's earlier runs (two
-- daemons may share a PostgreSQL database). `opened_at` is when the row
-- was first saved and `seen_at` the last time the run was known alive with
-- the call up (refreshed every few seconds), both by the system clock: the
-- interrupted record lasts from its answer for the time between them.
-- `record` is the call record as known so far (JSON). Times are ISO-8601
-- UTC text: this table is a journal, never reported on.
CREATE TABLE open_calls (
    call_id   TEXT PRIMARY KEY,
    node      TEXT NOT NULL,
    run       TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    seen_at   TEXT NOT NULL,
    record    TEXT NOT NULL
);
CREATE INDEX open_calls_node ON open_calls (node, run);
