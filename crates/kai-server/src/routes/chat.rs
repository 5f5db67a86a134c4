//! `/chat/threads`: persisted chat threads with a persona. Sending a message streams the reply
//! as server-sent events when the client accepts `text/event-stream` (`message`, `summary`,
//! `delta`…, then `done` or `error`), else answers with JSON once the reply is stored.
//! Regenerate and branch from any message; export as Markdown or JSON. A thread is visible to
//! its owner only; everyone else gets 404.

use std::convert::Infallible;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use kai_llm::ToolDefinition;
use kai_runtime::chat::{
    ChatError, ChatEvent, Input, ThreadView, export_markdown, message_json, summary_json,
    thread_json,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::audit;
use super::openai::check_budget;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

/// Most tools one request may offer the model.
const MAX_TOOLS: usize = 64;

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::NotFound(m) => Self::NotFound(m),
            ChatError::BadRequest(m) => Self::BadRequest(m),
            ChatError::Model(m) => m.into(),
            ChatError::Store(s) => s.into(),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Keeps threads whose title or any message contains this (case-insensitive).
    pub q: Option<String>,
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
}

/// The caller's threads, most recently active first.
#[utoipa::path(get, path = "/chat/threads", tag = "chat", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 500".into()));
    }
    if q.q.as_ref().is_some_and(|s| s.len() > 500) {
        return Err(ApiError::BadRequest("q is at most 500 bytes".into()));
    }
    let query = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let threads = state.chat.list(&principal.actor(), query, limit).await?;
    Ok(Json(json!({"threads": threads.iter().map(thread_json).collect::<Vec<_>>()})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewThread {
    pub title: Option<String>,
    /// A persona from `GET /v1/models`; default the first configured.
    pub persona: Option<String>,
}

/// Starts a thread.
#[utoipa::path(post, path = "/chat/threads", tag = "chat", security(("bearer" = [])), request_body = NewThread, responses(
    (status = 201, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<NewThread>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let actor = principal.actor();
    let thread = state.chat.create(&actor, req.title.as_deref(), req.persona.as_deref()).await?;
    audit(
        &state,
        &actor,
        "chat.thread.create",
        &format!("thread:{}", thread.id),
        json!({"persona": thread.persona}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(thread_json(&thread))))
}

fn view_json(view: &ThreadView) -> Value {
    json!({
        "thread": thread_json(&view.thread),
        "messages": view.branch.iter().map(message_json).collect::<Vec<_>>(),
        "summaries": view.summaries.iter().map(summary_json).collect::<Vec<_>>(),
    })
}

/// A thread with the messages of the branch it shows (oldest first) and its summaries.
#[utoipa::path(get, path = "/chat/threads/{id}", tag = "chat", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Object),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view_json(&state.chat.view(&principal.actor(), &id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadPatch {
    pub title: Option<String>,
    pub persona: Option<String>,
    /// Shows the branch ending at this message.
    pub head_id: Option<String>,
}

/// Renames a thread, changes its persona or switches the branch it shows.
#[utoipa::path(patch, path = "/chat/threads/{id}", tag = "chat", security(("bearer" = [])), params(("id" = String, Path)), request_body = ThreadPatch, responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<ThreadPatch>,
) -> ApiResult<Json<Value>> {
    let actor = principal.actor();
    state.chat.get(&actor, &id).await?;
    audit(
        &state,
        &actor,
        "chat.thread.update",
        &format!("thread:{id}"),
        json!({"title": req.title.is_some(), "persona": req.persona, "head_id": req.head_id}),
    )
    .await?;
    let thread = state
        .chat
        .update(&actor, &id, req.title.as_deref(), req.persona.as_deref(), req.head_id.as_deref())
        .await?;
    Ok(Json(thread_json(&thread)))
}

/// Deletes a thread with every message and summary.
#[utoipa::path(delete, path = "/chat/threads/{id}", tag = "chat", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let actor = principal.actor();
    state.chat.get(&actor, &id).await?;
    audit(&state, &actor, "chat.thread.delete", &format!("thread:{id}"), json!({})).await?;
    state.chat.delete(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every message of every branch, in arrival order (each names its parent).
#[utoipa::path(get, path = "/chat/threads/{id}/messages", tag = "chat", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Object),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn messages(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let all = state.chat.all_messages(&principal.actor(), &id).await?;
    Ok(Json(json!({"messages": all.iter().map(message_json).collect::<Vec<_>>()})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// The text (for a tool result: the tool's output).
    #[serde(default)]
    pub content: String,
    /// Continue from this message instead of the head (starts a branch).
    pub parent_id: Option<String>,
    /// Makes this a tool result answering that call of the previous reply.
    pub tool_call_id: Option<String>,
    /// Tools (OpenAI function shape or `{name, description, parameters}`) the model may call.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
}

fn tool_definition(v: &Value) -> Result<ToolDefinition, ApiError> {
    let f = v.get("function").unwrap_or(v);
    let name = f.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() || name.len() > 64 {
        return Err(ApiError::BadRequest("each tool needs a name of 1 to 64 characters".into()));
    }
    Ok(ToolDefinition {
        name: name.to_owned(),
        description: f.get("description").and_then(Value::as_str).unwrap_or_default().to_owned(),
        parameters: f
            .get("parameters")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}))
            .into(),
    })
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
}

