-- Agents, tasks, plans and steps (issue 5). The durable queue (0006) carries the work; these
-- tables hold what the work is about: definitions and lifecycle state, goals and their status,
-- every version of every plan, each step's outcome, questions to the owner, messages between
-- agents, saved workflows, webhooks and trigger bookkeeping.
CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    definition    TEXT NOT NULL,
    staged        TEXT,
    state         TEXT NOT NULL,
    builtin       BIGINT NOT NULL DEFAULT 0,
    did           TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    updated_at_us BIGINT NOT NULL
);

CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    owner            TEXT NOT NULL,
    goal             TEXT NOT NULL,
    status           TEXT NOT NULL,
    source           TEXT NOT NULL,
    workflow         TEXT,
    budget           TEXT NOT NULL,
    used_steps       BIGINT NOT NULL DEFAULT 0,
    used_tool_calls  BIGINT NOT NULL DEFAULT 0,
    used_tokens      BIGINT NOT NULL DEFAULT 0,
    used_cost_micros BIGINT NOT NULL DEFAULT 0,
    result           TEXT,
    error            TEXT,
    plan_version     BIGINT NOT NULL DEFAULT 0,
    parent_id        TEXT,
    depth            BIGINT NOT NULL DEFAULT 0,
    idempotency_key  TEXT UNIQUE,
    created_at_us    BIGINT NOT NULL,
    updated_at_us    BIGINT NOT NULL,
    finished_at_us   BIGINT
);
CREATE INDEX tasks_owner ON tasks (owner, created_at_us);
CREATE INDEX tasks_status ON tasks (status, created_at_us);

CREATE TABLE plans (
    task_id       TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    version       BIGINT NOT NULL,
    graph         TEXT NOT NULL,
    status        TEXT NOT NULL,
    checked       TEXT NOT NULL,
    author        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (task_id, version)
);

CREATE TABLE steps (
    task_id        TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step_id        TEXT NOT NULL,
    plan_version   BIGINT NOT NULL,
    agent          TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    output         TEXT,
    feedback       TEXT,
    error          TEXT,
    tokens         BIGINT NOT NULL DEFAULT 0,
    tool_calls     BIGINT NOT NULL DEFAULT 0,
    started_at_us  BIGINT,
    finished_at_us BIGINT,
    PRIMARY KEY (task_id, step_id)
);

CREATE TABLE task_questions (
    id             TEXT PRIMARY KEY,
    task_id        TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step_id        TEXT NOT NULL,
    question       TEXT NOT NULL,
    answer         TEXT,
    asked_at_us    BIGINT NOT NULL,
    answered_at_us BIGINT,
    answered_by    TEXT
);
CREATE INDEX task_questions_task ON task_questions (task_id);

CREATE TABLE agent_messages (
    id              TEXT PRIMARY KEY,
    from_agent      TEXT NOT NULL,
    to_agent        TEXT NOT NULL,
    task_id         TEXT,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at_us   BIGINT NOT NULL,
    delivered_at_us BIGINT
);
CREATE INDEX agent_messages_to ON agent_messages (to_agent, status, created_at_us);

CREATE TABLE workflows (
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    definition    TEXT NOT NULL,
    author        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE webhooks (
    name          TEXT PRIMARY KEY,
    secret_name   TEXT NOT NULL,
    target        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);

CREATE TABLE trigger_state (
    id            TEXT PRIMARY KEY,
    last_fired_us BIGINT NOT NULL
);
