//! Spend control: token usage recorded per LLM call, and the rolling 24-hour budget check made
//! before a call.

use kai_store::Store;

const DAY_US: i64 = 24 * 3600 * 1_000_000;

/// Records one call's usage. A failure is logged: the answer the call produced is not lost.
pub async fn record_usage(store: &dyn Store, actor: &str, persona: &str, usage: &kai_llm::Usage) {
    let row = kai_store::UsageRow {
        id: uuid::Uuid::now_v7().to_string(),
        at_us: chrono::Utc::now().timestamp_micros(),
        principal: actor.to_owned(),
        persona: persona.to_owned(),
        prompt_tokens: i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX),
        completion_tokens: i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX),
    };
    if let Err(e) = store.record_usage(&row).await {
        tracing::error!(error = %e, "could not record LLM usage");
    }
}

/// The budget that applies to `actor`: its own `[[budgets]]` entry, else `[spend]
/// tokens_per_day` (0 = unlimited). `None` when nothing limits it.
pub fn limit_for(config: &kai_core::config::Config, actor: &str) -> Option<u64> {
    match config.budgets.iter().find(|b| b.name == actor) {
        Some(b) => Some(b.tokens_per_day),
        None => (config.spend.tokens_per_day > 0).then_some(config.spend.tokens_per_day),
    }
}

/// `Err` with a message naming the numbers when `actor` has spent `limit` tokens in the last
/// 24 hours.
pub async fn check_budget(
    store: &dyn Store,
    actor: &str,
    limit: Option<u64>,
) -> Result<(), BudgetError> {
    let Some(limit) = limit else { return Ok(()) };
    let used = store.tokens_since(actor, chrono::Utc::now().timestamp_micros() - DAY_US).await?;
    if used >= i64::try_from(limit).unwrap_or(i64::MAX) {
        return Err(BudgetError::Exhausted(format!(
            "the token budget of {actor} is spent: {used} of {limit} tokens in the last 24 hours; raise it in [[budgets]] or wait"
        )));
    }
    Ok(())
}

/// Why a call may not be made.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    #[error("{0}")]
    Exhausted(String),
    #[error(transparent)]
    Store(#[from] kai_store::StoreError),
}
