//! `/users` (administration) and `/users/preferences` (the caller's own).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kai_core::policy::Role;
use secrecy::SecretString;

use super::audit;
use crate::AppState;
use crate::api::{NewUser, User, UserChange};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

fn role(text: &str) -> ApiResult<Role> {
    match text.parse::<Role>() {
        Ok(Role::Agent) | Err(_) => Err(ApiError::BadRequest(format!(
            "unknown role {text:?}; allowed: owner, admin, member, viewer"
        ))),
        Ok(r) => Ok(r),
    }
}

/// Only owners may create or change owners.
fn may_grant(principal: &Principal, target: Role) -> ApiResult<()> {
    if target == Role::Owner && principal.role != Role::Owner {
        return Err(ApiError::Forbidden {
            role: principal.role.as_str(),
            action: "grant the owner role",
        });
    }
    Ok(())
}

/// All users.
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), responses(
    (status = 200, body = [User]),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(state.node.users.list().await?.into_iter().map(Into::into).collect()))
}

/// Creates a user.
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])), request_body = NewUser, responses(
    (status = 201, body = User),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 409, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let r = role(&req.role)?;
    may_grant(&principal, r)?;
    kai_runtime::users::check_username(&req.username)?;
    audit(
        &state,
        &principal.actor(),
        "user.create",
        &format!("username:{}", req.username),
        serde_json::json!({"role": r.as_str()}),
    )
    .await?;
    let user = state.node.users.create(&req.username, &SecretString::from(req.password), r).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = User),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<User>> {
    Ok(Json(state.node.users.get(&id).await?.into()))
}

/// Changes a user: profile, role, disabled, or an administrator's password reset.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path)), request_body = UserChange, responses(
    (status = 200, body = User),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<UserChange>,
) -> ApiResult<Json<User>> {
    let current = state.node.users.get(&id).await?;
    let current_role = role(&current.role)?;
    may_grant(&principal, current_role)?;
    let new_role = req.role.as_deref().map(role).transpose()?;
    if let Some(r) = new_role {
        may_grant(&principal, r)?;
    }
    if principal.user_id() == Some(id.as_str())
        && (req.disabled == Some(true) || new_role.is_some())
    {
        return Err(ApiError::BadRequest(
            "you cannot disable yourself or change your own role".into(),
        ));
    }
    audit(&state, &principal.actor(), "user.update", &format!("user:{id}"), serde_json::json!({
        "role": new_role.map(Role::as_str), "disabled": req.disabled, "password_reset": req.password.is_some(),
    }))
    .await?;
    if let Some(p) = &req.password {
        state.node.users.set_password(&id, None, &SecretString::from(p.clone())).await?;
    }
    let user = state
        .node
        .users
        .update(&id, |u| {
            if let Some(d) = &req.display_name {
                if d.chars().count() > 128 {
                    return Err(kai_runtime::users::UserError::Invalid(
                        "display_name is at most 128 characters".into(),
                    ));
                }
                u.display_name = d.clone();
            }
            if let Some(e) = &req.email {
                if e.len() > 254 || (!e.is_empty() && !e.contains('@')) {
                    return Err(kai_runtime::users::UserError::Invalid(
                        "email is not an address".into(),
                    ));
                }
                u.email = e.clone();
            }
            if let Some(r) = new_role {
                u.role = r.as_str().into();
            }
            if let Some(d) = req.disabled {
                u.disabled_at_us = d.then(|| chrono::Utc::now().timestamp_micros());
            }
            Ok(())
        })
        .await?;
    Ok(Json(user.into()))
}

/// Deletes a user and ends their sessions.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let user = state.node.users.get(&id).await?;
    may_grant(&principal, role(&user.role)?)?;
    if principal.user_id() == Some(id.as_str()) {
        return Err(ApiError::BadRequest("you cannot delete yourself".into()));
    }
    audit(&state, &principal.actor(), "user.delete", &format!("user:{id}"), serde_json::json!({}))
        .await?;
    state.node.users.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's preferences (a JSON object).
#[utoipa::path(get, path = "/users/preferences", tag = "users", security(("bearer" = [])), responses(
    (status = 200, body = Object),
))]
pub async fn preferences(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<serde_json::Value>> {
    let id = principal
        .user_id()
        .ok_or_else(|| ApiError::BadRequest("this credential has no user".into()))?;
    let user = state.node.users.get(id).await?;
    Ok(Json(serde_json::from_str(&user.preferences).unwrap_or_default()))
}

/// Replaces the caller's preferences (a JSON object of at most 64 KiB).
#[utoipa::path(put, path = "/users/preferences", tag = "users", security(("bearer" = [])), request_body = Object, responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn set_preferences(
    State(state): State<AppState>,
    principal: Principal,
    Json(prefs): Json<serde_json::Value>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = principal
        .user_id()
        .ok_or_else(|| ApiError::BadRequest("this credential has no user".into()))?
        .to_owned();
    let text = prefs.to_string();
    if !prefs.is_object() || text.len() > 64 * 1024 {
        return Err(ApiError::BadRequest("preferences are a JSON object of at most 64 KiB".into()));
    }
    audit(
        &state,
        &principal.actor(),
        "user.preferences",
        &format!("user:{id}"),
        serde_json::json!({}),
    )
    .await?;
    state
        .node
        .users
        .update(&id, |u| {
            u.preferences = text;
            Ok(())
        })
        .await?;
    Ok(Json(prefs))
}
