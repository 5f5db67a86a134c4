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
    Conflict(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(u64),
    #[error("the request took longer than {0} s")]
    Timeout(u64),
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
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
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
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
