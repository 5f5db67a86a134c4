//! The policy layer between a model's tool call and the tool: a call runs only if the agent is
//! granted the tool, its approval policy is met, and — for tools that send data out
//! (`http_fetch`, `shell`) — its arguments carry none of the vault's secrets, raw or base64,
//! hex or URL encoded (egress taint). The tools then apply their own checks (SSRF, workspace
//! confinement, sandbox). Whoever asked, a refusal is a [`Decision::Deny`] with a reason the
//! model and the owner can read, and the caller audits it.

use base64::Engine as _;
use kai_core::agent::Approval;
use serde_json::Value;

use super::ToolRegistry;
use crate::Vault;
use crate::agents::AgentView;

/// Tools whose arguments can leave the node.
pub const EGRESS: [&str; 2] = ["http_fetch", "shell"];

/// What the policy says about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

/// Grant and approval: may `agent` call `tool` now? `approved` is true for a tool step of a
/// plan the owner approved (or that needed no approval).
pub fn check(agent: &AgentView, tool: &str, registry: &ToolRegistry, approved: bool) -> Decision {
    if registry.get(tool).is_none() {
        return Decision::Deny(format!("there is no tool {tool:?} on this node"));
    }
    match agent.definition.tool_policy(tool) {
        None => Decision::Deny(format!("{} is not permitted to use {tool}", agent.id())),
        Some(Approval::Ask) if !approved => Decision::Deny(format!(
            "{tool} needs the owner's approval for {}; it can only run as a step of an approved plan",
            agent.id()
        )),
        Some(_) => Decision::Allow,
    }
}

/// Encodings a secret is looked for in.
fn forms(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    let url: String = b
        .iter()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-_.~".contains(c) {
                (*c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect();
    vec![
        secret.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(b).trim_end_matches('=').to_owned(),
        base64::engine::general_purpose::URL_SAFE.encode(b).trim_end_matches('=').to_owned(),
        hex::encode(b),
        hex::encode_upper(b),
        url,
    ]
}

/// The name of a vault secret found in `args` (any encoding of [`forms`]), if any. Secrets
/// shorter than 8 bytes are not looked for (too many false hits).
pub async fn tainted(vault: &Vault, args: &Value) -> Result<Option<String>, crate::VaultError> {
    let text = args.to_string();
    let lower = text.to_ascii_lowercase();
    for meta in vault.list(crate::vault::SECRET).await? {
        let value = vault.read_internal(crate::vault::SECRET, &meta.name).await?;
        let Ok(secret) = std::str::from_utf8(&value) else { continue };
        if secret.len() < 8 {
            continue;
        }
        if forms(secret)
            .iter()
            .any(|f| text.contains(f.as_str()) || lower.contains(&f.to_ascii_lowercase()))
        {
            return Ok(Some(meta.name));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_of_a_secret_is_recognized() {
        let secret = "s3cr3t-canary/value+1";
        for f in forms(secret) {
            assert!(!f.is_empty());
        }
        let f = forms(secret);
        assert!(f.contains(&"s3cr3t-canary%2Fvalue%2B1".to_owned()), "{f:?}");
        assert!(f.contains(&hex::encode(secret)));
    }
}
