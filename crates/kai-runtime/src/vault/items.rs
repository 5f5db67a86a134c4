//! Vault items: create or add a version, read (policy and TTL enforced), list names, history,
//! delete, policy changes, and encrypt/decrypt under named keys.

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use kai_core::secret_policy::{SecretOp, SecretPolicy, Subject};
use kai_crypto::vault::{NamedKey, SealedRecord, seal};
use kai_store::{Store, VaultItemRow, VaultVersionRow};
use zeroize::Zeroizing;

use super::{Unlocked, Vault, VaultError, now_us};

/// Kinds of vault items.
pub const SECRET: &str = "secret";
pub const KEY: &str = "key";
pub const IDENTITY: &str = "identity";
pub const SIGNING: &str = "signing";

/// A vault item without its value.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ItemMeta {
    pub name: String,
    pub kind: String,
    pub name_hmac: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub policy: SecretPolicy,
}

/// One version of an item, without its value.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionMeta {
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: String,
    pub expired: bool,
}

fn ts(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

fn name_record(id: &str) -> String {
    format!("{id}#name")
}

/// Checks a secret name: 1–128 characters of letters, digits and `_ - . /`, no `..`, no
/// leading `/`.
pub fn check_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('/')
        && !name.contains("..")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(VaultError::Invalid(
            "a name is 1 to 128 characters of letters, digits, `_`, `-`, `.` and `/`".into(),
        ))
    }
}

/// Decrypts every item's name into the in-memory index.
pub(crate) async fn load_names(
    store: &dyn Store,
    unlocked: &mut Unlocked,
) -> Result<(), VaultError> {
    let vault_id = unlocked.header.vault_id();
    for item in store.all_vault_items().await? {
        let sealed = SealedRecord::from_bytes(&item.sealed_name)?;
        let name = unlocked.keyring.open(&vault_id, &name_record(&item.id), 0, &sealed)?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| VaultError::Invalid("stored name is not UTF-8".into()))?;
        unlocked.names.insert((item.kind.clone(), name), item.id);
    }
    Ok(())
}

impl Vault {
    /// The HMAC that names `name` in audit entries (keyed by the data key).
    pub async fn name_hmac(&self, name: &str) -> Result<String, VaultError> {
        let handle = self.state_handle()?;
        let state = handle.read().await;
        Ok(state.keyring.sealing_key().name_hmac_key().name_hmac(name))
    }

    /// Stores `value` as a new item or a new version of an existing one.
    pub async fn put(
        &self,
        kind: &str,
        name: &str,
        value: &[u8],
        ttl: Option<Duration>,
        policy: Option<SecretPolicy>,
        actor: &str,
    ) -> Result<ItemMeta, VaultError> {
        check_name(name)?;
        let handle = self.state_handle()?;
        let mut state = handle.write().await;
        let vault_id = state.header.vault_id();
        let key = state.keyring.sealing_key();
        let now = now_us();
        let expires = ttl.map(|t| now + i64::try_from(t.as_micros()).unwrap_or(i64::MAX / 2));
        let name_hmac = key.name_hmac_key().name_hmac(name);
        let existing = state.names.get(&(kind.to_owned(), name.to_owned())).cloned();
        let (id, version, policy) = match existing {
            Some(id) => {
                let item = self.store.vault_item(&id).await?.ok_or(VaultError::NotFound("item"))?;
                let policy = match policy {
                    Some(p) => p,
                    None => serde_json::from_str(&item.policy).unwrap_or_default(),
                };
                (id, item.current_version + 1, policy)
            }
            None => (uuid::Uuid::now_v7().to_string(), 1, policy.unwrap_or_default()),
        };
        let sealed = seal(key, &vault_id, &id, version as u64, value)?;
        let row = VaultVersionRow {
            item_id: id.clone(),
            version,
            generation: i64::from(sealed.generation),
            sealed: sealed.to_bytes(),
            created_at_us: now,
            expires_at_us: expires,
            created_by: actor.to_owned(),
        };
        let policy_json =
            serde_json::to_string(&policy).map_err(|e| VaultError::Invalid(e.to_string()))?;
        if version == 1 {
            let sealed_name = seal(key, &vault_id, &name_record(&id), 0, name.as_bytes())?;
            let item = VaultItemRow {
                id: id.clone(),
                kind: kind.to_owned(),
                name_hmac: name_hmac.clone(),
                sealed_name: sealed_name.to_bytes(),
                policy: policy_json,
                current_version: 1,
                created_at_us: now,
            };
            self.store.insert_vault_item(&item, &row).await?;
            state.names.insert((kind.to_owned(), name.to_owned()), id);
        } else {
            self.store.add_vault_version(&row).await?;
            self.store.set_vault_policy(&id, &policy_json).await?;
        }
        Ok(ItemMeta {
            name: name.to_owned(),
            kind: kind.to_owned(),
            name_hmac,
            version,
            created_at: ts(now),
            expires_at: expires.map(ts),
            policy,
        })
    }

