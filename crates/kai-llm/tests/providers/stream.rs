//! Streamed answers: text deltas, tool-call deltas reassembled, usage at the end, retries only
//! before the first chunk, truncated and malformed streams, the idle timeout.

use std::time::Duration;

use futures::StreamExt;
use kai_llm::fake::{Endpoint, FRAGMENT_LEN, FakeError, FakeToolCall, Reply};
use kai_llm::{ChatChunk, ChatRequest, FinishReason, Message, ProviderKind, collect_stream};
use serde_json::json;

use crate::{per_provider, start, start_with, truncated_stream};

per_provider!(streamed_text, streamed_tool_call_deltas_reassemble, collect_matches_chat);
per_provider!(a_failure_before_the_first_chunk_is_retried, no_retry_once_chunks_flowed);
per_provider!(a_malformed_chunk_is_a_protocol_error, a_stalled_stream_times_out);

fn ask() -> ChatRequest {
    ChatRequest::new(vec![Message::user("Tell me something")])
}

async fn streamed_text(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    let pieces = ["Hel", "lo", ", wo", "rld ", "ünï", "cødé"];
    fake.push_chat(Reply::chunks(pieces));
    let mut stream = provider.stream(ask()).await.unwrap();
    let mut texts = Vec::new();
    let mut done = None;
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            ChatChunk::Text(t) => texts.push(t),
            ChatChunk::ToolCallDelta(d) => panic!("unexpected tool call {d:?}"),
            ChatChunk::Done(d) => {
                assert!(done.is_none(), "one Done");
                done = Some(d);
            }
        }
    }
    assert_eq!(texts, pieces, "every delta arrives as sent");
    let done = done.expect("the stream ends with Done");
    assert_eq!(done.finish_reason, FinishReason::Stop);
    assert_eq!(done.usage.completion_tokens, pieces.len() as u64);
    assert!(done.usage.prompt_tokens > 0);
    assert!(done.tool_calls.is_empty());
    if kind == ProviderKind::OpenAi {
        let body = &fake.requests()[0].body;
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }
}

async fn streamed_tool_call_deltas_reassemble(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    let weather = json!({ "city": "Reykjavík", "unit": "celsius", "days": [1, 2, 3] });
    let time = json!({ "tz": "Atlantic/Reykjavik" });
    fake.push_chat(Reply::ToolCalls(vec![
        FakeToolCall::new("call_w", "weather", &weather),
        FakeToolCall::new("call_t", "time", &time),
    ]));
    let mut stream = provider.stream(ask()).await.unwrap();
    let mut deltas = Vec::new();
    let mut done = None;
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            ChatChunk::ToolCallDelta(d) => deltas.push(d),
            ChatChunk::Done(d) => done = Some(d),
            ChatChunk::Text(t) => assert!(t.trim().is_empty(), "unexpected text {t:?}"),
        }
    }
    if matches!(kind, ProviderKind::OpenAi | ProviderKind::Anthropic) {
        let fragments = weather.to_string().len().div_ceil(FRAGMENT_LEN);
        assert!(deltas.len() > fragments, "arguments arrived in fragments: {deltas:?}");
    }
    // The deltas alone reassemble to the same calls.
    for (index, expected) in [(0, &weather), (1, &time)] {
        let text: String =
            deltas.iter().filter(|d| d.index == index).map(|d| d.arguments.as_str()).collect();
        assert_eq!(&serde_json::from_str::<serde_json::Value>(&text).unwrap(), expected);
    }
    let done = done.expect("Done");
    assert_eq!(done.finish_reason, FinishReason::ToolCalls);
    let calls: Vec<_> = done.tool_calls.iter().map(|c| (c.name.as_str(), &c.arguments)).collect();
    assert_eq!(calls, [("weather", &weather), ("time", &time)]);
    assert_ne!(done.tool_calls[0].id, done.tool_calls[1].id);
}

async fn collect_matches_chat(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.push_chat(Reply::text("one two three"));
    fake.push_chat(Reply::text("one two three"));
    let streamed = collect_stream(provider.stream(ask()).await.unwrap()).await.unwrap();
    let complete = provider.chat(ask()).await.unwrap();
    assert_eq!(streamed.message, complete.message);
    assert_eq!(streamed.usage, complete.usage);
    assert_eq!(streamed.finish_reason, complete.finish_reason);
}

async fn a_failure_before_the_first_chunk_is_retried(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.fail_times(Endpoint::Chat, 2, &FakeError::server(503));
    fake.push_chat(Reply::text("made it"));
    let response = collect_stream(provider.stream(ask()).await.unwrap()).await.unwrap();
    assert_eq!(response.message.content, "made it");
    assert_eq!(fake.requests().len(), 3);
}

async fn no_retry_once_chunks_flowed(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.push_chat(truncated_stream(kind));
    fake.push_chat(Reply::text("must not be fetched"));
    let mut stream = provider.stream(ask()).await.unwrap();
    let mut text = String::new();
    let error = loop {
        match stream.next().await.expect("the stream reports the failure") {
            Ok(ChatChunk::Text(t)) => text.push_str(&t),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(text, "Hello", "what was streamed before the failure arrived");
    assert_eq!(error.code(), "protocol", "{error}");
    assert!(stream.next().await.is_none(), "an error ends the stream");
    assert_eq!(fake.requests().len(), 1, "nothing was retried");
}

async fn a_malformed_chunk_is_a_protocol_error(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    let body = match kind {
        ProviderKind::Ollama => "{\"message\": {\"content\": \n",
        _ => "data: {\"choices\": [\n\n",
    };
    let content_type =
        if kind == ProviderKind::Ollama { "application/x-ndjson" } else { "text/event-stream" };
    fake.push_chat(Reply::raw(200, content_type, body));
    let mut stream = provider.stream(ask()).await.unwrap();
    let error = stream.next().await.unwrap().unwrap_err();
    assert_eq!(error.code(), "protocol", "{error}");
}

async fn a_stalled_stream_times_out(kind: ProviderKind) {
    let (fake, provider) = start_with(kind, |c| c.timeout_secs = 0.3).await;
    fake.set_chunk_delay(Duration::from_secs(3));
    fake.push_chat(Reply::chunks(["a", "b", "c"]));
    let mut stream = provider.stream(ask()).await.unwrap();
    let error = loop {
        match stream.next().await.expect("an item") {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(error.code(), "timeout", "{error}");
    assert!(fake.wait_until(crate::WAIT, |c| c.aborted == 1).await, "the connection was closed");
}
