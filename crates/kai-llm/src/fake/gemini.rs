//! The Gemini dialect: `/v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`
//! (SSE `data:` chunks separated by CRLF, each a whole `GenerateContentResponse`, the last with
//! `finishReason`; no terminator), `:embedContent`, `:batchEmbedContents`, `/v1beta/models`, and
//! Google RPC error bodies (`{"error":{"code","message","status","details"}}`). Auth:
//! `x-goog-api-key`.

use axum::http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::script::{FakeErrorKind, Turn};
use super::{Dialect, Endpoint, FakeError, Route, hashed_embedding};

pub(crate) struct Gemini;

impl Gemini {
    fn usage(turn: &Turn) -> Value {
        json!({
            "promptTokenCount": turn.prompt_tokens,
            "candidatesTokenCount": turn.completion_tokens,
            "totalTokenCount": turn.prompt_tokens + turn.completion_tokens,
        })
    }

    fn chunk(turn: &Turn, parts: &Value, finish: Option<&str>, usage: Value) -> String {
        let mut candidate = json!({ "content": { "parts": parts, "role": "model" }, "index": 0 });
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        let body = json!({
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": turn.model,
            "responseId": "fake-response",
        });
        format!("data: {body}\r\n\r\n")
    }

    fn call_part(call: &super::FakeToolCall) -> Value {
        let args: Value = serde_json::from_str(&call.arguments).unwrap_or(json!({}));
        json!({ "functionCall": { "name": call.name, "args": args } })
    }

    fn texts(content: &Value) -> Vec<String> {
        let parts = content.get("parts").and_then(Value::as_array);
        parts.into_iter().flatten().filter_map(|p| p["text"].as_str()).map(str::to_owned).collect()
    }
}

impl Dialect for Gemini {
    fn route(&self, method: &Method, path: &str, _body: &Value) -> Option<Route> {
        if method == Method::GET && path == "/v1beta/models" {
            return Some(Route::new(Endpoint::Models, false));
        }
        let rest = path.strip_prefix("/v1beta/models/")?;
        let (model, action) = rest.rsplit_once(':')?;
        let mut route = match (method.as_str(), action) {
            ("POST", "generateContent") => Route::new(Endpoint::Chat, false),
            ("POST", "streamGenerateContent") => Route::new(Endpoint::Chat, true),
            ("POST", "embedContent") => Route::new(Endpoint::Embed, false),
            ("POST", "batchEmbedContents") => {
                Route { batch: true, ..Route::new(Endpoint::Embed, false) }
            }
            _ => return None,
        };
        route.model = Some(model.to_owned());
        Some(route)
    }

    fn presented_key(&self, headers: &HeaderMap) -> Option<String> {
        headers.get("x-goog-api-key")?.to_str().ok().map(str::to_owned)
    }

    fn error(&self, error: &FakeError) -> (u16, Value) {
        let (status, code, message, details) = match error.kind {
            FakeErrorKind::RateLimited => {
                ("RESOURCE_EXHAUSTED", 429, error.message.clone(), json!([]))
            }
            FakeErrorKind::Auth => (
                "INVALID_ARGUMENT",
                400,
                "API key not valid. Please pass a valid API key.".to_owned(),
                json!([{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com" }]),
            ),
            FakeErrorKind::BadRequest => ("INVALID_ARGUMENT", 400, error.message.clone(), json!([])),
            FakeErrorKind::ContextLength => (
                "INVALID_ARGUMENT",
                400,
                "The input token count (1050000) exceeds the maximum number of tokens allowed (1048576).".to_owned(),
                json!([]),
            ),
            FakeErrorKind::Server => ("INTERNAL", 500, "An internal error has occurred.".to_owned(), json!([])),
            FakeErrorKind::Overloaded => {
                ("UNAVAILABLE", 503, "The model is overloaded. Please try again later.".to_owned(), json!([]))
            }
        };
        let code = error.status.unwrap_or(code);
        let body = json!({ "error": { "code": code, "message": message, "status": status, "details": details } });
        (code, body)
    }

    fn last_user_text(&self, body: &Value) -> String {
        let contents = body.get("contents").and_then(Value::as_array);
        contents
            .and_then(|c| {
                c.iter().rev().find(|c| c["role"] == "user" && !Self::texts(c).is_empty())
            })
            .map(|c| Self::texts(c).join(" "))
            .unwrap_or_default()
    }

    fn chat(&self, turn: &Turn) -> Value {
        let mut parts = Vec::new();
        if !turn.pieces.is_empty() {
            parts.push(json!({ "text": turn.text() }));
        }
        parts.extend(turn.calls.iter().map(Self::call_part));
        json!({
            "candidates": [{ "content": { "parts": parts, "role": "model" }, "finishReason": "STOP", "index": 0 }],
            "usageMetadata": Self::usage(turn),
            "modelVersion": turn.model,
            "responseId": "fake-response",
        })
    }

    fn chat_stream(&self, turn: &Turn) -> (&'static str, Vec<String>) {
        let partial = json!({ "promptTokenCount": turn.prompt_tokens, "totalTokenCount": turn.prompt_tokens });
        let mut frames: Vec<String> = turn
            .pieces
            .iter()
            .map(|p| Self::chunk(turn, &json!([{ "text": p }]), None, partial.clone()))
            .collect();
        frames.extend(
            turn.calls
                .iter()
                .map(|c| Self::chunk(turn, &json!([Self::call_part(c)]), None, partial.clone())),
        );
        frames.push(Self::chunk(turn, &json!([{ "text": "" }]), Some("STOP"), Self::usage(turn)));
        (super::openai::TEXT_EVENT_STREAM, frames)
    }

    fn embeddings(&self, route: &Route, body: &Value, dims: usize) -> Value {
        if route.batch {
            let requests = body.get("requests").and_then(Value::as_array);
            let embeddings: Vec<Value> = requests
                .into_iter()
                .flatten()
                .map(|r| json!({ "values": hashed_embedding(&Self::texts(&r["content"]).join(" "), dims) }))
                .collect();
            json!({ "embeddings": embeddings })
        } else {
            let text = Self::texts(&body["content"]).join(" ");
            json!({ "embedding": { "values": hashed_embedding(&text, dims) } })
        }
    }

    fn models(&self, models: &[String]) -> Value {
        let models: Vec<Value> = models
            .iter()
            .map(|id| {
                json!({
                    "name": format!("models/{id}"),
                    "version": "001",
                    "displayName": format!("Fake {id}"),
                    "description": "A fake model.",
                    "inputTokenLimit": 1_048_576,
                    "outputTokenLimit": 8192,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                })
            })
            .collect();
        json!({ "models": models })
    }
}
