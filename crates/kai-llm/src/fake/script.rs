//! What a fake server answers: the scripted [`Reply`] values tests queue, the provider-neutral
//! [`Turn`] a chat reply becomes before a dialect renders it, and deterministic hashed
//! embeddings.

use serde_json::Value;

/// Which kind of call a queued reply answers. Each endpoint has its own queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Chat,
    Embed,
    Models,
}

/// One scripted answer. When an endpoint's queue is empty the server answers with its default:
/// [`Reply::Echo`] for chat, [`Reply::Embeddings`] for embeddings, [`Reply::Models`] for models.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Chat: `"echo: <last user message>"`.
    Echo,
    /// Chat: this text; streamed word by word (each word with its leading space).
    Text(String),
    /// Chat: streamed exactly as these pieces (complete replies concatenate them).
    Chunks(Vec<String>),
    /// Chat: these tool calls; streamed as argument fragments of [`FRAGMENT_LEN`] bytes where the
    /// provider streams arguments incrementally (OpenAI, Anthropic), whole otherwise.
    ToolCalls(Vec<FakeToolCall>),
    /// Embeddings: [`hashed_embedding`] of each input.
    Embeddings,
    /// Models: the server's model list.
    Models,
    /// An error in the provider's own format.
    Error(FakeError),
    /// These exact bytes (for malformed or truncated streams).
    Raw { status: u16, content_type: String, body: String },
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    pub fn chunks<S: Into<String>>(pieces: impl IntoIterator<Item = S>) -> Self {
        Self::Chunks(pieces.into_iter().map(Into::into).collect())
    }

    pub fn raw(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self::Raw { status, content_type: content_type.to_owned(), body: body.into() }
    }
}

/// How long streamed tool-call argument fragments are.
pub const FRAGMENT_LEN: usize = 7;

/// A tool call the fake "model" makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments.
    pub arguments: String,
}

impl FakeToolCall {
    pub fn new(id: &str, name: &str, arguments: &Value) -> Self {
        Self { id: id.to_owned(), name: name.to_owned(), arguments: arguments.to_string() }
    }

    /// The arguments cut into streamed fragments (on character boundaries).
    pub fn fragments(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        for c in self.arguments.chars() {
            current.push(c);
            if current.len() >= FRAGMENT_LEN {
                out.push(std::mem::take(&mut current));
            }
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }
}

/// The failures a fake renders in its provider's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeErrorKind {
    /// 429.
    RateLimited,
    /// The provider's "bad key" answer (401, or Gemini's 400 `API_KEY_INVALID`).
    Auth,
    /// 400 with the message.
    BadRequest,
    /// The provider's "prompt too long" answer.
    ContextLength,
    /// 500.
    Server,
    /// 503 (Anthropic: 529 `overloaded_error`).
    Overloaded,
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeError {
    pub kind: FakeErrorKind,
    pub message: String,
    /// Sent as the `Retry-After` header.
    pub retry_after: Option<String>,
    /// Overrides the kind's usual status.
    pub status: Option<u16>,
}

impl FakeError {
    pub fn new(kind: FakeErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), retry_after: None, status: None }
    }

    pub fn rate_limited(retry_after: &str) -> Self {
        Self {
            retry_after: Some(retry_after.to_owned()),
            ..Self::new(FakeErrorKind::RateLimited, "Rate limit reached; please retry later.")
        }
    }

    pub fn server(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::new(FakeErrorKind::Server, "The server had an error.")
        }
    }

    pub fn bad_request(message: &str) -> Self {
        Self::new(FakeErrorKind::BadRequest, message)
    }

    pub fn context_length() -> Self {
        Self::new(FakeErrorKind::ContextLength, "")
    }

    /// What a provider says about a wrong key; like real providers, it may quote the key.
    pub fn auth(presented: &str) -> Self {
        Self::new(FakeErrorKind::Auth, format!("Incorrect API key provided: {presented}."))
    }

    pub(crate) fn default_status(&self) -> u16 {
        self.status.unwrap_or(match self.kind {
            FakeErrorKind::RateLimited => 429,
            FakeErrorKind::Auth => 401,
            FakeErrorKind::BadRequest | FakeErrorKind::ContextLength => 400,
            FakeErrorKind::Server => 500,
            FakeErrorKind::Overloaded => 503,
        })
    }
}

/// A chat answer before a dialect renders it.
#[derive(Debug, Clone)]
pub(crate) struct Turn {
    pub model: String,
    pub pieces: Vec<String>,
    pub calls: Vec<FakeToolCall>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Turn {
    pub(crate) fn text(&self) -> String {
        self.pieces.concat()
    }
}

/// Splits text into streamed pieces: each word with the whitespace before it.
pub(crate) fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_whitespace() && !current.trim().is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Counts a prompt's "tokens" the fake way: words (split at ASCII whitespace) of every string
/// in it.
pub(crate) fn count_words(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.split_ascii_whitespace().count() as u64,
        Value::Array(items) => items.iter().map(count_words).sum(),
        Value::Object(map) => map.values().map(count_words).sum(),
        _ => 0,
    }
}

/// A deterministic unit vector for `text`: FNV-1a seeds a SplitMix64 sequence.
pub fn hashed_embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            // Top 24 bits → [-1, 1).
            ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_their_leading_whitespace() {
        assert_eq!(words("echo: hi  there"), ["echo:", " hi", "  there"]);
        assert_eq!(words("").len(), 0);
        assert_eq!(words("a b c").concat(), "a b c");
    }

    #[test]
    fn hashed_embeddings_are_deterministic_unit_vectors() {
        let a = hashed_embedding("hello", 16);
        assert_eq!(a, hashed_embedding("hello", 16));
        assert_ne!(a, hashed_embedding("hellp", 16));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn fragments_cover_the_arguments() {
        let call = FakeToolCall::new("c", "f", &serde_json::json!({"city": "Zürich", "n": 3}));
        let fragments = call.fragments();
        assert!(fragments.len() > 2);
        assert_eq!(fragments.concat(), call.arguments);
    }
}
