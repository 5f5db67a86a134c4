//! The node's language models: the configured `[[providers]]` (API keys read from the vault,
//! never from configuration) and `[[personas]]`, each a system prompt plus a fallback chain of
//! providers. Providers are built on first use, so a key stored after start is picked up; a
//! changed key needs a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use kai_core::config::{PersonaEntry, ProviderEntry, ProviderKindName};
use kai_llm::{LlmError, Provider, ProviderConfig, ProviderKind, Router, Target};
use secrecy::SecretString;
use tokio::sync::OnceCell;

use crate::Vault;
use crate::vault::{SECRET, VaultError};

/// Why a persona cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("no persona named {0:?}; see GET /v1/models")]
    UnknownPersona(String),
    #[error(
        "provider {provider:?} needs the vault secret {secret:?}: store it with `kai vault set {secret}`"
    )]
    MissingKey { provider: String, secret: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Llm(#[from] LlmError),
}

impl ModelError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownPersona(_) => "not_found",
            Self::MissingKey { .. } => "provider_key_missing",
            Self::Vault(e) => e.code(),
            Self::Llm(e) => e.code(),
        }
    }
}

struct ProviderSlot {
    entry: ProviderEntry,
    built: OnceCell<Arc<dyn Provider>>,
}

/// Providers and personas.
pub struct Llm {
    providers: BTreeMap<String, ProviderSlot>,
    personas: BTreeMap<String, PersonaEntry>,
    vault: Arc<Vault>,
}

fn kind(k: ProviderKindName) -> ProviderKind {
    match k {
        ProviderKindName::Openai => ProviderKind::OpenAi,
        ProviderKindName::Ollama => ProviderKind::Ollama,
        ProviderKindName::Anthropic => ProviderKind::Anthropic,
        ProviderKindName::Gemini => ProviderKind::Gemini,
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl Llm {
    /// The configured providers and personas (validated by the configuration already).
    pub fn new(providers: &[ProviderEntry], personas: &[PersonaEntry], vault: Arc<Vault>) -> Self {
        Self {
            providers: providers
                .iter()
                .map(|p| {
                    (p.name.clone(), ProviderSlot { entry: p.clone(), built: OnceCell::new() })
                })
                .collect(),
            personas: personas.iter().map(|p| (p.name.clone(), p.clone())).collect(),
            vault,
        }
    }

    /// Every persona, by name.
    pub fn personas(&self) -> impl Iterator<Item = &PersonaEntry> {
        self.personas.values()
    }

    async fn provider(&self, name: &str) -> Result<Arc<dyn Provider>, ModelError> {
        let slot =
            self.providers.get(name).ok_or_else(|| ModelError::UnknownPersona(name.to_owned()))?;
        slot.built
            .get_or_try_init(|| async {
                let e = &slot.entry;
                let key = match non_empty(&e.key_secret) {
                    None => None,
                    Some(secret) => match self.vault.read_internal(SECRET, &secret).await {
                        Ok(bytes) => {
                            Some(SecretString::from(String::from_utf8_lossy(&bytes).into_owned()))
                        }
                        Err(VaultError::NotFound(_)) => {
                            return Err(ModelError::MissingKey {
                                provider: e.name.clone(),
                                secret,
                            });
                        }
                        Err(other) => return Err(other.into()),
                    },
                };
                let mut config = ProviderConfig::new(kind(e.kind));
                config.name = Some(e.name.clone());
                config.base_url = non_empty(&e.base_url);
                config.chat_model = non_empty(&e.chat_model);
                config.embedding_model = non_empty(&e.embedding_model);
                config.timeout_secs = e.timeout_secs as f64;
                config.max_retries = e.max_retries;
                config.concurrency = e.concurrency;
                Ok(kai_llm::build_provider(&config, key)?)
            })
            .await
            .cloned()
    }

    /// The `[[providers]]` entry `name`, built on first use (embeddings for memory).
    pub async fn provider_named(&self, name: &str) -> Result<Arc<dyn Provider>, ModelError> {
        self.provider(name).await
    }

    /// A persona and the provider chain that answers for it (a [`Router`] whose only alias is
    /// the persona's name).
    pub async fn persona(
        &self,
        name: &str,
    ) -> Result<(PersonaEntry, Arc<dyn Provider>), ModelError> {
        let persona =
            self.personas.get(name).ok_or_else(|| ModelError::UnknownPersona(name.to_owned()))?;
        let mut chain = Vec::with_capacity(persona.providers.len());
        for p in &persona.providers {
            chain.push(Target::new(self.provider(p).await?, non_empty(&persona.model).as_deref()));
        }
        Ok((persona.clone(), Arc::new(Router::new().route(&persona.name, chain))))
    }

    /// The prices (US dollars per million prompt and completion tokens) of the provider that
    /// answered for `persona`: the one in its chain whose model is `model`, else its first.
    pub fn prices(&self, persona: &str, model: &str) -> (f64, f64) {
        let Some(p) = self.personas.get(persona) else { return (0.0, 0.0) };
        let entries: Vec<&ProviderEntry> = p
            .providers
            .iter()
            .filter_map(|name| self.providers.get(name))
            .map(|s| &s.entry)
            .collect();
        let answered = entries
            .iter()
            .find(|e| !model.is_empty() && (e.chat_model == model || p.model == model))
            .or_else(|| entries.first());
        answered.map_or((0.0, 0.0), |e| (e.prompt_price, e.completion_price))
    }
}
