//! LLM providers for the kai node: one object-safe [`Provider`] trait (chat, streaming, tool
//! calling, embeddings, model listing, token usage) and its adapters — OpenAI-compatible
//! ([`openai`], which also covers vLLM, llama.cpp server, LM Studio, TGI and Ollama's `/v1`),
//! native [`ollama`], [`anthropic`] Messages and [`gemini`] — over one shared HTTP layer
//! (`transport`: timeouts, retries with jittered backoff honouring `Retry-After`, a per-provider
//! concurrency limit, cancellation, typed errors). [`Router`] adds model aliases with fallback
//! chains. With the `fake-servers` feature, [`fake`] runs a real HTTP server per provider that
//! speaks its wire format, for tests and benchmarks.
//!
//! This crate does not store chat threads, serve the OpenAI-compatible API, run a local model or
//! read keys: the caller passes keys in as `SecretString` (from the vault), and no key ever
//! appears in an error, a log line or `Debug` output.

pub mod anthropic;
mod config;
mod error;
#[cfg(feature = "fake-servers")]
pub mod fake;
pub mod gemini;
pub mod ollama;
pub mod openai;
mod provider;
mod router;
mod transport;
mod types;

pub use config::{ProviderConfig, ProviderKind, build_provider};
pub use error::LlmError;
pub use provider::{ChatStream, Provider, collect_stream};
pub use router::{Router, Target};
pub use transport::{RetryPolicy, TransportSettings};
pub use types::{
    ChatChunk, ChatDone, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, FinishReason,
    Message, ModelInfo, RequestOptions, Role, SamplingParams, ToolCall, ToolCallDelta, ToolChoice,
    ToolDefinition, Usage,
};