    async fn item_id(&self, kind: &str, name: &str) -> Result<String, VaultError> {
        let handle = self.state_handle()?;
        let state = handle.read().await;
        state
            .names
            .get(&(kind.to_owned(), name.to_owned()))
            .cloned()
            .ok_or(VaultError::NotFound("secret"))
    }

    /// Reads a value for `subject`, checking the item's policy for `op` and its TTL.
    pub async fn read(
        &self,
        kind: &str,
        name: &str,
        version: Option<i64>,
        subject: &Subject,
        op: SecretOp,
    ) -> Result<(Zeroizing<Vec<u8>>, ItemMeta), VaultError> {
        let id = self.item_id(kind, name).await?;
        let item = self.store.vault_item(&id).await?.ok_or(VaultError::NotFound("secret"))?;
        let policy: SecretPolicy = serde_json::from_str(&item.policy).unwrap_or_default();
        if !policy.allows(subject, op) {
            return Err(VaultError::Forbidden);
        }
        self.open_version(item, policy, name, version).await
    }

    /// Lets host code act with a secret on `subject`'s behalf — e.g. put an API key into an
    /// outgoing request — when the policy grants `use`. The value goes only to `act`, never to
    /// the caller's own output, so an agent can use a key it may not read.
    pub async fn use_secret<T>(
        &self,
        kind: &str,
        name: &str,
        subject: &Subject,
        act: impl FnOnce(secrecy::SecretString) -> T,
    ) -> Result<T, VaultError> {
        let (value, _) = self.read(kind, name, None, subject, SecretOp::Use).await?;
        let text = String::from_utf8(value.to_vec())
            .map_err(|_| VaultError::Invalid("secret is not UTF-8".into()))?;
        Ok(act(secrecy::SecretString::from(text)))
    }

    /// Reads a value the node itself needs (identity seeds, signing keys): no policy applies.
    pub async fn read_internal(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let id = self.item_id(kind, name).await?;
        let item = self.store.vault_item(&id).await?.ok_or(VaultError::NotFound("item"))?;
        Ok(self.open_version(item, SecretPolicy::default(), name, None).await?.0)
    }

    async fn open_version(
        &self,
        item: VaultItemRow,
        policy: SecretPolicy,
        name: &str,
        version: Option<i64>,
    ) -> Result<(Zeroizing<Vec<u8>>, ItemMeta), VaultError> {
        let version = version.unwrap_or(item.current_version);
        let row = self
            .store
            .vault_version(&item.id, version)
            .await?
            .ok_or(VaultError::NotFound("version"))?;
        if row.expires_at_us.is_some_and(|e| e <= now_us()) {
            return Err(VaultError::Expired);
        }
        let handle = self.state_handle()?;
        let state = handle.read().await;
        let sealed = SealedRecord::from_bytes(&row.sealed)?;
        let value =
            state.keyring.open(&state.header.vault_id(), &item.id, version as u64, &sealed)?;
        Ok((
            value,
            ItemMeta {
                name: name.to_owned(),
                kind: item.kind,
                name_hmac: item.name_hmac,
                version,
                created_at: ts(row.created_at_us),
                expires_at: row.expires_at_us.map(ts),
                policy,
            },
        ))
    }

