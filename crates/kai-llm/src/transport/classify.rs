//! Turns a failed HTTP exchange into a typed [`LlmError`]: the status decides the family, the
//! adapter's parse of the provider's error body adds the message and hints (auth, context length,
//! overload) that the status alone does not show. Also scrubs the API key out of provider text.

use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use crate::error::LlmError;

/// What an adapter read from a provider's error body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub message: String,
    pub hint: ErrorHint,
    /// A retry delay given in the body (Gemini's `RetryInfo`), used when no header gives one.
    pub retry_after: Option<Duration>,
}

/// The kind of failure a provider's error body names, where it names one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorHint {
    #[default]
    None,
    Auth,
    RateLimit,
    ContextLength,
    Overloaded,
}

/// The longest provider message kept in an error.
const MAX_MESSAGE: usize = 500;

/// Phrases providers use for an over-long prompt when they give no machine-readable code.
const CONTEXT_PHRASES: [&str; 7] = [
    "context length",
    "context_length",
    "context window",
    "prompt is too long",
    "maximum number of tokens",
    "too many tokens",
    "exceeds the maximum",
];

/// Whether a provider message describes an over-long prompt.
pub fn mentions_context_length(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    CONTEXT_PHRASES.iter().any(|p| lower.contains(p))
}

/// The typed error for a non-success response.
pub fn classify(
    provider: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    body: ErrorBody,
) -> LlmError {
    let provider = provider.to_owned();
    let message = if body.message.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        body.message
    };
    let code = status.as_u16();
    let retry_after = retry_after.or(body.retry_after);
    if body.hint == ErrorHint::ContextLength
        || (matches!(code, 400 | 413 | 422) && mentions_context_length(&message))
    {
        return LlmError::ContextLengthExceeded { provider, message };
    }
    match (code, body.hint) {
        (429, ErrorHint::Overloaded) => {
            LlmError::Unavailable { provider, status: Some(code), message }
        }
        (429, _) | (_, ErrorHint::RateLimit) => {
            LlmError::RateLimited { provider, retry_after, message }
        }
        (401 | 403, _) | (_, ErrorHint::Auth) => LlmError::AuthFailed { provider, message },
        (408 | 500..=599, _) | (_, ErrorHint::Overloaded) => {
            LlmError::Unavailable { provider, status: Some(code), message }
        }
        (400..=499, _) => LlmError::BadRequest { provider, message },
        _ => LlmError::Protocol { provider, message: format!("unexpected HTTP {code}: {message}") },
    }
}

/// The typed error for an error event inside a stream that had started (no HTTP status): what the
/// provider's body hints, otherwise the provider failing mid-answer.
pub fn classify_in_stream(provider: &str, body: ErrorBody) -> LlmError {
    let provider = provider.to_owned();
    let message = body.message;
    match body.hint {
        ErrorHint::ContextLength => LlmError::ContextLengthExceeded { provider, message },
        ErrorHint::RateLimit => {
            LlmError::RateLimited { provider, retry_after: body.retry_after, message }
        }
        ErrorHint::Auth => LlmError::AuthFailed { provider, message },
        ErrorHint::None | ErrorHint::Overloaded => {
            LlmError::Unavailable { provider, status: None, message }
        }
    }
}

/// Removes the key from provider-supplied text and bounds its length.
pub fn sanitize(text: &str, key: Option<&SecretString>) -> String {
    let mut text = text.trim().to_owned();
    if let Some(key) = key.map(ExposeSecret::expose_secret).filter(|k| k.len() >= 4) {
        text = text.replace(key, "[redacted]");
    }
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: &str, hint: ErrorHint) -> ErrorBody {
        ErrorBody { message: message.into(), hint, retry_after: None }
    }

    fn code(status: u16, message: &str, hint: ErrorHint) -> &'static str {
        let status = StatusCode::from_u16(status).unwrap();
        classify("p", status, None, body(message, hint)).code()
    }

    #[test]
    fn statuses_and_hints_map_to_codes() {
        assert_eq!(code(429, "slow", ErrorHint::None), "rate_limited");
        assert_eq!(code(401, "who", ErrorHint::None), "auth_failed");
        assert_eq!(code(400, "API key not valid", ErrorHint::Auth), "auth_failed");
        assert_eq!(code(400, "bad field", ErrorHint::None), "bad_request");
        assert_eq!(code(404, "no such model", ErrorHint::None), "bad_request");
        assert_eq!(code(400, "x", ErrorHint::ContextLength), "context_length_exceeded");
        assert_eq!(
            code(400, "prompt is too long: 9 > 8", ErrorHint::None),
            "context_length_exceeded"
        );
        assert_eq!(code(500, "boom", ErrorHint::None), "unavailable");
        assert_eq!(code(529, "overloaded", ErrorHint::Overloaded), "unavailable");
        assert_eq!(code(503, "", ErrorHint::None), "unavailable");
        assert_eq!(code(302, "", ErrorHint::None), "protocol");
    }

    #[test]
    fn an_empty_message_falls_back_to_the_reason_phrase() {
        let e = classify("p", StatusCode::BAD_GATEWAY, None, ErrorBody::default());
        assert!(e.to_string().contains("Bad Gateway"), "{e}");
    }

    #[test]
    fn sanitize_scrubs_the_key_and_truncates() {
        let key = SecretString::from("sk-live-1234");
        assert_eq!(
            sanitize("Incorrect key sk-live-1234.", Some(&key)),
            "Incorrect key [redacted]."
        );
        let long = "é".repeat(400);
        let out = sanitize(&long, None);
        assert!(out.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(out.ends_with('…'));
    }
}
