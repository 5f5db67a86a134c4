//! Anthropic Messages wire format: building the request (system prompt as a top-level field,
//! tool results as `tool_result` blocks in user turns, consecutive same-role turns merged),
//! reading responses and error bodies.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::provider::synthetic_id;
use crate::transport::{ErrorBody, ErrorHint};
use crate::types::{ChatRequest, FinishReason, Role, ToolCall, ToolChoice, Usage};

/// Anthropic requires a completion cap; used when neither the request nor the config sets one.
pub(super) const DEFAULT_MAX_TOKENS: u32 = 4096;

pub(super) fn chat_body(req: &ChatRequest, model: &str, max_tokens: u32, stream: bool) -> Value {
    let system: Vec<&str> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System && !m.content.is_empty())
        .map(|m| m.content.as_str())
        .collect();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let (role, blocks) = match m.role {
            Role::System => continue,
            Role::User => ("user", text_block(&m.content).into_iter().collect()),
            Role::Assistant => {
                let mut blocks: Vec<Value> = text_block(&m.content).into_iter().collect();
                blocks.extend(m.tool_calls.iter().map(|c| {
                    json!({ "type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments })
                }));
                ("assistant", blocks)
            }
            Role::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": m.tool_call_id.as_deref().unwrap_or_default(),
                    "content": m.content,
                })],
            ),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    let mut body = json!({ "model": model, "max_tokens": max_tokens, "messages": messages });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.parameters }))
            .collect();
        body["tools"] = Value::Array(tools);
    }
    if let Some(choice) = &req.tool_choice {
        body["tool_choice"] = match choice {
            ToolChoice::Auto => json!({ "type": "auto" }),
            ToolChoice::None => json!({ "type": "none" }),
            ToolChoice::Required => json!({ "type": "any" }),
            ToolChoice::Tool { name } => json!({ "type": "tool", "name": name }),
        };
    }
    let p = &req.params;
    if let Some(t) = p.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(t) = p.top_p {
        body["top_p"] = json!(t);
    }
    if !p.stop.is_empty() {
        body["stop_sequences"] = json!(p.stop);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

/// Anthropic rejects empty text blocks.
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "type": "text", "text": text }))
}

#[derive(Debug, Deserialize)]
pub(super) struct MessageReply {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<Block>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block {
    Text {
        text: String,
    },
    ToolUse {
        #[serde(default)]
        id: Option<String>,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Prompt tokens count cached input too: it is still input the model read.
    pub(super) fn prompt(&self) -> Option<u64> {
        self.input_tokens.map(|i| {
            i + self.cache_creation_input_tokens.unwrap_or(0)
                + self.cache_read_input_tokens.unwrap_or(0)
        })
    }

    pub(super) fn into_usage(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt().unwrap_or(0),
            completion_tokens: self.output_tokens.unwrap_or(0),
        }
    }
}

impl MessageReply {
    pub(super) fn text_and_calls(self) -> (String, Vec<ToolCall>) {
        let mut text = String::new();
        let mut calls = Vec::new();
        for block in self.content {
            match block {
                Block::Text { text: t } => text.push_str(&t),
                Block::ToolUse { id, name, input } => {
                    let index = u32::try_from(calls.len()).unwrap_or(u32::MAX);
                    let arguments =
                        if input.is_null() { Value::Object(serde_json::Map::new()) } else { input };
                    calls.push(ToolCall {
                        id: id.unwrap_or_else(|| synthetic_id(index)),
                        name,
                        arguments,
                    });
                }
                Block::Other => {}
            }
        }
        (text, calls)
    }
}

pub(super) fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        None | Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(_) => FinishReason::Other,
    }
}

/// Reads `{"type":"error","error":{"type","message"}}`.
pub(crate) fn parse_error(body: &[u8]) -> ErrorBody {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => error_from_value(&value),
        Err(_) => ErrorBody {
            message: String::from_utf8_lossy(body).into_owned(),
            ..ErrorBody::default()
        },
    }
}

pub(super) fn error_from_value(value: &Value) -> ErrorBody {
    let error = value.get("error").unwrap_or(value);
    let message = error.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
    let hint = match error.get("type").and_then(Value::as_str).unwrap_or_default() {
        "authentication_error" | "permission_error" => ErrorHint::Auth,
        "rate_limit_error" => ErrorHint::RateLimit,
        "overloaded_error" => ErrorHint::Overloaded,
        _ => ErrorHint::None,
    };
    ErrorBody { message, hint, retry_after: None }
}
