//! OpenAI wire details against the fake: the exact request shape, interleaved tool-call
//! fragments, mid-stream errors, and the leniency compatible servers need.

use futures::StreamExt;
use secrecy::SecretString;
use serde_json::json;

use crate::fake::{FakeServer, Reply};
use crate::types::{
    ChatChunk, ChatRequest, FinishReason, Message, ToolCall, ToolChoice, ToolDefinition,
};
use crate::{EmbedRequest, Provider, ProviderKind, build_provider, collect_stream};

async fn setup() -> (FakeServer, std::sync::Arc<dyn Provider>) {
    let fake = FakeServer::start(ProviderKind::OpenAi).await.unwrap();
    let provider = build_provider(&fake.config(), Some(SecretString::from("sk-abc"))).unwrap();
    (fake, provider)
}

fn sse(body: &str) -> Reply {
    Reply::raw(200, "text/event-stream", body)
}

#[tokio::test]
async fn the_request_has_openai_s_shape() {
    let (fake, provider) = setup().await;
    let call = ToolCall {
        id: "call_1".into(),
        name: "weather".into(),
        arguments: json!({ "city": "Oslo" }),
    };
    let mut request = ChatRequest::new(vec![
        Message::system("sys"),
        Message::user("q"),
        Message::assistant_tool_calls("", vec![call]),
        Message::tool_result("call_1", "3C"),
    ])
    .with_model("gpt-x")
    .with_tools(vec![ToolDefinition {
        name: "weather".into(),
        description: "d".into(),
        parameters: json!({ "type": "object" }).into(),
    }]);
    request.tool_choice = Some(ToolChoice::Tool { name: "weather".into() });
    request.params.temperature = Some(0.5);
    request.params.top_p = Some(0.25);
    request.params.max_tokens = Some(50);
    request.params.stop = vec!["END".into()];
    provider.chat(request).await.unwrap();

    let sent = &fake.requests()[0];
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(sent.header("authorization"), Some("Bearer sk-abc"));
    assert_eq!(
        *sent.body,
        json!({
            "model": "gpt-x",
            "messages": [
                { "role": "system", "content": "sys" },
                { "role": "user", "content": "q" },
                { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "call_1", "type": "function", "function": { "name": "weather", "arguments": "{\"city\":\"Oslo\"}" } }
                ]},
                { "role": "tool", "content": "3C", "tool_call_id": "call_1" },
            ],
            "tools": [{ "type": "function", "function": { "name": "weather", "description": "d", "parameters": { "type": "object" } } }],
            "tool_choice": { "type": "function", "function": { "name": "weather" } },
            "temperature": 0.5,
            "top_p": 0.25,
            "max_tokens": 50,
            "stop": ["END"],
            "stream": false,
        })
    );
}

#[tokio::test]
async fn embeddings_request_floats_for_all_inputs() {
    let (fake, provider) = setup().await;
    provider.embed(EmbedRequest::new(vec!["a".into(), "b".into()])).await.unwrap();
    let sent = &fake.requests()[0];
    assert_eq!(sent.path, "/v1/embeddings");
    assert_eq!(
        *sent.body,
        json!({ "model": "fake-embed", "input": ["a", "b"], "encoding_format": "float" })
    );
}

#[tokio::test]
async fn interleaved_tool_fragments_are_reassembled_by_index() {
    let (fake, provider) = setup().await;
    fake.push_chat(sse(concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{\\\"y\\\"\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"x\\\":\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\":2}\"}},{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}\n\n",
        "data: [DONE]\n\n",
    )));
    let response =
        collect_stream(provider.stream(ChatRequest::new(vec![Message::user("x")])).await.unwrap())
            .await
            .unwrap();
    let calls = &response.message.tool_calls;
    assert_eq!((calls[0].id.as_str(), &calls[0].arguments), ("call_a", &json!({ "x": 1 })));
    assert_eq!((calls[1].id.as_str(), &calls[1].arguments), ("call_b", &json!({ "y": 2 })));
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert_eq!((response.usage.prompt_tokens, response.usage.completion_tokens), (9, 4));
}

#[tokio::test]
async fn an_error_object_mid_stream_is_typed() {
    let (fake, provider) = setup().await;
    fake.push_chat(sse(concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        "data: {\"error\":{\"message\":\"The server is overloaded\",\"type\":\"server_error\"}}\n\n",
    )));
    let mut stream = provider.stream(ChatRequest::new(vec![Message::user("x")])).await.unwrap();
    assert_eq!(stream.next().await.unwrap().unwrap(), ChatChunk::Text("Hi".into()));
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), "unavailable");
    assert!(e.to_string().contains("overloaded"), "{e}");
}

#[tokio::test]
async fn compatible_servers_variations_are_accepted() {
    let (fake, provider) = setup().await;
    // Object arguments, null tool_calls elsewhere, no usage, no id.
    fake.push_chat(Reply::raw(
        200,
        "application/json",
        r#"{"model":"local","choices":[{"index":0,"message":{"role":"assistant","content":"","tool_calls":[{"type":"function","function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}]}"#,
    ));
    let response = provider.chat(ChatRequest::new(vec![Message::user("x")])).await.unwrap();
    assert_eq!(response.message.tool_calls[0].arguments, json!({ "a": 1 }));
    assert_eq!(response.message.tool_calls[0].id, "call_0");
    assert_eq!(response.usage.total_tokens(), 0);

    // A stream closed after its finish reason but without `[DONE]`.
    fake.push_chat(sse(concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
    )));
    let response =
        collect_stream(provider.stream(ChatRequest::new(vec![Message::user("x")])).await.unwrap())
            .await
            .unwrap();
    assert_eq!(response.message.content, "ok");
    assert_eq!(response.finish_reason, FinishReason::Length);
}
