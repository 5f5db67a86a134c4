-- The durable queue (issue 5). One row per job; a claim sets lease_id (the fencing token)
-- and lease_until_us; every worker call presents the token. Terminal states keep the row
-- (result or last error) until purged. queue_effects records side effects by key so a re-run
-- can tell whether one already happened. queue_limits caps running jobs per concurrency key
-- ('key:<k>') and overall ('global').
CREATE TABLE queue_jobs (
    id                 TEXT PRIMARY KEY,
    queue              TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'dead', 'cancelled')),
    priority           BIGINT NOT NULL,
    payload            TEXT NOT NULL,
    result             TEXT,
    last_error         TEXT,
    parent_id          TEXT,
    idempotency_key    TEXT UNIQUE,
    concurrency_key    TEXT,
    attempts           BIGINT NOT NULL DEFAULT 0,
    max_attempts       BIGINT NOT NULL,
    backoff_initial_ms BIGINT NOT NULL,
    backoff_max_ms     BIGINT NOT NULL,
    run_at_us          BIGINT NOT NULL,
    lease_id           TEXT,
    lease_until_us     BIGINT,
    worker             TEXT,
    cancel_requested   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_us      BIGINT NOT NULL,
    updated_at_us      BIGINT NOT NULL,
    started_at_us      BIGINT,
    finished_at_us     BIGINT
);
-- Claim order within a queue: priority, then the longest ready, then creation.
CREATE INDEX queue_jobs_ready ON queue_jobs (queue, priority DESC, run_at_us, id) WHERE state = 'queued';
CREATE INDEX queue_jobs_leases ON queue_jobs (queue, lease_until_us) WHERE state = 'running';
CREATE INDEX queue_jobs_running_key ON queue_jobs (concurrency_key) WHERE state = 'running';
CREATE INDEX queue_jobs_parent ON queue_jobs (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX queue_jobs_state ON queue_jobs (state, id);
CREATE INDEX queue_jobs_finished ON queue_jobs (finished_at_us) WHERE finished_at_us IS NOT NULL;

CREATE TABLE queue_limits (
    scope       TEXT PRIMARY KEY,
    max_running BIGINT NOT NULL
);

CREATE TABLE queue_effects (
    effect_key    TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL,
    lease_id      TEXT,
    attempt       BIGINT NOT NULL,
    result        TEXT,
    started_at_us BIGINT NOT NULL,
    done_at_us    BIGINT
);
CREATE INDEX queue_effects_job ON queue_effects (job_id);
