//! Notes: short texts with tags (optionally about a task), indexed for full-text search with
//! text artifacts (`GET /artifacts/search`). Visible to their owner and admins.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kai_runtime::artifacts::notes::NoteInput;
use serde::Deserialize;
use serde_json::json;

use super::artifacts::viewer;
use super::audit;
use crate::AppState;
use crate::api::library::NoteView;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub task_id: Option<String>,
}

impl From<NoteBody> for NoteInput {
    fn from(b: NoteBody) -> Self {
        Self { title: b.title, body: b.body, tags: b.tags, task_id: b.task_id }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    pub tag: Option<String>,
    /// Everyone's notes (admins); default your own.
    #[serde(default)]
    pub all: bool,
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
}

/// Notes, most recently changed first.
#[utoipa::path(get, path = "/notes", tag = "artifacts", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = Vec<NoteView>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<NoteView>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 500".into()));
    }
    let notes = state.artifacts.notes(&viewer(&principal), q.all, q.tag.as_deref(), limit).await?;
    Ok(Json(notes.iter().map(NoteView::from).collect()))
}

/// Writes a note.
#[utoipa::path(post, path = "/notes", tag = "artifacts", security(("bearer" = [])), request_body = NoteBody, responses(
    (status = 201, body = NoteView),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<NoteBody>,
) -> ApiResult<(StatusCode, Json<NoteView>)> {
    audit(
        &state,
        &principal.actor(),
        "note.create",
        "note",
        json!({"bytes": req.body.len(), "task_id": req.task_id}),
    )
    .await?;
    let note = state.artifacts.create_note(&viewer(&principal), req.into()).await?;
    Ok((StatusCode::CREATED, Json(NoteView::from(&note))))
}

/// One note.
#[utoipa::path(get, path = "/notes/{id}", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = NoteView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<NoteView>> {
    Ok(Json(NoteView::from(&state.artifacts.note(&viewer(&principal), &id).await?)))
}

/// Replaces a note's title, body, tags and task.
#[utoipa::path(put, path = "/notes/{id}", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), request_body = NoteBody, responses(
    (status = 200, body = NoteView),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<NoteBody>,
) -> ApiResult<Json<NoteView>> {
    let v = viewer(&principal);
    state.artifacts.note(&v, &id).await?;
    audit(
        &state,
        &principal.actor(),
        "note.update",
        &format!("note:{id}"),
        json!({"bytes": req.body.len()}),
    )
    .await?;
    Ok(Json(NoteView::from(&state.artifacts.update_note(&v, &id, req.into()).await?)))
}

/// Deletes a note.
#[utoipa::path(delete, path = "/notes/{id}", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let v = viewer(&principal);
    state.artifacts.note(&v, &id).await?;
    audit(&state, &principal.actor(), "note.delete", &format!("note:{id}"), json!({})).await?;
    state.artifacts.delete_note(&v, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
