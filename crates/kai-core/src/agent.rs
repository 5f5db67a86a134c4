//! Agent definitions (seed 004's schema) and the agent lifecycle state machine.
//!
//! A definition is what an owner writes (YAML, TOML or JSON): name, version, type, metadata,
//! typed capabilities, instructions, triggers, hooks, the persona it thinks with and its
//! permissions. [`AgentDefinition::parse`] checks it once and says exactly which field is wrong;
//! the rest of the node trusts the parsed value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AgentId;

/// The kind of agent (seed 004).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentType {
    Assistant,
    Analyzer,
    Generator,
    Specialist,
}

/// A capability parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Number,
    Boolean,
    Object,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityParam {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// Something the agent can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters: Vec<CapabilityParam>,
}

/// What starts the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    /// A command typed by a user (`pattern` is its name).
    Command,
    /// An event on the bus (`pattern` is the event type, `*` suffix allowed).
    Event,
    /// A cron schedule (`pattern` is a cron expression).
    Schedule,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: TriggerKind,
    pub pattern: String,
    /// The goal submitted when the trigger fires (`{{event}}` is the triggering payload).
    #[serde(default)]
    pub goal: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookWhen {
    Before,
    After,
}

/// An event the agent reacts to around its own work (`before:step`, `after:task`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    #[serde(rename = "type")]
    pub when: HookWhen,
    pub event: String,
    /// What runs: the name of a built-in handler (`audit`, `notify`, `memory`).
    pub handler: String,
}

/// Who wrote the definition and when (seed 004 `metadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub author: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Per-agent budgets; `None` inherits the task's or the node's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_day: Option<f64>,
    /// Steps of this agent running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// How plans that use a tool are approved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Runs without asking.
    #[default]
    Auto,
    /// The owner approves the plan first.
    Ask,
    /// Never allowed.
    Deny,
}

/// What the agent may touch. Everything not granted is denied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Tool names the agent may call.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Vault secrets the host may use on the agent's behalf (never shown to the model).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Memory namespaces it may read and write besides its own.
    #[serde(default)]
    pub memory: Vec<String>,
    /// Hosts `http_fetch` may reach (empty: any public host).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Approval policy per tool; tools not listed are `auto`.
    #[serde(default)]
    pub approval: BTreeMap<String, Approval>,
    #[serde(default)]
    pub budget: AgentBudget,
}

/// An agent as defined by its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDefinition {
    /// The agent id, `kClass:name`.
    pub name: AgentId,
    /// Semantic version of the definition.
    pub version: String,
    #[serde(rename = "type")]
    pub kind: AgentType,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub instructions: String,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// The persona (model, system prompt, fallback chain) the agent thinks with; empty: the
    /// node's default persona.
    #[serde(default)]
    pub persona: String,
    #[serde(default)]
    pub permissions: Permissions,
}

/// The formats a definition file may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
    Json,
}

