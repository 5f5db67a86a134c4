//! API errors as RFC 9457 `application/problem+json`. One exhaustive match maps each error to
//! its status; 5xx bodies never reveal internals (the cause is logged with the request id).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable snake_case code.
    pub code: String,
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("your role ({role}) may not {action} this resource")]
    Forbidden { role: &'static str, action: &'static str },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Gone(String),
    #[error("the policy of this secret does not allow it for you")]
    PolicyDenied,
    #[error("{0}")]
    BadCredential(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(u64),
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    #[error("too many requests; try again in {} s", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
    #[error("{0}")]
    BudgetExhausted(String),
    /// Well-formed but semantically wrong input (template errors, variable errors).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    /// A `Range` outside the object; the response carries `Content-Range: bytes */size`.
    #[error("the requested range is not satisfiable; the object is {0} bytes")]
    RangeNotSatisfiable(u64),
    #[error("this share link is not valid")]
    ShareInvalid,
    #[error("this share link was revoked")]
    ShareRevoked,
    #[error("{0}")]
    NoPreview(String),
    /// A dependency is down; the operation was not performed.
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    /// A bug or unexpected state; details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// Status and stable code, exhaustively.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Gone(_) => (StatusCode::GONE, "expired"),
            Self::PolicyDenied => (StatusCode::FORBIDDEN, "policy_denied"),
            Self::BadCredential(_) => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::BudgetExhausted(_) => (StatusCode::TOO_MANY_REQUESTS, "budget_exhausted"),
            Self::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::RangeNotSatisfiable(_) => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable")
            }
            Self::ShareInvalid => (StatusCode::FORBIDDEN, "share_invalid"),
            Self::ShareRevoked => (StatusCode::GONE, "share_revoked"),
            Self::NoPreview(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "no_preview"),
            Self::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<kai_store::StoreError> for ApiError {
    fn from(e: kai_store::StoreError) -> Self {
        use kai_store::StoreError as S;
        match e {
            S::NotFound => Self::NotFound("resource".into()),
            S::Conflict(m) => Self::Conflict(m),
            S::Unavailable(_) => Self::Unavailable {
                code: "storage_unavailable",
                detail: "storage is unavailable; try again".into(),
            },
            S::Corrupt(m) | S::Config(m) | S::Migration(m) => Self::Internal(m),
        }
    }
}

impl From<kai_runtime::AuditError> for ApiError {
    fn from(e: kai_runtime::AuditError) -> Self {
        Self::Unavailable {
            code: e.code(),
            detail:
                "the audit log cannot be written, so the operation was not performed; try again"
                    .into(),
        }
    }
}

impl From<kai_runtime::BusError> for ApiError {
    fn from(e: kai_runtime::BusError) -> Self {
        use kai_runtime::BusError as B;
        match e {
            B::TooLarge(_) => Self::BadRequest(e.to_string()),
            B::Store(s) => s.into(),
            B::Backend(_) => Self::Unavailable {
                code: "bus_unavailable",
                detail: "the event bus is unavailable; try again".into(),
            },
        }
    }
}

impl From<kai_runtime::VaultError> for ApiError {
    fn from(e: kai_runtime::VaultError) -> Self {
        use kai_runtime::VaultError as V;
        match e {
            V::Sealed => Self::Unavailable { code: "sealed", detail: e.to_string() },
            V::NotInitialized => {
                Self::Unavailable { code: "vault_not_initialized", detail: e.to_string() }
            }
            V::AlreadyInitialized => Self::Conflict(e.to_string()),
            V::WrongCredential => {
                Self::BadCredential("wrong passphrase or unlock key; the vault stays sealed".into())
            }
            V::TooManyAttempts(s) => Self::RateLimited(std::time::Duration::from_secs(s)),
            V::NotFound(what) => Self::NotFound(what.into()),
            V::Expired => Self::Gone("that secret expired; set a new value".into()),
            V::Forbidden => Self::PolicyDenied,
            V::Invalid(m) => Self::BadRequest(m),
            V::Crypto(c)
                if matches!(
                    c.code(),
                    "weak_kdf_params"
                        | "excessive_kdf_params"
                        | "unsupported_kdf"
                        | "unsupported_format"
                ) =>
            {
                Self::Unavailable { code: c.code(), detail: c.to_string() }
            }
            V::Crypto(c) => Self::BadRequest(c.to_string()),
            V::Store(s) => s.into(),
        }
    }
}

impl From<kai_runtime::users::UserError> for ApiError {
    fn from(e: kai_runtime::users::UserError) -> Self {
        use kai_runtime::users::UserError as U;
        match e {
            U::Invalid(m) => Self::BadRequest(m),
            U::Exists => Self::Conflict(e.to_string()),
            U::NotFound => Self::NotFound("user".into()),
            U::BadCredentials | U::Disabled => {
                Self::BadCredential("wrong username or password".into())
            }
            U::Store(s) => s.into(),
        }
    }
}

impl From<kai_runtime::auth::AuthError> for ApiError {
    fn from(e: kai_runtime::auth::AuthError) -> Self {
        use kai_runtime::auth::AuthError as A;
        match e {
            A::Unauthorized | A::RefreshReuse => Self::Unauthorized,
            A::NoKey => Self::Unavailable {
                code: "sealed",
                detail: "the vault is sealed; unlock it first".into(),
            },
            A::Store(s) => s.into(),
        }
    }
}

impl From<kai_runtime::node::NodeError> for ApiError {
    fn from(e: kai_runtime::node::NodeError) -> Self {
        use kai_runtime::node::NodeError as N;
        match e {
            N::Vault(v) => v.into(),
            N::Audit(a) => a.into(),
            N::Auth(a) => a.into(),
            N::Identity(m) => Self::Internal(m),
        }
    }
}

/// Builds a problem response.
pub fn problem(status: StatusCode, code: &str, detail: String) -> Response {
    let title = status.canonical_reason().unwrap_or("Error").to_owned();
    let body = Problem {
        kind: format!("/problems/{code}"),
        title,
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Internal(cause) = &self {
            tracing::error!(cause = %cause, "internal error");
        }
        let detail = match &self {
            Self::Internal(_) => {
                "something went wrong on the node; the cause is in its log".to_owned()
            }
            other => other.to_string(),
        };
        let mut resp = problem(status, code, detail);
        if let Self::RateLimited(wait) = &self
            && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let Self::RangeNotSatisfiable(size) = &self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}"))
        {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
