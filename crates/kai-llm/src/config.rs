//! Provider configuration (what the node's config file says about one provider) and
//! [`build_provider`], the one place that picks an adapter for a kind.
//!
//! Keys are not configuration: they come from the vault as a `SecretString` at build time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::LlmError;
use crate::provider::Provider;
use crate::transport::{RetryPolicy, TransportSettings};
use crate::{anthropic, gemini, ollama, openai};

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI's `/v1/chat/completions` family: OpenAI, vLLM, llama.cpp server, LM Studio, TGI,
    /// Ollama's `/v1`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Ollama's native `/api/*`.
    Ollama,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini (Generative Language API).
    Gemini,
    /// The node's embedded models, run in process (crate `kai-local`); no wire protocol.
    Local,
}

impl ProviderKind {
    /// The kinds spoken over HTTP (every kind but [`Self::Local`]).
    pub const ALL: [Self; 4] = [Self::OpenAi, Self::Ollama, Self::Anthropic, Self::Gemini];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Ollama => "ollama",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Local => "local",
        }
    }

    /// Where the provider lives when `base_url` is not set. For OpenAI-compatible servers the
    /// base includes the version prefix (`…/v1`), as OpenAI's own clients expect.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com/v1",
            Self::Ollama => "http://127.0.0.1:11434",
            Self::Anthropic => "https://api.anthropic.com",
            Self::Gemini => "https://generativelanguage.googleapis.com",
            Self::Local => "",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One provider as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Name used in errors, logs and routes; defaults to the kind.
    #[serde(default)]
    pub name: Option<String>,
    /// Defaults to [`ProviderKind::default_base_url`].
    #[serde(default)]
    pub base_url: Option<String>,
    /// Model used when a chat request names none.
    #[serde(default)]
    pub chat_model: Option<String>,
    /// Model used when an embeddings request names none.
    #[serde(default)]
    pub embedding_model: Option<String>,
    /// Completion token cap when a request sets none (Anthropic requires one).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// A whole non-streamed call; for streams, until headers and then between chunks.
    #[serde(default = "defaults::timeout_secs")]
    pub timeout_secs: f64,
    #[serde(default = "defaults::connect_timeout_secs")]
    pub connect_timeout_secs: f64,
    /// Retries after the first attempt on 429, 5xx and connection failures.
    #[serde(default = "defaults::max_retries")]
    pub max_retries: u32,
    /// First backoff (doubles per retry, full jitter).
    #[serde(default = "defaults::retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(default = "defaults::retry_max_ms")]
    pub retry_max_ms: u64,
    /// The longest `Retry-After` honoured; a longer one fails the call (a fallback may take over).
    #[serde(default = "defaults::max_retry_after_secs")]
    pub max_retry_after_secs: f64,
    /// Requests in flight at once.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
}

mod defaults {
    pub fn timeout_secs() -> f64 {
        120.0
    }
    pub fn connect_timeout_secs() -> f64 {
        10.0
    }
    pub fn max_retries() -> u32 {
        3
    }
    pub fn retry_base_ms() -> u64 {
        500
    }
    pub fn retry_max_ms() -> u64 {
        30_000
    }
    pub fn max_retry_after_secs() -> f64 {
        60.0
    }
    pub fn concurrency() -> usize {
        4
    }
}