    /// Names and metadata of every item of `kind` (no values).
    pub async fn list(&self, kind: &str) -> Result<Vec<ItemMeta>, VaultError> {
        let handle = self.state_handle()?;
        let names: Vec<(String, String)> = {
            let state = handle.read().await;
            state
                .names
                .iter()
                .filter(|((k, _), _)| k == kind)
                .map(|((_, n), id)| (n.clone(), id.clone()))
                .collect()
        };
        let mut out = Vec::with_capacity(names.len());
        for (name, id) in names {
            let Some(item) = self.store.vault_item(&id).await? else { continue };
            let current = self.store.vault_version(&id, item.current_version).await?;
            out.push(ItemMeta {
                name,
                kind: item.kind,
                name_hmac: item.name_hmac,
                version: item.current_version,
                created_at: ts(item.created_at_us),
                expires_at: current.and_then(|v| v.expires_at_us).map(ts),
                policy: serde_json::from_str(&item.policy).unwrap_or_default(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every version of an item (no values).
    pub async fn history(&self, kind: &str, name: &str) -> Result<Vec<VersionMeta>, VaultError> {
        let id = self.item_id(kind, name).await?;
        let now = now_us();
        Ok(self
            .store
            .vault_versions(&id)
            .await?
            .into_iter()
            .map(|v| VersionMeta {
                version: v.version,
                created_at: ts(v.created_at_us),
                expires_at: v.expires_at_us.map(ts),
                created_by: v.created_by,
                expired: v.expires_at_us.is_some_and(|e| e <= now),
            })
            .collect())
    }

    /// Deletes an item and all its versions.
    pub async fn delete(&self, kind: &str, name: &str) -> Result<(), VaultError> {
        let id = self.item_id(kind, name).await?;
        self.store.delete_vault_item(&id).await?;
        let handle = self.state_handle()?;
        handle.write().await.names.remove(&(kind.to_owned(), name.to_owned()));
        Ok(())
    }

    /// Replaces an item's policy.
    pub async fn set_policy(
        &self,
        kind: &str,
        name: &str,
        policy: &SecretPolicy,
    ) -> Result<(), VaultError> {
        let id = self.item_id(kind, name).await?;
        let json = serde_json::to_string(policy).map_err(|e| VaultError::Invalid(e.to_string()))?;
        Ok(self.store.set_vault_policy(&id, &json).await?)
    }

    async fn named_key(
        &self,
        key: &str,
        create: bool,
        actor: &str,
    ) -> Result<NamedKey, VaultError> {
        match self.read_internal(KEY, key).await {
            Ok(bytes) => Ok(NamedKey::from_bytes(&bytes)?),
            Err(VaultError::NotFound(_)) if create => {
                let k = NamedKey::generate();
                self.put(KEY, key, k.as_bytes(), None, None, actor).await?;
                Ok(k)
            }
            Err(VaultError::NotFound(_)) => Err(VaultError::NotFound("key")),
            Err(e) => Err(e),
        }
    }

    /// The named key itself, for services that encrypt many records under one key (memory):
    /// created on first use when `create`, else `NotFound`.
    pub async fn named_key_handle(
        &self,
        key: &str,
        create: bool,
        actor: &str,
    ) -> Result<NamedKey, VaultError> {
        check_name(key)?;
        self.named_key(key, create, actor).await
    }

    /// Encrypts caller data under the named key (created on first use).
    pub async fn encrypt(
        &self,
        key: &str,
        plaintext: &[u8],
        actor: &str,
    ) -> Result<String, VaultError> {
        check_name(key)?;
        Ok(self.named_key(key, true, actor).await?.encrypt(key, plaintext)?)
    }

    /// Decrypts data made by [`Vault::encrypt`] with the same key name.
    pub async fn decrypt(
        &self,
        key: &str,
        ciphertext: &str,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        check_name(key)?;
        Ok(self.named_key(key, false, "").await?.decrypt(key, ciphertext)?)
    }
}
