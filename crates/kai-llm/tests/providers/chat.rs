//! Complete answers, tool calls and their results, embeddings and model listing.

use kai_llm::fake::{FAKE_CHAT_MODEL, FAKE_EMBED_MODEL, FakeToolCall, Reply, hashed_embedding};
use kai_llm::{
    ChatRequest, EmbedRequest, FinishReason, Message, ProviderKind, ToolCall, ToolDefinition,
};
use serde_json::json;

use crate::{auth_header, per_provider, start};

per_provider!(complete_chat, tool_calls_in_a_complete_answer, tool_results_round_trip);
per_provider!(embeddings, model_listing, the_default_reply_echoes_the_user);

async fn complete_chat(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.push_chat(Reply::text("Hello there, world"));
    let request = ChatRequest::new(vec![
        Message::system("You are terse."),
        Message::user("Say hello to the world"),
    ]);
    let response = provider.chat(request).await.unwrap();
    assert_eq!(response.message.content, "Hello there, world");
    assert!(response.message.tool_calls.is_empty());
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(response.usage.completion_tokens, 3);
    assert!(response.usage.prompt_tokens > 0, "{:?}", response.usage);
    assert!(response.model.contains(FAKE_CHAT_MODEL), "{}", response.model);

    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    let (header, value) = auth_header(kind);
    assert_eq!(sent[0].header(header), Some(value.as_str()));
    let body = sent[0].body.to_string();
    assert!(body.contains("Say hello to the world") && body.contains("You are terse."), "{body}");
    assert!(!sent[0].path.contains(crate::KEY), "the key is never in the URL");
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "weather".into(),
        description: "Current weather for a city".into(),
        parameters: json!({
            "type": "object",
            "properties": { "city": { "type": "string" } },
            "required": ["city"],
        })
        .into(),
    }
}

async fn tool_calls_in_a_complete_answer(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.push_chat(Reply::ToolCalls(vec![
        FakeToolCall::new("call_w", "weather", &json!({ "city": "Oslo" })),
        FakeToolCall::new("call_t", "time", &json!({})),
    ]));
    let request =
        ChatRequest::new(vec![Message::user("Weather in Oslo?")]).with_tools(vec![weather_tool()]);
    let response = provider.chat(request).await.unwrap();
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    let calls = &response.message.tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].name.as_str(), &calls[0].arguments),
        ("weather", &json!({ "city": "Oslo" }))
    );
    assert_eq!((calls[1].name.as_str(), &calls[1].arguments), ("time", &json!({})));
    if matches!(kind, ProviderKind::OpenAi | ProviderKind::Anthropic) {
        assert_eq!(calls[0].id, "call_w", "providers with call ids keep them");
    }
    assert_ne!(calls[0].id, calls[1].id);
    let body = fake.requests()[0].body.to_string();
    assert!(body.contains("Current weather for a city"), "the tool was offered: {body}");
}

async fn tool_results_round_trip(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    let call = ToolCall {
        id: "call_w".into(),
        name: "weather".into(),
        arguments: json!({ "city": "Oslo" }),
    };
    fake.push_chat(Reply::text("It is 3 degrees in Oslo."));
    let request = ChatRequest::new(vec![
        Message::user("Weather in Oslo?"),
        Message::assistant_tool_calls("", vec![call]),
        Message::tool_result("call_w", r#"{"temp_c":3}"#),
    ])
    .with_tools(vec![weather_tool()]);
    let response = provider.chat(request).await.unwrap();
    assert_eq!(response.message.content, "It is 3 degrees in Oslo.");
    let body = fake.requests()[0].body.to_string();
    assert!(body.contains("temp_c"), "the tool result was sent: {body}");
    assert!(body.contains("Oslo") && body.contains("weather"), "the call was sent: {body}");
}

async fn embeddings(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    let inputs = vec!["first text".to_owned(), "second, longer text".to_owned()];
    let result = provider.embed(EmbedRequest::new(inputs.clone())).await;
    if kind == ProviderKind::Anthropic {
        let e = result.unwrap_err();
        assert_eq!(e.code(), "unsupported");
        assert!(e.to_string().contains("embeddings"), "{e}");
        assert!(fake.requests().is_empty(), "nothing is sent for an unsupported call");
        return;
    }
    let response = result.unwrap();
    let expected: Vec<Vec<f32>> = inputs.iter().map(|t| hashed_embedding(t, 8)).collect();
    assert_eq!(response.embeddings, expected);
    assert!(response.model.contains(FAKE_EMBED_MODEL));
    // One input takes Gemini's single-content endpoint.
    let one = provider.embed(EmbedRequest::new(vec!["solo".into()])).await.unwrap();
    assert_eq!(one.embeddings, vec![hashed_embedding("solo", 8)]);
}

async fn model_listing(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.set_models(vec!["alpha".into(), "beta".into()]);
    let models = provider.models().await.unwrap();
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["alpha", "beta"]);
    if kind == ProviderKind::Gemini {
        assert_eq!(models[0].context_window, Some(1_048_576));
    }
}

async fn the_default_reply_echoes_the_user(kind: ProviderKind) {
    let (_fake, provider) = start(kind).await;
    let response = provider.chat(ChatRequest::new(vec![Message::user("ping me")])).await.unwrap();
    assert_eq!(response.message.content, "echo: ping me");
}
