//! The OpenAI-compatible surface: `GET /v1/models` (the node's personas), `POST
//! /v1/chat/completions` (streaming and not, with tool calling) and `POST /v1/embeddings`, so any
//! OpenAI client can talk to the node with an API token. Personas add their system prompt and
//! route to their provider chain; every call is audited (the audit entry is written while the
//! upstream call opens, and a failed audit fails the request): a non-streamed reply waits for
//! the entry, a streamed one's first tokens do not, but it only finishes once the entry is
//! durable (see `gate`). The wire shapes are in `wire`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use kai_llm::{ChatChunk, ChatRequest, EmbedRequest, FinishReason, Message};
use serde::Deserialize;
use serde_json::{Value, json};

mod gate;
mod wire;

use self::gate::AuditGate;
pub use self::wire::{ChatCompletionRequest, WireMessage};
use self::wire::{
    Chunks, TextDelta, assistant_message, to_message, to_stop, to_tool_choice, to_tools,
};
use super::audit;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

/// Most messages accepted in one request.
const MAX_MESSAGES: usize = 1000;

/// Refuses the call before it is made when the principal's rolling 24-hour budget is spent.
pub(crate) async fn check_budget(state: &AppState, actor: &str) -> ApiResult<()> {
    let limit = kai_runtime::spend::limit_for(&state.config.borrow().config, actor);
    kai_runtime::spend::check_budget(state.node.store.as_ref(), actor, limit).await.map_err(|e| {
        match e {
            kai_runtime::spend::BudgetError::Exhausted(m) => ApiError::BudgetExhausted(m),
            kai_runtime::spend::BudgetError::Store(s) => s.into(),
        }
    })
}

use kai_runtime::spend::record_usage;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UsageQuery {
    /// Hours back from now (1–720, default 24).
    pub hours: Option<u32>,
}

