//! Share links of artifacts: create and list (`/artifacts/{id}/shares`), revoke
//! (`DELETE /shares/{id}`), and the public download `GET /share/{token}`, which needs no login
//! and serves only the artifact its token was made for (with `Range`). Every use is audited.
//! An unknown or tampered token is 403, an expired one 410 `expired`, a revoked one 410
//! `share_revoked`. Public requests are rate limited per client address.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kai_crypto::audit::Outcome;
use serde::Deserialize;
use serde_json::json;

use super::artifacts::{serve, viewer};
use super::{audit, record};
use crate::AppState;
use crate::api::library::ShareView;
use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiResult, Problem};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewShare {
    /// Lifetime in seconds (default `artifacts.share_default_secs`, 1 h; at most
    /// `artifacts.share_max_secs`, 7 days).
    pub ttl_secs: Option<u64>,
}

/// Creates a share link; the token is in this answer only.
#[utoipa::path(post, path = "/artifacts/{id}/shares", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), request_body = NewShare, responses(
    (status = 201, body = ShareView),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<NewShare>,
) -> ApiResult<(StatusCode, Json<ShareView>)> {
    let v = viewer(&principal);
    let artifact = state.artifacts.get(&v, &id).await?;
    let max = state.artifacts.settings().share_max_secs;
    if req.ttl_secs.is_some_and(|t| t == 0 || t > max) {
        return Err(ApiError::BadRequest(format!(
            "ttl_secs is 1 to {max} ({} days at most)",
            max / 86_400
        )));
    }
    audit(
        &state,
        &principal.actor(),
        "artifact.share.create",
        &format!("artifact:{}", artifact.id),
        json!({"ttl_secs": req.ttl_secs}),
    )
    .await?;
    let made = state.artifacts.create_share(&v, &id, req.ttl_secs).await?;
    let mut view = ShareView::from(&made.share);
    view.url = Some(format!("/share/{}", made.token.as_str()));
    view.token = Some(made.token.to_string());
    Ok((StatusCode::CREATED, Json(view)))
}

/// An artifact's share links (without their tokens), newest first.
#[utoipa::path(get, path = "/artifacts/{id}/shares", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Vec<ShareView>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ShareView>>> {
    let shares = state.artifacts.shares(&viewer(&principal), &id).await?;
    Ok(Json(shares.iter().map(ShareView::from).collect()))
}

/// Revokes a share link at once (idempotent).
#[utoipa::path(delete, path = "/shares/{id}", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let v = viewer(&principal);
    let (share, _) = state.artifacts.share(&v, &id).await?;
    audit(
        &state,
        &principal.actor(),
        "artifact.share.revoke",
        &format!("share:{}", share.id),
        json!({"artifact": share.artifact_id}),
    )
    .await?;
    state.artifacts.revoke_share(&v, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Downloads the artifact a share link was made for; no login needed.
#[utoipa::path(get, path = "/share/{token}", tag = "artifacts", params(("token" = String, Path)), responses(
    (status = 200, description = "the contents"),
    (status = 206, description = "the requested range"),
    (status = 403, body = Problem, content_type = "application/problem+json", description = "unknown or altered token"),
    (status = 410, body = Problem, content_type = "application/problem+json", description = "expired or revoked"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
pub async fn open(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    state.node.unsealed()?;
    state.limits.check_principal(&format!("share-client:{ip}")).map_err(ApiError::RateLimited)?;
    match state.artifacts.open_share(&token).await {
        Ok((share, artifact)) => {
            record(
                &state,
                &format!("share:{}", share.id),
                "artifact.share.use",
                &format!("artifact:{}", artifact.id),
                Outcome::Success,
                json!({"client": ip, "range": headers.get("range").and_then(|v| v.to_str().ok())}),
            )
            .await?;
            serve(&state, &artifact, &headers, false).await
        }
        Err(e) => {
            let e = ApiError::from(e);
            let (_, code) = e.status_and_code();
            record(
                &state,
                "share:anonymous",
                "artifact.share.use",
                "share",
                Outcome::Failure,
                json!({"client": ip, "reason": code}),
            )
            .await?;
            Err(e)
        }
    }
}
