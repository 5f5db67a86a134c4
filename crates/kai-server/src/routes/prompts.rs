//! The prompt library: `/prompts` (list, create), `/prompts/search`, `/prompts/{id}` (one
//! version; edit = new version; tags; delete), `…/versions`, `…/diff`, `…/render`, `…/rating`,
//! `/prompts/test` (render an unsaved template), `/templates` (the catalogue with variables) and
//! `/history` (renders). `{id}` is a prompt id (`prm_…`), a name, or `name@version`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kai_core::policy::{Action, Resource};
use kai_runtime::prompts::{Edit, NewPrompt, PromptError, Prompts, VariableSpec};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::audit;
use crate::AppState;
use crate::api::library::{
    PromptDiff, PromptSummary, PromptVersionView, PromptView, RenderEntry, Variable,
};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

impl From<PromptError> for ApiError {
    fn from(e: PromptError) -> Self {
        match e {
            PromptError::NotFound(m) => Self::NotFound(m),
            PromptError::Invalid(m) => Self::BadRequest(m),
            e @ (PromptError::Variables(_) | PromptError::Template(_)) => {
                Self::Unprocessable { code: e.code(), detail: e.to_string() }
            }
            PromptError::Conflict(m) => Self::Conflict(m),
            PromptError::Store(s) => s.into(),
        }
    }
}

fn specs(vars: Vec<Variable>) -> ApiResult<Vec<VariableSpec>> {
    vars.into_iter().map(|v| v.into_spec().map_err(ApiError::BadRequest)).collect()
}

fn limit(l: Option<u32>) -> ApiResult<u32> {
    let l = l.unwrap_or(100);
    if (1..=500).contains(&l) {
        Ok(l)
    } else {
        Err(ApiError::BadRequest("limit is 1 to 500".into()))
    }
}

fn check_query(q: &Option<String>) -> ApiResult<Option<&str>> {
    if q.as_ref().is_some_and(|s| s.len() > 500) {
        return Err(ApiError::BadRequest("q is at most 500 bytes".into()));
    }
    Ok(q.as_deref().map(str::trim).filter(|s| !s.is_empty()))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only prompts with this tag.
    pub tag: Option<String>,
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
}

/// Prompts by name.
#[utoipa::path(get, path = "/prompts", tag = "prompts", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = Vec<PromptSummary>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<PromptSummary>>> {
    let rows = state.prompts.list(None, q.tag.as_deref(), limit(q.limit)?).await?;
    Ok(Json(rows.iter().map(PromptSummary::from).collect()))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// Matches name, description, tags and the latest template (case-insensitive).
    pub q: Option<String>,
    pub tag: Option<String>,
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
}

/// Prompts matching a text, most used first.
#[utoipa::path(get, path = "/prompts/search", tag = "prompts", security(("bearer" = [])), params(SearchQuery), responses(
    (status = 200, body = Vec<PromptSummary>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn search(
    State(state): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<Vec<PromptSummary>>> {
    let text = check_query(&q.q)?;
    let rows = state.prompts.list(text, q.tag.as_deref(), limit(q.limit)?).await?;
    Ok(Json(rows.iter().map(PromptSummary::from).collect()))
}

/// A new prompt.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPromptBody {
    /// `a-z`, `0-9`, `-`, `_`, `.`; unique.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A minijinja (Jinja2) template; it may only read declared variables.
    pub template: String,
    #[serde(default)]
    pub variables: Vec<Variable>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Creates a prompt at version 1.
#[utoipa::path(post, path = "/prompts", tag = "prompts", security(("bearer" = [])), request_body = NewPromptBody, responses(
    (status = 201, body = PromptView),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json", description = "template or variable declarations invalid"),
))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<NewPromptBody>,
) -> ApiResult<(StatusCode, Json<PromptView>)> {
    let new = NewPrompt {
        name: req.name,
        description: req.description,
        template: req.template,
        variables: specs(req.variables)?,
        tags: req.tags,
    };
    // Validate before auditing, so a refused request leaves no "created" entry.
    kai_core::library::PromptName::parse(&new.name).map_err(|e| ApiError::BadRequest(e.0))?;
    Prompts::validate(&new.template, &new.variables)?;
    let actor = principal.actor();
    audit(
        &state,
        &actor,
        "prompt.create",
        &format!("prompt:{}", new.name),
        json!({"variables": new.variables.len()}),
    )
    .await?;
    let prompt = state.prompts.create(&actor, new).await?;
    Ok((StatusCode::CREATED, Json(PromptView::from(&prompt))))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct GetQuery {
    /// A version number (default: the one in `{id}`, else the latest).
    pub version: Option<i64>,
}

fn reference(id: &str, version: Option<i64>) -> ApiResult<String> {
    match version {
        Some(v) if v < 1 => Err(ApiError::BadRequest("version is a number from 1".into())),
        Some(v) => Ok(format!("{}@{v}", id.split('@').next().unwrap_or(id))),
        None => Ok(id.to_owned()),
    }
}

/// One version of a prompt (the latest unless `{id}` or `version` names one).
#[utoipa::path(get, path = "/prompts/{id}", tag = "prompts", security(("bearer" = [])), params(("id" = String, Path, description = "id, name or name@version"), GetQuery), responses(
    (status = 200, body = PromptView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<GetQuery>,
) -> ApiResult<Json<PromptView>> {
    let prompt = state.prompts.resolve(&reference(&id, q.version)?).await?;
    Ok(Json(PromptView::from(&prompt)))
}

/// An edit; it becomes a new immutable version.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    pub template: Option<String>,
    pub variables: Option<Vec<Variable>>,
    pub description: Option<String>,
    /// What changed and why.
    #[serde(default)]
    pub message: String,
    /// The version this edit starts from; 409 if the prompt has moved on since.
    pub base_version: Option<i64>,
}

