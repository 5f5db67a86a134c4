//! The provider error type, its stable snake_case codes and the retry/fallback classification.
//!
//! Messages carry the provider's own explanation (truncated, with the API key scrubbed out) and
//! never a key, a header or a request body.

use std::time::Duration;

/// What went wrong talking to a provider. `provider` is the provider's configured name.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("{provider} is rate limiting requests{}: {message}", retry_hint(.retry_after))]
    RateLimited { provider: String, retry_after: Option<Duration>, message: String },
    #[error("{provider} rejected the credentials (check the API key in the vault): {message}")]
    AuthFailed { provider: String, message: String },
    #[error("{provider} rejected the request: {message}")]
    BadRequest { provider: String, message: String },
    #[error(
        "{provider}: the conversation is longer than the model's context window \
         (shorten it or pick a model with a larger window): {message}"
    )]
    ContextLengthExceeded { provider: String, message: String },
    #[error("{provider} is unavailable{}: {message}", status_hint(.status))]
    Unavailable { provider: String, status: Option<u16>, message: String },
    #[error("cannot reach {provider} (is it running, and is base_url right?): {message}")]
    Connection { provider: String, message: String },
    #[error("{provider} did not answer within {}s", timeout.as_secs_f64())]
    Timeout { provider: String, timeout: Duration },
    #[error("{provider}: {message}")]
    NotInstalled { provider: String, message: String },
    #[error("{provider} does not support {what}")]
    Unsupported { provider: String, what: String },
    #[error("{provider} sent a malformed response: {message}")]
    Protocol { provider: String, message: String },
    #[error("the request was cancelled")]
    Cancelled,
    #[error("invalid provider configuration: {0}")]
    Config(String),
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    retry_after.map(|d| format!(" (retry after {}s)", d.as_secs_f64())).unwrap_or_default()
}

fn status_hint(status: &Option<u16>) -> String {
    status.map(|s| format!(" (HTTP {s})")).unwrap_or_default()
}

impl LlmError {
    /// Stable snake_case code for APIs, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::AuthFailed { .. } => "auth_failed",
            Self::BadRequest { .. } => "bad_request",
            Self::ContextLengthExceeded { .. } => "context_length_exceeded",
            Self::Unavailable { .. } => "unavailable",
            Self::Connection { .. } => "connection_failed",
            Self::Timeout { .. } => "timeout",
            Self::NotInstalled { .. } => "model_not_installed",
            Self::Unsupported { .. } => "unsupported",
            Self::Protocol { .. } => "protocol",
            Self::Cancelled => "cancelled",
            Self::Config(_) => "invalid_config",
        }
    }

    /// Whether the same request may succeed if sent again to the same provider (before anything
    /// was streamed): rate limits, 5xx and connection failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::Connection { .. }
        )
    }

    /// Whether a fallback chain should try its next provider: the provider is down, overloaded or
    /// out of quota. A request the provider judged wrong (bad request, auth, context) is not
    /// retried elsewhere: it would fail there too or hide a misconfiguration.
    pub fn should_fall_back(&self) -> bool {
        self.is_retryable() || matches!(self, Self::Timeout { .. } | Self::NotInstalled { .. })
    }

    /// The server's requested delay, for rate limits.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The provider-supplied text, if this error carries one.
    pub(crate) fn message_mut(&mut self) -> Option<&mut String> {
        match self {
            Self::RateLimited { message, .. }
            | Self::AuthFailed { message, .. }
            | Self::BadRequest { message, .. }
            | Self::ContextLengthExceeded { message, .. }
            | Self::Unavailable { message, .. }
            | Self::Connection { message, .. }
            | Self::Protocol { message, .. }
            | Self::NotInstalled { message, .. } => Some(message),
            Self::Timeout { .. } | Self::Unsupported { .. } | Self::Cancelled | Self::Config(_) => {
                None
            }
        }
    }

    pub(crate) fn protocol(provider: &str, message: impl Into<String>) -> Self {
        Self::Protocol { provider: provider.to_owned(), message: message.into() }
    }

    pub(crate) fn bad_request(provider: &str, message: impl Into<String>) -> Self {
        Self::BadRequest { provider: provider.to_owned(), message: message.into() }
    }

    pub(crate) fn unsupported(provider: &str, what: impl Into<String>) -> Self {
        Self::Unsupported { provider: provider.to_owned(), what: what.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<LlmError> {
        let p = || "p".to_owned();
        let m = || "m".to_owned();
        vec![
            LlmError::RateLimited { provider: p(), retry_after: None, message: m() },
            LlmError::AuthFailed { provider: p(), message: m() },
            LlmError::BadRequest { provider: p(), message: m() },
            LlmError::ContextLengthExceeded { provider: p(), message: m() },
            LlmError::Unavailable { provider: p(), status: Some(503), message: m() },
            LlmError::Connection { provider: p(), message: m() },
            LlmError::Timeout { provider: p(), timeout: Duration::from_secs(1) },
            LlmError::NotInstalled { provider: p(), message: m() },
            LlmError::Unsupported { provider: p(), what: m() },
            LlmError::Protocol { provider: p(), message: m() },
            LlmError::Cancelled,
            LlmError::Config(m()),
        ]
    }

    #[test]
    fn codes_are_snake_case_and_distinct() {
        let codes: Vec<_> = all().iter().map(LlmError::code).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        for code in codes {
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
        }
    }

    #[test]
    fn fallback_only_for_provider_side_failures() {
        let fall: Vec<_> =
            all().iter().filter(|e| e.should_fall_back()).map(LlmError::code).collect();
        // An embedded model whose weights are not installed falls back to the next provider.
        assert_eq!(
            fall,
            ["rate_limited", "unavailable", "connection_failed", "timeout", "model_not_installed"]
        );
    }

    #[test]
    fn rate_limit_message_names_the_delay() {
        let e = LlmError::RateLimited {
            provider: "openai".into(),
            retry_after: Some(Duration::from_secs(2)),
            message: "slow down".into(),
        };
        assert_eq!(e.to_string(), "openai is rate limiting requests (retry after 2s): slow down");
    }
}