/// Token usage per principal and persona; admins see everyone, others themselves.
#[utoipa::path(get, path = "/telemetry/usage", tag = "openai", security(("bearer" = [])), params(UsageQuery), responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn usage(
    State(state): State<AppState>,
    principal: Principal,
    axum::extract::Query(q): axum::extract::Query<UsageQuery>,
) -> ApiResult<Json<Value>> {
    let hours = q.hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(ApiError::BadRequest("hours is 1 to 720".into()));
    }
    let since = chrono::Utc::now().timestamp_micros() - i64::from(hours) * 3600 * 1_000_000;
    let actor = principal.actor();
    let everyone =
        principal.allows(kai_core::policy::Resource::Users, kai_core::policy::Action::Read);
    let totals =
        state.node.store.usage_totals((!everyone).then_some(actor.as_str()), since).await?;
    let rows: Vec<Value> = totals
        .into_iter()
        .map(|t| json!({"principal": t.principal, "persona": t.persona, "calls": t.calls, "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens, "cost_usd": t.cost_micros as f64 / 1_000_000.0}))
        .collect();
    Ok(Json(json!({"hours": hours, "totals": rows})))
}

impl From<kai_runtime::llm::ModelError> for ApiError {
    fn from(e: kai_runtime::llm::ModelError) -> Self {
        use kai_runtime::llm::ModelError as M;
        match e {
            M::UnknownPersona(_) => Self::NotFound(e.to_string()),
            M::MissingKey { .. } => {
                Self::Unavailable { code: "provider_key_missing", detail: e.to_string() }
            }
            M::NoLocalModels => {
                Self::Unavailable { code: "model_not_installed", detail: e.to_string() }
            }
            M::Vault(v) => v.into(),
            M::Llm(l) => match l.code() {
                "bad_request" | "context_length_exceeded" | "unsupported" => {
                    Self::BadRequest(l.to_string())
                }
                // Says which model is missing and the command that installs it.
                "model_not_installed" => {
                    Self::Unavailable { code: "model_not_installed", detail: l.to_string() }
                }
                _ => Self::Unavailable {
                    code: "provider_unavailable",
                    detail: format!("the model provider failed: {}", l.code()),
                },
            },
        }
    }
}

fn finish(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        _ => "stop",
    }
}

/// The node's personas, as models.
#[utoipa::path(get, path = "/v1/models", tag = "openai", security(("bearer" = [])), responses((status = 200, body = Object)))]
pub async fn models(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state
        .llm
        .personas()
        .map(|p| json!({"id": p.name, "object": "model", "created": 0, "owned_by": "kai", "description": p.description}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Chat completion through a persona; `stream: true` answers with server-sent events.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", security(("bearer" = [])), request_body = ChatCompletionRequest, responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn chat(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<ChatCompletionRequest>,
) -> ApiResult<Response> {
    if req.messages.is_empty() || req.messages.len() > MAX_MESSAGES {
        return Err(ApiError::BadRequest(format!(
            "messages must hold 1 to {MAX_MESSAGES} entries"
        )));
    }
    if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ApiError::BadRequest("temperature is 0 to 2".into()));
    }
    if req.top_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
        return Err(ApiError::BadRequest("top_p is 0 to 1".into()));
    }
    let tools = to_tools(req.tools)?;
    let tool_choice = to_tool_choice(req.tool_choice)?;
    let stop = to_stop(req.stop)?;
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    messages.push(Message::system(String::new()));
    for m in req.messages {
        messages.push(to_message(m)?);
    }
    let (persona, provider) = state.llm.persona(&req.model).await?;
    let actor = principal.actor();
    check_budget(&state, &actor).await?;
    if persona.system_prompt.is_empty() {
        messages.remove(0);
    } else {
        messages[0].content.clone_from(&persona.system_prompt);
    }
    let mut chat = ChatRequest::new(messages).with_tools(tools);
    chat.tool_choice = tool_choice;
    chat.model = Some(persona.name.clone());
    chat.params.temperature = req.temperature.or(persona.temperature);
    chat.params.top_p = req.top_p;
    chat.params.max_tokens = req.max_completion_tokens.or(req.max_tokens);
    chat.params.stop = stop;
    // The audit entry is written while the upstream call opens instead of before it (`gate`).
    // A non-streamed reply waits for both; a streamed one only for the upstream to open, and
    // its end waits for the entry.
    let target = format!("persona:{}", persona.name);
    let audited = {
        let (state, actor, stream) = (state.clone(), actor.clone(), req.stream);
        async move { audit(&state, &actor, "llm.chat", &target, json!({"stream": stream})).await }
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let created = chrono::Utc::now().timestamp();
    let model = persona.name.clone();
    let upstream_error = |e| ApiError::from(kai_runtime::llm::ModelError::from(e));
    let gate = AuditGate::spawn(audited);
    if !req.stream {
        let resp = gate.open(async { provider.chat(chat).await.map_err(upstream_error) }).await?;
        gate.result().await?;
        let usage = resp.usage;
        record_usage(
            state.node.store.as_ref(),
            &actor,
            &persona.name,
            &usage,
            state.llm.prices(&persona.name, &resp.model),
        )
        .await;
        return Ok(Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": assistant_message(&resp.message), "finish_reason": finish(&resp.finish_reason)}],
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.prompt_tokens + usage.completion_tokens},
        }))
        .into_response());
    }
    let stream = gate.open(async { provider.stream(chat).await.map_err(upstream_error) }).await?;
    let store = state.node.store.clone();
    let persona_name = persona.name.clone();
    let llm = state.llm.clone();
    let chunks = Arc::new(Chunks { id, created, model });
    let first = futures::stream::once({
        let chunks = chunks.clone();
        async move {
            let delta = TextDelta { role: Some("assistant"), content: "" };
            Ok::<_, Infallible>(Event::default().data(chunks.event(delta, None)))
        }
    });
    // Tokens that are already there go out together: one chunk (and one write) for every run
    // of text deltas the upstream delivered at once, instead of one wake-up per token.
    let stream = stream.ready_chunks(64).flat_map(|batch| futures::stream::iter(coalesce(batch)));
    let end_gate = gate.clone();
    let body = stream.filter_map(move |item| {
        let chunks = chunks.clone();
        // What the end of the reply needs (its usage row and the audit gate), taken only for
        // the end: every other item is a token run.
        let end = matches!(item, Ok(ChatChunk::Done(_))).then(|| {
            (store.clone(), actor.clone(), persona_name.clone(), llm.clone(), gate.clone())
        });
        async move {
            if let (Ok(ChatChunk::Done(done)), Some((store, actor, persona_name, llm, gate))) =
                (&item, end)
            {
                let prices = llm.prices(&persona_name, &done.model);
                record_usage(store.as_ref(), &actor, &persona_name, &done.usage, prices).await;
                if let Err(failure) = gate.passed().await {
                    return Some(Ok(audit_failed(failure.code)));
                }
            }
            match item {
                Ok(ChatChunk::Text(text)) => {
                    let delta = TextDelta { role: None, content: &text };
                    Some(Ok(Event::default().data(chunks.event(delta, None))))
                }
                Ok(ChatChunk::Done(done)) => Some(Ok(Event::default()
                    .data(chunks.event(json!({}), Some(finish(&done.finish_reason)))))),
                Ok(ChatChunk::ToolCallDelta(d)) => {
                    let mut call =
                        json!({"index": d.index, "function": {"arguments": d.arguments}});
                    if let Some(id) = d.id {
                        call["id"] = json!(id);
                        call["type"] = json!("function");
                    }
                    if let Some(name) = d.name {
                        call["function"]["name"] = json!(name);
                    }
                    Some(Ok(
                        Event::default().data(chunks.event(json!({"tool_calls": [call]}), None))
                    ))
                }
                Err(e) => {
                    tracing::warn!(code = e.code(), "model stream failed");
                    Some(Ok(Event::default()
                        .event("error")
                        .data(json!({"error": {"code": e.code()}}).to_string())))
                }
            }
        }
    });
    // `[DONE]` only once the entry is durable (an upstream that ended without a finish passes
    // the gate here); a failed entry ends the stream with the error event instead.
    let done = futures::stream::once(async move {
        match end_gate.passed().await {
            Ok(()) => Some(Event::default().data("[DONE]")),
            Err(failure) => failure.first.then(|| audit_failed(failure.code)),
        }
    })
    .filter_map(|event| async move { event.map(Ok::<_, Infallible>) });
    Ok(Sse::new(first.chain(body).chain(done)).keep_alive(KeepAlive::default()).into_response())
}