/// Adds a version.
#[utoipa::path(put, path = "/prompts/{id}", tag = "prompts", security(("bearer" = [])), params(("id" = String, Path)), request_body = EditBody, responses(
    (status = 200, body = PromptView),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn edit(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<EditBody>,
) -> ApiResult<Json<PromptView>> {
    let current = state.prompts.resolve(id.split('@').next().unwrap_or(&id)).await?;
    let actor = principal.actor();
    let edit = Edit {
        template: req.template,
        variables: req.variables.map(specs).transpose()?,
        description: req.description,
        message: req.message,
        base_version: req.base_version,
    };
    audit(
        &state,
        &actor,
        "prompt.edit",
        &format!("prompt:{}", current.row.id),
        json!({"name": current.row.name, "from_version": current.version.version}),
    )
    .await?;
    let prompt = state.prompts.edit(&current.row.id, &actor, edit).await?;
    Ok(Json(PromptView::from(&prompt)))
}

/// Metadata that is not versioned.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptPatch {
    pub tags: Vec<String>,
}

/// Replaces a prompt's tags.
#[utoipa::path(patch, path = "/prompts/{id}", tag = "prompts", security(("bearer" = [])), params(("id" = String, Path)), request_body = PromptPatch, responses(
    (status = 200, body = PromptSummary),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<PromptPatch>,
) -> ApiResult<Json<PromptSummary>> {
    let current = state.prompts.resolve(&id).await?;
    kai_core::library::parse_tags(&req.tags).map_err(|e| ApiError::BadRequest(e.0))?;
    audit(
        &state,
        &principal.actor(),
        "prompt.tags",
        &format!("prompt:{}", current.row.id),
        json!({"tags": req.tags}),
    )
    .await?;
    Ok(Json(PromptSummary::from(&state.prompts.set_tags(&current.row.id, &req.tags).await?)))
}

/// Deletes a prompt with all its versions.
#[utoipa::path(delete, path = "/prompts/{id}", tag = "prompts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let current = state.prompts.resolve(&id).await?;
    audit(
        &state,
        &principal.actor(),
        "prompt.delete",
        &format!("prompt:{}", current.row.id),
        json!({"name": current.row.name}),
    )
    .await?;
    state.prompts.delete(&current.row.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every version, oldest first.
#[utoipa::path(get, path = "/prompts/{id}/versions", tag = "prompts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Object),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (row, versions) = state.prompts.versions(&id).await?;
    let versions: Vec<PromptVersionView> = versions.iter().map(PromptVersionView::from).collect();
    Ok(Json(json!({"prompt": PromptSummary::from(&row), "versions": versions})))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DiffQuery {
    /// Default: the version before `to`.
    pub from: Option<i64>,
    /// Default: the latest.
    pub to: Option<i64>,
}

/// A line diff between two versions.
#[utoipa::path(get, path = "/prompts/{id}/diff", tag = "prompts", security(("bearer" = [])), params(("id" = String, Path), DiffQuery), responses(
    (status = 200, body = PromptDiff),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn diff(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DiffQuery>,
) -> ApiResult<Json<PromptDiff>> {
    if q.from.is_some_and(|v| v < 1) || q.to.is_some_and(|v| v < 1) {
        return Err(ApiError::BadRequest("versions are numbers from 1".into()));
    }
    let d = state.prompts.diff(id.split('@').next().unwrap_or(&id), q.from, q.to).await?;
    Ok(Json(PromptDiff::from(&d)))
}

/// Values for a render.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderBody {
    /// Variable name → value of its declared type.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
    /// Render this version (default: the one in `{id}`, else the latest).
    pub version: Option<i64>,
}

