//! Gemini (Generative Language API, v1beta) wire format: `contents` with `user`/`model` roles and
//! `text` / `functionCall` / `functionResponse` parts, `systemInstruction`, `functionDeclarations`,
//! `generationConfig`; responses with `candidates` and `usageMetadata`; Google RPC error bodies.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::provider::tool_name_for;
use crate::transport::{ErrorBody, ErrorHint};
use crate::types::{ChatRequest, FinishReason, Role, ToolChoice, Usage};

pub(super) fn chat_body(req: &ChatRequest, default_max: Option<u32>) -> Value {
    let system: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System && !m.content.is_empty())
        .map(|m| json!({ "text": m.content }))
        .collect();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let (role, parts) =
            match m.role {
                Role::System => continue,
                Role::User => ("user", text_part(&m.content).into_iter().collect()),
                Role::Assistant => {
                    let mut parts: Vec<Value> = text_part(&m.content).into_iter().collect();
                    parts.extend(m.tool_calls.iter().map(
                        |c| json!({ "functionCall": { "name": c.name, "args": c.arguments } }),
                    ));
                    ("model", parts)
                }
                Role::Tool => {
                    let id = m.tool_call_id.as_deref().unwrap_or_default();
                    let name = tool_name_for(&req.messages, i, id).unwrap_or_else(|| id.to_owned());
                    // `response` must be an object; plain text goes under "output" as Google advises.
                    let response = match serde_json::from_str::<Value>(&m.content) {
                        Ok(Value::Object(map)) => Value::Object(map),
                        _ => json!({ "output": m.content }),
                    };
                    (
                        "user",
                        vec![json!({ "functionResponse": { "name": name, "response": response } })],
                    )
                }
            };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    let contents: Vec<Value> =
        contents.into_iter().map(|(role, parts)| json!({ "role": role, "parts": parts })).collect();
    let mut body = json!({ "contents": contents });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": system });
    }
    if !req.tools.is_empty() {
        let declarations: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "parameters": t.parameters }))
            .collect();
        body["tools"] = json!([{ "functionDeclarations": declarations }]);
    }
    if let Some(choice) = &req.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({ "mode": "AUTO" }),
            ToolChoice::None => json!({ "mode": "NONE" }),
            ToolChoice::Required => json!({ "mode": "ANY" }),
            ToolChoice::Tool { name } => json!({ "mode": "ANY", "allowedFunctionNames": [name] }),
        };
        body["toolConfig"] = json!({ "functionCallingConfig": config });
    }
    let mut generation = Map::new();
    let p = &req.params;
    if let Some(t) = p.temperature {
        generation.insert("temperature".into(), json!(t));
    }
    if let Some(t) = p.top_p {
        generation.insert("topP".into(), json!(t));
    }
    if let Some(n) = p.max_tokens.or(default_max) {
        generation.insert("maxOutputTokens".into(), json!(n));
    }
    if !p.stop.is_empty() {
        generation.insert("stopSequences".into(), json!(p.stop));
    }
    if !generation.is_empty() {
        body["generationConfig"] = Value::Object(generation);
    }
    body
}

fn text_part(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "text": text }))
}

/// A `GenerateContentResponse` (a whole answer, or one streamed chunk).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Reply {
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    #[serde(default)]
    pub usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub model_version: Option<String>,
    #[serde(default)]
    pub prompt_feedback: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Content {
    #[serde(default)]
    pub parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Part {
    #[serde(default)]
    pub text: Option<String>,
    /// Thought summaries are not part of the answer.
    #[serde(default)]
    pub thought: bool,
    #[serde(default)]
    pub function_call: Option<FunctionCall>,
}

#[derive(Debug, Deserialize)]
pub(super) struct FunctionCall {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub args: Value,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
}

impl From<UsageMetadata> for Usage {
    fn from(u: UsageMetadata) -> Self {
        Usage {
            prompt_tokens: u.prompt_token_count,
            completion_tokens: u.candidates_token_count + u.thoughts_token_count,
        }
    }
}

impl Reply {
    /// The first candidate's answer parts (text parts and function calls).
    pub(super) fn parts(self) -> (Option<String>, Vec<Part>) {
        match self.candidates.into_iter().next() {
            Some(c) => (c.finish_reason, c.content.map(|c| c.parts).unwrap_or_default()),
            None => (None, Vec::new()),
        }
    }

    /// The prompt itself was blocked (no candidates at all).
    pub(super) fn blocked(&self) -> bool {
        self.candidates.is_empty()
            && self.prompt_feedback.as_ref().is_some_and(|f| f.get("blockReason").is_some())
    }
}

pub(super) fn finish_reason(reason: Option<&str>, has_calls: bool) -> FinishReason {
    match reason {
        _ if has_calls => FinishReason::ToolCalls,
        None | Some("STOP" | "FINISH_REASON_UNSPECIFIED") => FinishReason::Stop,
        Some("MAX_TOKENS") => FinishReason::Length,
        Some("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII") => {
            FinishReason::ContentFilter
        }
        Some(_) => FinishReason::Other,
    }
}

/// Reads Google's `{"error":{"code","message","status","details":[…]}}` (also wrapped in an
/// array, as the streaming endpoint sends it), including `ErrorInfo.reason` and
/// `RetryInfo.retryDelay`.
pub(crate) fn parse_error(body: &[u8]) -> ErrorBody {
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody {
            message: String::from_utf8_lossy(body).into_owned(),
            ..ErrorBody::default()
        };
    };
    if let Value::Array(items) = &mut value
        && !items.is_empty()
    {
        value = items.swap_remove(0);
    }
    let error = value.get("error").unwrap_or(&value);
    let message = error.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
    let status = error.get("status").and_then(Value::as_str).unwrap_or_default();
    let details = error.get("details").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let reason = details.iter().find_map(|d| d.get("reason").and_then(Value::as_str));
    let retry_after = details
        .iter()
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(|d| d.strip_suffix('s'))
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    let hint = match (status, reason) {
        (_, Some("API_KEY_INVALID" | "API_KEY_EXPIRED")) => ErrorHint::Auth,
        ("UNAUTHENTICATED" | "PERMISSION_DENIED", _) => ErrorHint::Auth,
        ("RESOURCE_EXHAUSTED", _) => ErrorHint::RateLimit,
        ("UNAVAILABLE", _) => ErrorHint::Overloaded,
        _ => ErrorHint::None,
    };
    ErrorBody { message, hint, retry_after }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_error_details_give_hints_and_retry_delay() {
        let body = br#"[{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}]"#;
        let parsed = parse_error(body);
        assert_eq!(parsed.hint, ErrorHint::RateLimit);
        assert_eq!(parsed.retry_after, Some(Duration::from_secs(37)));
        let body = br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#;
        assert_eq!(parse_error(body).hint, ErrorHint::Auth);
        assert_eq!(parse_error(b"<html>").message, "<html>");
    }
}
