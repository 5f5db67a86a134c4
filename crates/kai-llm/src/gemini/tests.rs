//! Gemini wire details against the fake: paths, the key header, contents and parts,
//! functionResponse by name, generationConfig, batch embeddings, RetryInfo, blocked prompts.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;

use crate::fake::{FakeServer, Reply};
use crate::types::{ChatRequest, FinishReason, Message, ToolCall, ToolChoice, ToolDefinition};
use crate::{EmbedRequest, Provider, ProviderKind, build_provider, collect_stream};

const KEY: &str = "AIza-test-key";

async fn setup() -> (FakeServer, std::sync::Arc<dyn Provider>) {
    let fake = FakeServer::start(ProviderKind::Gemini).await.unwrap();
    let provider = build_provider(&fake.config(), Some(SecretString::from(KEY))).unwrap();
    (fake, provider)
}

#[tokio::test]
async fn the_request_has_gemini_s_shape() {
    let (fake, provider) = setup().await;
    let calls = vec![
        ToolCall {
            id: "call_0".into(),
            name: "weather".into(),
            arguments: json!({ "city": "Oslo" }),
        },
        ToolCall { id: "call_1".into(), name: "time".into(), arguments: json!({}) },
    ];
    let mut request = ChatRequest::new(vec![
        Message::system("be brief"),
        Message::user("q"),
        Message::assistant_tool_calls("", calls),
        Message::tool_result("call_0", r#"{"temp_c":3}"#),
        Message::tool_result("call_1", "noon"),
    ])
    .with_tools(vec![ToolDefinition {
        name: "weather".into(),
        description: "d".into(),
        parameters: json!({ "type": "object" }).into(),
    }]);
    request.tool_choice = Some(ToolChoice::Tool { name: "weather".into() });
    request.params.temperature = Some(0.5);
    request.params.max_tokens = Some(99);
    provider.chat(request.clone()).await.unwrap();
    collect_stream(provider.stream(request).await.unwrap()).await.unwrap();

    let sent = fake.requests();
    assert_eq!(sent[0].path, "/v1beta/models/fake-chat:generateContent");
    assert_eq!(sent[1].path, "/v1beta/models/fake-chat:streamGenerateContent?alt=sse");
    assert_eq!(sent[0].header("x-goog-api-key"), Some(KEY));
    assert_eq!(
        *sent[0].body,
        json!({
            "contents": [
                { "role": "user", "parts": [{ "text": "q" }] },
                { "role": "model", "parts": [
                    { "functionCall": { "name": "weather", "args": { "city": "Oslo" } } },
                    { "functionCall": { "name": "time", "args": {} } },
                ]},
                { "role": "user", "parts": [
                    { "functionResponse": { "name": "weather", "response": { "temp_c": 3 } } },
                    { "functionResponse": { "name": "time", "response": { "output": "noon" } } },
                ]},
            ],
            "systemInstruction": { "parts": [{ "text": "be brief" }] },
            "tools": [{ "functionDeclarations": [{ "name": "weather", "description": "d", "parameters": { "type": "object" } }] }],
            "toolConfig": { "functionCallingConfig": { "mode": "ANY", "allowedFunctionNames": ["weather"] } },
            "generationConfig": { "temperature": 0.5, "maxOutputTokens": 99 },
        })
    );
    assert_eq!(sent[1].body, sent[0].body);
}

#[tokio::test]
async fn several_inputs_use_batch_embed_contents() {
    let (fake, provider) = setup().await;
    provider.embed(EmbedRequest::new(vec!["a".into(), "b".into()])).await.unwrap();
    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/v1beta/models/fake-embed:batchEmbedContents");
    assert_eq!(
        *sent.body,
        json!({ "requests": [
            { "model": "models/fake-embed", "content": { "parts": [{ "text": "a" }] } },
            { "model": "models/fake-embed", "content": { "parts": [{ "text": "b" }] } },
        ]})
    );
}

#[tokio::test]
async fn retry_info_in_the_body_sets_the_delay() {
    let (fake, provider) = setup().await;
    fake.push_chat(Reply::raw(
        429,
        "application/json",
        r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1s"}]}}"#,
    ));
    provider.chat(ChatRequest::new(vec![Message::user("q")])).await.unwrap();
    let sent = fake.requests();
    assert_eq!(sent.len(), 2);
    assert!(sent[1].at.duration_since(sent[0].at) >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_blocked_prompt_is_a_content_filter_finish() {
    let (fake, provider) = setup().await;
    fake.push_chat(Reply::raw(
        200,
        "application/json",
        r#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":5}}"#,
    ));
    let response = provider.chat(ChatRequest::new(vec![Message::user("q")])).await.unwrap();
    assert_eq!(response.finish_reason, FinishReason::ContentFilter);
    assert_eq!(response.message.content, "");
    assert_eq!(response.usage.prompt_tokens, 5);
}
