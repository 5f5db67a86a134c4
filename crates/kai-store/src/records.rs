//! Plain records the store reads and writes.

/// An API token as stored: never the token itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    pub token_hash: [u8; 32],
    pub created_at_us: i64,
    pub expires_at_us: Option<i64>,
    pub revoked_at_us: Option<i64>,
    /// Scopes limiting what the token may do (empty: everything its role allows).
    pub scopes: Vec<String>,
    /// The user the token acts for, if any.
    pub user_id: Option<String>,
}

/// Which backend is in use and how far it is migrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    pub backend: &'static str,
    pub schema_version: i64,
}

/// One thing the vault keeps (a secret, a named key, an identity), without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultItemRow {
    pub id: String,
    /// `secret`, `key`, `identity`, `signing`.
    pub kind: String,
    pub name_hmac: String,
    /// The name, sealed by the vault.
    pub sealed_name: Vec<u8>,
    /// Access policy as JSON.
    pub policy: String,
    pub current_version: i64,
    pub created_at_us: i64,
}

/// One version of a vault item's value, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultVersionRow {
    pub item_id: String,
    pub version: i64,
    /// Data-key generation that sealed it (rekey finds old ones by this).
    pub generation: i64,
    pub sealed: Vec<u8>,
    pub created_at_us: i64,
    pub expires_at_us: Option<i64>,
    pub created_by: String,
}

/// A user account. `password_hash` is an Argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub display_name: String,
    pub email: String,
    /// Preferences as JSON.
    pub preferences: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub disabled_at_us: Option<i64>,
}

/// A login session: the family of one login's refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub created_at_us: i64,
    pub revoked_at_us: Option<i64>,
}

/// A refresh token, by hash. Single use: `used_at_us` is set when it is exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRow {
    pub token_hash: [u8; 32],
    pub session_id: String,
    pub issued_at_us: i64,
    pub expires_at_us: i64,
    pub used_at_us: Option<i64>,
}

/// One LLM call's token usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub id: String,
    pub at_us: i64,
    /// The audit actor (`user:…`, `token:…`, `agent:…`).
    pub principal: String,
    pub persona: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// What the call cost, in millionths of a US dollar.
    pub cost_micros: i64,
}

/// Usage summed per principal and persona.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageTotal {
    pub principal: String,
    pub persona: String,
    pub calls: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
}

/// What one principal spent in a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    /// Prompt + completion tokens.
    pub tokens: i64,
    pub cost_micros: i64,
}
