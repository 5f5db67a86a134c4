//! Goals and tasks: `POST /agent/task` (submit), `POST /planner/plan` (a plan without running
//! it), `/tasks` (list), `/tasks/{id}` (with plans, steps, questions), cancel, retry, the plan
//! review (`PUT /tasks/{id}/plan`, `…/plan/approve`, `…/plan/reject`) and `POST
//! /questions/{id}/answer`. Members see and act on their own tasks; admins on everyone's.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use kai_core::plan::TaskGraph;
use kai_core::policy::Role;
use kai_runtime::tasks::{ApprovalMode, Submit, TaskBudget, TaskError};
use kai_store::TaskFilter;
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::api::tasks::{PlanOut, TaskDetail, TaskOut};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::NotFound(m) => Self::NotFound(m),
            TaskError::BadRequest(m) => Self::BadRequest(m),
            TaskError::Conflict(m) => Self::Conflict(m),
            TaskError::Sealed => Self::Unavailable {
                code: "sealed",
                detail: "the node is sealed; unlock the vault first".into(),
            },
            TaskError::Agent(a) => a.into(),
            TaskError::Audit(a) => a.into(),
            TaskError::Queue(q) => Self::Unavailable { code: q.code(), detail: q.to_string() },
            TaskError::Store(s) => s.into(),
        }
    }
}

/// Who owns what a principal submits: the user behind a session or token, else the token or
/// agent itself.
pub(crate) fn owner_of(p: &Principal) -> String {
    match p.user_id() {
        Some(u) => format!("user:{u}"),
        None => p.actor(),
    }
}

/// Whose tasks a principal may see: admins everyone's (`None`), others their own.
pub(crate) fn viewer_of(p: &Principal) -> Option<String> {
    (!matches!(p.role, Role::Owner | Role::Admin)).then(|| owner_of(p))
}

/// A goal to work on.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// What to achieve (1 to 16 KiB).
    pub goal: String,
    /// Limits on steps, tool calls, tokens, cost, wall time, spawn depth and review rounds.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub budget: Option<TaskBudget>,
    /// `auto` (default): runs unless a step uses a tool whose policy asks; `ask`: the owner
    /// approves every plan.
    #[serde(default)]
    #[schema(value_type = String)]
    pub approval: Option<ApprovalMode>,
    /// Ask kReviewer to check each step (default true).
    #[serde(default)]
    pub review: Option<bool>,
    /// A ready task graph to run instead of asking the planner.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub graph: Option<TaskGraph>,
    /// Submitting twice with the same key gives the first task (also read from the
    /// `Idempotency-Key` header).
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

fn idempotency(body: Option<String>, headers: &HeaderMap) -> ApiResult<Option<String>> {
    let header = headers.get("idempotency-key").map(|v| {
        v.to_str()
            .map(str::to_owned)
            .map_err(|_| ApiError::BadRequest("Idempotency-Key is not text".into()))
    });
    let key = match (body, header.transpose()?) {
        (Some(b), _) => Some(b),
        (None, h) => h,
    };
    if let Some(k) = &key
        && (k.is_empty() || k.len() > 200 || k.chars().any(char::is_control))
    {
        return Err(ApiError::BadRequest(
            "the idempotency key is 1 to 200 printable characters".into(),
        ));
    }
    Ok(key)
}

/// Submits a goal. The answer (202) is a durable promise: the task is stored and its planning
/// queued before it is sent.
#[utoipa::path(post, path = "/agent/task", tag = "tasks", security(("bearer" = [])), request_body = SubmitBody, responses(
    (status = 202, body = TaskOut),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Json(req): Json<SubmitBody>,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let submit = Submit {
        goal: req.goal,
        owner: owner_of(&principal),
        budget: req.budget.unwrap_or_default(),
        approval: req.approval.unwrap_or_default(),
        skip_review: !req.review.unwrap_or(true),
        idempotency_key: idempotency(req.idempotency_key, &headers)?,
        graph: req.graph,
        workflow: None,
        source: "api".into(),
        parent: None,
    };
    let task = state.tasks.submit(submit).await?;
    Ok((StatusCode::ACCEPTED, Json(TaskOut::from(&task))))
}

/// A goal to plan.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    pub goal: String,
}

/// Asks the planner for a task graph and checks it, without storing or running anything:
/// `{"ok": true, "graph", "checked", "usage"}` or `{"ok": false, "problems", "message"}`.
#[utoipa::path(post, path = "/planner/plan", tag = "tasks", security(("bearer" = [])), request_body = PlanBody, responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn plan(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<PlanBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(state.tasks.dry_run(&req.goal, &owner_of(&principal)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only tasks in this status.
    pub status: Option<String>,
    /// Only tasks created before this time (RFC 3339; for paging, newest first).
    pub before: Option<chrono::DateTime<chrono::Utc>>,
    /// 1 to 500, default 50.
    pub limit: Option<u32>,
}