/// The stream's last event when its audit entry failed.
fn audit_failed(code: &str) -> Event {
    Event::default().event("error").data(json!({"error": {"code": code}}).to_string())
}

/// Merges adjacent text deltas of a batch; everything else keeps its place and order.
fn coalesce(
    batch: Vec<Result<ChatChunk, kai_llm::LlmError>>,
) -> Vec<Result<ChatChunk, kai_llm::LlmError>> {
    let mut out: Vec<Result<ChatChunk, kai_llm::LlmError>> = Vec::with_capacity(batch.len());
    for item in batch {
        match (out.last_mut(), item) {
            (Some(Ok(ChatChunk::Text(prev))), Ok(ChatChunk::Text(next))) => prev.push_str(&next),
            (_, item) => out.push(item),
        }
    }
    out
}

/// An embeddings request in OpenAI's shape: `input` is a string or a list of strings.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmbeddingsRequest {
    /// A persona name; its first provider embeds.
    pub model: String,
    #[schema(value_type = Object)]
    pub input: Value,
}

/// Embeddings through a persona's providers.
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", security(("bearer" = [])), request_body = EmbeddingsRequest, responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn embeddings(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<EmbeddingsRequest>,
) -> ApiResult<Json<Value>> {
    let inputs: Vec<String> = match req.input {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::BadRequest("input is a string or a list of strings".into()))?,
        _ => return Err(ApiError::BadRequest("input is a string or a list of strings".into())),
    };
    if inputs.is_empty() || inputs.len() > 2048 {
        return Err(ApiError::BadRequest("input holds 1 to 2048 strings".into()));
    }
    let (persona, provider) = state.llm.persona(&req.model).await?;
    let actor = principal.actor();
    check_budget(&state, &actor).await?;
    audit(
        &state,
        &actor,
        "llm.embed",
        &format!("persona:{}", persona.name),
        json!({"inputs": inputs.len()}),
    )
    .await?;
    let mut embed = EmbedRequest::new(inputs);
    embed.model = Some(persona.name.clone());
    let resp = provider.embed(embed).await.map_err(kai_runtime::llm::ModelError::from)?;
    record_usage(
        state.node.store.as_ref(),
        &actor,
        &persona.name,
        &resp.usage,
        state.llm.prices(&persona.name, &resp.model),
    )
    .await;
    let data: Vec<Value> = resp
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(i, e)| json!({"object": "embedding", "index": i, "embedding": e}))
        .collect();
    Ok(Json(
        json!({"object": "list", "data": data, "model": persona.name, "usage": {"prompt_tokens": resp.usage.prompt_tokens, "total_tokens": resp.usage.prompt_tokens}}),
    ))
}

#[cfg(test)]
mod tests {
    use kai_llm::{ChatChunk, ToolCallDelta};

    use super::coalesce;

    fn text(s: &str) -> Result<ChatChunk, kai_llm::LlmError> {
        Ok(ChatChunk::Text(s.into()))
    }

    #[test]
    fn adjacent_text_merges_and_nothing_else_moves() {
        let delta = ToolCallDelta { index: 0, id: None, name: None, arguments: "{}".into() };
        let out =
            coalesce(vec![text("a"), text("b"), Ok(ChatChunk::ToolCallDelta(delta)), text("c")]);
        let shapes: Vec<String> = out
            .iter()
            .map(|c| match c {
                Ok(ChatChunk::Text(t)) => format!("text:{t}"),
                Ok(ChatChunk::ToolCallDelta(_)) => "tool".into(),
                _ => "other".into(),
            })
            .collect();
        assert_eq!(shapes, ["text:ab", "tool", "text:c"]);
    }

    #[test]
    fn chunk_events_have_openai_s_shape() {
        use super::{Chunks, TextDelta};
        let chunks = Chunks { id: "chatcmpl-1".into(), created: 7, model: "bench".into() };
        let first = chunks.event(TextDelta { role: Some("assistant"), content: "" }, None);
        assert_eq!(
            first,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":7,"model":"bench","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#
        );
        let text: serde_json::Value = serde_json::from_str(
            &chunks.event(TextDelta { role: None, content: "a \"quoted\" token\n" }, None),
        )
        .unwrap();
        assert_eq!(
            text["choices"][0]["delta"],
            serde_json::json!({"content": "a \"quoted\" token\n"})
        );
        let end: serde_json::Value =
            serde_json::from_str(&chunks.event(serde_json::json!({}), Some("stop"))).unwrap();
        assert_eq!(end["choices"][0]["finish_reason"], "stop");
        assert_eq!(end["choices"][0]["delta"], serde_json::json!({}));
    }
}
