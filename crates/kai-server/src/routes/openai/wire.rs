//! The OpenAI chat wire format the node accepts and answers: messages (text or text parts,
//! assistant tool calls, tool results), tool definitions, `tool_choice` and `stop`, converted
//! explicitly to and from the provider-neutral `kai_llm` types with a clear 400 for anything else.

use kai_llm::{Message, ToolChoice, ToolDefinition};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};

/// A chat message as OpenAI clients send it: text content (a string or text parts), an
/// assistant's `tool_calls`, or a `tool` result naming its `tool_call_id`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct WireMessage {
    pub role: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub content: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tool_calls: Vec<WireToolCall>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A tool call as OpenAI sends it: arguments are a JSON *string*.
#[derive(Deserialize)]
pub struct WireToolCall {
    pub id: String,
    pub function: WireFunctionCall,
}

#[derive(Deserialize)]
pub struct WireFunctionCall {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

/// A tool offered to the model: `{"type":"function","function":{name, description, parameters}}`.
#[derive(Deserialize)]
pub struct WireTool {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: WireFunction,
}

#[derive(Deserialize)]
pub struct WireFunction {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// The subset of OpenAI's chat request the node honours; other fields are accepted and ignored.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    /// A persona name from `GET /v1/models`.
    pub model: String,
    pub messages: Vec<WireMessage>,
    #[serde(default)]
    pub stream: bool,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Newer clients send this instead of `max_tokens`.
    pub max_completion_tokens: Option<u32>,
    /// A string or up to four strings.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub stop: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<WireTool>,
    /// `"auto"`, `"none"`, `"required"` or `{"type":"function","function":{"name":…}}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tool_choice: Option<Value>,
}

/// Most tools one request may offer.
pub(super) const MAX_TOOLS: usize = 128;

/// Message text: a string, or the text parts of a content array.
pub(super) fn text_of(content: Option<Value>) -> ApiResult<String> {
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match (p["type"].as_str(), p["text"].as_str()) {
                (Some("text"), Some(t)) => Ok(t),
                _ => Err(ApiError::BadRequest(
                    "only text content parts are supported ({\"type\":\"text\",\"text\":…})".into(),
                )),
            })
            .collect::<ApiResult<Vec<&str>>>()
            .map(|t| t.concat()),
        Some(_) => Err(ApiError::BadRequest("content is a string or a list of text parts".into())),
    }
}

pub(super) fn to_message(m: WireMessage) -> ApiResult<Message> {
    let content = text_of(m.content)?;
    Ok(match m.role.as_str() {
        "system" | "developer" => Message::system(content),
        "user" => Message::user(content),
        "assistant" if m.tool_calls.is_empty() => Message::assistant(content),
        "assistant" => {
            let calls = m
                .tool_calls
                .into_iter()
                .map(|c| {
                    let arguments = if c.function.arguments.trim().is_empty() {
                        json!({})
                    } else {
                        serde_json::from_str(&c.function.arguments).map_err(|e| {
                            ApiError::BadRequest(format!(
                                "arguments of tool call {:?} are not JSON: {e}",
                                c.id
                            ))
                        })?
                    };
                    Ok(kai_llm::ToolCall { id: c.id, name: c.function.name, arguments })
                })
                .collect::<ApiResult<Vec<_>>>()?;
            Message::assistant_tool_calls(content, calls)
        }
        "tool" => {
            let id = m.tool_call_id.filter(|i| !i.is_empty()).ok_or_else(|| {
                ApiError::BadRequest("a tool message needs the tool_call_id it answers".into())
            })?;
            Message::tool_result(id, content)
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "message role {other:?} is not supported; use system, user, assistant or tool"
            )));
        }
    })
}

