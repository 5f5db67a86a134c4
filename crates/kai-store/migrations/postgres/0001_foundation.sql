-- Foundation: node metadata, signed audit log, event log, API tokens.
CREATE TABLE node_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE audit_entries (
    seq          BIGINT PRIMARY KEY,
    timestamp_us BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    details      TEXT NOT NULL,
    prev_hash    BYTEA NOT NULL,
    signer       TEXT NOT NULL,
    hash         BYTEA NOT NULL,
    signature    BYTEA NOT NULL
);

CREATE TABLE audit_checkpoints (
    size         BIGINT PRIMARY KEY,
    root         BYTEA NOT NULL,
    timestamp_us BIGINT NOT NULL,
    signer       TEXT NOT NULL,
    signature    BYTEA NOT NULL
);

CREATE TABLE events (
    event_offset BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    type         TEXT NOT NULL,
    agent        TEXT,
    task_id      TEXT,
    payload      TEXT NOT NULL,
    timestamp_us BIGINT NOT NULL
);
CREATE INDEX events_type ON events (type);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    token_hash    BYTEA NOT NULL UNIQUE,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT,
    revoked_at_us BIGINT
);
