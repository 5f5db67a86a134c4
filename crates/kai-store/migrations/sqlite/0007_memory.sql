-- Memory (issue 6): records with an optional embedding, a tier and a namespace, each owned by one
-- principal (`user:…`, `agent:…`, `token:…`); private records hold vault ciphertext in `text`,
-- `metadata` and `embedding`. `num` is the dense id the vector and full-text indexes use.
CREATE TABLE memories (
    num              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    owner            TEXT NOT NULL,
    ns_kind          TEXT NOT NULL,
    ns_id            TEXT NOT NULL,
    tier             TEXT NOT NULL,
    text             TEXT NOT NULL,
    metadata         TEXT NOT NULL,
    embedding        BLOB,
    embedding_model  TEXT,
    encrypted        BOOLEAN NOT NULL,
    needs_extraction BOOLEAN NOT NULL,
    created_at_us    BIGINT NOT NULL,
    updated_at_us    BIGINT NOT NULL,
    expires_at_us    BIGINT
);
CREATE INDEX memories_owner ON memories (owner, num);
CREATE INDEX memories_expiry ON memories (expires_at_us) WHERE expires_at_us IS NOT NULL;
CREATE INDEX memories_unembedded ON memories (num) WHERE embedding IS NULL;
CREATE INDEX memories_unextracted ON memories (num) WHERE needs_extraction;

-- The memory graph: entities (unique per owner by normalized name and kind, so a repeated
-- mention lands on the same node), typed relations between them, and which memories mention
-- which entities.
CREATE TABLE memory_entities (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    name          TEXT NOT NULL,
    norm          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    properties    TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL,
    UNIQUE (owner, norm, kind)
);

CREATE TABLE memory_relations (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    source_id     TEXT NOT NULL REFERENCES memory_entities (id) ON DELETE CASCADE,
    target_id     TEXT NOT NULL REFERENCES memory_entities (id) ON DELETE CASCADE,
    rel_type      TEXT NOT NULL,
    memory_id     TEXT,
    properties    TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    UNIQUE (owner, source_id, target_id, rel_type)
);
CREATE INDEX memory_relations_source ON memory_relations (source_id);
CREATE INDEX memory_relations_target ON memory_relations (target_id);

CREATE TABLE memory_mentions (
    memory_id TEXT NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    entity_id TEXT NOT NULL REFERENCES memory_entities (id) ON DELETE CASCADE,
    PRIMARY KEY (memory_id, entity_id)
);
CREATE INDEX memory_mentions_entity ON memory_mentions (entity_id);
