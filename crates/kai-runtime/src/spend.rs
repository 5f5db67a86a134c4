//! Spend control: token usage recorded per LLM call, and the rolling 24-hour budget check made
//! before a call.

use kai_store::Store;

const DAY_US: i64 = 24 * 3600 * 1_000_000;

/// What a call cost in millionths of a dollar, at `prices` (dollars per million prompt and
/// completion tokens).
pub fn cost_micros(usage: &kai_llm::Usage, prices: (f64, f64)) -> i64 {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let micros =
        (usage.prompt_tokens as f64 * prices.0 + usage.completion_tokens as f64 * prices.1).round();
    #[allow(clippy::cast_possible_truncation)]
    let micros = micros.clamp(0.0, i64::MAX as f64) as i64;
    micros
}

/// The usage row of one call, counted for `actor`.
pub fn usage_row(
    actor: &str,
    persona: &str,
    usage: &kai_llm::Usage,
    prices: (f64, f64),
) -> kai_store::UsageRow {
    kai_store::UsageRow {
        id: uuid::Uuid::now_v7().to_string(),
        at_us: chrono::Utc::now().timestamp_micros(),
        principal: actor.to_owned(),
        persona: persona.to_owned(),
        prompt_tokens: i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX),
        completion_tokens: i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX),
        cost_micros: cost_micros(usage, prices),
    }
}

/// Records one call's usage. A failure is logged: the answer the call produced is not lost.
pub async fn record_usage(
    store: &dyn Store,
    actor: &str,
    persona: &str,
    usage: &kai_llm::Usage,
    prices: (f64, f64),
) {
    let row = usage_row(actor, persona, usage, prices);
    if let Err(e) = store.record_usage(&row).await {
        tracing::error!(error = %e, "could not record LLM usage");
    }
}

/// The limits that apply to one principal per rolling 24 hours.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub tokens: Option<u64>,
    /// US dollars.
    pub cost: Option<f64>,
}

/// The limits for `actor`: each field of its own `[[budgets]]` entry, else `[spend]` (where 0
/// means no limit).
pub fn limit_for(config: &kai_core::config::Config, actor: &str) -> Limits {
    let own = config.budgets.iter().find(|b| b.name == actor);
    let spend = &config.spend;
    Limits {
        tokens: own
            .and_then(|b| b.tokens_per_day)
            .or((spend.tokens_per_day > 0).then_some(spend.tokens_per_day)),
        cost: own
            .and_then(|b| b.cost_per_day)
            .or((spend.cost_per_day > 0.0).then_some(spend.cost_per_day)),
    }
}

/// `Err` with a message naming the numbers when `actor` has spent a limit in the last 24 hours.
pub async fn check_budget(
    store: &dyn Store,
    actor: &str,
    limits: Limits,
) -> Result<(), BudgetError> {
    if limits.tokens.is_none() && limits.cost.is_none() {
        return Ok(());
    }
    let spent = store.spent_since(actor, chrono::Utc::now().timestamp_micros() - DAY_US).await?;
    if let Some(limit) = limits.tokens
        && spent.tokens >= i64::try_from(limit).unwrap_or(i64::MAX)
    {
        return Err(BudgetError::Exhausted(format!(
            "the token budget of {actor} is spent: {} of {limit} tokens in the last 24 hours; raise it in [[budgets]] or wait",
            spent.tokens
        )));
    }
    #[allow(clippy::cast_precision_loss)]
    let dollars = spent.cost_micros as f64 / 1_000_000.0;
    if let Some(limit) = limits.cost
        && dollars >= limit
    {
        return Err(BudgetError::Exhausted(format!(
            "the cost budget of {actor} is spent: ${dollars:.4} of ${limit:.4} in the last 24 hours; raise it in [[budgets]] or wait"
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
