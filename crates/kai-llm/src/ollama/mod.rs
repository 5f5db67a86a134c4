//! The native Ollama adapter: `/api/chat` (one JSON object, or NDJSON lines when streaming, the
//! last with `done: true` and the token counts), `/api/embed` and `/api/tags`. Ollama sends tool
//! calls whole, with object arguments and usually without ids (we number them `call_<n>`), and
//! takes tool results keyed by `tool_name`.

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::{ProviderConfig, ProviderKind};
use crate::error::LlmError;
use crate::provider::{ChatStream, Provider, ToolCallAssembler, synthetic_id, tool_name_for};
use crate::transport::classify::classify_in_stream;
use crate::transport::lines::{Frame, Framing};
use crate::transport::{ChatChunkStream, ErrorBody, KeyHeader, StreamDecoder, Transport};
use crate::types::{
    ChatChunk, ChatDone, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, FinishReason,
    Message, ModelInfo, Role, ToolCall, ToolCallDelta, ToolChoice, Usage,
};

/// A provider speaking Ollama's native API.
#[derive(Debug)]
pub struct OllamaProvider {
    config: ProviderConfig,
    base: String,
    transport: Transport,
    key: Option<SecretString>,
}

impl OllamaProvider {
    pub fn new(config: ProviderConfig, key: Option<SecretString>) -> Result<Self, LlmError> {
        let (base, transport) = crate::transport::endpoint(&config, key.clone(), parse_error)?;
        Ok(Self { config, base, transport, key })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, LlmError> {
        let url = format!("{}{path}", self.base);
        let builder =
            self.transport.keyed_request(method, url, self.key.as_ref(), KeyHeader::Bearer)?;
        Ok(builder)
    }

    fn chat_request(&self, req: &ChatRequest, stream: bool) -> Result<reqwest::Request, LlmError> {
        let model = self.config.pick_model(req.model.as_deref(), false)?;
        let body = chat_body(req, &model, self.config.max_tokens, stream);
        self.transport.build(self.request(reqwest::Method::POST, "/api/chat")?.json(&body))
    }

    fn provider(&self) -> &str {
        self.transport.provider()
    }
}

fn chat_body(req: &ChatRequest, model: &str, default_max: Option<u32>, stream: bool) -> Value {
    let messages: Vec<Value> = req
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            };
            let mut out = json!({ "role": role, "content": m.content });
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({ "function": { "name": c.name, "arguments": c.arguments } }))
                    .collect();
                out["tool_calls"] = Value::Array(calls);
            }
            if let Some(name) =
                m.tool_call_id.as_deref().and_then(|id| tool_name_for(&req.messages, i, id))
            {
                out["tool_name"] = json!(name);
            }
            out
        })
        .collect();
    let mut options = Map::new();
    let p = &req.params;
    if let Some(t) = p.temperature {
        options.insert("temperature".into(), json!(t));
    }
    if let Some(t) = p.top_p {
        options.insert("top_p".into(), json!(t));
    }
    if let Some(n) = p.max_tokens.or(default_max) {
        options.insert("num_predict".into(), json!(n));
    }
    if !p.stop.is_empty() {
        options.insert("stop".into(), json!(p.stop));
    }
    let mut body = json!({ "model": model, "messages": messages, "stream": stream });
    // Ollama has no tool_choice: "none" is honoured by not offering tools.
    if !req.tools.is_empty() && req.tool_choice != Some(ToolChoice::None) {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| json!({ "type": "function", "function": { "name": t.name, "description": t.description, "parameters": t.parameters } }))
            .collect();
        body["tools"] = Value::Array(tools);
    }
    if !options.is_empty() {
        body["options"] = Value::Object(options);
    }
    body
}

#[derive(Debug, Deserialize)]
struct ChatLine {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    message: Option<LineMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: u64,
    #[serde(default)]
    eval_count: u64,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct LineMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<LineToolCall>>,
}

#[derive(Debug, Deserialize)]
struct LineToolCall {
    #[serde(default)]
    id: Option<String>,
    function: LineFunction,
}

#[derive(Debug, Deserialize)]
struct LineFunction {
    #[serde(default)]
    index: Option<u32>,
    name: String,
    #[serde(default)]
    arguments: Value,
}

impl ChatLine {
    fn usage(&self) -> Usage {
        Usage { prompt_tokens: self.prompt_eval_count, completion_tokens: self.eval_count }
    }
}

fn finish_reason(reason: Option<&str>, has_calls: bool) -> FinishReason {
    match reason {
        _ if has_calls => FinishReason::ToolCalls,
        None | Some("stop" | "") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some(_) => FinishReason::Other,
    }
}