impl ProviderConfig {
    /// A configuration with every default.
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            name: None,
            base_url: None,
            chat_model: None,
            embedding_model: None,
            max_tokens: None,
            timeout_secs: defaults::timeout_secs(),
            connect_timeout_secs: defaults::connect_timeout_secs(),
            max_retries: defaults::max_retries(),
            retry_base_ms: defaults::retry_base_ms(),
            retry_max_ms: defaults::retry_max_ms(),
            max_retry_after_secs: defaults::max_retry_after_secs(),
            concurrency: defaults::concurrency(),
        }
    }

    /// The configured name, or the kind.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind.as_str())
    }

    /// The base URL without a trailing slash.
    pub fn resolved_base_url(&self) -> Result<String, LlmError> {
        let base = self.base_url.as_deref().unwrap_or(self.kind.default_base_url());
        let parsed = reqwest::Url::parse(base).map_err(|e| {
            LlmError::Config(format!(
                "{}: base_url {base:?} is not a URL: {e}",
                self.display_name()
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::Config(format!(
                "{}: base_url must be http or https, not {:?}",
                self.display_name(),
                parsed.scheme()
            )));
        }
        Ok(base.trim_end_matches('/').to_owned())
    }

    pub(crate) fn transport_settings(&self) -> Result<TransportSettings, LlmError> {
        let name = self.display_name();
        let secs = |field: &str, value: f64| {
            Duration::try_from_secs_f64(value).ok().filter(|d| !d.is_zero()).ok_or_else(|| {
                LlmError::Config(format!("{name}: {field} must be a positive number of seconds"))
            })
        };
        if self.concurrency == 0 {
            return Err(LlmError::Config(format!("{name}: concurrency must be at least 1")));
        }
        Ok(TransportSettings {
            connect_timeout: secs("connect_timeout_secs", self.connect_timeout_secs)?,
            request_timeout: secs("timeout_secs", self.timeout_secs)?,
            concurrency: self.concurrency,
            retry: RetryPolicy {
                max_retries: self.max_retries,
                base_delay: Duration::from_millis(self.retry_base_ms),
                max_delay: Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms)),
                max_retry_after: secs("max_retry_after_secs", self.max_retry_after_secs)?,
            },
        })
    }

    /// The request's model, or the configured default.
    pub(crate) fn pick_model(
        &self,
        requested: Option<&str>,
        embedding: bool,
    ) -> Result<String, LlmError> {
        let default = if embedding { &self.embedding_model } else { &self.chat_model };
        requested.or(default.as_deref()).filter(|m| !m.is_empty()).map(str::to_owned).ok_or_else(
            || {
                let field = if embedding { "embedding_model" } else { "chat_model" };
                LlmError::bad_request(
                    self.display_name(),
                    format!("the request names no model and {field} is not configured"),
                )
            },
        )
    }
}

/// Builds the adapter for `config.kind`. `key` is the provider's API key from the vault (local
/// servers usually need none).
pub fn build_provider(
    config: &ProviderConfig,
    key: Option<SecretString>,
) -> Result<Arc<dyn Provider>, LlmError> {
    Ok(match config.kind {
        ProviderKind::OpenAi => Arc::new(openai::OpenAiProvider::new(config.clone(), key)?),
        ProviderKind::Ollama => Arc::new(ollama::OllamaProvider::new(config.clone(), key)?),
        ProviderKind::Anthropic => {
            Arc::new(anthropic::AnthropicProvider::new(config.clone(), key)?)
        }
        ProviderKind::Gemini => Arc::new(gemini::GeminiProvider::new(config.clone(), key)?),
        ProviderKind::Local => {
            return Err(LlmError::Config(
                "the local provider runs the node's embedded models; it has no URL to connect to \
                 (the node builds it from its models directory)"
                    .into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_rejects_unknown_fields() {
        let c: ProviderConfig =
            serde_json::from_str(r#"{"kind":"openai","base_url":"http://127.0.0.1:8000/v1/"}"#)
                .unwrap();
        assert_eq!(c.kind, ProviderKind::OpenAi);
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.resolved_base_url().unwrap(), "http://127.0.0.1:8000/v1");
        assert_eq!(c.display_name(), "openai");
        let err = serde_json::from_str::<ProviderConfig>(r#"{"kind":"gemini","api_key":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `api_key`"), "{err}");
        assert!(serde_json::from_str::<ProviderConfig>(r#"{"kind":"cohere"}"#).is_err());
    }

    #[test]
    fn invalid_values_are_config_errors() {
        let mut c = ProviderConfig::new(ProviderKind::Ollama);
        c.base_url = Some("ftp://x".into());
        assert_eq!(build_provider(&c, None).unwrap_err().code(), "invalid_config");
        let mut c = ProviderConfig::new(ProviderKind::Ollama);
        c.concurrency = 0;
        assert_eq!(build_provider(&c, None).unwrap_err().code(), "invalid_config");
        let mut c = ProviderConfig::new(ProviderKind::Ollama);
        c.timeout_secs = -1.0;
        assert_eq!(build_provider(&c, None).unwrap_err().code(), "invalid_config");
    }

    #[test]
    fn model_defaults() {
        let mut c = ProviderConfig::new(ProviderKind::Gemini);
        assert_eq!(c.pick_model(None, false).unwrap_err().code(), "bad_request");
        c.chat_model = Some("g".into());
        assert_eq!(c.pick_model(None, false).unwrap(), "g");
        assert_eq!(c.pick_model(Some("h"), false).unwrap(), "h");
        assert_eq!(c.pick_model(None, true).unwrap_err().code(), "bad_request");
    }
}
