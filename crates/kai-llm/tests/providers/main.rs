//! Every adapter against the fake server of its provider, through the public API only
//! (`build_provider` + `FakeServer`): chat, streaming, tool calls, embeddings, models, typed
//! errors, retries, the concurrency limit, cancellation, fallback and key hygiene. Each scenario
//! is one `async fn(ProviderKind)`, stamped out per provider by `per_provider!`.

mod chat;
mod robustness;
mod router;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use kai_llm::fake::FakeServer;
use kai_llm::{Provider, ProviderConfig, ProviderKind, build_provider};
use secrecy::SecretString;

/// The key every test provider is built with (and every fake requires).
pub const KEY: &str = "sk-test-4f9a1c7e2b";

/// A generous bound on waiting for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(10);

/// Runs `$scenario(kind)` as one test per provider, in a module named after the scenario.
#[macro_export]
macro_rules! per_provider {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use kai_llm::ProviderKind;
            #[tokio::test]
            async fn openai() { super::$scenario(ProviderKind::OpenAi).await }
            #[tokio::test]
            async fn ollama() { super::$scenario(ProviderKind::Ollama).await }
            #[tokio::test]
            async fn anthropic() { super::$scenario(ProviderKind::Anthropic).await }
            #[tokio::test]
            async fn gemini() { super::$scenario(ProviderKind::Gemini).await }
        }
    )*};
}

/// A fake of `kind` that requires [`KEY`], and an adapter configured for it.
pub async fn start(kind: ProviderKind) -> (FakeServer, Arc<dyn Provider>) {
    start_with(kind, |_| {}).await
}

/// Like [`start`], with the configuration adjusted first.
pub async fn start_with(
    kind: ProviderKind,
    adjust: impl FnOnce(&mut ProviderConfig),
) -> (FakeServer, Arc<dyn Provider>) {
    let fake = FakeServer::start(kind).await.expect("fake server starts");
    fake.require_key(Some(KEY));
    let mut config = fake.config();
    adjust(&mut config);
    let provider = build_provider(&config, Some(SecretString::from(KEY))).expect("provider builds");
    (fake, provider)
}

/// The header that carries the key for `kind`, and its expected value.
pub fn auth_header(kind: ProviderKind) -> (&'static str, String) {
    match kind {
        ProviderKind::OpenAi | ProviderKind::Ollama => ("authorization", format!("Bearer {KEY}")),
        ProviderKind::Anthropic => ("x-api-key", KEY.to_owned()),
        ProviderKind::Gemini => ("x-goog-api-key", KEY.to_owned()),
        ProviderKind::Local => unreachable!("the local provider is not an HTTP adapter"),
    }
}

/// A stream that starts answering ("Hel", "lo") and then ends without its terminator, in the
/// provider's framing.
pub fn truncated_stream(kind: ProviderKind) -> kai_llm::fake::Reply {
    use kai_llm::fake::Reply;
    match kind {
        ProviderKind::OpenAi => Reply::raw(
            200,
            "text/event-stream",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
             data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
        ),
        ProviderKind::Ollama => Reply::raw(
            200,
            "application/x-ndjson",
            "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\n\
             {\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}\n",
        ),
        ProviderKind::Anthropic => Reply::raw(
            200,
            "text/event-stream",
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":3}}}\n\n\
             event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
             event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n\
             event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
        ),
        ProviderKind::Gemini => Reply::raw(
            200,
            "text/event-stream",
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"}}]}\r\n\r\n\
             data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}],\"role\":\"model\"}}]}\r\n\r\n",
        ),
        ProviderKind::Local => unreachable!("the local provider is not an HTTP adapter"),
    }
}