fn arguments_text(arguments: &Value) -> String {
    match arguments {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Reads `{"error":"text"}`.
fn parse_error(body: &[u8]) -> ErrorBody {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let message = value.as_ref().and_then(|v| v.get("error")).map_or_else(
        || String::from_utf8_lossy(body).into_owned(),
        |e| e.as_str().map_or_else(|| e.to_string(), str::to_owned),
    );
    ErrorBody { message, ..ErrorBody::default() }
}

#[async_trait]
impl Provider for OllamaProvider {
    fn name(&self) -> &str {
        self.provider()
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Ollama
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        let http = self.chat_request(&req, false)?;
        let line: ChatLine = self.transport.send_json(http, req.options.cancel.as_ref()).await?;
        if let Some(error) = &line.error {
            return Err(classify_in_stream(
                self.provider(),
                parse_error(error.to_string().as_bytes()),
            ));
        }
        let usage = line.usage();
        let message = line.message.unwrap_or(LineMessage { content: None, tool_calls: None });
        let calls = message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .zip(0u32..)
            .map(|(c, i)| {
                let index = c.function.index.unwrap_or(i);
                let arguments = match c.function.arguments {
                    Value::String(text) => {
                        crate::provider::parse_arguments(self.provider(), &c.function.name, &text)?
                    }
                    Value::Null => Value::Object(Map::new()),
                    other => other,
                };
                Ok(ToolCall {
                    id: c.id.unwrap_or_else(|| synthetic_id(index)),
                    name: c.function.name,
                    arguments,
                })
            })
            .collect::<Result<Vec<_>, LlmError>>()?;
        Ok(ChatResponse {
            model: line.model.unwrap_or_default(),
            finish_reason: finish_reason(line.done_reason.as_deref(), !calls.is_empty()),
            message: Message::assistant_tool_calls(message.content.unwrap_or_default(), calls),
            usage,
        })
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, LlmError> {
        let http = self.chat_request(&req, true)?;
        let body = self.transport.send_stream(http, req.options.cancel.as_ref()).await?;
        let decoder = Decoder { provider: self.provider().to_owned(), ..Decoder::default() };
        Ok(Box::pin(ChatChunkStream::new(body, Framing::Ndjson, decoder)))
    }

    async fn embed(&self, req: EmbedRequest) -> Result<EmbedResponse, LlmError> {
        #[derive(Deserialize)]
        struct Reply {
            #[serde(default)]
            model: Option<String>,
            embeddings: Vec<Vec<f32>>,
            #[serde(default)]
            prompt_eval_count: u64,
        }
        let model = self.config.pick_model(req.model.as_deref(), true)?;
        let body = json!({ "model": model, "input": req.inputs });
        let http =
            self.transport.build(self.request(reqwest::Method::POST, "/api/embed")?.json(&body))?;
        let reply: Reply = self.transport.send_json(http, req.options.cancel.as_ref()).await?;
        if reply.embeddings.len() != req.inputs.len() {
            return Err(LlmError::protocol(
                self.provider(),
                format!("{} embeddings for {} inputs", reply.embeddings.len(), req.inputs.len()),
            ));
        }
        Ok(EmbedResponse {
            model: reply.model.unwrap_or(model),
            embeddings: reply.embeddings,
            usage: Usage { prompt_tokens: reply.prompt_eval_count, completion_tokens: 0 },
        })
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        #[derive(Deserialize)]
        struct Tags {
            models: Vec<Tag>,
        }
        #[derive(Deserialize)]
        struct Tag {
            name: String,
            #[serde(default)]
            details: Option<Value>,
        }
        let http = self.transport.build(self.request(reqwest::Method::GET, "/api/tags")?)?;
        let tags: Tags = self.transport.send_json(http, None).await?;
        Ok(tags
            .models
            .into_iter()
            .map(|t| {
                let family =
                    t.details.as_ref().and_then(|d| d["family"].as_str()).map(str::to_owned);
                ModelInfo { display_name: family, ..ModelInfo::named(t.name) }
            })
            .collect())
    }
}

/// Turns NDJSON lines into neutral chunks; the `done: true` line ends the stream.
#[derive(Debug, Default)]
struct Decoder {
    provider: String,
    calls: ToolCallAssembler,
    next_index: u32,
}

impl StreamDecoder for Decoder {
    fn frame(&mut self, frame: Frame, out: &mut VecDeque<ChatChunk>) -> Result<bool, LlmError> {
        let line: ChatLine = serde_json::from_str(&frame.data)
            .map_err(|e| LlmError::protocol(&self.provider, format!("bad stream line: {e}")))?;
        if let Some(error) = &line.error {
            let message = error.as_str().map_or_else(|| error.to_string(), str::to_owned);
            return Err(classify_in_stream(
                &self.provider,
                ErrorBody { message, ..ErrorBody::default() },
            ));
        }
        if let Some(message) = &line.message {
            if let Some(text) = message.content.as_deref().filter(|t| !t.is_empty()) {
                out.push_back(ChatChunk::Text(text.to_owned()));
            }
            for call in message.tool_calls.iter().flatten() {
                let index = call.function.index.unwrap_or(self.next_index);
                self.next_index = self.next_index.max(index.saturating_add(1));
                let delta = ToolCallDelta {
                    index,
                    id: Some(call.id.clone().unwrap_or_else(|| synthetic_id(index))),
                    name: Some(call.function.name.clone()),
                    arguments: arguments_text(&call.function.arguments),
                };
                self.calls.push(&delta);
                out.push_back(ChatChunk::ToolCallDelta(delta));
            }
        }
        if !line.done {
            return Ok(false);
        }
        let calls = std::mem::take(&mut self.calls);
        let has_calls = !calls.is_empty();
        out.push_back(ChatChunk::Done(ChatDone {
            model: line.model.clone().unwrap_or_default(),
            finish_reason: finish_reason(line.done_reason.as_deref(), has_calls),
            usage: line.usage(),
            tool_calls: calls.finish(&self.provider)?,
        }));
        Ok(true)
    }

    fn end(&mut self, _out: &mut VecDeque<ChatChunk>) -> Result<(), LlmError> {
        Err(LlmError::protocol(&self.provider, "the stream ended before its `done` line"))
    }
}
