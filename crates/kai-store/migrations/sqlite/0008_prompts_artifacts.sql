-- The prompt library and the artifact store (issue 6).
--
-- Prompts: a name, tags, usage and rating counters; every edit adds an immutable row to
-- prompt_versions (template, declared variables as JSON, description). Renders are logged in
-- prompt_renders (variable names and sizes, never values).
CREATE TABLE prompts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    description    TEXT NOT NULL,
    tags           TEXT NOT NULL,
    latest_version BIGINT NOT NULL,
    usage_count    BIGINT NOT NULL DEFAULT 0,
    rating_sum     BIGINT NOT NULL DEFAULT 0,
    rating_count   BIGINT NOT NULL DEFAULT 0,
    created_by     TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL,
    updated_at_us  BIGINT NOT NULL
);

CREATE TABLE prompt_versions (
    prompt_id     TEXT NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    version       BIGINT NOT NULL,
    template      TEXT NOT NULL,
    variables     TEXT NOT NULL,
    description   TEXT NOT NULL,
    message       TEXT NOT NULL,
    author        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (prompt_id, version)
);

CREATE TABLE prompt_ratings (
    prompt_id   TEXT NOT NULL REFERENCES prompts (id) ON DELETE CASCADE,
    rater       TEXT NOT NULL,
    stars       BIGINT NOT NULL,
    rated_at_us BIGINT NOT NULL,
    PRIMARY KEY (prompt_id, rater)
);

CREATE TABLE prompt_renders (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id    TEXT NOT NULL,
    prompt_name  TEXT NOT NULL,
    version      BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    ok           BOOLEAN NOT NULL,
    variables    TEXT NOT NULL,
    output_bytes BIGINT NOT NULL,
    error        TEXT,
    at_us        BIGINT NOT NULL
);
CREATE INDEX prompt_renders_actor ON prompt_renders (actor, id);
CREATE INDEX prompt_renders_prompt ON prompt_renders (prompt_id, id);

-- Artifacts: one row per version of a name per owner; the bytes are a content-addressed blob
-- (BLAKE3 hex digest) shared by every row with the same contents.
CREATE TABLE artifacts (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    digest        TEXT NOT NULL,
    size          BIGINT NOT NULL,
    content_type  TEXT NOT NULL,
    tags          TEXT NOT NULL,
    task_id       TEXT,
    created_at_us BIGINT NOT NULL
);
CREATE UNIQUE INDEX artifacts_owner_name_version ON artifacts (owner, name, version);
CREATE INDEX artifacts_digest ON artifacts (digest);
CREATE INDEX artifacts_created ON artifacts (created_at_us);

-- Share links: only the SHA-256 of the token is stored.
CREATE TABLE artifact_shares (
    id               TEXT PRIMARY KEY,
    artifact_id      TEXT NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
    token_hash       BLOB NOT NULL UNIQUE,
    created_by       TEXT NOT NULL,
    created_at_us    BIGINT NOT NULL,
    expires_at_us    BIGINT NOT NULL,
    revoked_at_us    BIGINT,
    uses             BIGINT NOT NULL DEFAULT 0,
    last_used_at_us  BIGINT
);
CREATE INDEX artifact_shares_artifact ON artifact_shares (artifact_id);

CREATE TABLE notes (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    title         TEXT NOT NULL,
    body          TEXT NOT NULL,
    tags          TEXT NOT NULL,
    task_id       TEXT,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
CREATE INDEX notes_owner ON notes (owner, updated_at_us);

-- The source of the full-text index (BM25, in memory, rebuilt from here): the text of text
-- artifacts (capped) and of notes, under a dense integer id.
CREATE TABLE search_docs (
    doc_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    ref_id  TEXT NOT NULL UNIQUE,
    owner   TEXT NOT NULL,
    title   TEXT NOT NULL,
    body    TEXT NOT NULL
);
