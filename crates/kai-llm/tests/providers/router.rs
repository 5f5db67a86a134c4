//! Fallback chains: a dead provider is skipped, a rejected request is not retried elsewhere.

use std::sync::Arc;

use kai_llm::fake::{FakeError, Reply};
use kai_llm::{
    ChatRequest, EmbedRequest, Message, Provider, ProviderConfig, ProviderKind, Router, Target,
    build_provider,
};

use crate::start;

/// An adapter pointed at a port nobody listens on.
fn dead(kind: ProviderKind) -> Arc<dyn Provider> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = ProviderConfig::new(kind);
    config.name = Some("dead".into());
    config.retry_base_ms = 10;
    config.base_url = Some(format!("http://{addr}"));
    config.max_retries = 1;
    build_provider(&config, None).unwrap()
}

#[tokio::test]
async fn a_dead_provider_is_skipped() {
    let (fake, live) = start(ProviderKind::Ollama).await;
    let router = Router::new().route(
        "smart",
        vec![
            Target::new(dead(ProviderKind::OpenAi), Some("gpt")),
            Target::new(live, Some("llama3")),
        ],
    );
    fake.push_chat(Reply::text("from the fallback"));
    let response =
        router.chat(ChatRequest::new(vec![Message::user("hi")]).with_model("smart")).await.unwrap();
    assert_eq!(response.message.content, "from the fallback");
    assert_eq!(fake.requests()[0].body["model"], "llama3", "the target's model was asked for");

    // The default alias is the first route; streams fall back too.
    let stream = router.stream(ChatRequest::new(vec![Message::user("hi")])).await.unwrap();
    assert_eq!(kai_llm::collect_stream(stream).await.unwrap().message.content, "echo: hi");
}

#[tokio::test]
async fn an_overloaded_provider_is_skipped_after_its_retries() {
    let (first, a) = start(ProviderKind::Anthropic).await;
    let (second, b) = start(ProviderKind::Gemini).await;
    first.fail_times(kai_llm::fake::Endpoint::Chat, 10, &FakeError::server(503));
    let router = Router::new().route("m", vec![Target::new(a, None), Target::new(b, None)]);
    let response = router.chat(ChatRequest::new(vec![Message::user("hi")])).await.unwrap();
    assert_eq!(response.message.content, "echo: hi");
    assert_eq!(first.requests().len(), 4);
    assert_eq!(second.requests().len(), 1);
}

#[tokio::test]
async fn a_rejected_request_is_not_sent_elsewhere() {
    let (first, a) = start(ProviderKind::OpenAi).await;
    let (second, b) = start(ProviderKind::Ollama).await;
    first.push_chat(Reply::Error(FakeError::bad_request("unknown parameter")));
    let router = Router::new().route("m", vec![Target::new(a, None), Target::new(b, None)]);
    let e = router.chat(ChatRequest::new(vec![Message::user("hi")])).await.unwrap_err();
    assert_eq!(e.code(), "bad_request");
    assert!(second.requests().is_empty());
}

#[tokio::test]
async fn embeddings_skip_a_provider_without_them() {
    let (_anthropic_fake, anthropic) = start(ProviderKind::Anthropic).await;
    let (ollama_fake, ollama) = start(ProviderKind::Ollama).await;
    let router =
        Router::new().route("embed", vec![Target::new(anthropic, None), Target::new(ollama, None)]);
    let response = router.embed(EmbedRequest::new(vec!["x".into()])).await.unwrap();
    assert_eq!(response.embeddings.len(), 1);
    assert_eq!(ollama_fake.requests().len(), 1);
}

#[tokio::test]
async fn unknown_aliases_and_the_alias_list() {
    let (_fake, p) = start(ProviderKind::OpenAi).await;
    let router = Router::new()
        .route("fast", vec![Target::new(p.clone(), None)])
        .route("slow", vec![Target::new(p, None)]);
    let e = router.chat(ChatRequest::new(vec![]).with_model("nope")).await.unwrap_err();
    assert_eq!(e.code(), "bad_request");
    assert!(e.to_string().contains("fast, slow"), "{e}");
    let ids: Vec<String> = router.models().await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["fast", "slow"]);
}
