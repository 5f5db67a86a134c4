//! Wire types of the vault, auth, user and token routes.

use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Credentials for `/auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refresh {
    pub refresh_token: String,
}

/// Access and refresh tokens.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub session_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// A user as the API shows it (never the password hash).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: String,
    pub display_name: String,
    pub email: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

fn ts(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

impl From<kai_store::UserRow> for User {
    fn from(u: kai_store::UserRow) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role,
            display_name: u.display_name,
            email: u.email,
            disabled: u.disabled_at_us.is_some(),
            created_at: ts(u.created_at_us),
        }
    }
}

/// The caller.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub id: String,
    pub role: String,
    /// `session` or `api_token`.
    pub credential: String,
    pub user: Option<User>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    /// owner, admin, member or viewer.
    pub role: String,
}

/// Changes to a user; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub role: Option<String>,
    pub disabled: Option<bool>,
    /// An administrator's password reset.
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// At most the caller's own role.
    pub role: String,
    /// e.g. `events:write`, `secrets:read`; empty: everything the role allows.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// For agent tokens: the agent id (`kClass:name`).
    pub agent: Option<String>,
    pub ttl_secs: Option<u64>,
}

/// A token as listed (never the token itself).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

impl From<kai_store::TokenRecord> for TokenInfo {
    fn from(t: kai_store::TokenRecord) -> Self {
        Self {
            id: t.id,
            name: t.name,
            role: t.role,
            scopes: t.scopes,
            created_at: ts(t.created_at_us),
            expires_at: t.expires_at_us.map(ts),
            revoked: t.revoked_at_us.is_some(),
        }
    }
}

/// A new token: shown once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    pub token: String,
    pub info: TokenInfo,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct VaultStatus {
    /// uninitialized, sealed or unsealed.
    pub state: String,
    pub generation: Option<u32>,
    pub rekey_pending: bool,
    pub key_file_slot: bool,
}

/// Exactly one of `passphrase` and `key`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Unlock {
    pub passphrase: Option<String>,
    /// The unlock key from the key file (`kai-vault-key-v1:…`).
    pub key: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PassphraseChange {
    pub current: String,
    pub new: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rekey {
    pub passphrase: String,
    /// Required when the vault has a key-file slot.
    pub key: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Rekeyed {
    pub generation: u32,
}

/// A secret's value to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    pub value: String,
    /// Seconds until the value expires (reads fail after).
    pub ttl_secs: Option<u64>,
    #[schema(value_type = Option<Object>)]
    pub policy: Option<kai_core::secret_policy::SecretPolicy>,
}

/// Secret metadata (no value).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SecretMeta {
    pub name: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub policy: kai_core::secret_policy::SecretPolicy,
}

impl From<kai_runtime::vault::ItemMeta> for SecretMeta {
    fn from(m: kai_runtime::vault::ItemMeta) -> Self {
        Self {
            name: m.name,
            version: m.version,
            created_at: m.created_at,
            expires_at: m.expires_at,
            policy: m.policy,
        }
    }
}

/// A secret with its value.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SecretValue {
    pub name: String,
    pub version: i64,
    pub value: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct SecretVersion {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub expired: bool,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct VersionQuery {
    pub version: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Encrypt {
    pub key: String,
    /// UTF-8 text to encrypt.
    pub plaintext: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Encrypted {
    pub ciphertext: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decrypt {
    pub key: String,
    pub ciphertext: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Decrypted {
    pub plaintext: String,
}
