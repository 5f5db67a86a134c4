//! The Anthropic Messages dialect: `/v1/messages` (JSON, or SSE with `event:` names:
//! `message_start`, `content_block_start`, `ping`, `content_block_delta` with `text_delta` /
//! `input_json_delta`, `content_block_stop`, `message_delta`, `message_stop`), `/v1/models`, and
//! `{"type":"error","error":{"type","message"}}` bodies (529 `overloaded_error`). Auth:
//! `x-api-key`. No embeddings endpoint, as with the real API.

use axum::http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::script::{FakeErrorKind, Turn};
use super::{Dialect, Endpoint, FakeError, Route, sse};

pub(crate) struct Anthropic;

impl Anthropic {
    fn event(name: &str, data: &Value) -> String {
        sse(Some(name), data)
    }

    fn usage(turn: &Turn) -> Value {
        json!({ "input_tokens": turn.prompt_tokens, "output_tokens": turn.completion_tokens })
    }

    fn stop_reason(turn: &Turn) -> &'static str {
        if turn.calls.is_empty() { "end_turn" } else { "tool_use" }
    }
}

impl Dialect for Anthropic {
    fn route(&self, method: &Method, path: &str, body: &Value) -> Option<Route> {
        match (method.as_str(), path) {
            ("POST", "/v1/messages") => {
                let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
                Some(Route::new(Endpoint::Chat, stream))
            }
            ("GET", "/v1/models") => Some(Route::new(Endpoint::Models, false)),
            _ => None,
        }
    }

    fn presented_key(&self, headers: &HeaderMap) -> Option<String> {
        headers.get("x-api-key")?.to_str().ok().map(str::to_owned)
    }

    fn error(&self, error: &FakeError) -> (u16, Value) {
        let (kind, message, status) = match error.kind {
            FakeErrorKind::RateLimited => ("rate_limit_error", error.message.clone(), 429),
            FakeErrorKind::Auth => ("authentication_error", "invalid x-api-key".to_owned(), 401),
            FakeErrorKind::BadRequest => ("invalid_request_error", error.message.clone(), 400),
            FakeErrorKind::ContextLength => (
                "invalid_request_error",
                "prompt is too long: 208310 tokens > 200000 maximum".to_owned(),
                400,
            ),
            FakeErrorKind::Server => ("api_error", "Internal server error".to_owned(), 500),
            FakeErrorKind::Overloaded => ("overloaded_error", "Overloaded".to_owned(), 529),
        };
        let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
        (error.status.unwrap_or(status), body)
    }

    fn last_user_text(&self, body: &Value) -> String {
        let messages = body.get("messages").and_then(Value::as_array);
        let Some(last) = messages.and_then(|m| m.iter().rev().find(|m| m["role"] == "user")) else {
            return String::new();
        };
        match &last["content"] {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter(|b| b["type"] == "text")
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    }

    fn chat(&self, turn: &Turn) -> Value {
        let mut content = Vec::new();
        if !turn.pieces.is_empty() {
            content.push(json!({ "type": "text", "text": turn.text() }));
        }
        for call in &turn.calls {
            let input: Value = serde_json::from_str(&call.arguments).unwrap_or(json!({}));
            content.push(
                json!({ "type": "tool_use", "id": call.id, "name": call.name, "input": input }),
            );
        }
        json!({
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": turn.model,
            "content": content,
            "stop_reason": Self::stop_reason(turn),
            "stop_sequence": null,
            "usage": Self::usage(turn),
        })
    }

    fn chat_stream(&self, turn: &Turn) -> (&'static str, Vec<String>) {
        let mut frames = vec![Self::event(
            "message_start",
            &json!({ "type": "message_start", "message": {
                "id": "msg_fake", "type": "message", "role": "assistant", "model": turn.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": turn.prompt_tokens, "output_tokens": 1 },
            }}),
        )];
        let mut index = 0;
        if !turn.pieces.is_empty() {
            frames.push(Self::event(
                "content_block_start",
                &json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } }),
            ));
            frames.push(Self::event("ping", &json!({ "type": "ping" })));
            for piece in &turn.pieces {
                frames.push(Self::event(
                    "content_block_delta",
                    &json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": piece } }),
                ));
            }
            frames.push(Self::event(
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": index }),
            ));
            index += 1;
        }
        for call in &turn.calls {
            frames.push(Self::event(
                "content_block_start",
                &json!({ "type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": call.id, "name": call.name, "input": {},
                }}),
            ));
            for fragment in call.fragments() {
                frames.push(Self::event(
                    "content_block_delta",
                    &json!({ "type": "content_block_delta", "index": index, "delta": { "type": "input_json_delta", "partial_json": fragment } }),
                ));
            }
            frames.push(Self::event(
                "content_block_stop",
                &json!({ "type": "content_block_stop", "index": index }),
            ));
            index += 1;
        }
        frames.push(Self::event(
            "message_delta",
            &json!({ "type": "message_delta",
                "delta": { "stop_reason": Self::stop_reason(turn), "stop_sequence": null },
                "usage": { "output_tokens": turn.completion_tokens } }),
        ));
        frames.push(Self::event("message_stop", &json!({ "type": "message_stop" })));
        (super::openai::TEXT_EVENT_STREAM, frames)
    }

    fn embeddings(&self, _route: &Route, _body: &Value, _dims: usize) -> Value {
        Value::Null // never routed: the Messages API has no embeddings
    }

    fn models(&self, models: &[String]) -> Value {
        let data: Vec<Value> = models
            .iter()
            .map(|id| json!({ "type": "model", "id": id, "display_name": format!("Fake {id}"), "created_at": "2025-01-01T00:00:00Z" }))
            .collect();
        json!({
            "data": data,
            "has_more": false,
            "first_id": models.first(),
            "last_id": models.last(),
        })
    }
}
