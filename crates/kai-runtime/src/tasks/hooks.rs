//! Agent hooks (seed 004): built-in handlers an agent's definition attaches before or after
//! its steps (`event: step`) — `audit` records the moment in the audit log, `notify` publishes
//! an `AGENT_HOOK` event, `memory` stores the step's output as one of the agent's memories (after
//! only). A failing hook is logged; it never fails the step.

use kai_core::agent::HookWhen;
use serde_json::json;

use super::Tasks;
use crate::agents::AgentView;

/// Runs `agent`'s hooks for `when` around step `step` of `task`.
pub async fn run(
    tasks: &Tasks,
    agent: &AgentView,
    when: HookWhen,
    task: &str,
    step: &str,
    output: Option<&str>,
) {
    for hook in agent
        .definition
        .hooks
        .iter()
        .filter(|h| h.when == when && (h.event == "step" || h.event == "*"))
    {
        let moment = if when == HookWhen::Before { "before" } else { "after" };
        let outcome = match hook.handler.as_str() {
            "audit" => match tasks.audit() {
                Ok(a) => a
                    .record(
                        &format!("agent:{}", agent.id()),
                        &format!("hook.{moment}_step"),
                        task,
                        kai_crypto::audit::Outcome::Success,
                        json!({"step_id": step}),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            "notify" => {
                tasks
                    .publish(
                        task,
                        Some(agent.id()),
                        "AGENT_HOOK",
                        json!({"when": moment, "step_id": step}),
                    )
                    .await;
                Ok(())
            }
            "memory" => match (output, tasks.tools.registry.get("memory_store")) {
                (Some(text), Some(tool)) if when == HookWhen::After => {
                    let ctx = kai_tools::ToolContext {
                        task_id: Some(task.to_owned()),
                        step_id: Some(step.to_owned()),
                        agent: agent.id().to_string(),
                        workspace: tasks.tools.settings.workspace_of(agent.id()),
                        allowed_hosts: Vec::new(),
                    };
                    let text: String = text.chars().take(8000).collect();
                    tool.call(&ctx, json!({"text": text}))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::warn!(agent = %agent.id(), handler = %hook.handler, error = %e, "hook failed");
        }
    }
}
