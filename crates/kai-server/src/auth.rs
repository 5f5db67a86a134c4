//! Who is calling, and may they: the `authorize` middleware authenticates the bearer
//! credential (an API token `kai_…`, looked up by hash — recent lookups are cached, see
//! [`crate::token_cache`] — or an access JWT), refuses everything
//! but public routes while the node is sealed, applies the per-principal rate limit, and checks
//! the route's rule from [`crate::access`] against the principal's role and token scopes.
//! Handlers receive the result as a [`Principal`].

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use kai_core::policy::{Action, Resource, Role};
use kai_core::secret_policy::Subject;

use crate::AppState;
use crate::access::{Access, rule};
use crate::error::ApiError;

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user's access JWT, in session `session`.
    Session { session: String },
    /// An API token.
    ApiToken { token_id: String },
}

/// An authenticated, authorized caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User id, or agent id for agent tokens, or token id for tokens without a user.
    pub id: String,
    pub role: Role,
    pub scopes: Vec<String>,
    pub credential: Credential,
}

impl Principal {
    /// The actor recorded in audit entries.
    pub fn actor(&self) -> String {
        match (&self.credential, self.role) {
            (_, Role::Agent) => format!("agent:{}", self.id),
            (Credential::Session { .. }, _) => format!("user:{}", self.id),
            (Credential::ApiToken { token_id }, _) => format!("token:{token_id}"),
        }
    }

    /// The caller as secret policies see it.
    pub fn subject(&self) -> Subject {
        match self.role {
            Role::Agent => Subject::Agent { id: self.id.clone() },
            role => Subject::User { id: self.id.clone(), role },
        }
    }

    /// The user id, when the principal acts for a user.
    pub fn user_id(&self) -> Option<&str> {
        (self.role != Role::Agent && !self.id.is_empty()).then_some(self.id.as_str())
    }

    fn scope_allows(&self, resource: Resource, action: Action) -> bool {
        self.scopes.is_empty()
            || self.scopes.iter().any(|s| {
                s == "*"
                    || s.split_once(':').is_some_and(|(r, a)| {
                        r == resource.as_str() && (a == "*" || a == action.as_str())
                    })
            })
    }

    /// True when role and scopes allow `action` on `resource`.
    pub fn allows(&self, resource: Resource, action: Action) -> bool {
        self.role.allows(resource, action) && self.scope_allows(resource, action)
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().cloned().ok_or(ApiError::Unauthorized)
    }
}

/// The bearer token: the `Authorization` header, or (for browser WebSockets, which cannot set
/// headers) a `kai.token.<token>` entry in `Sec-WebSocket-Protocol`.
fn bearer(parts: &Parts) -> Option<&str> {
    bearer_in(&parts.headers)
}

/// [`bearer`] on a header map (the WebSocket route re-checks the credential it was opened with).
pub(crate) fn bearer_in(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(h) = headers.get(axum::http::header::AUTHORIZATION) {
        return h.to_str().ok().and_then(|h| h.strip_prefix("Bearer "));
    }
    headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(',').map(str::trim).find_map(|p| p.strip_prefix("kai.token.")))
}

async fn authenticate(state: &AppState, parts: &Parts) -> Result<Principal, ApiError> {
    let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
    if token.starts_with(kai_crypto::token::PREFIX) {
        if !kai_crypto::token::well_formed(token) {
            return Err(ApiError::Unauthorized);
        }
        let hash = kai_crypto::token::hash(token);
        let record = match state.token_cache.get(&hash) {
            Some(record) => record,
            None => {
                let record =
                    state.node.store.token_by_hash(&hash).await?.ok_or(ApiError::Unauthorized)?;
                state.token_cache.put(record.clone());
                record
            }
        };
        if record.expires_at_us.is_some_and(|exp| exp <= chrono::Utc::now().timestamp_micros()) {
            return Err(ApiError::Unauthorized);
        }
        let role: Role = record.role.parse().map_err(ApiError::Internal)?;
        let id = match (role, &record.user_id) {
            (_, Some(u)) => u.clone(),
            (_, None) => format!("token:{}", record.id),
        };
        if let (Role::Agent, None) = (role, &record.user_id) {
            return Err(ApiError::Unauthorized);
        }
        return Ok(Principal {
            id,
            role,
            scopes: record.scopes,
            credential: Credential::ApiToken { token_id: record.id },
        });
    }
    let claims = state.node.auth.verify_access(token).await.map_err(|e| match e {
        kai_runtime::auth::AuthError::Store(s) => ApiError::from(s),
        _ => ApiError::Unauthorized,
    })?;
    Ok(Principal {
        id: claims.sub,
        role: claims.role,
        scopes: vec![],
        credential: Credential::Session { session: claims.sid },
    })
}

/// The client's address (for login throttling), when the server was started with it.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

/// The one place where every request is authenticated and authorized.
pub async fn authorize(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(path) = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()) else {
        return next.run(req).await;
    };
    let need = match rule(req.method(), &path) {
        Some(Access::Public) => return next.run(req).await,
        Some(Access::Need(resource, action)) => (resource, action),
        None if crate::access::known_path(&path) => {
            return crate::error::problem(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method".into(),
            );
        }
        None => {
            tracing::error!(method = %req.method(), path, "route has no access rule; denied");
            return ApiError::Forbidden { role: "any", action: "use" }.into_response();
        }
    };
    if !state.node.is_unsealed() {
        return ApiError::Unavailable {
            code: "sealed",
            detail: "the vault is sealed; unlock it first (`kai vault unlock`)".into(),
        }
        .into_response();
    }
    let (mut parts, body) = req.into_parts();
    let principal = match authenticate(&state, &parts).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(wait) = state.limits.check_principal(&principal.id) {
        return ApiError::RateLimited(wait).into_response();
    }
    let (resource, action) = need;
    if !principal.allows(resource, action) {
        return ApiError::Forbidden { role: principal.role.as_str(), action: action.as_str() }
            .into_response();
    }
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, body)).await
}
