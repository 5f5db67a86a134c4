//! The OpenAI dialect: `/v1/chat/completions` (JSON or SSE `data:` chunks ending with `[DONE]`,
//! tool calls as `delta.tool_calls[]` fragments, usage in a last chunk when
//! `stream_options.include_usage` is set), `/v1/embeddings`, `/v1/models`, and
//! `{"error":{"message","type","param","code"}}` error bodies. Auth: `Authorization: Bearer`.

use axum::http::{HeaderMap, Method, header};
use serde_json::{Value, json};

use super::script::{FakeErrorKind, Turn};
use super::{Dialect, Endpoint, FakeError, Route, hashed_embedding, sse};

pub(crate) struct OpenAi;

const CREATED: u64 = 1_700_000_000;

impl OpenAi {
    fn usage(turn: &Turn) -> Value {
        json!({
            "prompt_tokens": turn.prompt_tokens,
            "completion_tokens": turn.completion_tokens,
            "total_tokens": turn.prompt_tokens + turn.completion_tokens,
        })
    }

    fn chunk(turn: &Turn, delta: &Value, finish: Option<&str>) -> String {
        sse(
            None,
            &json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": turn.model,
                "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
                "usage": null,
            }),
        )
    }
}

impl Dialect for OpenAi {
    fn route(&self, method: &Method, path: &str, body: &Value) -> Option<Route> {
        match (method.as_str(), path) {
            ("POST", "/v1/chat/completions") => {
                let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
                Some(Route::new(Endpoint::Chat, stream))
            }
            ("POST", "/v1/embeddings") => Some(Route::new(Endpoint::Embed, false)),
            ("GET", "/v1/models") => Some(Route::new(Endpoint::Models, false)),
            _ => None,
        }
    }

    fn presented_key(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        value.strip_prefix("Bearer ").map(str::to_owned)
    }

    fn error(&self, error: &FakeError) -> (u16, Value) {
        let (kind, code, message) = match error.kind {
            FakeErrorKind::RateLimited => ("requests", "rate_limit_exceeded", error.message.clone()),
            FakeErrorKind::Auth => ("invalid_request_error", "invalid_api_key", error.message.clone()),
            FakeErrorKind::BadRequest => ("invalid_request_error", "", error.message.clone()),
            FakeErrorKind::ContextLength => (
                "invalid_request_error",
                "context_length_exceeded",
                "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. Please reduce the length of the messages.".to_owned(),
            ),
            FakeErrorKind::Server | FakeErrorKind::Overloaded => ("server_error", "", error.message.clone()),
        };
        let code = if code.is_empty() { Value::Null } else { json!(code) };
        let body =
            json!({ "error": { "message": message, "type": kind, "param": null, "code": code } });
        (error.default_status(), body)
    }

    fn last_user_text(&self, body: &Value) -> String {
        let messages = body.get("messages").and_then(Value::as_array);
        messages
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    fn chat(&self, turn: &Turn) -> Value {
        let calls: Vec<Value> = turn
            .calls
            .iter()
            .map(|c| json!({ "id": c.id, "type": "function", "function": { "name": c.name, "arguments": c.arguments } }))
            .collect();
        let (content, finish) = if calls.is_empty() {
            (json!(turn.text()), "stop")
        } else {
            (Value::Null, "tool_calls")
        };
        let mut message = json!({ "role": "assistant", "content": content, "refusal": null });
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": CREATED,
            "model": turn.model,
            "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish }],
            "usage": Self::usage(turn),
        })
    }

    fn chat_stream(&self, turn: &Turn) -> (&'static str, Vec<String>) {
        let mut frames =
            vec![Self::chunk(turn, &json!({ "role": "assistant", "content": "" }), None)];
        for piece in &turn.pieces {
            frames.push(Self::chunk(turn, &json!({ "content": piece }), None));
        }
        for (index, call) in turn.calls.iter().enumerate() {
            let head = json!({ "tool_calls": [{
                "index": index, "id": call.id, "type": "function",
                "function": { "name": call.name, "arguments": "" },
            }]});
            frames.push(Self::chunk(turn, &head, None));
            for fragment in call.fragments() {
                let delta = json!({ "tool_calls": [{ "index": index, "function": { "arguments": fragment } }] });
                frames.push(Self::chunk(turn, &delta, None));
            }
        }
        let finish = if turn.calls.is_empty() { "stop" } else { "tool_calls" };
        frames.push(Self::chunk(turn, &json!({}), Some(finish)));
        frames.push(sse(
            None,
            &json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": turn.model,
                "choices": [],
                "usage": Self::usage(turn),
            }),
        ));
        frames.push("data: [DONE]\n\n".to_owned());
        (TEXT_EVENT_STREAM, frames)
    }

    fn embeddings(&self, _route: &Route, body: &Value, dims: usize) -> Value {
        let inputs: Vec<String> = match &body["input"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => {
                items.iter().filter_map(Value::as_str).map(str::to_owned).collect()
            }
            _ => Vec::new(),
        };
        let tokens: u64 = inputs.iter().map(|i| i.split_whitespace().count() as u64).sum();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, text)| json!({ "object": "embedding", "index": i, "embedding": hashed_embedding(text, dims) }))
            .collect();
        json!({
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
        })
    }

    fn models(&self, models: &[String]) -> Value {
        let data: Vec<Value> = models
            .iter()
            .map(|id| json!({ "id": id, "object": "model", "created": CREATED, "owned_by": "kai-fake" }))
            .collect();
        json!({ "object": "list", "data": data })
    }
}

pub(crate) const TEXT_EVENT_STREAM: &str = "text/event-stream";
