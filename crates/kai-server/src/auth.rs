//! Who is calling: the `Principal` extractor. Every route except `/health` and `/ready`
//! takes a `Principal` (bearer API token, looked up by SHA-256) and checks its role with
//! [`Principal::require`] before doing anything.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use kai_core::policy::{Action, Role};

use crate::AppState;
use crate::error::ApiError;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: String,
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// The actor string recorded in audit entries.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    /// Fails with 403 unless the role permits `action`.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.role.permits(action) {
            Ok(())
        } else {
            let action = match action {
                Action::Read => "read",
                Action::Write => "change",
                Action::Admin => "administer",
            };
            Err(ApiError::Forbidden { role: self.role.as_str(), action })
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header =
            parts.headers.get(axum::http::header::AUTHORIZATION).ok_or(ApiError::Unauthorized)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        if !kai_crypto::token::well_formed(token) {
            return Err(ApiError::Unauthorized);
        }
        let record = state
            .store
            .token_by_hash(&kai_crypto::token::hash(token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let now = chrono::Utc::now().timestamp_micros();
        if record.expires_at_us.is_some_and(|exp| exp <= now) {
            return Err(ApiError::Unauthorized);
        }
        let role = record.role.parse().map_err(ApiError::Internal)?;
        Ok(Self { token_id: record.id, name: record.name, role })
    }
}