pub(super) fn to_tools(tools: Vec<WireTool>) -> ApiResult<Vec<ToolDefinition>> {
    if tools.len() > MAX_TOOLS {
        return Err(ApiError::BadRequest(format!("at most {MAX_TOOLS} tools per request")));
    }
    tools
        .into_iter()
        .map(|t| {
            if t.kind.as_deref().is_some_and(|k| k != "function") {
                return Err(ApiError::BadRequest(
                    "only tools of type \"function\" are supported".into(),
                ));
            }
            let name = t.function.name;
            let valid = (1..=64).contains(&name.len())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(ApiError::BadRequest(format!(
                    "tool name {name:?}: 1 to 64 of a-z, A-Z, 0-9, _ and -"
                )));
            }
            let parameters = t
                .function
                .parameters
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            if !parameters.is_object() {
                return Err(ApiError::BadRequest(format!(
                    "tool {name:?}: parameters is a JSON Schema object"
                )));
            }
            Ok(ToolDefinition {
                name,
                description: t.function.description,
                parameters: parameters.into(),
            })
        })
        .collect()
}

pub(super) fn to_tool_choice(choice: Option<Value>) -> ApiResult<Option<ToolChoice>> {
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "tool_choice {other:?}: use auto, none, required or a function"
                )));
            }
        }),
        Some(v) => match v["function"]["name"].as_str() {
            Some(name) => Some(ToolChoice::Tool { name: name.to_owned() }),
            None => {
                return Err(ApiError::BadRequest(
                    "tool_choice object is {\"type\":\"function\",\"function\":{\"name\":…}}"
                        .into(),
                ));
            }
        },
    })
}

pub(super) fn to_stop(stop: Option<Value>) -> ApiResult<Vec<String>> {
    let stops = match stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::BadRequest("stop is a string or a list of strings".into()))?,
        Some(_) => {
            return Err(ApiError::BadRequest("stop is a string or a list of strings".into()));
        }
    };
    if stops.len() > 4 || stops.iter().any(|s| s.is_empty() || s.len() > 256) {
        return Err(ApiError::BadRequest(
            "stop holds up to 4 non-empty strings of at most 256 bytes".into(),
        ));
    }
    Ok(stops)
}

/// OpenAI's wire shape of a finished tool call (arguments as a JSON string).
pub(super) fn wire_tool_call(c: &kai_llm::ToolCall) -> Value {
    json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments.to_string()}})
}

/// The assistant message in OpenAI's shape (`content` null when it only calls tools).
pub(super) fn assistant_message(m: &Message) -> Value {
    if m.tool_calls.is_empty() {
        return json!({"role": "assistant", "content": m.content});
    }
    let content = if m.content.is_empty() { Value::Null } else { json!(m.content) };
    json!({"role": "assistant", "content": content, "tool_calls": m.tool_calls.iter().map(wire_tool_call).collect::<Vec<_>>()})
}

/// The `chat.completion.chunk` events of one streamed reply. Each event is serialized
/// straight from borrowed parts: a reply streams one event per token run, so building a
/// `Value` tree per event (and copying the id and model into it) was the proxy's main cost
/// per token after the socket writes.
pub(super) struct Chunks {
    pub id: String,
    pub created: i64,
    pub model: String,
}

#[derive(serde::Serialize)]
struct ChunkEvent<'a, D> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [ChunkChoice<'a, D>; 1],
}

#[derive(serde::Serialize)]
struct ChunkChoice<'a, D> {
    index: u32,
    delta: D,
    finish_reason: Option<&'a str>,
}

/// A delta that only carries text.
#[derive(serde::Serialize)]
pub(super) struct TextDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    pub content: &'a str,
}

impl Chunks {
    /// One event's data: `delta` under the reply's id, creation time and model.
    pub(super) fn event<D: serde::Serialize>(
        &self,
        delta: D,
        finish_reason: Option<&str>,
    ) -> String {
        let event = ChunkEvent {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: [ChunkChoice { index: 0, delta, finish_reason }],
        };
        // Strings, numbers and `Value`s always serialize.
        serde_json::to_string(&event).unwrap_or_default()
    }
}
