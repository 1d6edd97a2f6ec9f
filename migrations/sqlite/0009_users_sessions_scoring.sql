-- QC web users and their sessions, and the detail of QC scores.
--
-- users: who may log in to the QC pages. `role` is `qc`, `team_lead`,
-- `supervisor` or `admin`; `team` ties a team lead to the agents of that
-- team (acd.agents[].team); `extension` is the user's softphone for live
-- monitoring. `password_hash` is an argon2id PHC string. Repeated failed
-- log-ins lock the user until `locked_until`. Times as in call_records.
CREATE TABLE users (
    name          TEXT    PRIMARY KEY,
    role          TEXT    NOT NULL,
    team          TEXT,
    extension     TEXT,
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);

-- A logged-in browser. The cookie holds a random token; only its SHA-256
-- is stored, so a copy of the database logs nobody in. `csrf` is the
-- session's anti-forgery token, required in every form it posts.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen  TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_name);

-- Each item of a score, in the card's order (`position`): `answer` is `yes`, `no` or `na`; `points` what it
-- earned of `weight`.
CREATE TABLE qc_score_items (
    score_id TEXT    NOT NULL,
    position INTEGER NOT NULL,
    section  TEXT    NOT NULL,
    item     TEXT    NOT NULL,
    answer   TEXT    NOT NULL,
    weight   REAL    NOT NULL,
    points   REAL    NOT NULL,
    auto_fail INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (score_id, item)
);

-- Comments pinned to a moment of the recording ("01:23 no greeting").
CREATE TABLE qc_score_comments (
    id       INTEGER PRIMARY KEY,
    score_id TEXT    NOT NULL,
    at_ms    INTEGER,
    text     TEXT    NOT NULL
);
CREATE INDEX qc_score_comments_score ON qc_score_comments (score_id);

-- A team lead's dispute of a score and its settlement. `outcome`:
-- `upheld` (the score stands) or `revised` (`revised_total` replaces it).
CREATE TABLE qc_disputes (
    id            TEXT PRIMARY KEY,
    score_id      TEXT NOT NULL UNIQUE,
    raised_by     TEXT NOT NULL,
    reason        TEXT NOT NULL,
    raised_at     TEXT NOT NULL,
    settled_by    TEXT,
    settled_at    TEXT,
    outcome       TEXT,
    revised_total REAL,
    note          TEXT
);

ALTER TABLE qc_scores ADD COLUMN queue TEXT;
ALTER TABLE qc_scores ADD COLUMN team TEXT;
ALTER TABLE qc_scores ADD COLUMN final_total REAL;
ALTER TABLE qc_scores ADD COLUMN dispute_until TEXT;
