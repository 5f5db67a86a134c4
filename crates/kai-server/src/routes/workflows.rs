//! Saved workflows (`/workflows`: save a YAML graph as a new version, list, show, run) and
//! webhooks (`/webhooks`: create with a signing secret shown once, list, delete; deliveries at
//! `POST /webhooks/{name}` carry `X-Kai-Timestamp` and `X-Kai-Signature: sha256=HEX` of
//! HMAC-SHA256(secret, "timestamp.body") and need no bearer token).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::tasks::owner_of;
use crate::AppState;
use crate::api::tasks::TaskOut;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

fn time(us: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(us)
}

/// A workflow definition to save.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowBody {
    /// YAML (or JSON): name, description, parameters, steps, optional schedule and budget.
    pub definition: String,
}

/// Every workflow's newest version.
#[utoipa::path(get, path = "/workflows", tag = "tasks", security(("bearer" = [])), responses((status = 200, body = Object)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let rows = state.tasks.workflows().await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| json!({"name": r.name, "version": r.version, "author": r.author, "created_at": time(r.created_at_us)}))
        .collect();
    Ok(Json(json!({"workflows": items})))
}

/// Saves a workflow as its next version (checked like a plan; 400 names the problems).
#[utoipa::path(post, path = "/workflows", tag = "tasks", security(("bearer" = [])), request_body = WorkflowBody, responses(
    (status = 201, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn save(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<WorkflowBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (wf, version) = state.tasks.save_workflow(&req.definition, &owner_of(&principal)).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"name": wf.name, "version": version, "steps": wf.steps.len(), "schedule": wf.schedule}),
        ),
    ))
}

/// A workflow's newest version: its definition text and parsed form.
#[utoipa::path(get, path = "/workflows/{name}", tag = "tasks", security(("bearer" = [])), params(("name" = String, Path)), responses(
    (status = 200, body = Object),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let (wf, row) = state.tasks.workflow(&name).await?;
    Ok(Json(json!({
        "name": row.name, "version": row.version, "author": row.author, "created_at": time(row.created_at_us),
        "definition": row.definition, "parsed": wf,
    })))
}

/// A run's parameters.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Map<String, Value>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Runs a workflow (no planner call); 202 with the task.
#[utoipa::path(post, path = "/workflows/{name}/run", tag = "tasks", security(("bearer" = [])), params(("name" = String, Path)), request_body = RunBody, responses(
    (status = 202, body = TaskOut),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn run(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Json(req): Json<RunBody>,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    if req.idempotency_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
        return Err(ApiError::BadRequest("the idempotency key is 1 to 200 characters".into()));
    }
    let task = state
        .tasks
        .run_workflow(&name, &req.params, &owner_of(&principal), "workflow", req.idempotency_key)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(TaskOut::from(&task))))
}

/// A webhook to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    pub name: String,
    /// `{"workflow": NAME}` (the delivery's `params` object is passed on) or
    /// `{"agent": ID, "goal": TEXT}` (`{{body}}` in the goal is the delivered body).
    #[schema(value_type = Object)]
    pub target: Value,
}

/// Creates (or re-keys) a webhook. The secret is in this answer only.
#[utoipa::path(post, path = "/webhooks", tag = "tasks", security(("bearer" = [])), request_body = WebhookBody, responses(
    (status = 201, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<WebhookBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (row, secret) =
        state.tasks.create_webhook(&req.name, &req.target, &principal.actor()).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": row.name, "secret": secret, "path": format!("/webhooks/{}", row.name),
            "signing": "X-Kai-Timestamp: unix seconds; X-Kai-Signature: sha256=hex(HMAC-SHA256(secret, timestamp + \".\" + body))",
        })),
    ))
}

/// Webhooks (names and targets; never secrets).
#[utoipa::path(get, path = "/webhooks", tag = "tasks", security(("bearer" = [])), responses((status = 200, body = Object)))]
pub async fn list_webhooks(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let rows = state.node.store.webhooks().await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|w| json!({"name": w.name, "target": serde_json::from_str::<Value>(&w.target).unwrap_or(Value::Null), "created_at": time(w.created_at_us)}))
        .collect();
    Ok(Json(json!({"webhooks": items})))
}

/// Deletes a webhook; later deliveries get 404.
#[utoipa::path(delete, path = "/webhooks/{name}", tag = "tasks", security(("bearer" = [])), params(("name" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if state.node.store.webhook(&name).await?.is_none() {
        return Err(ApiError::NotFound(format!("webhook {name}")));
    }
    super::audit(
        &state,
        &principal.actor(),
        "webhook.delete",
        &format!("webhook:{name}"),
        json!({}),
    )
    .await?;
    state.node.store.delete_webhook(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A delivery: verified by its HMAC signature (no bearer token), then its task is started.
#[utoipa::path(post, path = "/webhooks/{name}", tag = "tasks", params(("name" = String, Path)), request_body(content = Object, description = "any body up to 256 KiB"), responses(
    (status = 202, body = TaskOut),
    (status = 400, body = Problem, content_type = "application/problem+json", description = "stale timestamp, missing headers"),
    (status = 404, body = Problem, content_type = "application/problem+json", description = "unknown webhook or a bad signature"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "a replayed delivery"),
))]
pub async fn deliver(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::BadRequest(format!("the {n} header is missing")))
    };
    let (ts, sig) = (header("x-kai-timestamp")?, header("x-kai-signature")?);
    let task = state.tasks.deliver_webhook(&name, &ts, &sig, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(TaskOut::from(&task))))
}
