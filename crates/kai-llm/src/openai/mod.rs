//! The OpenAI-compatible adapter: `/chat/completions` (complete and SSE-streamed, with tool-call
//! fragments reassembled by index and usage requested via `stream_options`), `/embeddings` and
//! `/models`, relative to a base URL that includes the version prefix (`http://host:8000/v1`).
//! Covers OpenAI, vLLM, llama.cpp server, LM Studio, TGI and Ollama's `/v1`.

mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use async_trait::async_trait;
use secrecy::SecretString;

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

/// A provider speaking OpenAI's chat-completions API.
#[derive(Debug)]
pub struct OpenAiProvider {
    config: ProviderConfig,
    base: String,
    transport: Transport,
    key: Option<SecretString>,
}

impl OpenAiProvider {
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
        let builder =
            self.transport.keyed_request(method, url, self.key.as_ref(), KeyHeader::Bearer)?;
        Ok(builder)
    }

    fn chat_request(&self, req: &ChatRequest, stream: bool) -> Result<reqwest::Request, LlmError> {
        let model = self.config.pick_model(req.model.as_deref(), false)?;
        let body = wire::chat_body(req, &model, self.config.max_tokens, stream);
        self.transport.build(self.request(reqwest::Method::POST, "/chat/completions")?.json(&body))
    }

    fn provider(&self) -> &str {
        self.transport.provider()
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        self.provider()
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        let http = self.chat_request(&req, false)?;
        let reply: wire::ChatReply =
            self.transport.send_json(http, req.options.cancel.as_ref()).await?;
        let choice = reply
            .choices
            .and_then(|c| c.into_iter().next())
            .ok_or_else(|| LlmError::protocol(self.provider(), "the response has no choices"))?;
        let tool_calls = choice
            .message
            .tool_calls
            .unwrap_or_default()
            .into_iter()
            .zip(0u32..)
            .map(|(call, i)| call.into_tool_call(self.provider(), i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ChatResponse {
            model: reply.model.unwrap_or_default(),
            message: Message::assistant_tool_calls(
                choice.message.content.unwrap_or_default(),
                tool_calls,
            ),
            finish_reason: wire::finish_reason(choice.finish_reason.as_deref()),
            usage: reply.usage.map(Usage::from).unwrap_or_default(),
        })
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, LlmError> {
        let http = self.chat_request(&req, true)?;
        let body = self.transport.send_stream(http, req.options.cancel.as_ref()).await?;
        let decoder = Decoder { provider: self.provider().to_owned(), ..Decoder::default() };
        Ok(Box::pin(ChatChunkStream::new(body, Framing::Sse, decoder)))
    }

    async fn embed(&self, req: EmbedRequest) -> Result<EmbedResponse, LlmError> {
        let model = self.config.pick_model(req.model.as_deref(), true)?;
        let body =
            serde_json::json!({ "model": model, "input": req.inputs, "encoding_format": "float" });
        let http = self
            .transport
            .build(self.request(reqwest::Method::POST, "/embeddings")?.json(&body))?;
        let reply: wire::EmbedReply =
            self.transport.send_json(http, req.options.cancel.as_ref()).await?;
        let mut data = reply.data;
        data.sort_by_key(|d| d.index);
        if data.len() != req.inputs.len() {
            return Err(LlmError::protocol(
                self.provider(),
                format!("{} embeddings for {} inputs", data.len(), req.inputs.len()),
            ));
        }
        Ok(EmbedResponse {
            model: reply.model.unwrap_or(model),
            embeddings: data.into_iter().map(|d| d.embedding).collect(),
            usage: reply.usage.map(Usage::from).unwrap_or_default(),
        })
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        let http = self.transport.build(self.request(reqwest::Method::GET, "/models")?)?;
        let list: wire::ModelList = self.transport.send_json(http, None).await?;
        Ok(list
            .data
            .into_iter()
            .map(|m| ModelInfo { owned_by: m.owned_by, ..ModelInfo::named(m.id) })
            .collect())
    }
}

/// Turns `data:` chunks into neutral chunks; `[DONE]` ends the stream.
#[derive(Debug, Default)]
struct Decoder {
    provider: String,
    model: String,
    finish: Option<FinishReason>,
    usage: Usage,
    calls: ToolCallAssembler,
}

impl Decoder {
    fn done(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), LlmError> {
        let calls = std::mem::take(&mut self.calls);
        let finish = self.finish.unwrap_or(FinishReason::Stop);
        out.push_back(ChatChunk::Done(ChatDone {
            model: std::mem::take(&mut self.model),
            finish_reason: if calls.is_empty() { finish } else { FinishReason::ToolCalls },
            usage: self.usage,
            tool_calls: calls.finish(&self.provider)?,
        }));
        Ok(())
    }
}

impl StreamDecoder for Decoder {
    fn frame(&mut self, frame: Frame, out: &mut VecDeque<ChatChunk>) -> Result<bool, LlmError> {
        if frame.data.trim() == "[DONE]" {
            self.done(out)?;
            return Ok(true);
        }
        let chunk: wire::StreamChunk<'_> = serde_json::from_str(&frame.data)
            .map_err(|e| LlmError::protocol(&self.provider, format!("bad stream chunk: {e}")))?;
        if let Some(error) = &chunk.error {
            return Err(classify_in_stream(&self.provider, wire::error_from_value(error)));
        }
        if let Some(model) = chunk.model.filter(|m| !m.is_empty() && **m != *self.model) {
            self.model = model.into_owned();
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage.into();
        }
        for choice in chunk.choices.unwrap_or_default() {
            if let Some(reason) = choice.finish_reason.as_deref() {
                self.finish = Some(wire::finish_reason(Some(reason)));
            }
            let Some(delta) = choice.delta else { continue };
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push_back(ChatChunk::Text(text));
            }
            for (position, call) in (0u32..).zip(delta.tool_calls.unwrap_or_default()) {
                let (name, arguments) = call
                    .function
                    .map(|f| (f.name, f.arguments.unwrap_or_default()))
                    .unwrap_or_default();
                let delta = ToolCallDelta {
                    index: call.index.unwrap_or(position),
                    id: call.id,
                    name,
                    arguments,
                };
                self.calls.push(&delta);
                out.push_back(ChatChunk::ToolCallDelta(delta));
            }
        }
        Ok(false)
    }

    fn end(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), LlmError> {
        // Some servers close without `[DONE]`; a finish reason proves the answer is complete.
        if self.finish.is_some() {
            return self.done(out);
        }
        Err(LlmError::protocol(&self.provider, "the stream ended before the answer was complete"))
    }
}
