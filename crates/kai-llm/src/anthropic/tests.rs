//! Anthropic wire details against the fake: headers, the top-level system prompt, merged user
//! turns carrying tool results, a recorded real-world stream, error events, 529.

use futures::StreamExt;
use secrecy::SecretString;
use serde_json::json;

use crate::fake::{Endpoint, FakeError, FakeErrorKind, FakeServer, Reply};
use crate::types::{ChatRequest, FinishReason, Message, ToolCall, ToolChoice, ToolDefinition};
use crate::{Provider, ProviderKind, build_provider, collect_stream};

async fn setup(max_tokens: Option<u32>) -> (FakeServer, std::sync::Arc<dyn Provider>) {
    let fake = FakeServer::start(ProviderKind::Anthropic).await.unwrap();
    let mut config = fake.config();
    config.max_tokens = max_tokens;
    let provider = build_provider(&config, Some(SecretString::from("sk-ant-1"))).unwrap();
    (fake, provider)
}

#[tokio::test]
async fn the_request_has_anthropic_s_shape() {
    let (fake, provider) = setup(None).await;
    let calls = vec![
        ToolCall {
            id: "toolu_1".into(),
            name: "weather".into(),
            arguments: json!({ "city": "Oslo" }),
        },
        ToolCall { id: "toolu_2".into(), name: "time".into(), arguments: json!({}) },
    ];
    let mut request = ChatRequest::new(vec![
        Message::system("be brief"),
        Message::system("be kind"),
        Message::user("q"),
        Message::assistant_tool_calls("Let me check.", calls),
        Message::tool_result("toolu_1", "3C"),
        Message::tool_result("toolu_2", "noon"),
        Message::user("and tomorrow?"),
    ])
    .with_tools(vec![ToolDefinition {
        name: "weather".into(),
        description: "d".into(),
        parameters: json!({ "type": "object" }).into(),
    }]);
    request.tool_choice = Some(ToolChoice::Required);
    request.params.stop = vec!["END".into()];
    provider.chat(request).await.unwrap();
    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-1"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        *sent.body,
        json!({
            "model": "fake-chat",
            "max_tokens": 4096,
            "system": "be brief\n\nbe kind",
            "messages": [
                { "role": "user", "content": [{ "type": "text", "text": "q" }] },
                { "role": "assistant", "content": [
                    { "type": "text", "text": "Let me check." },
                    { "type": "tool_use", "id": "toolu_1", "name": "weather", "input": { "city": "Oslo" } },
                    { "type": "tool_use", "id": "toolu_2", "name": "time", "input": {} },
                ]},
                { "role": "user", "content": [
                    { "type": "tool_result", "tool_use_id": "toolu_1", "content": "3C" },
                    { "type": "tool_result", "tool_use_id": "toolu_2", "content": "noon" },
                    { "type": "text", "text": "and tomorrow?" },
                ]},
            ],
            "tools": [{ "name": "weather", "description": "d", "input_schema": { "type": "object" } }],
            "tool_choice": { "type": "any" },
            "stop_sequences": ["END"],
        })
    );
}

#[tokio::test]
async fn the_configured_token_cap_is_used() {
    let (fake, provider) = setup(Some(256)).await;
    provider.chat(ChatRequest::new(vec![Message::user("q")])).await.unwrap();
    let mut request = ChatRequest::new(vec![Message::user("q")]);
    request.params.max_tokens = Some(8);
    collect_stream(provider.stream(request).await.unwrap()).await.unwrap();
    let sent = fake.requests();
    assert_eq!(sent[0].body["max_tokens"], 256);
    assert_eq!(
        (sent[1].body["max_tokens"].clone(), sent[1].body["stream"].clone()),
        (json!(8), json!(true))
    );
}

/// A stream as Anthropic documents it: text, then a tool_use block with its JSON in pieces,
/// pings, an unknown future event type, cumulative usage in message_delta.
const RECORDED: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", let's check."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: future_thing
data: {"type":"future_thing","x":1}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[tokio::test]
async fn a_recorded_stream_decodes() {
    let (fake, provider) = setup(None).await;
    fake.push_chat(Reply::raw(200, "text/event-stream", RECORDED));
    let stream = provider.stream(ChatRequest::new(vec![Message::user("q")])).await.unwrap();
    let response = collect_stream(stream).await.unwrap();
    assert_eq!(response.message.content, "Okay, let's check.");
    assert_eq!(response.model, "claude-sonnet-4-5");
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!((response.usage.prompt_tokens, response.usage.completion_tokens), (472, 89));
    let call = &response.message.tool_calls[0];
    assert_eq!(call.id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(call.arguments, json!({ "location": "San Francisco, CA" }));
}

#[tokio::test]
async fn an_error_event_mid_stream_is_typed() {
    let (fake, provider) = setup(None).await;
    let body = RECORDED.split("event: content_block_stop").next().unwrap_or_default().to_owned()
        + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    fake.push_chat(Reply::raw(200, "text/event-stream", body));
    let mut stream = provider.stream(ChatRequest::new(vec![Message::user("q")])).await.unwrap();
    let mut last = None;
    while let Some(item) = stream.next().await {
        last = Some(item);
    }
    let e = last.unwrap().unwrap_err();
    assert_eq!(e.code(), "unavailable");
}

#[tokio::test]
async fn overloaded_529_is_retried() {
    let (fake, provider) = setup(None).await;
    fake.fail_times(Endpoint::Chat, 2, &FakeError::new(FakeErrorKind::Overloaded, ""));
    let response = provider.chat(ChatRequest::new(vec![Message::user("q")])).await.unwrap();
    assert_eq!(response.message.content, "echo: q");
    assert_eq!(fake.requests().len(), 3);
}
