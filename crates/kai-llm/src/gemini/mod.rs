//! The Gemini adapter: `/v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse` (each SSE chunk a whole `GenerateContentResponse`; the stream
//! ends with the body), `:embedContent` / `:batchEmbedContents`, and `/v1beta/models`, with the
//! key in `x-goog-api-key` (never in the URL). Gemini sends function calls whole and without ids
//! unless it has them; we number them `call_<n>`.

mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ProviderConfig, ProviderKind};
use crate::error::LlmError;
use crate::provider::{ChatStream, Provider, ToolCallAssembler, synthetic_id};
use crate::transport::lines::{Frame, Framing};
use crate::transport::{ChatChunkStream, KeyHeader, StreamDecoder, Transport};
use crate::types::{
    ChatChunk, ChatDone, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, FinishReason,
    Message, ModelInfo, ToolCall, ToolCallDelta, Usage,
};

/// Pages of `/v1beta/models` read at most.
const MAX_MODEL_PAGES: usize = 20;

/// A provider speaking Google's Generative Language API.
#[derive(Debug)]
pub struct GeminiProvider {
    config: ProviderConfig,
    base: String,
    transport: Transport,
    key: Option<SecretString>,
}

impl GeminiProvider {
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
            KeyHeader::Named("x-goog-api-key"),
        )?;
        Ok(builder)
    }

    /// `/v1beta/models/{model}:{method}`; a model given as `models/x` or `tunedModels/x` keeps its
    /// collection.
    fn model_path(model: &str, method: &str) -> String {
        if model.contains('/') {
            format!("/v1beta/{model}:{method}")
        } else {
            format!("/v1beta/models/{model}:{method}")
        }
    }

    fn chat_request(&self, req: &ChatRequest, stream: bool) -> Result<reqwest::Request, LlmError> {
        let model = self.config.pick_model(req.model.as_deref(), false)?;
        let body = wire::chat_body(req, self.config.max_tokens);
        let path = if stream {
            Self::model_path(&model, "streamGenerateContent") + "?alt=sse"
        } else {
            Self::model_path(&model, "generateContent")
        };
        self.transport.build(self.request(reqwest::Method::POST, &path)?.json(&body))
    }

    fn provider(&self) -> &str {
        self.transport.provider()
    }
}

#[async_trait]
impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        self.provider()
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        let model = self.config.pick_model(req.model.as_deref(), false)?;
        let http = self.chat_request(&req, false)?;
        let reply: wire::Reply =
            self.transport.send_json(http, req.options.cancel.as_ref()).await?;
        let blocked = reply.blocked();
        let usage = reply.usage_metadata.map(Usage::from).unwrap_or_default();
        let model = reply.model_version.clone().unwrap_or(model);
        let (finish, parts) = reply.parts();
        let mut text = String::new();
        let mut calls = Vec::new();
        for part in parts {
            if let Some(t) = part.text.filter(|_| !part.thought) {
                text.push_str(&t);
            }
            if let Some(call) = part.function_call {
                let index = u32::try_from(calls.len()).unwrap_or(u32::MAX);
                calls.push(ToolCall {
                    id: call.id.unwrap_or_else(|| synthetic_id(index)),
                    name: call.name,
                    arguments: if call.args.is_null() { json!({}) } else { call.args },
                });
            }
        }
        let finish_reason = if blocked {
            FinishReason::ContentFilter
        } else {
            wire::finish_reason(finish.as_deref(), !calls.is_empty())
        };
        Ok(ChatResponse {
            model,
            message: Message::assistant_tool_calls(text, calls),
            finish_reason,
            usage,
        })
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, LlmError> {
        let model = self.config.pick_model(req.model.as_deref(), false)?;
        let http = self.chat_request(&req, true)?;
        let body = self.transport.send_stream(http, req.options.cancel.as_ref()).await?;
        let decoder = Decoder { provider: self.provider().to_owned(), model, ..Decoder::default() };
        Ok(Box::pin(ChatChunkStream::new(body, Framing::Sse, decoder)))
    }

    async fn embed(&self, req: EmbedRequest) -> Result<EmbedResponse, LlmError> {
        #[derive(Deserialize)]
        struct Values {
            values: Vec<f32>,
        }
        #[derive(Deserialize)]
        struct Single {
            embedding: Values,
        }
        #[derive(Deserialize)]
        struct Batch {
            embeddings: Vec<Values>,
        }
        let model = self.config.pick_model(req.model.as_deref(), true)?;
        let cancel = req.options.cancel.as_ref();
        let content = |text: &str| json!({ "parts": [{ "text": text }] });
        let embeddings = if let [single] = req.inputs.as_slice() {
            let body = json!({ "content": content(single) });
            let path = Self::model_path(&model, "embedContent");
            let http =
                self.transport.build(self.request(reqwest::Method::POST, &path)?.json(&body))?;
            let reply: Single = self.transport.send_json(http, cancel).await?;
            vec![reply.embedding.values]
        } else {
            let qualified =
                if model.contains('/') { model.clone() } else { format!("models/{model}") };
            let requests: Vec<Value> = req
                .inputs
                .iter()
                .map(|text| json!({ "model": qualified, "content": content(text) }))
                .collect();
            let body = json!({ "requests": requests });
            let path = Self::model_path(&model, "batchEmbedContents");
            let http =
                self.transport.build(self.request(reqwest::Method::POST, &path)?.json(&body))?;
            let reply: Batch = self.transport.send_json(http, cancel).await?;
            reply.embeddings.into_iter().map(|e| e.values).collect()
        };
        if embeddings.len() != req.inputs.len() {
            return Err(LlmError::protocol(
                self.provider(),
                format!("{} embeddings for {} inputs", embeddings.len(), req.inputs.len()),
            ));
        }
        // Gemini reports no token counts for embeddings.
        Ok(EmbedResponse { model, embeddings, usage: Usage::default() })
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            models: Vec<Model>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Model {
            name: String,
            #[serde(default)]
            display_name: Option<String>,
            #[serde(default)]
            input_token_limit: Option<u64>,
        }
        let mut models = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_MODEL_PAGES {
            let mut builder = self
                .request(reqwest::Method::GET, "/v1beta/models")?
                .query(&[("pageSize", "1000")]);
            if let Some(token) = &token {
                builder = builder.query(&[("pageToken", token)]);
            }
            let page: Page = self.transport.send_json(self.transport.build(builder)?, None).await?;
            models.extend(page.models.into_iter().map(|m| ModelInfo {
                id: m.name.strip_prefix("models/").unwrap_or(&m.name).to_owned(),
                display_name: m.display_name,
                owned_by: None,
                context_window: m.input_token_limit,
            }));
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => break,
            }
        }
        Ok(models)
    }
}

