//! `/auth/login`, `/auth/refresh`, `/auth/logout`, `/auth/me`, `/auth/password`.

use axum::Json;
use axum::extract::State;
use kai_crypto::audit::Outcome;
use secrecy::SecretString;

use super::{audit, record};
use crate::AppState;
use crate::api::{ChangePassword, Login, Me, Refresh, Tokens};
use crate::auth::{ClientIp, Credential, Principal};
use crate::error::{ApiError, ApiResult, Problem};

fn tokens(p: kai_runtime::auth::TokenPair) -> Tokens {
    Tokens {
        access_token: p.access_token,
        refresh_token: p.refresh_token,
        token_type: p.token_type.into(),
        expires_in: p.expires_in,
        session_id: p.session_id,
    }
}

/// Logs in with a username and password; returns a 15-minute access token and a refresh token.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = Login, responses(
    (status = 200, body = Tokens),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<Login>,
) -> ApiResult<Json<Tokens>> {
    state.node.unsealed()?;
    state.limits.check_login(&req.username, &ip).map_err(ApiError::RateLimited)?;
    let password = SecretString::from(req.password);
    match state.node.users.authenticate(&req.username, &password).await {
        Ok(user) => {
            let role = user.role.parse().map_err(ApiError::Internal)?;
            audit(
                &state,
                &format!("user:{}", user.id),
                "auth.login",
                &format!("user:{}", user.id),
                serde_json::json!({"ip": ip}),
            )
            .await?;
            Ok(Json(tokens(state.node.auth.start_session(&user.id, role).await?)))
        }
        Err(e) => {
            let _ = record(
                &state,
                "anonymous",
                "auth.login",
                &format!("username:{}", req.username),
                Outcome::Denied,
                serde_json::json!({"ip": ip}),
            )
            .await;
            Err(e.into())
        }
    }
}

/// Exchanges a refresh token (single use) for new tokens. Reusing one revokes its session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = Refresh, responses(
    (status = 200, body = Tokens),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<Refresh>,
) -> ApiResult<Json<Tokens>> {
    state.node.unsealed()?;
    let users = state.node.users.clone();
    let result = state
        .node
        .auth
        .refresh(&req.refresh_token, async |uid: &str| {
            users
                .get(uid)
                .await
                .ok()
                .filter(|u| u.disabled_at_us.is_none())
                .and_then(|u| u.role.parse().ok())
        })
        .await;
    if let Err(kai_runtime::auth::AuthError::RefreshReuse) = &result {
        let _ = record(
            &state,
            "anonymous",
            "auth.refresh_reuse",
            "session",
            Outcome::Denied,
            serde_json::json!({}),
        )
        .await;
    }
    Ok(Json(tokens(result?)))
}

/// Ends the caller's session (its access and refresh tokens stop working).
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])), responses(
    (status = 204),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn logout(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::http::StatusCode> {
    let Credential::Session { session } = &principal.credential else {
        return Err(ApiError::BadRequest(
            "API tokens are revoked with DELETE /tokens/{id}, not logged out".into(),
        ));
    };
    audit(
        &state,
        &principal.actor(),
        "auth.logout",
        &format!("session:{session}"),
        serde_json::json!({}),
    )
    .await?;
    state.node.auth.logout(session).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Who the caller is.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = Me),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn me(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Me>> {
    let user = match principal.user_id() {
        Some(id) => state.node.users.get(id).await.ok().map(Into::into),
        None => None,
    };
    let credential = match principal.credential {
        Credential::Session { .. } => "session",
        Credential::ApiToken { .. } => "api_token",
    };
    Ok(Json(Me {
        id: principal.id.clone(),
        role: principal.role.as_str().into(),
        credential: credential.into(),
        user,
    }))
}

/// Changes the caller's password (needs the current one); ends all their sessions.
#[utoipa::path(post, path = "/auth/password", tag = "auth", security(("bearer" = [])), request_body = ChangePassword, responses(
    (status = 204),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<ChangePassword>,
) -> ApiResult<axum::http::StatusCode> {
    let id = principal
        .user_id()
        .ok_or_else(|| ApiError::BadRequest("this credential has no user".into()))?
        .to_owned();
    audit(
        &state,
        &principal.actor(),
        "user.password",
        &format!("user:{id}"),
        serde_json::json!({}),
    )
    .await?;
    state
        .node
        .users
        .set_password(
            &id,
            Some(&SecretString::from(req.current_password)),
            &SecretString::from(req.new_password),
        )
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