/// Adds a message and answers with the persona's reply (streamed with `Accept:
/// text/event-stream`). The reply is stored even if the client goes away.
#[utoipa::path(post, path = "/chat/threads/{id}/messages", tag = "chat", security(("bearer" = [])), params(("id" = String, Path)), request_body = NewMessage, responses(
    (status = 200, body = Object, description = "JSON, or text/event-stream"),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn send(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(req): Json<NewMessage>,
) -> ApiResult<Response> {
    if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(ApiError::BadRequest("temperature is 0 to 2".into()));
    }
    if req.tools.len() > MAX_TOOLS {
        return Err(ApiError::BadRequest(format!("at most {MAX_TOOLS} tools")));
    }
    let tools = req.tools.iter().map(tool_definition).collect::<Result<Vec<_>, _>>()?;
    let actor = principal.actor();
    state.chat.get(&actor, &id).await?;
    check_budget(&state, &actor).await?;
    audit(
        &state,
        &actor,
        "chat.message",
        &format!("thread:{id}"),
        json!({"tool_result": req.tool_call_id.is_some(), "branch": req.parent_id.is_some()}),
    )
    .await?;
    let input = Input {
        content: req.content,
        tool_call_id: req.tool_call_id,
        parent_id: req.parent_id,
        tools,
        temperature: req.temperature,
        max_tokens: req.max_tokens,
        memory: Some(super::memory::caller(&principal)),
    };
    let rx = state.chat.send(&actor, &id, input).await?;
    respond(rx, wants_stream(&headers)).await
}

/// Answers `message_id` again: for an assistant message a new sibling reply (a branch); for
/// a user or tool message without a reply (say, after a provider error) its first reply.
#[utoipa::path(post, path = "/chat/threads/{id}/messages/{message_id}/regenerate", tag = "chat", security(("bearer" = [])), params(("id" = String, Path), ("message_id" = String, Path)), responses(
    (status = 200, body = Object, description = "JSON, or text/event-stream"),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn regenerate(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let actor = principal.actor();
    state.chat.get(&actor, &id).await?;
    check_budget(&state, &actor).await?;
    audit(
        &state,
        &actor,
        "chat.regenerate",
        &format!("thread:{id}"),
        json!({"message_id": message_id}),
    )
    .await?;
    let memory = Some(super::memory::caller(&principal));
    let rx = state.chat.regenerate(&actor, &id, &message_id, memory).await?;
    respond(rx, wants_stream(&headers)).await
}

fn problem_value(code: &str, detail: &str) -> Value {
    let status = match code {
        "budget_exhausted" => 429,
        "not_found" => 404,
        "bad_request" | "context_length_exceeded" => 400,
        _ => 503,
    };
    json!({"type": format!("/problems/{code}"), "title": "Reply failed", "status": status, "detail": detail, "code": code})
}

async fn respond(mut rx: mpsc::Receiver<ChatEvent>, stream: bool) -> ApiResult<Response> {
    if stream {
        let events = async_stream(rx);
        return Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response());
    }
    let mut out = json!({});
    while let Some(event) = rx.recv().await {
        match event {
            ChatEvent::Message(m) => out["message"] = message_json(&m),
            ChatEvent::Summary(s) => out["summary"] = summary_json(&s),
            ChatEvent::Delta(_) => {}
            ChatEvent::Done(m) => {
                out["reply"] = message_json(&m);
                return Ok(Json(out).into_response());
            }
            ChatEvent::Error { code, detail } => {
                let p = problem_value(code, &detail);
                let status = StatusCode::from_u16(p["status"].as_u64().unwrap_or(503) as u16)
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                return Ok(crate::error::problem(status, code, detail));
            }
        }
    }
    Err(ApiError::Internal("the reply ended without a result".into()))
}

fn async_stream(
    rx: mpsc::Receiver<ChatEvent>,
) -> impl futures::Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let sse = match event {
            ChatEvent::Message(m) => {
                Event::default().event("message").data(message_json(&m).to_string())
            }
            ChatEvent::Summary(s) => {
                Event::default().event("summary").data(summary_json(&s).to_string())
            }
            ChatEvent::Delta(t) => {
                Event::default().event("delta").data(json!({"text": t}).to_string())
            }
            ChatEvent::Done(m) => Event::default().event("done").data(message_json(&m).to_string()),
            ChatEvent::Error { code, detail } => {
                Event::default().event("error").data(problem_value(code, &detail).to_string())
            }
        };
        Some((Ok(sse), rx))
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// `markdown` (default) or `json`.
    pub format: Option<String>,
}

/// The thread's shown branch as Markdown or JSON (a download).
#[utoipa::path(get, path = "/chat/threads/{id}/export", tag = "chat", security(("bearer" = [])), params(("id" = String, Path), ExportQuery), responses(
    (status = 200, body = String),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    let view = state.chat.view(&principal.actor(), &id).await?;
    let (body, kind, ext) = match q.format.as_deref().unwrap_or("markdown") {
        "markdown" | "md" => (export_markdown(&view), "text/markdown; charset=utf-8", "md"),
        "json" => (
            serde_json::to_string_pretty(&view_json(&view)).unwrap_or_default(),
            "application/json",
            "json",
        ),
        other => {
            return Err(ApiError::BadRequest(format!(
                "format {other:?} is not supported; use markdown or json"
            )));
        }
    };
    let disposition = format!("attachment; filename=\"{id}.{ext}\"");
    Ok((
        [(header::CONTENT_TYPE, kind.to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response())
}