/// Turns streamed `GenerateContentResponse` chunks into neutral chunks; the end of the body ends
/// the answer.
#[derive(Debug, Default)]
struct Decoder {
    provider: String,
    model: String,
    usage: Usage,
    finish: Option<String>,
    blocked: bool,
    chunks: usize,
    calls: ToolCallAssembler,
    next_call: u32,
}

impl StreamDecoder for Decoder {
    fn frame(&mut self, frame: Frame, out: &mut VecDeque<ChatChunk>) -> Result<bool, LlmError> {
        let value: Value = serde_json::from_str(&frame.data)
            .map_err(|e| LlmError::protocol(&self.provider, format!("bad stream chunk: {e}")))?;
        if value.get("error").is_some() {
            let body = wire::parse_error(frame.data.as_bytes());
            return Err(crate::transport::classify::classify_in_stream(&self.provider, body));
        }
        let reply: wire::Reply = serde_json::from_value(value)
            .map_err(|e| LlmError::protocol(&self.provider, format!("bad stream chunk: {e}")))?;
        self.chunks += 1;
        self.blocked |= reply.blocked();
        if let Some(usage) = reply.usage_metadata {
            self.usage = usage.into();
        }
        if let Some(version) = reply.model_version.clone() {
            self.model = version;
        }
        let (finish, parts) = reply.parts();
        if finish.is_some() {
            self.finish = finish;
        }
        for part in parts {
            if let Some(text) = part.text.filter(|t| !t.is_empty() && !part.thought) {
                out.push_back(ChatChunk::Text(text));
            }
            if let Some(call) = part.function_call {
                let index = self.next_call;
                self.next_call = self.next_call.saturating_add(1);
                let delta = ToolCallDelta {
                    index,
                    id: Some(call.id.unwrap_or_else(|| synthetic_id(index))),
                    name: Some(call.name),
                    arguments: if call.args.is_null() {
                        String::new()
                    } else {
                        call.args.to_string()
                    },
                };
                self.calls.push(&delta);
                out.push_back(ChatChunk::ToolCallDelta(delta));
            }
        }
        Ok(false)
    }

    fn end(&mut self, out: &mut VecDeque<ChatChunk>) -> Result<(), LlmError> {
        // Gemini's last chunk carries the finish reason; without it the answer was cut off.
        if self.chunks == 0 || (self.finish.is_none() && !self.blocked) {
            return Err(LlmError::protocol(&self.provider, "the stream ended before finishReason"));
        }
        let calls = std::mem::take(&mut self.calls).finish(&self.provider)?;
        let finish_reason = if self.blocked {
            FinishReason::ContentFilter
        } else {
            wire::finish_reason(self.finish.as_deref(), !calls.is_empty())
        };
        out.push_back(ChatChunk::Done(ChatDone {
            model: std::mem::take(&mut self.model),
            finish_reason,
            usage: self.usage,
            tool_calls: calls,
        }));
        Ok(())
    }
}
