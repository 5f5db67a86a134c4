//! The Anthropic Messages adapter: `/v1/messages` with `x-api-key` and `anthropic-version`,
//! complete or streamed as SSE events (`message_start`, `content_block_start/delta/stop` with
//! `text_delta` and `input_json_delta`, `message_delta`, `message_stop`, `ping`, `error`), and
//! `/v1/models`. Anthropic has no embeddings API: `embed` fails with `unsupported`.

mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;

use crate::config::{ProviderConfig, ProviderKind};
use crate::error::LlmError;
use crate::provider::{ChatStream, Provider, ToolCallAssembler};
use crate::transport::classify::classify_in_stream;
use crate::transport::lines::{Frame, Framing};
use crate::transport::{ChatChunkStream, KeyHeader, StreamDecoder, Transport};
use crate::types::{
    ChatChunk, ChatDone, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, FinishReason,
    Message, ModelInfo, ToolCallDelta, Usage,
};

/// The API version this adapter speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Pages of `/v1/models` read at most.
const MAX_MODEL_PAGES: usize = 20;

/// A provider speaking Anthropic's Messages API.
#[derive(Debug)]
pub struct AnthropicProvider {
    config: ProviderConfig,
    base: String,
    transport: Transport,
    key: Option<SecretString>,
}

