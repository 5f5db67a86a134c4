//! The built-in agents (seed 001's classes). Their definitions ship with the node and are
//! refreshed at every start; owners cannot redefine or terminate them, only suspend them.

use kai_core::agent::{AgentDefinition, AgentType, Approval, Metadata, Permissions};

pub const CORE: &str = "kCore:core";
pub const PLANNER: &str = "kPlanner:planner";
pub const EXECUTOR: &str = "kExecutor:executor";
pub const REVIEWER: &str = "kReviewer:reviewer";
pub const SENTINEL: &str = "kSentinel:sentinel";
pub const MEMORY: &str = "kMemory:memory";
pub const PERSONA: &str = "kPersona:persona";
pub const BRIDGE: &str = "kBridge:bridge";

pub const BUILTIN: [&str; 8] =
    [CORE, PLANNER, EXECUTOR, REVIEWER, SENTINEL, MEMORY, PERSONA, BRIDGE];

fn def(
    id: &str,
    kind: AgentType,
    description: &str,
    instructions: &str,
    tools: &[&str],
) -> AgentDefinition {
    let mut permissions = Permissions {
        tools: tools.iter().map(|t| (*t).to_owned()).collect(),
        ..Permissions::default()
    };
    if tools.contains(&"shell") {
        permissions.approval.insert("shell".into(), Approval::Ask);
    }
    AgentDefinition {
        name: id.parse().unwrap_or_else(|e| unreachable!("built-in agent id {id}: {e}")),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        kind,
        description: description.to_owned(),
        metadata: Metadata { author: "system".into(), ..Metadata::default() },
        capabilities: Vec::new(),
        instructions: instructions.to_owned(),
        triggers: Vec::new(),
        hooks: Vec::new(),
        persona: String::new(),
        permissions,
    }
}

/// Every built-in definition.
pub fn definitions() -> Vec<AgentDefinition> {
    vec![
        def(
            CORE,
            AgentType::Assistant,
            "Orchestrator: turns goals into tasks and drives them to an end",
            "Coordinate the other agents.",
            &[],
        ),
        def(
            PLANNER,
            AgentType::Analyzer,
            "Turns a goal into a task graph",
            "Break the goal into the fewest steps that achieve it. Give each step one clear instruction. Use tools only where the goal needs the outside world.",
            &[],
        ),
        def(
            EXECUTOR,
            AgentType::Specialist,
            "Runs plan steps with the model and tools",
            "Do exactly what the step asks, using the outputs of earlier steps. Answer with the result only.",
            &["http_fetch", "files", "memory_store", "memory_search", "ask_user", "shell"],
        ),
        def(
            REVIEWER,
            AgentType::Analyzer,
            "Checks each step's result against the goal and sends it back with feedback when it falls short",
            "Judge whether the result does what the step asked, in service of the goal. Be strict about correctness, lenient about style.",
            &[],
        ),
        def(
            SENTINEL,
            AgentType::Analyzer,
            "Watches runs for loops, budget overruns and anomalies; can suspend an agent",
            "",
            &[],
        ),
        def(
            MEMORY,
            AgentType::Specialist,
            "Stores and recalls memories",
            "Store what is worth remembering; recall what is relevant.",
            &["memory_store", "memory_search"],
        ),
        def(
            PERSONA,
            AgentType::Assistant,
            "Speaks for the owner in chat with their chosen persona",
            "",
            &[],
        ),
        def(
            BRIDGE,
            AgentType::Specialist,
            "Talks to external APIs",
            "Call external services only as the step requires.",
            &["http_fetch"],
        ),
    ]
}
