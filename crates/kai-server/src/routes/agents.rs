//! The agent registry: `GET /agents` (the `manifest.json`-style listing), `GET /agent/status`,
//! `POST /agents` (register a definition in YAML, TOML or JSON), `GET /agents/{id}` and
//! `POST /agents/{id}/lifecycle` (initialize, activate, suspend, resume, modify, apply,
//! terminate). Every change is signed into the audit log by the registry.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kai_core::agent::{AgentDefinition, Format};
use kai_core::lifecycle::LifecycleAction;
use kai_runtime::agents::AgentError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::NotFound(m) => Self::NotFound(format!("agent {m}")),
            e @ AgentError::Definition(_) => {
                Self::Unprocessable { code: "invalid_definition", detail: e.to_string() }
            }
            e @ AgentError::Lifecycle(_) => Self::Conflict(e.to_string()),
            AgentError::Conflict(m) => Self::Conflict(m),
            e @ AgentError::Builtin(..) => Self::Conflict(e.to_string()),
            AgentError::Vault(v) => v.into(),
            AgentError::Audit(a) => a.into(),
            AgentError::Store(s) => s.into(),
        }
    }
}

/// Every agent's manifest entry: id, class, version, type, state, DID, capabilities,
/// triggers, hooks, permissions.
#[utoipa::path(get, path = "/agents", tag = "agents", security(("bearer" = [])), responses(
    (status = 200, body = Object, description = "{\"agents\": [manifest entries]}"),
))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let agents = state.agents.list().await?;
    Ok(Json(json!({
        "version": 1,
        "agents": agents.iter().map(|a| a.manifest()).collect::<Vec<_>>(),
    })))
}

/// Each agent's state and what it is doing: steps running and queued for it.
#[utoipa::path(get, path = "/agent/status", tag = "agents", security(("bearer" = [])), responses(
    (status = 200, body = Object),
))]
pub async fn status(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let agents = state.agents.list().await?;
    let load = state.tasks.agent_load().await?;
    let rows: Vec<Value> = agents
        .iter()
        .map(|a| {
            let (running, queued) = load.get(a.id().as_str()).copied().unwrap_or((0, 0));
            json!({
                "id": a.id(), "state": a.state.as_str(), "builtin": a.builtin, "did": a.did,
                "running_steps": running, "queued_steps": queued,
                "updated_at": chrono::DateTime::from_timestamp_micros(a.updated_at_us),
            })
        })
        .collect();
    Ok(Json(json!({"agents": rows})))
}

/// A definition to register.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefinitionBody {
    /// The definition as text (seed 004 schema).
    pub definition: String,
    /// `yaml` (default), `toml` or `json`.
    #[serde(default)]
    pub format: Option<String>,
}

fn parse(body: &DefinitionBody) -> ApiResult<AgentDefinition> {
    let format = match body.format.as_deref().unwrap_or("yaml") {
        f @ ("yaml" | "yml" | "toml" | "json") => Format::from_extension(f),
        other => {
            return Err(ApiError::BadRequest(format!(
                "format {other:?} is not one of yaml, toml, json"
            )));
        }
    };
    let format = format.ok_or_else(|| ApiError::BadRequest("unknown format".into()))?;
    AgentDefinition::parse(&body.definition, format)
        .map_err(|e| ApiError::Unprocessable { code: "invalid_definition", detail: e.to_string() })
}

/// Registers an agent (state `created`; initialize and activate it to give it work).
#[utoipa::path(post, path = "/agents", tag = "agents", security(("bearer" = [])), request_body = DefinitionBody, responses(
    (status = 201, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json", description = "the definition is invalid; the detail names the field"),
))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<DefinitionBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let def = parse(&req)?;
    let audit = state.node.unsealed()?.audit;
    let view = state.agents.create(def, &principal.actor(), &audit).await?;
    state.tasks.apply_agent_limits().await?;
    Ok((StatusCode::CREATED, Json(view.manifest())))
}

/// One agent's manifest entry (with a staged definition, if one awaits `apply`).
#[utoipa::path(get, path = "/agents/{id}", tag = "agents", security(("bearer" = [])), params(("id" = String, Path, description = "kClass:name")), responses(
    (status = 200, body = Object),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(state.agents.get(&id).await?.manifest()))
}

/// A lifecycle action.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifecycleBody {
    /// initialize, activate, suspend, resume, modify, apply, terminate.
    pub action: String,
    /// The new definition (`modify` only).
    #[serde(default)]
    pub definition: Option<DefinitionBody>,
    #[serde(default)]
    pub reason: String,
}

/// Moves an agent through its lifecycle: Created → Initialized → Active ⇄ Suspended;
/// Active → Modified → Active; any → Terminated. An illegal transition is 409.
#[utoipa::path(post, path = "/agents/{id}/lifecycle", tag = "agents", security(("bearer" = [])), params(("id" = String, Path)), request_body = LifecycleBody, responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "illegal transition, or a built-in agent"),
))]
pub async fn lifecycle(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<LifecycleBody>,
) -> ApiResult<Json<Value>> {
    let action = LifecycleAction::parse(&req.action).ok_or_else(|| {
        let all: Vec<&str> = LifecycleAction::ALL.iter().map(|a| a.as_str()).collect();
        ApiError::BadRequest(format!("action {:?} is not one of {}", req.action, all.join(", ")))
    })?;
    if req.reason.len() > 2000 {
        return Err(ApiError::BadRequest("reason is at most 2000 bytes".into()));
    }
    let definition = req.definition.as_ref().map(parse).transpose()?;
    let audit = state.node.unsealed()?.audit;
    let view = state
        .agents
        .transition(&id, action, definition, &principal.actor(), &req.reason, &audit)
        .await?;
    if action == LifecycleAction::Apply {
        state.tasks.apply_agent_limits().await?;
    }
    Ok(Json(view.manifest()))
}

/// A message to an agent.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    /// The sending agent (agent tokens send as themselves and may omit it).
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub task: Option<String>,
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// Sends an agent-to-agent message (signed by the sender); delivered on the bus at once when
/// the recipient is active, else queued until it is.
#[utoipa::path(post, path = "/agents/{id}/messages", tag = "agents", security(("bearer" = [])), params(("id" = String, Path, description = "the recipient")), request_body = MessageBody, responses(
    (status = 202, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn message(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<MessageBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    use kai_core::policy::Role;
    let from = match (principal.role, req.from) {
        (Role::Agent, Some(f)) if f != principal.id => {
            return Err(ApiError::BadRequest("an agent sends messages as itself".into()));
        }
        (Role::Agent, _) => principal.id.clone(),
        (Role::Owner | Role::Admin, Some(f)) => f,
        (Role::Owner | Role::Admin, None) => kai_runtime::agents::CORE.to_owned(),
        _ => {
            return Err(ApiError::Forbidden {
                role: principal.role.as_str(),
                action: "send agent messages",
            });
        }
    };
    let audit = state.node.unsealed()?.audit;
    audit
        .record(
            &principal.actor(),
            "agent.message",
            &id,
            kai_crypto::audit::Outcome::Success,
            json!({"from": from, "task": req.task}),
        )
        .await?;
    let m = state.agents.send(&from, &id, req.task.as_deref(), req.payload).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": m.id, "from": m.from_agent, "to": m.to_agent, "status": m.status})),
    ))
}
