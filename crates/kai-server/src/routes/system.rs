//! `/health`, `/ready`, `/metrics`, `/system/info`, `/system/config`, `/system/identity/rotate`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::api::{Health, Ready, Rotated, SystemConfig, SystemInfo};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

/// Readiness: storage reachable and migrated, vault unsealed, audit log open.
#[utoipa::path(get, path = "/ready", tag = "system", responses(
    (status = 200, body = Ready),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Ready>> {
    let info = state.node.store.info().await.map_err(|_| ApiError::Unavailable {
        code: "not_ready",
        detail: "storage is not reachable".into(),
    })?;
    let Ok(unsealed) = state.node.unsealed() else {
        return Err(ApiError::Unavailable {
            code: "sealed",
            detail: "the vault is sealed; unlock it first".into(),
        });
    };
    Ok(Json(Ready {
        status: "ready".into(),
        storage: info.backend.into(),
        schema_version: info.schema_version,
        audit_entries: unsealed.audit.len(),
    }))
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "system", security(("bearer" = [])), responses(
    (status = 200, content_type = "text/plain", body = String),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let Some(handle) = &state.metrics else {
        return Err(ApiError::NotFound("metrics (disabled by metrics.enabled = false)".into()));
    };
    let mut resp = handle.render().into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(resp)
}

/// Version, identity and backends of this node.
#[utoipa::path(get, path = "/system/info", tag = "system", security(("bearer" = [])), responses(
    (status = 200, body = SystemInfo),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn info(State(state): State<AppState>) -> ApiResult<Json<SystemInfo>> {
    let store = state.node.store.info().await?;
    let unsealed = state.node.unsealed()?;
    let now = chrono::Utc::now();
    Ok(Json(SystemInfo {
        name: state.config.borrow().config.node.name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        did: unsealed.identity.did(),
        started_at: state.started_at,
        uptime_secs: (now - state.started_at).num_seconds().max(0) as u64,
        storage_backend: store.backend.into(),
        schema_version: store.schema_version,
        bus_backend: state.node.bus.backend().into(),
        audit_entries: unsealed.audit.len(),
    }))
}

/// The effective configuration with secrets redacted, where each key came from, the problems
/// of the last rejected edit and the keys waiting for a restart.
#[utoipa::path(get, path = "/system/config", tag = "system", security(("bearer" = [])), responses(
    (status = 200, body = SystemConfig),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn config(State(state): State<AppState>) -> ApiResult<Json<SystemConfig>> {
    let loaded = state.config.borrow().clone();
    let status = state.config_status.borrow().clone();
    Ok(Json(SystemConfig {
        config: redacted(&loaded.config),
        sources: loaded.provenance.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
        problems: status.problems.iter().map(Into::into).collect(),
        rejected_at: status.rejected_at,
        pending_restart: status.pending_restart,
    }))
}

/// The configuration as JSON with credentials in URLs masked.
pub fn redacted(config: &kai_core::config::Config) -> serde_json::Value {
    let mut c = config.clone();
    c.storage.url = kai_store::redact_url(&c.storage.url);
    c.bus.nats_url = kai_store::redact_url(&c.bus.nats_url);
    serde_json::to_value(c).unwrap_or_default()
}

/// Replaces the node's signing key; entries signed by the old key stay verifiable.
#[utoipa::path(post, path = "/system/identity/rotate", tag = "system", security(("bearer" = [])), responses(
    (status = 200, body = Rotated),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn rotate_identity(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Rotated>> {
    let unsealed = state.node.unsealed()?;
    let previous = unsealed.identity.did();
    let did =
        unsealed.identity.rotate(&unsealed.audit, &principal.actor()).await.map_err(
            |e| match e {
                kai_runtime::identity::RotateError::Audit(a) => ApiError::from(a),
                kai_runtime::identity::RotateError::Vault(v) => ApiError::from(v),
            },
        )?;
    Ok(Json(Rotated { previous, did }))
}
