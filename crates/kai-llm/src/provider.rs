//! The `Provider` trait every adapter implements, the chat stream type, and helpers to consume a
//! stream: reassembling tool-call deltas and collecting a stream into a `ChatResponse`.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures::{Stream, StreamExt};
use serde_json::Value;

use crate::config::ProviderKind;
use crate::error::LlmError;
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Message, ModelInfo,
    ToolCall, ToolCallDelta,
};

/// A streamed answer: text and tool-call deltas, then exactly one [`ChatChunk::Done`]. An error
/// ends the stream. Dropping it aborts the HTTP request.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, LlmError>> + Send>>;

/// An LLM provider. Object safe: the node holds `Arc<dyn Provider>`.
///
/// Every call retries rate limits, 5xx and connection failures with backoff before it returns,
/// waits for a slot under the provider's concurrency limit, and stops when the request's
/// cancellation token fires or its future is dropped.
#[async_trait]
pub trait Provider: Send + Sync + fmt::Debug {
    /// The configured name, used in errors and logs.
    fn name(&self) -> &str;

    /// Which wire protocol this provider speaks.
    fn kind(&self) -> ProviderKind;

    /// A complete answer.
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError>;

    /// A streamed answer. Retries happen only before the first chunk; once chunks flow, an error
    /// ends the stream.
    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError>;

    /// One embedding per input.
    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse, LlmError>;

    /// The models the provider offers.
    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError>;
}

/// Reads a stream to its end and returns the same answer `chat` would have.
pub async fn collect_stream(mut stream: ChatStream) -> Result<ChatResponse, LlmError> {
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        match chunk? {
            ChatChunk::Text(t) => text.push_str(&t),
            ChatChunk::ToolCallDelta(_) => {}
            ChatChunk::Done(done) => {
                let message = Message::assistant_tool_calls(text, done.tool_calls);
                return Ok(ChatResponse {
                    model: done.model,
                    message,
                    finish_reason: done.finish_reason,
                    usage: done.usage,
                });
            }
        }
    }
    Err(LlmError::Protocol {
        provider: "stream".into(),
        message: "the stream ended without a final chunk".into(),
    })
}

/// Reassembles tool-call fragments by index, as they arrive in a stream.
#[derive(Debug, Default)]
pub(crate) struct ToolCallAssembler {
    calls: BTreeMap<u32, PartialCall>,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

impl ToolCallAssembler {
    pub(crate) fn push(&mut self, delta: &ToolCallDelta) {
        let call = self.calls.entry(delta.index).or_default();
        if let Some(id) = delta.id.as_ref().filter(|id| !id.is_empty()) {
            call.id = Some(id.clone());
        }
        if let Some(name) = delta.name.as_ref().filter(|n| !n.is_empty()) {
            call.name = Some(name.clone());
        }
        call.arguments.push_str(&delta.arguments);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls in index order, with parsed arguments.
    pub(crate) fn finish(self, provider: &str) -> Result<Vec<ToolCall>, LlmError> {
        self.calls
            .into_iter()
            .map(|(index, call)| {
                let Some(name) = call.name else {
                    return Err(LlmError::protocol(
                        provider,
                        format!("tool call {index} has no name"),
                    ));
                };
                let arguments = parse_arguments(provider, &name, &call.arguments)?;
                Ok(ToolCall { id: call.id.unwrap_or_else(|| synthetic_id(index)), name, arguments })
            })
            .collect()
    }
}

/// The id given to a tool call whose provider sends none.
pub(crate) fn synthetic_id(index: u32) -> String {
    format!("call_{index}")
}

/// Parses a tool call's argument text; an empty text means no arguments.
pub(crate) fn parse_arguments(provider: &str, name: &str, text: &str) -> Result<Value, LlmError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(text).map_err(|e| {
        LlmError::protocol(provider, format!("arguments of tool call {name:?} are not JSON: {e}"))
    })
}

/// The name of the tool a tool message answers, found among the earlier assistant calls
/// (providers that key results by name rather than id need it).
pub(crate) fn tool_name_for(messages: &[Message], upto: usize, call_id: &str) -> Option<String> {
    messages[..upto]
        .iter()
        .rev()
        .flat_map(|m| m.tool_calls.iter())
        .find(|c| c.id == call_id)
        .map(|c| c.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn delta(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> ToolCallDelta {
        ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            arguments: args.to_owned(),
        }
    }

    #[test]
    fn interleaved_fragments_are_reassembled_by_index() {
        let mut a = ToolCallAssembler::default();
        a.push(&delta(0, Some("call_a"), Some("weather"), ""));
        a.push(&delta(1, Some("call_b"), Some("time"), "{\"tz\""));
        a.push(&delta(0, None, None, "{\"city\":"));
        a.push(&delta(1, None, None, ":\"UTC\"}"));
        a.push(&delta(0, None, None, "\"Oslo\"}"));
        let calls = a.finish("p").unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "call_a");
        assert_eq!(calls[0].arguments, json!({"city": "Oslo"}));
        assert_eq!(calls[1].name, "time");
        assert_eq!(calls[1].arguments, json!({"tz": "UTC"}));
    }

    #[test]
    fn empty_arguments_are_an_empty_object_and_bad_json_is_a_protocol_error() {
        let mut a = ToolCallAssembler::default();
        a.push(&delta(0, None, Some("now"), ""));
        let calls = a.finish("p").unwrap();
        assert_eq!(calls[0].arguments, json!({}));
        assert_eq!(calls[0].id, "call_0");

        let mut a = ToolCallAssembler::default();
        a.push(&delta(0, None, Some("now"), "{oops"));
        assert_eq!(a.finish("p").unwrap_err().code(), "protocol");

        let mut a = ToolCallAssembler::default();
        a.push(&delta(0, None, None, "{}"));
        assert_eq!(a.finish("p").unwrap_err().code(), "protocol");
    }
}
