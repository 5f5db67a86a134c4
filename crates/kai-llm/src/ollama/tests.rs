//! Ollama wire details against the fake: options, `tool_name` on tool results, object
//! arguments, explicit `stream`, error lines.

use futures::StreamExt;
use serde_json::json;

use crate::fake::{FakeError, FakeServer, Reply};
use crate::types::{ChatChunk, ChatRequest, Message, ToolCall, ToolChoice, ToolDefinition};
use crate::{Provider, ProviderKind, build_provider};

async fn setup() -> (FakeServer, std::sync::Arc<dyn Provider>) {
    let fake = FakeServer::start(ProviderKind::Ollama).await.unwrap();
    let provider = build_provider(&fake.config(), None).unwrap();
    (fake, provider)
}

fn tool() -> ToolDefinition {
    ToolDefinition {
        name: "weather".into(),
        description: "d".into(),
        parameters: json!({ "type": "object" }).into(),
    }
}

#[tokio::test]
async fn the_request_has_ollama_s_shape() {
    let (fake, provider) = setup().await;
    let call = ToolCall {
        id: "call_0".into(),
        name: "weather".into(),
        arguments: json!({ "city": "Oslo" }),
    };
    let mut request = ChatRequest::new(vec![
        Message::user("q"),
        Message::assistant_tool_calls("", vec![call]),
        Message::tool_result("call_0", "3C"),
    ])
    .with_tools(vec![tool()]);
    request.params.temperature = Some(0.5);
    request.params.max_tokens = Some(64);
    request.params.stop = vec!["END".into()];
    provider.chat(request).await.unwrap();
    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/api/chat");
    assert_eq!(sent.header("authorization"), None, "no key, no header");
    assert_eq!(
        *sent.body,
        json!({
            "model": "fake-chat",
            "messages": [
                { "role": "user", "content": "q" },
                { "role": "assistant", "content": "", "tool_calls": [{ "function": { "name": "weather", "arguments": { "city": "Oslo" } } }] },
                { "role": "tool", "content": "3C", "tool_name": "weather" },
            ],
            "stream": false,
            "tools": [{ "type": "function", "function": { "name": "weather", "description": "d", "parameters": { "type": "object" } } }],
            "options": { "temperature": 0.5, "num_predict": 64, "stop": ["END"] },
        })
    );
}

#[tokio::test]
async fn streams_ask_for_a_stream_and_tool_choice_none_offers_no_tools() {
    let (fake, provider) = setup().await;
    let mut request = ChatRequest::new(vec![Message::user("q")]).with_tools(vec![tool()]);
    request.tool_choice = Some(ToolChoice::None);
    let stream = provider.stream(request).await.unwrap();
    crate::collect_stream(stream).await.unwrap();
    let body = &fake.requests()[0].body;
    assert_eq!(body["stream"], true);
    assert!(body.get("tools").is_none());
}

#[tokio::test]
async fn an_error_line_mid_stream_is_typed() {
    let (fake, provider) = setup().await;
    fake.push_chat(Reply::raw(
        200,
        "application/x-ndjson",
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n{\"error\":\"llama runner process has terminated\"}\n",
    ));
    let mut stream = provider.stream(ChatRequest::new(vec![Message::user("x")])).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), ChatChunk::Text("Hi".into()));
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), "unavailable");
    assert!(e.to_string().contains("llama runner"), "{e}");
}

#[tokio::test]
async fn a_missing_model_is_a_bad_request_with_ollama_s_message() {
    let (fake, provider) = setup().await;
    let missing = FakeError {
        status: Some(404),
        ..FakeError::bad_request("model \"x\" not found, try pulling it first")
    };
    fake.push_chat(Reply::Error(missing));
    let e = provider.chat(ChatRequest::new(vec![Message::user("x")])).await.unwrap_err();
    assert_eq!(e.code(), "bad_request");
    assert!(e.to_string().contains("try pulling it first"), "{e}");
}