impl AnthropicProvider {
    pub fn new(config: ProviderConfig, key: Option<SecretString>) -> Result<Self, LlmError> {
        let (base, transport) =
            crate::transport::endpoint(&config, key.clone(), wire::parse_error)?;
        Ok(Self { config, base, transport, key })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, LlmError> {
        let url = format!("{}{path}", self.base);
        let builder = self.transport.keyed_request(
            method,
            url,
            self.key.as_ref(),
            KeyHeader::Named("x-api-key"),
        )?;
        Ok(builder.header("anthropic-version", ANTHROPIC_VERSION))
    }

    fn chat_request(&self, req: &ChatRequest, stream: bool) -> Result<reqwest::Request, LlmError> {
        let model = self.config.pick_model(req.model.as_deref(), false)?;
        let max_tokens =
            req.params.max_tokens.or(self.config.max_tokens).unwrap_or(wire::DEFAULT_MAX_TOKENS);
        let body = wire::chat_body(req, &model, max_tokens, stream);
        self.transport.build(self.request(reqwest::Method::POST, "/v1/messages")?.json(&body))
    }

    fn provider(&self) -> &str {
        self.transport.provider()
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        self.provider()
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        let http = self.chat_request(&req, false)?;
        let reply: wire::MessageReply =
            self.transport.send_json(http, req.options.cancel.as_ref()).await?;
        let model = reply.model.clone();
        let finish_reason = wire::finish_reason(reply.stop_reason.as_deref());
        let usage = reply.usage.into_usage();
        let (text, calls) = reply.text_and_calls();
        Ok(ChatResponse {
            model,
            message: Message::assistant_tool_calls(text, calls),
            finish_reason,
            usage,
        })
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, LlmError> {
        let http = self.chat_request(&req, true)?;
        let body = self.transport.send_stream(http, req.options.cancel.as_ref()).await?;
        let decoder = Decoder { provider: self.provider().to_owned(), ..Decoder::default() };
        Ok(Box::pin(ChatChunkStream::new(body, Framing::Sse, decoder)))
    }

    async fn embed(&self, _req: EmbedRequest) -> Result<EmbedResponse, LlmError> {
        Err(LlmError::unsupported(
            self.provider(),
            "embeddings (Anthropic has no embeddings API; route embeddings to another provider)",
        ))
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        #[derive(Deserialize)]
        struct Page {
            data: Vec<Model>,
            #[serde(default)]
            has_more: bool,
            #[serde(default)]
            last_id: Option<String>,
        }
        #[derive(Deserialize)]
        struct Model {
            id: String,
            #[serde(default)]
            display_name: Option<String>,
        }
        let mut models = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_MODEL_PAGES {
            let mut builder =
                self.request(reqwest::Method::GET, "/v1/models")?.query(&[("limit", "1000")]);
            if let Some(after) = &after {
                builder = builder.query(&[("after_id", after)]);
            }
            let page: Page = self.transport.send_json(self.transport.build(builder)?, None).await?;
            models.extend(
                page.data
                    .into_iter()
                    .map(|m| ModelInfo { display_name: m.display_name, ..ModelInfo::named(m.id) }),
            );
            match page.last_id {
                Some(last) if page.has_more => after = Some(last),
                _ => break,
            }
        }
        Ok(models)
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: wire::Block,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {},
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: wire::WireUsage,
    },
    MessageStop {},
    Ping {},
    Error {
        error: Value,
    },
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: wire::WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Turns Messages stream events into neutral chunks; `message_stop` ends the stream.
#[derive(Debug, Default)]
struct Decoder {
    provider: String,
    model: String,
    usage: Usage,
    finish: Option<FinishReason>,
    /// Content block index → tool call index (tool calls are numbered among tool blocks only).
    tool_blocks: HashMap<u32, u32>,
    calls: ToolCallAssembler,
}

impl StreamDecoder for Decoder {
    fn frame(&mut self, frame: Frame, out: &mut VecDeque<ChatChunk>) -> Result<bool, LlmError> {
        let value: Value = serde_json::from_str(&frame.data)
            .map_err(|e| LlmError::protocol(&self.provider, format!("bad stream event: {e}")))?;
        let kind = value.get("type").and_then(Value::as_str).unwrap_or_default().to_owned();
        let known = [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
            "ping",
            "error",
        ];
        if !known.contains(&kind.as_str()) {
            return Ok(false); // new event types are ignorable by Anthropic's versioning policy
        }
        let event: Event = serde_json::from_value(value)
            .map_err(|e| LlmError::protocol(&self.provider, format!("bad {kind} event: {e}")))?;
        match event {
            Event::MessageStart { message } => {
                self.model = message.model;
                self.usage.prompt_tokens = message.usage.prompt().unwrap_or(0);
                self.usage.completion_tokens = message.usage.output_tokens.unwrap_or(0);
            }
            Event::ContentBlockStart { index, content_block } => match content_block {
                wire::Block::Text { text } if !text.is_empty() => {
                    out.push_back(ChatChunk::Text(text))
                }
                wire::Block::ToolUse { id, name, input } => {
                    let call = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                    self.tool_blocks.insert(index, call);
                    // The start block carries `input: {}`; the arguments follow as deltas.
                    let initial = match input {
                        Value::Object(m) if !m.is_empty() => Value::Object(m).to_string(),
                        _ => String::new(),
                    };
                    self.push_call(out, call, id, Some(name), initial);
                }
                wire::Block::Text { .. } | wire::Block::Other => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => {
                    out.push_back(ChatChunk::Text(text))
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    let Some(&call) = self.tool_blocks.get(&index) else {
                        return Err(LlmError::protocol(
                            &self.provider,
                            format!("input_json_delta for block {index}, which is not a tool_use"),
                        ));
                    };
                    self.push_call(out, call, None, None, partial_json);
                }
                BlockDelta::TextDelta { .. } | BlockDelta::Other => {}
            },
            Event::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.stop_reason {
                    self.finish = Some(wire::finish_reason(Some(&reason)));
                }
                if let Some(prompt) = usage.prompt() {
                    self.usage.prompt_tokens = prompt;
                }
                if let Some(output) = usage.output_tokens {
                    self.usage.completion_tokens = output; // cumulative
                }
            }
            Event::MessageStop {} => {
                let calls = std::mem::take(&mut self.calls).finish(&self.provider)?;
                out.push_back(ChatChunk::Done(ChatDone {
                    model: std::mem::take(&mut self.model),
                    finish_reason: self.finish.unwrap_or(FinishReason::Stop),
                    usage: self.usage,
                    tool_calls: calls,
                }));
                return Ok(true);
            }
            Event::Error { error } => {
                return Err(classify_in_stream(&self.provider, wire::error_from_value(&error)));
            }
            Event::ContentBlockStop {} | Event::Ping {} => {}
        }
        Ok(false)
    }

    fn end(&mut self, _out: &mut VecDeque<ChatChunk>) -> Result<(), LlmError> {
        Err(LlmError::protocol(&self.provider, "the stream ended before message_stop"))
    }
}

impl Decoder {
    fn push_call(
        &mut self,
        out: &mut VecDeque<ChatChunk>,
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    ) {
        let delta = ToolCallDelta { index, id, name, arguments };
        self.calls.push(&delta);
        out.push_back(ChatChunk::ToolCallDelta(delta));
    }
}
