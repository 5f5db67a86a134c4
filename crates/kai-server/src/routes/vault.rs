//! `/vault/*`: status, unlock, seal, passphrase, rekey, secrets (names only in lists, values
//! by policy, TTL enforced), and encrypt/decrypt under named keys. Every access is audited
//! with the secret's name HMAC, never its value.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kai_core::secret_policy::{SecretOp, SecretPolicy};
use kai_crypto::vault::UnlockKey;
use kai_runtime::node::Credential;
use kai_runtime::vault::SECRET;
use secrecy::SecretString;

use super::audit;
use crate::AppState;
use crate::api::{
    Decrypt, Decrypted, Encrypt, Encrypted, PassphraseChange, PutSecret, Rekey, Rekeyed,
    SecretMeta, SecretValue, SecretVersion, Unlock, VaultStatus, VersionQuery,
};
use crate::auth::{ClientIp, Principal};
use crate::error::{ApiError, ApiResult, Problem};

/// Largest secret value accepted (bytes).
const MAX_SECRET: usize = 64 * 1024;

/// Whether the vault exists and is sealed.
#[utoipa::path(get, path = "/vault/status", tag = "vault", responses((status = 200, body = VaultStatus)))]
pub async fn status(State(state): State<AppState>) -> ApiResult<Json<VaultStatus>> {
    let s = state.node.vault.status().await?;
    let text = serde_json::to_value(s.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    Ok(Json(VaultStatus {
        state: text,
        generation: s.generation,
        rekey_pending: s.rekey_pending,
        key_file_slot: s.key_file_slot,
    }))
}

/// Unlocks the vault with the passphrase or the unlock key (attempts are rate-limited).
#[utoipa::path(post, path = "/vault/unlock", tag = "vault", request_body = Unlock, responses(
    (status = 204),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 429, body = Problem, content_type = "application/problem+json"),
))]
pub async fn unlock(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<Unlock>,
) -> ApiResult<StatusCode> {
    let credential = match (req.passphrase, req.key) {
        (Some(p), None) => Credential::Passphrase(SecretString::from(p)),
        (None, Some(k)) => Credential::Key(
            UnlockKey::from_text(&k)
                .map_err(|_| ApiError::BadCredential("that is not an unlock key".into()))?,
        ),
        _ => return Err(ApiError::BadRequest("give exactly one of `passphrase` and `key`".into())),
    };
    state.node.unlock(&credential, &format!("client:{ip}")).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Seals the vault: every key is forgotten and the node serves only health, status and unlock.
#[utoipa::path(post, path = "/vault/seal", tag = "vault", security(("bearer" = [])), responses(
    (status = 204),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn seal(State(state): State<AppState>, principal: Principal) -> ApiResult<StatusCode> {
    state.node.seal(&principal.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the passphrase (the data key is re-wrapped; records are untouched).
#[utoipa::path(post, path = "/vault/passphrase", tag = "vault", security(("bearer" = [])), request_body = PassphraseChange, responses(
    (status = 204),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn passphrase(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<PassphraseChange>,
) -> ApiResult<StatusCode> {
    if req.new.chars().count() < 12 {
        return Err(ApiError::BadRequest("a vault passphrase has at least 12 characters".into()));
    }
    audit(&state, &principal.actor(), "vault.passphrase", "vault", serde_json::json!({})).await?;
    state
        .node
        .vault
        .change_passphrase(&SecretString::from(req.current), &SecretString::from(req.new))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates the data key and re-seals every record (crash-safe).
#[utoipa::path(post, path = "/vault/rekey", tag = "vault", security(("bearer" = [])), request_body = Rekey, responses(
    (status = 200, body = Rekeyed),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn rekey(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<Rekey>,
) -> ApiResult<Json<Rekeyed>> {
    let key = req
        .key
        .map(|k| UnlockKey::from_text(&k))
        .transpose()
        .map_err(|_| ApiError::BadCredential("that is not an unlock key".into()))?;
    audit(&state, &principal.actor(), "vault.rekey", "vault", serde_json::json!({})).await?;
    let generation =
        state.node.vault.rekey(&SecretString::from(req.passphrase), key.as_ref()).await?;
    Ok(Json(Rekeyed { generation }))
}

/// Names and metadata of every secret (never values).
#[utoipa::path(get, path = "/vault/secrets", tag = "vault", security(("bearer" = [])), responses(
    (status = 200, body = [SecretMeta]),
))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<SecretMeta>>> {
    Ok(Json(state.node.vault.list(SECRET).await?.into_iter().map(Into::into).collect()))
}

/// Stores a secret (a new version if it exists).
#[utoipa::path(put, path = "/vault/secrets/{name}", tag = "vault", security(("bearer" = [])), params(("name" = String, Path)), request_body = PutSecret, responses(
    (status = 200, body = SecretMeta),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Json(req): Json<PutSecret>,
) -> ApiResult<Json<SecretMeta>> {
    kai_runtime::vault::check_name(&name)?;
    if req.value.len() > MAX_SECRET {
        return Err(ApiError::BadRequest(format!("a secret value is at most {MAX_SECRET} bytes")));
    }
    let hmac = state.node.vault.name_hmac(&name).await?;
    audit(
        &state,
        &principal.actor(),
        "vault.secret.put",
        &format!("secret:{hmac}"),
        serde_json::json!({"name_hmac": hmac, "ttl_secs": req.ttl_secs}),
    )
    .await?;
    let ttl = req.ttl_secs.map(std::time::Duration::from_secs);
    let meta = state
        .node
        .vault
        .put(SECRET, &name, req.value.as_bytes(), ttl, req.policy, &principal.actor())
        .await?;
    Ok(Json(meta.into()))
}

/// A secret's value, if its policy lets the caller read it and it has not expired.
#[utoipa::path(get, path = "/vault/secrets/{name}", tag = "vault", security(("bearer" = [])), params(("name" = String, Path), VersionQuery), responses(
    (status = 200, body = SecretValue),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 410, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> ApiResult<Json<SecretValue>> {
    let hmac = state.node.vault.name_hmac(&name).await?;
    let target = format!("secret:{hmac}");
    let result =
        state.node.vault.read(SECRET, &name, q.version, &principal.subject(), SecretOp::Read).await;
    let outcome = match &result {
        Ok(_) => kai_crypto::audit::Outcome::Success,
        Err(kai_runtime::VaultError::Forbidden) => kai_crypto::audit::Outcome::Denied,
        Err(_) => kai_crypto::audit::Outcome::Failure,
    };
    // Logged before any secret material leaves: no audit entry, no value.
    super::record(
        &state,
        &principal.actor(),
        "vault.secret.read",
        &target,
        outcome,
        serde_json::json!({"name_hmac": hmac}),
    )
    .await?;
    let (value, meta) = result?;
    let value = String::from_utf8(value.to_vec())
        .map_err(|_| ApiError::Internal("secret is not UTF-8".into()))?;
    Ok(Json(SecretValue { name, version: meta.version, value, expires_at: meta.expires_at }))
}

/// Every version of a secret (no values).
#[utoipa::path(get, path = "/vault/secrets/{name}/versions", tag = "vault", security(("bearer" = [])), params(("name" = String, Path)), responses(
    (status = 200, body = [SecretVersion]),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<SecretVersion>>> {
    let versions = state.node.vault.history(SECRET, &name).await?;
    Ok(Json(
        versions
            .into_iter()
            .map(|v| SecretVersion {
                version: v.version,
                created_at: v.created_at,
                expires_at: v.expires_at,
                created_by: v.created_by,
                expired: v.expired,
            })
            .collect(),
    ))
}

/// Deletes a secret and every version of it.
#[utoipa::path(delete, path = "/vault/secrets/{name}", tag = "vault", security(("bearer" = [])), params(("name" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let hmac = state.node.vault.name_hmac(&name).await?;
    audit(
        &state,
        &principal.actor(),
        "vault.secret.delete",
        &format!("secret:{hmac}"),
        serde_json::json!({"name_hmac": hmac}),
    )
    .await?;
    state.node.vault.delete(SECRET, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces a secret's policy (who may read or use it).
#[utoipa::path(put, path = "/vault/secrets/{name}/policy", tag = "vault", security(("bearer" = [])), params(("name" = String, Path)), request_body = Object, responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn set_policy(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
    Json(policy): Json<SecretPolicy>,
) -> ApiResult<StatusCode> {
    let hmac = state.node.vault.name_hmac(&name).await?;
    audit(
        &state,
        &principal.actor(),
        "vault.secret.policy",
        &format!("secret:{hmac}"),
        serde_json::to_value(&policy).unwrap_or_default(),
    )
    .await?;
    state.node.vault.set_policy(SECRET, &name, &policy).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Encrypts text under a named key (created on first use).
#[utoipa::path(post, path = "/vault/encrypt", tag = "vault", security(("bearer" = [])), request_body = Encrypt, responses(
    (status = 200, body = Encrypted),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn encrypt(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<Encrypt>,
) -> ApiResult<Json<Encrypted>> {
    audit(
        &state,
        &principal.actor(),
        "vault.encrypt",
        &format!("key:{}", req.key),
        serde_json::json!({"bytes": req.plaintext.len()}),
    )
    .await?;
    Ok(Json(Encrypted {
        ciphertext: state
            .node
            .vault
            .encrypt(&req.key, req.plaintext.as_bytes(), &principal.actor())
            .await?,
    }))
}

/// Decrypts text made by `/vault/encrypt` with the same key name.
#[utoipa::path(post, path = "/vault/decrypt", tag = "vault", security(("bearer" = [])), request_body = Decrypt, responses(
    (status = 200, body = Decrypted),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn decrypt(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<Decrypt>,
) -> ApiResult<Json<Decrypted>> {
    audit(
        &state,
        &principal.actor(),
        "vault.decrypt",
        &format!("key:{}", req.key),
        serde_json::json!({}),
    )
    .await?;
    let plain = state.node.vault.decrypt(&req.key, &req.ciphertext).await?;
    Ok(Json(Decrypted {
        plaintext: String::from_utf8(plain.to_vec())
            .map_err(|_| ApiError::BadRequest("the plaintext is not UTF-8".into()))?,
    }))
}
