//! Route handlers, one module per resource. Handlers stay thin: parse, call one service,
//! audit, convert. Authentication and authorization happened before (see `auth::authorize`).

pub mod agents;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod events;
pub mod memory;
pub mod memory_graph;
pub mod notes;
pub mod openai;
pub mod prompts;
pub mod shares;
pub mod system;
pub mod tasks;
pub mod tokens;
pub mod ui;
pub mod users;
pub mod vault;
pub mod workflows;
pub mod ws;

use kai_crypto::audit::Outcome;

use crate::AppState;
use crate::error::ApiResult;

/// Records a state-changing operation before it runs: no audit entry, no operation.
pub(crate) async fn audit(
    state: &AppState,
    actor: &str,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> ApiResult<()> {
    record(state, actor, action, target, Outcome::Success, details).await
}

/// Records an operation with an explicit outcome.
pub(crate) async fn record(
    state: &AppState,
    actor: &str,
    action: &str,
    target: &str,
    outcome: Outcome,
    details: serde_json::Value,
) -> ApiResult<()> {
    let unsealed = state.node.unsealed()?;
    unsealed.audit.record(actor, action, target, outcome, details).await?;
    Ok(())
}
