-- LLM usage per call, for spend reports and budgets.
CREATE TABLE llm_usage (
    id                TEXT PRIMARY KEY,
    at_us             BIGINT NOT NULL,
    principal         TEXT NOT NULL,
    persona           TEXT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL
);
CREATE INDEX llm_usage_principal_time ON llm_usage (principal, at_us);
