-- What each LLM call cost, in millionths of a US dollar (from the provider's configured prices).
ALTER TABLE llm_usage ADD COLUMN cost_micros BIGINT NOT NULL DEFAULT 0;