/// Renders a prompt; wrong or missing variables are answered 422 with one line per problem.
/// The render is counted and kept in `/history` (variable sizes, not values).
#[utoipa::path(post, path = "/prompts/{id}/render", tag = "prompts", security(("bearer" = [])), params(("id" = String, Path)), request_body = RenderBody, responses(
    (status = 200, body = Object, description = "{reference, output}"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn render(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<RenderBody>,
) -> ApiResult<Json<Value>> {
    let reference = reference(&id, req.version)?;
    let target = state.prompts.resolve(&reference).await?;
    let actor = principal.actor();
    let names: Vec<&String> = req.variables.keys().collect();
    audit(
        &state,
        &actor,
        "prompt.render",
        &format!("prompt:{}", target.row.id),
        json!({"reference": target.reference(), "variables": names}),
    )
    .await?;
    let done = state
        .prompts
        .render(&format!("{}@{}", target.row.id, target.version.version), &req.variables, &actor)
        .await?;
    Ok(Json(json!({"reference": done.prompt.reference(), "output": done.output})))
}

/// A rating.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    /// 1 to 5.
    pub stars: i64,
}

/// Sets your rating of a prompt (one per caller; a new one replaces it).
#[utoipa::path(post, path = "/prompts/{id}/rating", tag = "prompts", security(("bearer" = [])), params(("id" = String, Path)), request_body = RatingBody, responses(
    (status = 200, body = PromptSummary),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn rate(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<RatingBody>,
) -> ApiResult<Json<PromptSummary>> {
    if !(1..=5).contains(&req.stars) {
        return Err(ApiError::BadRequest("stars is 1 to 5".into()));
    }
    let current = state.prompts.resolve(&id).await?;
    let actor = principal.actor();
    audit(
        &state,
        &actor,
        "prompt.rate",
        &format!("prompt:{}", current.row.id),
        json!({"stars": req.stars}),
    )
    .await?;
    Ok(Json(PromptSummary::from(&state.prompts.rate(&current.row.id, &actor, req.stars).await?)))
}

/// An unsaved template to try.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    pub template: String,
    /// Its declarations.
    #[serde(default)]
    pub declare: Vec<Variable>,
    /// Values to render with.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub variables: Map<String, Value>,
}

/// Renders an unsaved template against its declarations; nothing is stored.
#[utoipa::path(post, path = "/prompts/test", tag = "prompts", security(("bearer" = [])), request_body = TestBody, responses(
    (status = 200, body = Object, description = "{output}"),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 422, body = Problem, content_type = "application/problem+json"),
))]
pub async fn test(Json(req): Json<TestBody>) -> ApiResult<Json<Value>> {
    let output = Prompts::test(req.template, specs(req.declare)?, req.variables).await?;
    Ok(Json(json!({"output": output})))
}

/// The catalogue: every prompt's latest version with its variables, for pickers and agents.
#[utoipa::path(get, path = "/templates", tag = "prompts", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = Object),
))]
pub async fn templates(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let rows = state.prompts.list(None, q.tag.as_deref(), limit(q.limit)?).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let p = state.prompts.resolve(&row.id).await?;
        let vars: Vec<Variable> = p.variables.iter().map(Variable::from).collect();
        out.push(json!({"reference": p.reference(), "name": row.name, "description": row.description, "tags": row.tags, "variables": vars}));
    }
    Ok(Json(json!({"templates": out})))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// Only renders of this prompt (id or name).
    pub prompt: Option<String>,
    /// Everyone's renders (admins only); default your own.
    #[serde(default)]
    pub all: bool,
    /// Entries older than this id (paging).
    pub before: Option<i64>,
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
}

/// Renders, newest first.
#[utoipa::path(get, path = "/history", tag = "prompts", security(("bearer" = [])), params(HistoryQuery), responses(
    (status = 200, body = Vec<RenderEntry>),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn history(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<RenderEntry>>> {
    if q.all && !principal.allows(Resource::Prompts, Action::Admin) {
        return Err(ApiError::Forbidden {
            role: principal.role.as_str(),
            action: "see everyone's history of",
        });
    }
    let actor = principal.actor();
    let rows = state
        .prompts
        .history((!q.all).then_some(actor.as_str()), q.prompt.as_deref(), q.before, limit(q.limit)?)
        .await?;
    Ok(Json(rows.iter().map(RenderEntry::from).collect()))
}
