//! Sessions and tokens: short-lived EdDSA access JWTs (algorithm pinned, audience and issuer
//! checked, signing key from the vault), single-use rotating refresh tokens whose reuse revokes
//! the whole session, and long-lived scoped API tokens stored by hash.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use kai_core::policy::Role;
use kai_store::{RefreshRow, SessionRow, Store, StoreError, TokenRecord};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Access-token lifetime (the bound is 15 minutes).
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Refresh-token lifetime.
pub const REFRESH_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// Audience of every access token this node issues.
pub const AUDIENCE: &str = "kai";
/// Longest token accepted at all (bytes); longer ones are rejected before parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id (logout and refresh reuse revoke it).
    pub sid: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// An access + refresh token pair.
#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub session_id: String,
}

/// Authentication errors. Every rejection of a presented token is `Unauthorized`, whatever
/// the reason, so responses do not tell an attacker which check failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing or invalid credentials")]
    Unauthorized,
    #[error("this refresh token was already used; every token of its session is now revoked")]
    RefreshReuse,
    #[error("the node has no signing key yet (vault sealed)")]
    NoKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized | Self::RefreshReuse => "unauthorized",
            Self::NoKey => "sealed",
            Self::Store(e) => e.code(),
        }
    }
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// Issues and checks tokens.
pub struct Auth {
    store: Arc<dyn Store>,
    keys: RwLock<Option<Arc<Keys>>>,
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn random_token(prefix: &str) -> (Zeroizing<String>, [u8; 32]) {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    let token = Zeroizing::new(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ));
    let hash = kai_crypto::token::hash(&token);
    (token, hash)
}

impl Auth {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, keys: RwLock::new(None) }
    }

    /// Installs the JWT signing key (an Ed25519 seed kept in the vault) and the issuer name.
    pub fn install_key(&self, seed: &[u8; 32], issuer: &str) -> Result<(), AuthError> {
        let signing = SigningKey::from_bytes(seed);
        let der = signing.to_pkcs8_der().map_err(|_| AuthError::NoKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        let keys = Keys {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(signing.verifying_key().as_bytes()),
            validation,
        };
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(keys));
        Ok(())
    }

    /// Forgets the signing key (on seal).
    pub fn remove_key(&self) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn keys(&self) -> Result<Arc<Keys>, AuthError> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(AuthError::NoKey)
    }

    fn access_token(&self, user_id: &str, role: Role, sid: &str) -> Result<String, AuthError> {
        let keys = self.keys()?;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: keys
                .validation
                .iss
                .as_ref()
                .and_then(|s| s.iter().next().cloned())
                .unwrap_or_default(),
            aud: AUDIENCE.into(),
            sub: user_id.to_owned(),
            sid: sid.to_owned(),
            role,
            iat: now,
            exp: now + ACCESS_TTL.as_secs() as i64,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &keys.encoding)
            .map_err(|_| AuthError::NoKey)
    }

    fn pair(&self, access: String, refresh: Zeroizing<String>, sid: String) -> TokenPair {
        TokenPair {
            access_token: access,
            refresh_token: refresh.to_string(),
            token_type: "Bearer",
            expires_in: ACCESS_TTL.as_secs(),
            session_id: sid,
        }
    }

    /// Starts a session for an authenticated user.
    pub async fn start_session(&self, user_id: &str, role: Role) -> Result<TokenPair, AuthError> {
        let sid = uuid::Uuid::now_v7().to_string();
        let access = self.access_token(user_id, role, &sid)?;
        let (refresh, hash) = random_token("kair_");
        let now = now_us();
        let session = SessionRow {
            id: sid.clone(),
            user_id: user_id.to_owned(),
            created_at_us: now,
            revoked_at_us: None,
        };
        let row = RefreshRow {
            token_hash: hash,
            session_id: sid.clone(),
            issued_at_us: now,
            expires_at_us: now + REFRESH_TTL.as_micros() as i64,
            used_at_us: None,
        };
        self.store.insert_session(&session, &row).await?;
        Ok(self.pair(access, refresh, sid))
    }

    /// Verifies an access token's signature, algorithm, audience, issuer and times, then that
    /// its session is live.
    pub async fn verify_access(&self, token: &str) -> Result<Claims, AuthError> {
        let claims = self.verify_signature(token)?;
        match self.store.session(&claims.sid).await? {
            Some(s) if s.revoked_at_us.is_none() && s.user_id == claims.sub => Ok(claims),
            _ => Err(AuthError::Unauthorized),
        }
    }

    /// The stateless part of [`Auth::verify_access`].
    pub fn verify_signature(&self, token: &str) -> Result<Claims, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Unauthorized);
        }
        let keys = self.keys()?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Unauthorized)?;
        if header.alg != Algorithm::EdDSA
            || header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
        {
            return Err(AuthError::Unauthorized);
        }
        jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation)
            .map(|d| d.claims)
            .map_err(|_| AuthError::Unauthorized)
    }

    /// Exchanges a refresh token for a new pair. A token used twice revokes its session.
    pub async fn refresh(
        &self,
        refresh: &str,
        role_of: impl AsyncFnOnce(&str) -> Option<Role>,
    ) -> Result<TokenPair, AuthError> {
        if refresh.len() > 256 {
            return Err(AuthError::Unauthorized);
        }
        let hash = kai_crypto::token::hash(refresh);
        let now = now_us();
        let Some(row) = self.store.use_refresh_token(&hash, now).await? else {
            if let Some(used) = self.store.refresh_token(&hash).await? {
                self.store.revoke_session(&used.session_id, now).await?;
                tracing::warn!(session = %used.session_id, "refresh token reused; session revoked");
                return Err(AuthError::RefreshReuse);
            }
            return Err(AuthError::Unauthorized);
        };
        let session = self.store.session(&row.session_id).await?.ok_or(AuthError::Unauthorized)?;
        if session.revoked_at_us.is_some() || row.expires_at_us <= now {
            return Err(AuthError::Unauthorized);
        }
        let role = role_of(&session.user_id).await.ok_or(AuthError::Unauthorized)?;
        let access = self.access_token(&session.user_id, role, &session.id)?;
        let (token, hash) = random_token("kair_");
        self.store
            .insert_refresh_token(&RefreshRow {
                token_hash: hash,
                session_id: session.id.clone(),
                issued_at_us: now,
                expires_at_us: now + REFRESH_TTL.as_micros() as i64,
                used_at_us: None,
            })
            .await?;
        Ok(self.pair(access, token, session.id))
    }

    /// Ends a session: its access and refresh tokens stop working.
    pub async fn logout(&self, session_id: &str) -> Result<(), AuthError> {
        Ok(self.store.revoke_session(session_id, now_us()).await?)
    }

    /// Creates a long-lived API token; the plaintext is returned once and never stored.
    pub async fn create_api_token(
        &self,
        name: &str,
        role: Role,
        scopes: Vec<String>,
        user_id: Option<String>,
        ttl: Option<Duration>,
    ) -> Result<(Zeroizing<String>, TokenRecord), AuthError> {
        let (token, hash) = kai_crypto::token::generate();
        let now = now_us();
        let record = TokenRecord {
            id: uuid::Uuid::now_v7().simple().to_string(),
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            token_hash: hash,
            created_at_us: now,
            expires_at_us: ttl.map(|t| now + t.as_micros() as i64),
            revoked_at_us: None,
            scopes,
            user_id,
        };
        self.store.insert_token(&record).await?;
        Ok((token, record))
    }
}

#[cfg(test)]
mod tests;