impl Format {
    /// From a file extension (`yaml`, `yml`, `toml`, `json`).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext {
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Why a definition was refused: the field path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid agent definition{}: {message}", at(.field))]
pub struct DefinitionError {
    pub field: String,
    pub message: String,
}

fn at(field: &str) -> String {
    if field.is_empty() { String::new() } else { format!(" at `{field}`") }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError { field: field.into(), message: message.into() }
}

/// Largest definition accepted (bytes).
pub const MAX_DEFINITION_BYTES: usize = 256 * 1024;

impl AgentDefinition {
    /// Parses and checks a definition.
    pub fn parse(text: &str, format: Format) -> Result<Self, DefinitionError> {
        if text.len() > MAX_DEFINITION_BYTES {
            return Err(invalid("", format!("larger than {MAX_DEFINITION_BYTES} bytes")));
        }
        let def: Self = match format {
            Format::Json => {
                let de = &mut serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de)
                    .map_err(|e| invalid(e.path().to_string(), e.inner().to_string()))?
            }
            Format::Toml => toml::from_str(text).map_err(|e| invalid("", e.message()))?,
            Format::Yaml => {
                let de = serde_yaml_ng::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de)
                    .map_err(|e| invalid(e.path().to_string(), e.inner().to_string()))?
            }
        };
        def.check()?;
        Ok(def)
    }

    /// Range and consistency checks serde cannot express.
    pub fn check(&self) -> Result<(), DefinitionError> {
        let version_ok = {
            let parts: Vec<&str> = self.version.split('.').collect();
            parts.len() == 3
                && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        if !version_ok {
            return Err(invalid("version", "a semantic version like 1.0.0"));
        }
        if self.instructions.len() > 64 * 1024 {
            return Err(invalid("instructions", "at most 64 KiB"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.capabilities.iter().enumerate() {
            if !simple_name(&c.name) || !names.insert(c.name.as_str()) {
                return Err(invalid(
                    format!("capabilities[{i}].name"),
                    "unique, 1 to 64 of a-z, 0-9, `-`, `_`",
                ));
            }
            let mut params = std::collections::BTreeSet::new();
            for (j, p) in c.parameters.iter().enumerate() {
                if !simple_name(&p.name) || !params.insert(p.name.as_str()) {
                    return Err(invalid(
                        format!("capabilities[{i}].parameters[{j}].name"),
                        "unique, 1 to 64 of a-z, 0-9, `-`, `_`",
                    ));
                }
                if let Some(d) = &p.default
                    && !matches_type(p.kind, d)
                {
                    return Err(invalid(
                        format!("capabilities[{i}].parameters[{j}].default"),
                        format!("not a {:?}", p.kind).to_lowercase(),
                    ));
                }
            }
        }
        for (i, t) in self.triggers.iter().enumerate() {
            if t.pattern.trim().is_empty() || t.pattern.len() > 256 {
                return Err(invalid(format!("triggers[{i}].pattern"), "1 to 256 characters"));
            }
        }
        for (i, h) in self.hooks.iter().enumerate() {
            if !matches!(h.handler.as_str(), "audit" | "notify" | "memory") {
                return Err(invalid(
                    format!("hooks[{i}].handler"),
                    "one of the built-in handlers: audit, notify, memory",
                ));
            }
        }
        for (i, tool) in self.permissions.tools.iter().enumerate() {
            if !simple_name(tool) {
                return Err(invalid(format!("permissions.tools[{i}]"), "a tool name"));
            }
        }
        Ok(())
    }

    /// Whether the agent may call `tool`, and under which approval policy.
    pub fn tool_policy(&self, tool: &str) -> Option<Approval> {
        self.permissions
            .tools
            .iter()
            .any(|t| t == tool)
            .then(|| self.permissions.approval.get(tool).copied().unwrap_or_default())
            .filter(|a| *a != Approval::Deny)
    }
}

fn simple_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Whether `value` has the declared type.
pub fn matches_type(kind: ParamType, value: &Value) -> bool {
    match kind {
        ParamType::String => value.is_string(),
        ParamType::Number => value.is_number(),
        ParamType::Boolean => value.is_boolean(),
        ParamType::Object => value.is_object(),
    }
}

pub use crate::lifecycle::{AgentState, LifecycleAction, LifecycleError};

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
name: "kExecutor:webscraper"
version: 1.2.0
type: specialist
metadata:
  author: user
  team: research
capabilities:
  - name: fetch
    description: Fetch a page
    parameters:
      - name: url
        type: string
        required: true
      - name: timeout
        type: number
        default: 10
instructions: |
  Fetch pages and summarize them.
triggers:
  - type: schedule
    pattern: "0 */6 * * *"
    goal: "refresh the reading list"
hooks:
  - type: after
    event: step
    handler: audit
persona: assistant
permissions:
  tools: [http_fetch, files]
  approval:
    files: ask
"#;

    #[test]
    fn yaml_toml_and_json_definitions_parse_to_the_same_agent() {
        let yaml = AgentDefinition::parse(YAML, Format::Yaml).unwrap();
        assert_eq!(yaml.name.as_str(), "kExecutor:webscraper");
        assert_eq!(yaml.kind, AgentType::Specialist);
        assert_eq!(yaml.metadata.extra["team"], "research");
        assert_eq!(yaml.tool_policy("http_fetch"), Some(Approval::Auto));
        assert_eq!(yaml.tool_policy("files"), Some(Approval::Ask));
        assert_eq!(yaml.tool_policy("shell"), None, "not granted: denied");
        let json = serde_json::to_string(&yaml).unwrap();
        assert_eq!(AgentDefinition::parse(&json, Format::Json).unwrap(), yaml);
        let toml = toml::to_string(&yaml).unwrap();
        assert_eq!(AgentDefinition::parse(&toml, Format::Toml).unwrap(), yaml);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (YAML.replace("type: specialist", "type: wizard"), "type"),
            (YAML.replace("version: 1.2.0", "version: one"), "version"),
            (YAML.replace("\"kExecutor:webscraper\"", "webscraper"), "name"),
            (YAML.replace("default: 10", "default: ten"), "capabilities[0].parameters[1].default"),
            (YAML.replace("handler: audit", "handler: rm -rf"), "hooks[0].handler"),
            (YAML.replace("instructions:", "instructionz:"), ""),
        ];
        for (text, field) in cases {
            let err = AgentDefinition::parse(&text, Format::Yaml).unwrap_err();
            assert!(err.field.starts_with(field), "{field}: {err}");
        }
        let err = AgentDefinition::parse(&"x".repeat(MAX_DEFINITION_BYTES + 1), Format::Json)
            .unwrap_err();
        assert!(err.message.contains("larger than"));
    }
}
