-- Vault, users, sessions and scoped API tokens.
CREATE TABLE vault_header (
    id            BIGINT PRIMARY KEY CHECK (id = 1),
    header        TEXT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

-- Anything the vault keeps: secrets, named encryption keys, identities, signing keys.
-- The name is stored sealed; name_hmac (keyed by the data key) identifies it for audit.
CREATE TABLE vault_items (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    name_hmac       TEXT NOT NULL,
    sealed_name     BYTEA NOT NULL,
    policy          TEXT NOT NULL,
    current_version BIGINT NOT NULL,
    created_at_us   BIGINT NOT NULL
);
CREATE UNIQUE INDEX vault_items_name ON vault_items (kind, name_hmac);

CREATE TABLE vault_versions (
    item_id       TEXT NOT NULL REFERENCES vault_items (id) ON DELETE CASCADE,
    version       BIGINT NOT NULL,
    generation    BIGINT NOT NULL,
    sealed        BYTEA NOT NULL,
    created_at_us BIGINT NOT NULL,
    expires_at_us BIGINT,
    created_by    TEXT NOT NULL,
    PRIMARY KEY (item_id, version)
);
CREATE INDEX vault_versions_generation ON vault_versions (generation);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    email          TEXT NOT NULL,
    preferences    TEXT NOT NULL,
    created_at_us  BIGINT NOT NULL,
    updated_at_us  BIGINT NOT NULL,
    disabled_at_us BIGINT
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at_us BIGINT NOT NULL,
    revoked_at_us BIGINT
);

CREATE TABLE refresh_tokens (
    token_hash    BYTEA PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at_us  BIGINT NOT NULL,
    expires_at_us BIGINT NOT NULL,
    used_at_us    BIGINT
);

ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN user_id TEXT;
