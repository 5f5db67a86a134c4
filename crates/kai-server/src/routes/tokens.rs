//! `/tokens`: long-lived API tokens for the CLI, scripts and agents. Shown once, stored hashed,
//! scoped, revocable. Members manage their own; admins everyone's.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kai_core::policy::{Action, Resource, Role};

use super::audit;
use crate::AppState;
use crate::api::{CreatedToken, NewToken, TokenInfo};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

fn rank(r: Role) -> u8 {
    match r {
        Role::Owner => 4,
        Role::Admin => 3,
        Role::Member => 2,
        Role::Viewer => 1,
        Role::Agent => 0,
    }
}

fn mine(principal: &Principal, t: &kai_store::TokenRecord) -> bool {
    principal.user_id().is_some_and(|u| t.user_id.as_deref() == Some(u))
}

/// Tokens the caller may see (their own; all for admins).
#[utoipa::path(get, path = "/tokens", tag = "tokens", security(("bearer" = [])), responses(
    (status = 200, body = [TokenInfo]),
))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    let all = principal.allows(Resource::Tokens, Action::Admin);
    let tokens = state.node.store.list_tokens().await?;
    Ok(Json(tokens.into_iter().filter(|t| all || mine(&principal, t)).map(Into::into).collect()))
}

/// Creates a token with at most the caller's role. The token is in the reply only.
#[utoipa::path(post, path = "/tokens", tag = "tokens", security(("bearer" = [])), request_body = NewToken, responses(
    (status = 201, body = CreatedToken),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let role: Role = req.role.parse().map_err(ApiError::BadRequest)?;
    if rank(role) > rank(principal.role) || principal.role == Role::Agent {
        return Err(ApiError::Forbidden {
            role: principal.role.as_str(),
            action: "create a token with a higher role than",
        });
    }
    if req.name.trim().is_empty() || req.name.len() > 64 {
        return Err(ApiError::BadRequest("name is 1 to 64 characters".into()));
    }
    if req.scopes.len() > 32
        || req.scopes.iter().any(|s| s.len() > 64 || !s.contains(':') && s != "*")
    {
        return Err(ApiError::BadRequest(
            "scopes look like `events:write` or `secrets:*` (at most 32)".into(),
        ));
    }
    let owner = match (role, &req.agent) {
        (Role::Agent, Some(agent)) => {
            let id: kai_core::AgentId =
                agent.parse().map_err(|e: kai_core::agent_id::AgentIdError| {
                    ApiError::BadRequest(e.to_string())
                })?;
            Some(id.to_string())
        }
        (Role::Agent, None) => {
            return Err(ApiError::BadRequest("an agent token needs `agent` (kClass:name)".into()));
        }
        (_, Some(_)) => return Err(ApiError::BadRequest("`agent` is only for role agent".into())),
        (_, None) => principal.user_id().map(str::to_owned),
    };
    let ttl = req.ttl_secs.map(std::time::Duration::from_secs);
    audit(
        &state,
        &principal.actor(),
        "token.create",
        &format!("token-name:{}", req.name),
        serde_json::json!({"role": role.as_str(), "scopes": req.scopes}),
    )
    .await?;
    let (token, record) =
        state.node.auth.create_api_token(&req.name, role, req.scopes, owner, ttl).await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token: token.to_string(), info: record.into() })))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let tokens = state.node.store.list_tokens().await?;
    let token =
        tokens.iter().find(|t| t.id == id).ok_or_else(|| ApiError::NotFound("token".into()))?;
    if !mine(&principal, token) && !principal.allows(Resource::Tokens, Action::Admin) {
        return Err(ApiError::NotFound("token".into()));
    }
    audit(
        &state,
        &principal.actor(),
        "token.revoke",
        &format!("token:{id}"),
        serde_json::json!({}),
    )
    .await?;
    state.node.store.revoke_token(&id, chrono::Utc::now().timestamp_micros()).await?;
    state.token_cache.clear();
    Ok(StatusCode::NO_CONTENT)
}