/// Tasks, newest first.
#[utoipa::path(get, path = "/tasks", tag = "tasks", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = Vec<TaskOut>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<TaskOut>>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 500".into()));
    }
    if q.status.as_ref().is_some_and(|s| s.len() > 32) {
        return Err(ApiError::BadRequest("status is at most 32 bytes".into()));
    }
    let filter = TaskFilter {
        owner: viewer_of(&principal),
        status: q.status,
        before_us: q.before.map(|t| t.timestamp_micros()),
        limit,
    };
    Ok(Json(state.tasks.list(&filter).await?.iter().map(TaskOut::from).collect()))
}

/// A task with its plan versions, steps and questions.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = TaskDetail),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskDetail>> {
    let view = state.tasks.get(&id, viewer_of(&principal).as_deref()).await?;
    Ok(Json(TaskDetail::from(&view)))
}

/// Cancels a task: its queued steps are dropped and running ones finish without effect.
#[utoipa::path(post, path = "/tasks/{id}/cancel", tag = "tasks", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = TaskOut),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "already finished"),
))]
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskOut>> {
    let task =
        state.tasks.cancel(&id, &principal.actor(), viewer_of(&principal).as_deref()).await?;
    Ok(Json(TaskOut::from(&task)))
}

/// Runs a failed or cancelled task's unfinished steps again.
#[utoipa::path(post, path = "/tasks/{id}/retry", tag = "tasks", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = TaskOut),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn retry(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskOut>> {
    let task = state.tasks.retry(&id, &principal.actor(), viewer_of(&principal).as_deref()).await?;
    Ok(Json(TaskOut::from(&task)))
}

/// A plan version to approve or reject.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanDecision {
    pub version: i64,
    /// Why (rejections).
    #[serde(default)]
    pub reason: String,
}

/// Approves a proposed plan; its first steps are queued.
#[utoipa::path(post, path = "/tasks/{id}/plan/approve", tag = "tasks", security(("bearer" = [])), params(("id" = String, Path)), request_body = PlanDecision, responses(
    (status = 200, body = TaskDetail),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<PlanDecision>,
) -> ApiResult<Json<TaskDetail>> {
    let viewer = viewer_of(&principal);
    state.tasks.approve(&id, req.version, &principal.actor(), viewer.as_deref()).await?;
    Ok(Json(TaskDetail::from(&state.tasks.get(&id, viewer.as_deref()).await?)))
}

/// Rejects a proposed plan, which ends the task.
#[utoipa::path(post, path = "/tasks/{id}/plan/reject", tag = "tasks", security(("bearer" = [])), params(("id" = String, Path)), request_body = PlanDecision, responses(
    (status = 200, body = TaskDetail),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn reject(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<PlanDecision>,
) -> ApiResult<Json<TaskDetail>> {
    if req.reason.len() > 2000 {
        return Err(ApiError::BadRequest("reason is at most 2000 bytes".into()));
    }
    let viewer = viewer_of(&principal);
    state
        .tasks
        .reject(&id, req.version, &principal.actor(), &req.reason, viewer.as_deref())
        .await?;
    Ok(Json(TaskDetail::from(&state.tasks.get(&id, viewer.as_deref()).await?)))
}

/// An edited graph for a plan awaiting approval.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditPlanBody {
    #[schema(value_type = Object)]
    pub graph: TaskGraph,
}

/// Replaces the proposed plan with an edited graph (a new version, checked again; 400 with the
/// problems if it cannot run).
#[utoipa::path(put, path = "/tasks/{id}/plan", tag = "tasks", security(("bearer" = [])), params(("id" = String, Path)), request_body = EditPlanBody, responses(
    (status = 200, body = PlanOut),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn edit_plan(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<EditPlanBody>,
) -> ApiResult<Json<PlanOut>> {
    let viewer = viewer_of(&principal);
    let plan = state.tasks.edit_plan(&id, req.graph, &principal.actor(), viewer.as_deref()).await?;
    Ok(Json(PlanOut::from(&plan)))
}

/// An answer to a step's question.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    pub answer: String,
}

/// Answers a question a step asked (`ask_user`); the waiting step goes on.
#[utoipa::path(post, path = "/questions/{id}/answer", tag = "tasks", security(("bearer" = [])), params(("id" = String, Path)), request_body = AnswerBody, responses(
    (status = 204),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json", description = "already answered"),
))]
pub async fn answer(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<AnswerBody>,
) -> ApiResult<StatusCode> {
    state
        .tasks
        .answer(&id, &req.answer, &principal.actor(), viewer_of(&principal).as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
