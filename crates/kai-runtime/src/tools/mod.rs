//! The tools agents call, as the orchestrator sees them: the node's registry (kai-tools'
//! `http_fetch`, `files` and `shell`, plus `memory_store`, `memory_search` and `ask_user`, which
//! need node services) and the policy layer every call passes ([`policy`]): the agent must be
//! granted the tool, `ask` tools need an approved plan step, and every refusal is audited.

pub(crate) mod ask;
mod memory;
pub mod policy;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use kai_tools::{Tool, ToolContext, ToolError, ToolRegistry, ToolSpec};

pub use ask::{ASK_USER, AskUser};
pub use memory::{MemorySearch, MemoryStore};

/// Where and how the built-in tools work.
#[derive(Debug, Clone)]
pub struct ToolSettings {
    /// Each agent's workspace is `<workspaces>/<class>/<name>`.
    pub workspaces: PathBuf,
    pub fetch_max_bytes: usize,
    pub fetch_timeout: Duration,
    pub shell_timeout: Duration,
    /// Private ranges `http_fetch` may reach (tests allow loopback; empty by default).
    pub fetch_allow: Vec<ipnet::IpNet>,
}

impl ToolSettings {
    /// From `[tasks]`; a bad `fetch_allow_cidrs` entry is an error naming it.
    pub fn from_config(
        config: &kai_core::config::TasksConfig,
        workspaces: PathBuf,
    ) -> Result<Self, String> {
        let fetch_allow = config
            .fetch_allow_cidrs
            .iter()
            .map(|c| {
                c.parse::<ipnet::IpNet>()
                    .map_err(|e| format!("tasks.fetch_allow_cidrs: {c:?}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            workspaces,
            fetch_max_bytes: config.fetch_max_bytes,
            fetch_timeout: Duration::from_secs(config.fetch_timeout_secs),
            shell_timeout: Duration::from_secs(config.shell_timeout_secs),
            fetch_allow,
        })
    }

    /// The workspace directory of an agent.
    pub fn workspace_of(&self, agent: &kai_core::AgentId) -> PathBuf {
        self.workspaces.join(agent.class()).join(agent.name())
    }
}

/// The node's tools. Memory tools are there when memory is.
pub fn builtin(
    settings: &ToolSettings,
    memory: Option<Arc<crate::memory::Memory>>,
) -> ToolRegistry {
    let fetch = kai_tools::http_fetch::FetchConfig {
        max_bytes: settings.fetch_max_bytes,
        timeout: settings.fetch_timeout,
        allow_cidrs: settings.fetch_allow.clone(),
        ..kai_tools::http_fetch::FetchConfig::default()
    };
    let shell = kai_tools::shell::ShellConfig {
        timeout: settings.shell_timeout,
        ..kai_tools::shell::ShellConfig::default()
    };
    let shell = kai_tools::shell::Shell::detect(shell);
    if let Err(why) = shell.available() {
        tracing::info!(reason = %why, "the shell tool is disabled");
    }
    let mut registry = ToolRegistry::new()
        .with(Arc::new(kai_tools::http_fetch::HttpFetch::new(fetch)))
        .with(Arc::new(kai_tools::files::Files))
        .with(Arc::new(shell))
        .with(Arc::new(AskUser));
    if let Some(m) = memory {
        registry.insert(Arc::new(MemoryStore(m.clone())));
        registry.insert(Arc::new(MemorySearch(m)));
    }
    registry
}

/// What the orchestrator runs tools with: the registry, where workspaces are, and the vault
/// (for the egress taint check).
pub struct Toolbox {
    pub registry: ToolRegistry,
    pub settings: ToolSettings,
    pub vault: Arc<crate::Vault>,
}

impl Toolbox {
    pub fn new(registry: ToolRegistry, settings: ToolSettings, vault: Arc<crate::Vault>) -> Self {
        Self { registry, settings, vault }
    }
}
