//! Storage traits for the vault, users and login sessions.

use async_trait::async_trait;

use crate::StoreResult;
use crate::records::{
    RefreshRow, SessionRow, Spent, UsageRow, UsageTotal, UserRow, VaultItemRow, VaultVersionRow,
};

/// The vault's header and sealed items. Storage only ever sees ciphertext.
#[async_trait]
pub trait VaultStore: Send + Sync {
    async fn vault_header(&self) -> StoreResult<Option<String>>;
    /// Writes the header atomically (one row, one statement).
    async fn put_vault_header(&self, header: &str, at_us: i64) -> StoreResult<()>;
    /// Inserts an item with its first version, in one transaction. `Conflict` if the
    /// (kind, name_hmac) pair exists.
    async fn insert_vault_item(
        &self,
        item: &VaultItemRow,
        first: &VaultVersionRow,
    ) -> StoreResult<()>;
    /// Adds a version and makes it current, in one transaction.
    async fn add_vault_version(&self, version: &VaultVersionRow) -> StoreResult<()>;
    async fn vault_items(&self, kind: &str) -> StoreResult<Vec<VaultItemRow>>;
    async fn vault_item(&self, id: &str) -> StoreResult<Option<VaultItemRow>>;
    async fn vault_versions(&self, item_id: &str) -> StoreResult<Vec<VaultVersionRow>>;
    async fn vault_version(
        &self,
        item_id: &str,
        version: i64,
    ) -> StoreResult<Option<VaultVersionRow>>;
    async fn set_vault_policy(&self, item_id: &str, policy: &str) -> StoreResult<()>;
    /// Deletes an item and every version (the ciphertext is gone, not just hidden).
    async fn delete_vault_item(&self, item_id: &str) -> StoreResult<()>;
    /// Up to `limit` versions sealed under a generation older than `generation`.
    async fn vault_versions_before(
        &self,
        generation: i64,
        limit: u32,
    ) -> StoreResult<Vec<VaultVersionRow>>;
    /// Replaces sealed values (and item names) after a rekey, in one transaction.
    async fn reseal_vault(
        &self,
        versions: &[VaultVersionRow],
        items: &[VaultItemRow],
    ) -> StoreResult<()>;
    /// Every item, all kinds (rekey re-seals names too).
    async fn all_vault_items(&self) -> StoreResult<Vec<VaultItemRow>>;
}

/// User accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// `Conflict` if the username is taken.
    async fn insert_user(&self, user: &UserRow) -> StoreResult<()>;
    async fn user(&self, id: &str) -> StoreResult<Option<UserRow>>;
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRow>>;
    async fn users(&self) -> StoreResult<Vec<UserRow>>;
    /// Replaces every mutable field; `NotFound` if there is no such user.
    async fn update_user(&self, user: &UserRow) -> StoreResult<()>;
    async fn delete_user(&self, id: &str) -> StoreResult<()>;
    async fn count_users(&self) -> StoreResult<u64>;
}

/// Login sessions and their single-use refresh tokens.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn insert_session(&self, session: &SessionRow, refresh: &RefreshRow) -> StoreResult<()>;
    async fn session(&self, id: &str) -> StoreResult<Option<SessionRow>>;
    async fn revoke_session(&self, id: &str, at_us: i64) -> StoreResult<()>;
    async fn revoke_user_sessions(&self, user_id: &str, at_us: i64) -> StoreResult<()>;
    /// Marks a refresh token used if it was unused, returning it; `None` when it does not
    /// exist or was already used (see [`SessionStore::refresh_token`] to tell which).
    async fn use_refresh_token(
        &self,
        hash: &[u8; 32],
        at_us: i64,
    ) -> StoreResult<Option<RefreshRow>>;
    async fn refresh_token(&self, hash: &[u8; 32]) -> StoreResult<Option<RefreshRow>>;
    async fn insert_refresh_token(&self, refresh: &RefreshRow) -> StoreResult<()>;
}

/// LLM usage records.
#[async_trait]
pub trait UsageStore: Send + Sync {
    async fn record_usage(&self, row: &UsageRow) -> StoreResult<()>;
    /// Totals per (principal, persona) since `since_us`, for one principal or all.
    async fn usage_totals(
        &self,
        principal: Option<&str>,
        since_us: i64,
    ) -> StoreResult<Vec<UsageTotal>>;
    /// Tokens and cost of `principal` since `since_us`.
    async fn spent_since(&self, principal: &str, since_us: i64) -> StoreResult<Spent>;
}
