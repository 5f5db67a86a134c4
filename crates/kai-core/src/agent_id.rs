//! Agent ids in the `kClass:name` form of seed 001 (e.g. `kExecutor:webscraper`).

use serde::{Deserialize, Serialize};

/// A validated agent id: a class starting with `k` and an uppercase letter, a colon, and a
/// name of lowercase letters, digits, `-` and `_` (1–64 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentId(String);

/// Why a string is not an agent id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid agent id {input:?}: {reason} (expected `kClass:name`, e.g. `kExecutor:webscraper`)"
)]
pub struct AgentIdError {
    input: String,
    reason: &'static str,
}

impl AgentId {
    /// The class part (`kExecutor`).
    pub fn class(&self) -> &str {
        self.0.split_once(':').map_or("", |(c, _)| c)
    }

    /// The name part (`webscraper`).
    pub fn name(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, n)| n)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgentId {
    type Error = AgentIdError;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        let err = |reason| AgentIdError { input: input.clone(), reason };
        let Some((class, name)) = input.split_once(':') else {
            return Err(err("missing `:`"));
        };
        let mut chars = class.chars();
        if chars.next() != Some('k') || !chars.next().is_some_and(|c| c.is_ascii_uppercase()) {
            return Err(err("class must start with `k` and an uppercase letter"));
        }
        if class.len() > 32 || !class.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(err("class must be at most 32 ASCII letters or digits"));
        }
        if name.is_empty() || name.len() > 64 {
            return Err(err("name must be 1 to 64 characters"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(err("name may hold only lowercase letters, digits, `-` and `_`"));
        }
        Ok(Self(input))
    }
}

impl std::str::FromStr for AgentId {
    type Err = AgentIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<AgentId> for String {
    fn from(id: AgentId) -> Self {
        id.0
    }
}

impl std::fmt::Display for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seed_examples() {
        let id: AgentId = "kExecutor:webscraper".parse().unwrap();
        assert_eq!(id.class(), "kExecutor");
        assert_eq!(id.name(), "webscraper");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "executor:x",
            "kexecutor:x",
            "kExecutor:",
            "kExecutor",
            "kExecutor:Web",
            "kEx ecutor:a",
            "kExecutor:a/b",
        ] {
            assert!(bad.parse::<AgentId>().is_err(), "{bad} should be rejected");
        }
    }
}
