//! OpenAI chat-completions wire types and their conversion from and to the neutral types. Lenient
//! where compatible servers differ (null vs missing fields, arguments as text or object).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::LlmError;
use crate::provider::{parse_arguments, synthetic_id};
use crate::transport::{ErrorBody, ErrorHint};
use crate::types::{
    ChatRequest, FinishReason, Message, Role, ToolCall, ToolChoice, ToolDefinition, Usage,
};

#[derive(Serialize)]
pub(super) struct ChatBody<'a> {
    pub model: &'a str,
    pub messages: Vec<OutMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<OutTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub stop: &'a [String],
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
}

#[derive(Serialize)]
pub(super) struct OutMessage<'a> {
    role: &'static str,
    /// `null` for an assistant turn that only calls tools.
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

pub(super) fn chat_body<'a>(
    req: &'a ChatRequest,
    model: &'a str,
    default_max_tokens: Option<u32>,
    stream: bool,
) -> ChatBody<'a> {
    ChatBody {
        model,
        messages: req.messages.iter().map(out_message).collect(),
        tools: req.tools.iter().map(tool).collect(),
        tool_choice: req.tool_choice.as_ref().map(tool_choice),
        temperature: req.params.temperature,
        top_p: req.params.top_p,
        max_tokens: req.params.max_tokens.or(default_max_tokens),
        stop: &req.params.stop,
        stream,
        stream_options: stream.then(|| json!({ "include_usage": true })),
    }
}

fn out_message(m: &Message) -> OutMessage<'_> {
    let role = match m.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    };
    let only_calls = m.role == Role::Assistant && m.content.is_empty() && !m.tool_calls.is_empty();
    OutMessage {
        role,
        content: (!only_calls).then_some(m.content.as_str()),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments.to_string() },
                })
            })
            .collect(),
        tool_call_id: m.tool_call_id.as_deref(),
    }
}

/// A tool as the request lists it, borrowing the definition: a tool's JSON Schema is
/// serialized where it is, not copied into a `Value` first (every request of a step carries
/// the agent's whole tool list).
#[derive(Serialize)]
pub(super) struct OutTool<'a> {
    r#type: &'static str,
    function: OutFunction<'a>,
}

#[derive(Serialize)]
struct OutFunction<'a> {
    name: &'a str,
    description: &'a str,
    parameters: &'a Value,
}

fn tool(t: &ToolDefinition) -> OutTool<'_> {
    OutTool {
        r#type: "function",
        function: OutFunction {
            name: &t.name,
            description: &t.description,
            parameters: &t.parameters,
        },
    }
}

fn tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool { name } => json!({ "type": "function", "function": { "name": name } }),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatReply {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub choices: Option<Vec<ReplyChoice>>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplyChoice {
    pub message: ReplyMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplyMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ReplyToolCall>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplyToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: ReplyFunction,
}

#[derive(Debug, Deserialize)]
pub(super) struct ReplyFunction {
    pub name: String,
    /// JSON text per the spec; some servers send the object itself.
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub(super) struct WireUsage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens }
    }
}

impl ReplyToolCall {
    pub(super) fn into_tool_call(self, provider: &str, index: u32) -> Result<ToolCall, LlmError> {
        let arguments = match self.function.arguments {
            Value::String(text) => parse_arguments(provider, &self.function.name, &text)?,
            Value::Null => Value::Object(serde_json::Map::new()),
            other => other,
        };
        Ok(ToolCall {
            id: self.id.filter(|id| !id.is_empty()).unwrap_or_else(|| synthetic_id(index)),
            name: self.function.name,
            arguments,
        })
    }
}

pub(super) fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        None | Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::ContentFilter,
        Some(_) => FinishReason::Other,
    }
}

/// One streamed `data:` object.
#[derive(Debug, Deserialize)]
pub(super) struct StreamChunk<'a> {
    /// Repeated in every chunk: borrowed, so it costs nothing unless it changes.
    #[serde(default, borrow)]
    pub model: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub choices: Option<Vec<StreamChoice>>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct StreamChoice {
    #[serde(default)]
    pub delta: Option<Delta>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Delta {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<DeltaToolCall>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DeltaToolCall {
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub function: Option<DeltaFunction>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DeltaFunction {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct EmbedReply {
    pub data: Vec<EmbedItem>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
pub(super) struct EmbedItem {
    #[serde(default)]
    pub index: usize,
    pub embedding: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ModelList {
    pub data: Vec<WireModel>,
}

#[derive(Debug, Deserialize)]
pub(super) struct WireModel {
    pub id: String,
    #[serde(default)]
    pub owned_by: Option<String>,
}

/// Reads OpenAI's `{"error":{"message","type","code"}}` and the variants compatible servers use
/// (`{"error":"text"}`, `{"message":...}`).
pub(crate) fn parse_error(body: &[u8]) -> ErrorBody {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return ErrorBody {
            message: String::from_utf8_lossy(body).into_owned(),
            ..ErrorBody::default()
        };
    };
    error_from_value(&value)
}

pub(super) fn error_from_value(value: &Value) -> ErrorBody {
    let error = value.get("error").unwrap_or(value);
    let message = match error {
        Value::String(s) => s.clone(),
        _ => error.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
    };
    let code = error.get("code").and_then(Value::as_str).unwrap_or_default();
    let kind = error.get("type").and_then(Value::as_str).unwrap_or_default();
    let hint = match (code, kind) {
        ("context_length_exceeded", _) => ErrorHint::ContextLength,
        ("invalid_api_key", _) | (_, "authentication_error") => ErrorHint::Auth,
        ("rate_limit_exceeded", _) => ErrorHint::RateLimit,
        _ => ErrorHint::None,
    };
    ErrorBody { message, hint, retry_after: None }
}
