-- Foundation: node metadata, signed audit log, event log, API tokens.
CREATE TABLE node_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE audit_entries (
    seq          INTEGER PRIMARY KEY,
    timestamp_us INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    details      TEXT NOT NULL,
    prev_hash    BLOB NOT NULL,
    signer       TEXT NOT NULL,
    hash         BLOB NOT NULL,
    signature    BLOB NOT NULL
);

CREATE TABLE audit_checkpoints (
    size         INTEGER PRIMARY KEY,
    root         BLOB NOT NULL,
    timestamp_us INTEGER NOT NULL,
    signer       TEXT NOT NULL,
    signature    BLOB NOT NULL
);

CREATE TABLE events (
    event_offset INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    agent        TEXT,
    task_id      TEXT,
    payload      TEXT NOT NULL,
    timestamp_us INTEGER NOT NULL
);
CREATE INDEX events_type ON events (type);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    created_at_us INTEGER NOT NULL,
    expires_at_us INTEGER,
    revoked_at_us INTEGER
);
