//! The native Ollama dialect: `/api/chat` (one JSON object, or NDJSON lines when `stream` is true
//! or absent, the last with `done: true`, `done_reason` and the eval counts; tool calls arrive
//! whole with object arguments), `/api/embed`, `/api/tags`, and `{"error":"..."}` bodies. Ollama
//! has no auth; a bearer token is read for proxies that add one.

use axum::http::{HeaderMap, Method, header};
use serde_json::{Value, json};

use super::script::{FakeErrorKind, Turn};
use super::{Dialect, Endpoint, FakeError, Route, hashed_embedding};

pub(crate) struct Ollama;

const CREATED_AT: &str = "2025-01-01T00:00:00.000000Z";

impl Ollama {
    fn line(turn: &Turn, message: &Value, done: bool) -> String {
        let mut line = json!({
            "model": turn.model,
            "created_at": CREATED_AT,
            "message": message,
            "done": done,
        });
        if done {
            let reason = "stop";
            line["done_reason"] = json!(reason);
            line["total_duration"] = json!(1_000_000);
            line["load_duration"] = json!(1_000);
            line["prompt_eval_count"] = json!(turn.prompt_tokens);
            line["eval_count"] = json!(turn.completion_tokens);
        }
        format!("{line}\n")
    }

    fn tool_calls(turn: &Turn) -> Vec<Value> {
        turn.calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let arguments: Value = serde_json::from_str(&c.arguments).unwrap_or(Value::Null);
                json!({ "function": { "index": i, "name": c.name, "arguments": arguments } })
            })
            .collect()
    }
}

impl Dialect for Ollama {
    fn route(&self, method: &Method, path: &str, body: &Value) -> Option<Route> {
        match (method.as_str(), path) {
            ("POST", "/api/chat") => {
                let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(true);
                Some(Route::new(Endpoint::Chat, stream))
            }
            ("POST", "/api/embed") => Some(Route::new(Endpoint::Embed, false)),
            ("GET", "/api/tags") => Some(Route::new(Endpoint::Models, false)),
            _ => None,
        }
    }

    fn presented_key(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        value.strip_prefix("Bearer ").map(str::to_owned)
    }

    fn error(&self, error: &FakeError) -> (u16, Value) {
        let message = match error.kind {
            FakeErrorKind::ContextLength => {
                "the input length exceeds the context length".to_owned()
            }
            _ => error.message.clone(),
        };
        (error.default_status(), json!({ "error": message }))
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
        let mut message = json!({ "role": "assistant", "content": turn.text() });
        if !turn.calls.is_empty() {
            message["tool_calls"] = Value::Array(Self::tool_calls(turn));
        }
        let line = Self::line(turn, &message, true);
        serde_json::from_str(line.trim_end()).unwrap_or(Value::Null)
    }

    fn chat_stream(&self, turn: &Turn) -> (&'static str, Vec<String>) {
        let mut frames: Vec<String> = turn
            .pieces
            .iter()
            .map(|p| Self::line(turn, &json!({ "role": "assistant", "content": p }), false))
            .collect();
        if !turn.calls.is_empty() {
            let message =
                json!({ "role": "assistant", "content": "", "tool_calls": Self::tool_calls(turn) });
            frames.push(Self::line(turn, &message, false));
        }
        frames.push(Self::line(turn, &json!({ "role": "assistant", "content": "" }), true));
        ("application/x-ndjson", frames)
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
        let embeddings: Vec<Vec<f32>> = inputs.iter().map(|t| hashed_embedding(t, dims)).collect();
        json!({
            "model": body["model"],
            "embeddings": embeddings,
            "total_duration": 1_000_000,
            "load_duration": 1_000,
            "prompt_eval_count": tokens,
        })
    }

    fn models(&self, models: &[String]) -> Value {
        let models: Vec<Value> = models
            .iter()
            .map(|name| {
                json!({
                    "name": name,
                    "model": name,
                    "modified_at": CREATED_AT,
                    "size": 1_000_000,
                    "digest": "0".repeat(64),
                    "details": {
                        "parent_model": "",
                        "format": "gguf",
                        "family": "fake",
                        "families": ["fake"],
                        "parameter_size": "1M",
                        "quantization_level": "Q4_0",
                    },
                })
            })
            .collect();
        json!({ "models": models })
    }
}
