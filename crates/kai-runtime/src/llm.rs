//! The node's language models: the configured `[[providers]]` (API keys read from the vault,
//! never from configuration), the built-in `local` provider (the embedded models, handed in by the
//! binary) and `[[personas]]`, each a system prompt plus a fallback chain of providers. With no
//! personas configured, one built-in persona, [`DEFAULT_PERSONA`], answers with the local models.
//! Providers are built on first use, so a key stored after start is picked up; a changed key
//! needs a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use kai_core::config::{LOCAL_PROVIDER, PersonaEntry, ProviderEntry, ProviderKindName};
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
    #[error(
        "the embedded models are not part of this kai build (built without the `local-models` feature); configure a [[providers]] entry and a persona that uses it"
    )]
    NoLocalModels,
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
            Self::NoLocalModels => "model_not_installed",
            Self::Vault(e) => e.code(),
            Self::Llm(e) => e.code(),
        }
    }
}

struct ProviderSlot {
    entry: ProviderEntry,
    built: OnceCell<Arc<dyn Provider>>,
}

/// The persona that exists when the configuration defines none: the embedded chat model.
pub const DEFAULT_PERSONA: &str = "assistant";

/// Providers and personas.
pub struct Llm {
    providers: BTreeMap<String, ProviderSlot>,
    /// The embedded models, when this build has them.
    local: Option<Arc<dyn Provider>>,
    personas: BTreeMap<String, PersonaEntry>,
    vault: Arc<Vault>,
}

/// The built-in persona: the local models with their own (ChatML) default system prompt.
fn default_persona() -> PersonaEntry {
    PersonaEntry {
        name: DEFAULT_PERSONA.to_owned(),
        description: "the embedded local model (no network needed)".to_owned(),
        system_prompt: String::new(),
        providers: vec![LOCAL_PROVIDER.to_owned()],
        model: String::new(),
        temperature: None,
        context_tokens: 4096,
    }
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
    /// The configured providers and personas (validated by the configuration already), and the
    /// embedded models' provider if this build has one.
    pub fn new(
        providers: &[ProviderEntry],
        personas: &[PersonaEntry],
        local: Option<Arc<dyn Provider>>,
        vault: Arc<Vault>,
    ) -> Self {
        let personas: Vec<PersonaEntry> =
            if personas.is_empty() { vec![default_persona()] } else { personas.to_vec() };
        Self {
            local,
            providers: providers
                .iter()
                .map(|p| {
                    (p.name.clone(), ProviderSlot { entry: p.clone(), built: OnceCell::new() })
                })
                .collect(),
            personas: personas.into_iter().map(|p| (p.name.clone(), p)).collect(),
            vault,
        }
    }

    /// Every persona, by name.
    pub fn personas(&self) -> impl Iterator<Item = &PersonaEntry> {
        self.personas.values()
    }

    /// The provider called `name` (`local` for the embedded models).
    pub async fn provider(&self, name: &str) -> Result<Arc<dyn Provider>, ModelError> {
        if name == LOCAL_PROVIDER {
            return self.local.clone().ok_or(ModelError::NoLocalModels);
        }
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
