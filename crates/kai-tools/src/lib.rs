//! Built-in agent tools with their own safety checks.
//!
//! A [`Tool`] is something an agent can call with JSON arguments and get JSON back; a
//! [`ToolRegistry`] holds the tools a node offers, by name. Each tool enforces its own limits,
//! independently of the policy layer above it (which decides *whether* an agent may call it):
//!
//! - [`http_fetch`]: http(s) requests where every hop's address is resolved, validated against
//!   [`net_guard`] and pinned, with byte and time caps.
//! - [`files`]: read, write, list and delete inside the agent's workspace, walking the path one
//!   directory handle at a time so nothing outside it (and no symbolic link) is ever opened.
//! - [`shell`]: `sh -c` inside a bubblewrap sandbox with no network and only the workspace
//!   writable; disabled with a clear message where bubblewrap cannot run.
//!
//! This crate knows nothing about agents' permissions, approvals or audit; the runtime passes
//! what a call needs in a [`ToolContext`]. Error messages are meant for the user and never carry
//! request headers or bodies.

pub mod files;
pub mod http_fetch;
pub mod net_guard;
pub mod shell;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use files::Files;
pub use http_fetch::{FetchConfig, HttpFetch};
pub use shell::{Shell, ShellConfig};

/// What a tool call runs for, and within which bounds.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub task_id: Option<String>,
    pub step_id: Option<String>,
    /// The calling agent, e.g. `"kExecutor:executor"`.
    pub agent: String,
    /// The agent's workspace directory; the files and shell tools are confined to it. Created on
    /// demand.
    pub workspace: PathBuf,
    /// Host names the agent may fetch (exact, or `*.example.com` for any subdomain); empty means
    /// any public host.
    pub allowed_hosts: Vec<String>,
}

/// How a tool presents itself to an LLM.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// A JSON Schema object describing the arguments.
    pub parameters: std::sync::Arc<serde_json::Value>,
    /// Whether a call can have side effects outside the agent's workspace.
    pub risky: bool,
}

/// A tool an agent can call.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    async fn call(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError>;
}

/// Why a tool call failed. Messages say what was wrong and what to do; they never contain
/// request headers or bodies.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not match the tool's schema or its rules.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
    /// A safety check refused the call (private address, path outside the workspace, ...).
    #[error("denied: {0}")]
    Denied(String),
    /// The tool cannot run on this machine (e.g. no sandbox available).
    #[error("{0}")]
    Unavailable(String),
    /// A size limit was reached.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A time limit was reached.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The operation itself failed (connection refused, file not found, ...).
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgs(_) => "invalid_args",
            Self::Denied(_) => "denied",
            Self::Unavailable(_) => "unavailable",
            Self::TooLarge(_) => "too_large",
            Self::Timeout(_) => "timeout",
            Self::Failed(_) => "failed",
        }
    }
}

/// Parses a call's arguments into `T`, naming the offending field on failure.
pub(crate) fn parse_args<T: serde::de::DeserializeOwned>(
    tool: &str,
    args: serde_json::Value,
) -> Result<T, ToolError> {
    serde_json::from_value(args).map_err(|e| {
        ToolError::InvalidArgs(format!("{tool}: {e}; see the tool's parameter schema"))
    })
}

/// The tools a node offers, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    /// Each tool's spec, taken once when it is added: a spec never changes, and every model
    /// step lists the specs its agent may call.
    specs: BTreeMap<String, ToolSpec>,
}

impl ToolRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tool` (replacing one of the same name) and returns the registry.
    pub fn with(mut self, tool: Arc<dyn Tool>) -> Self {
        self.insert(tool);
        self
    }

    /// Adds `tool`, replacing one of the same name.
    pub fn insert(&mut self, tool: Arc<dyn Tool>) {
        let spec = tool.spec();
        self.tools.insert(spec.name.clone(), tool);
        self.specs.insert(spec.name.clone(), spec);
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned()
    }

    /// Tool names in order.
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    /// Every tool's spec, in name order.
    pub fn specs(&self) -> impl Iterator<Item = &ToolSpec> {
        self.specs.values()
    }
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry").field("tools", &self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_tools_by_name() {
        let shell = Shell::detect(ShellConfig {
            bwrap: Some("/nonexistent/bwrap".into()),
            ..ShellConfig::default()
        });
        let registry = ToolRegistry::new()
            .with(Arc::new(shell))
            .with(Arc::new(HttpFetch::new(FetchConfig::default())))
            .with(Arc::new(Files));
        assert_eq!(registry.names(), ["files", "http_fetch", "shell"]);
        assert!(registry.get("files").is_some() && registry.get("nope").is_none());
        for spec in registry.specs() {
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
            assert_eq!(spec.parameters["additionalProperties"], false, "{}", spec.name);
            assert!(!spec.description.is_empty());
        }
        let risky: Vec<_> = registry.specs().filter(|s| s.risky).map(|s| s.name.as_str()).collect();
        assert_eq!(risky, ["http_fetch"]);
    }

    #[test]
    fn error_codes_are_stable() {
        let codes: Vec<_> = [
            ToolError::InvalidArgs(String::new()),
            ToolError::Denied(String::new()),
            ToolError::Unavailable(String::new()),
            ToolError::TooLarge(String::new()),
            ToolError::Timeout(String::new()),
            ToolError::Failed(String::new()),
        ]
        .iter()
        .map(ToolError::code)
        .collect();
        assert_eq!(
            codes,
            ["invalid_args", "denied", "unavailable", "too_large", "timeout", "failed"]
        );
    }
}
