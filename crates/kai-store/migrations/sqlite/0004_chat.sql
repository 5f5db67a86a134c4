-- Chat threads: messages form a tree (parent_id) so any message can be regenerated or branched
-- from; head_id is the tip of the branch the thread shows. Summaries of old turns are kept
-- beside the originals, never instead of them.
CREATE TABLE chat_threads (
    id            TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    title         TEXT NOT NULL,
    persona       TEXT NOT NULL,
    head_id       TEXT,
    message_count BIGINT NOT NULL DEFAULT 0,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);
CREATE INDEX chat_threads_owner ON chat_threads (owner, updated_at_us);

CREATE TABLE chat_messages (
    id            TEXT PRIMARY KEY,
    thread_id     TEXT NOT NULL REFERENCES chat_threads (id) ON DELETE CASCADE,
    parent_id     TEXT,
    seq           BIGINT NOT NULL,
    role          TEXT NOT NULL,
    content       TEXT NOT NULL,
    tool_calls    TEXT,
    tool_call_id  TEXT,
    persona       TEXT,
    meta          TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);
CREATE UNIQUE INDEX chat_messages_thread_seq ON chat_messages (thread_id, seq);

CREATE TABLE chat_summaries (
    id            TEXT PRIMARY KEY,
    thread_id     TEXT NOT NULL REFERENCES chat_threads (id) ON DELETE CASCADE,
    upto_id       TEXT NOT NULL,
    covered       TEXT NOT NULL,
    content       TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);
CREATE INDEX chat_summaries_thread ON chat_summaries (thread_id, created_at_us);
