//! The vault service: keeps the vault header and sealed items in the store, holds the
//! unlocked keyring in memory, and enforces TTLs and per-item policies.
//!
//! Lifecycle: `Uninitialized` → [`Vault::create`] → `Sealed` ⇄ `Unsealed` ([`Vault::unlock_passphrase`]
//! / [`Vault::unlock_key`] / [`Vault::seal`]). While sealed nothing is readable; the node serves
//! only health, status and unlock. Failed unlocks are throttled. Secret names are sealed in
//! storage and indexed in memory after unlock; `name_hmac` identifies them in audit entries.

pub mod items;
mod rekey;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use kai_crypto::vault::{KdfParams, KdfPolicy, Keyring, UnlockKey, VaultCryptoError, VaultHeader};
use kai_store::{Store, StoreError};
use secrecy::SecretString;

pub use items::{IDENTITY, ItemMeta, KEY, SECRET, SIGNING, VersionMeta, check_name};

/// Failed unlocks allowed per window before callers must wait.
const MAX_FAILED_UNLOCKS: usize = 5;
const UNLOCK_WINDOW: Duration = Duration::from_secs(60);

/// Vault errors, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the vault is sealed; unlock it first (`kai vault unlock`)")]
    Sealed,
    #[error("no vault exists yet; run `kai init`")]
    NotInitialized,
    #[error("a vault already exists")]
    AlreadyInitialized,
    #[error("wrong passphrase or unlock key")]
    WrongCredential,
    #[error("too many failed unlock attempts; try again in {0} s")]
    TooManyAttempts(u64),
    #[error("no {0} with that name")]
    NotFound(&'static str),
    #[error("that secret expired")]
    Expired,
    #[error("the policy of this secret does not allow it")]
    Forbidden,
    #[error("{0}")]
    Invalid(String),
    #[error("vault cryptography: {0}")]
    Crypto(#[from] VaultCryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VaultError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Sealed => "sealed",
            Self::NotInitialized => "vault_not_initialized",
            Self::AlreadyInitialized => "vault_exists",
            Self::WrongCredential => "wrong_passphrase",
            Self::TooManyAttempts(_) => "too_many_attempts",
            Self::NotFound(_) => "not_found",
            Self::Expired => "expired",
            Self::Forbidden => "forbidden",
            Self::Invalid(_) => "bad_request",
            Self::Crypto(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }
}

/// What the vault is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VaultState {
    Uninitialized,
    Sealed,
    Unsealed,
}

/// Public facts about the vault (no secrets).
#[derive(Debug, Clone, serde::Serialize)]
pub struct VaultStatus {
    pub state: VaultState,
    pub generation: Option<u32>,
    pub rekey_pending: bool,
    pub key_file_slot: bool,
}

pub(crate) struct Unlocked {
    pub(crate) header: VaultHeader,
    pub(crate) keyring: Keyring,
    /// (kind, name) → item id.
    pub(crate) names: HashMap<(String, String), String>,
}

/// The vault service. Cheap to share (`Arc`).
pub struct Vault {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) unlocked: RwLock<Option<Arc<tokio::sync::RwLock<Unlocked>>>>,
    failures: std::sync::Mutex<Vec<Instant>>,
    policy: KdfPolicy,
}

impl Vault {
    /// A vault over `store`. `policy` is `Enforce` in production; tests pass
    /// `AllowWeakForTests` to use fast KDF parameters.
    pub fn new(store: Arc<dyn Store>, policy: KdfPolicy) -> Self {
        Self {
            store,
            unlocked: RwLock::new(None),
            failures: std::sync::Mutex::new(Vec::new()),
            policy,
        }
    }

    async fn header(&self) -> Result<Option<VaultHeader>, VaultError> {
        let Some(json) = self.store.vault_header().await? else { return Ok(None) };
        let mut header = VaultHeader::from_json(&json)?;
        header.set_kdf_policy(self.policy);
        Ok(Some(header))
    }

    pub(crate) fn state_handle(&self) -> Result<Arc<tokio::sync::RwLock<Unlocked>>, VaultError> {
        self.unlocked.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(VaultError::Sealed)
    }

    /// Whether the vault exists and is unlocked.
    pub async fn status(&self) -> Result<VaultStatus, VaultError> {
        let header = self.header().await?;
        let unsealed = self.unlocked.read().unwrap_or_else(|p| p.into_inner()).is_some();
        Ok(match header {
            None => VaultStatus {
                state: VaultState::Uninitialized,
                generation: None,
                rekey_pending: false,
                key_file_slot: false,
            },
            Some(h) => VaultStatus {
                state: if unsealed { VaultState::Unsealed } else { VaultState::Sealed },
                generation: Some(h.generation()),
                rekey_pending: h.pending_generation().is_some(),
                key_file_slot: h.has_key_file_slot(),
            },
        })
    }

    /// True when unlocked.
    pub fn is_unsealed(&self) -> bool {
        self.unlocked.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Creates the vault (sealed afterwards, then unlocked here for the caller's convenience).
    /// With `key_file`, also adds a key-file slot and returns its unlock key (show it once).
    pub async fn create(
        &self,
        passphrase: &SecretString,
        params: KdfParams,
        key_file: bool,
    ) -> Result<Option<UnlockKey>, VaultError> {
        if self.store.vault_header().await?.is_some() {
            return Err(VaultError::AlreadyInitialized);
        }
        let (pass, policy) = (passphrase.clone(), self.policy);
        let (mut header, data_key) = tokio::task::spawn_blocking(move || {
            VaultHeader::create_with_policy(&pass, params, policy)
        })
        .await
        .map_err(|e| VaultError::Invalid(e.to_string()))??;
        let unlock = if key_file { Some(header.add_key_file_slot(&data_key)?) } else { None };
        self.store.put_vault_header(&header.to_json(), now_us()).await?;
        self.unlock_passphrase(passphrase).await?;
        Ok(unlock)
    }

    fn check_throttle(&self) -> Result<(), VaultError> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|t| t.elapsed() < UNLOCK_WINDOW);
        if failures.len() >= MAX_FAILED_UNLOCKS {
            let wait = UNLOCK_WINDOW.saturating_sub(failures[0].elapsed());
            return Err(VaultError::TooManyAttempts(wait.as_secs().max(1)));
        }
        Ok(())
    }

    fn note_failure(&self) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).push(Instant::now());
    }

    /// Unlocks with the passphrase (Argon2id runs off the async threads).
    pub async fn unlock_passphrase(&self, passphrase: &SecretString) -> Result<(), VaultError> {
        self.check_throttle()?;
        let header = self.header().await?.ok_or(VaultError::NotInitialized)?;
        let pass = passphrase.clone();
        let result = tokio::task::spawn_blocking(move || {
            header.unlock_with_passphrase(&pass).map(|k| (header, k))
        })
        .await
        .map_err(|e| VaultError::Invalid(e.to_string()))?;
        self.finish_unlock(result).await
    }

    /// Unlocks with the key-file slot's key (unattended servers).
    pub async fn unlock_key(&self, key: &UnlockKey) -> Result<(), VaultError> {
        self.check_throttle()?;
        let header = self.header().await?.ok_or(VaultError::NotInitialized)?;
        let result = header.unlock_with_key(key).map(|k| (header, k));
        self.finish_unlock(result).await
    }

    async fn finish_unlock(
        &self,
        result: Result<(VaultHeader, Keyring), VaultCryptoError>,
    ) -> Result<(), VaultError> {
        let (header, keyring) = match result {
            Ok(ok) => ok,
            Err(e @ (VaultCryptoError::WrongPassphrase | VaultCryptoError::WrongUnlockKey)) => {
                self.note_failure();
                tracing::warn!(code = e.code(), "failed vault unlock");
                return Err(VaultError::WrongCredential);
            }
            Err(e) => return Err(e.into()),
        };
        let mut unlocked = Unlocked { header, keyring, names: HashMap::new() };
        items::load_names(self.store.as_ref(), &mut unlocked).await?;
        let pending = unlocked.header.pending_generation().is_some();
        *self.unlocked.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Arc::new(tokio::sync::RwLock::new(unlocked)));
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if pending {
            tracing::warn!("an interrupted rekey was found; finishing it");
            self.finish_pending_rekey().await?;
        }
        Ok(())
    }

    /// Forgets the keys. Everything that needs the vault fails with `Sealed` from now on.
    pub fn seal(&self) {
        *self.unlocked.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Re-wraps the data key under a new passphrase (records are not touched).
    pub async fn change_passphrase(
        &self,
        old: &SecretString,
        new: &SecretString,
    ) -> Result<(), VaultError> {
        self.check_throttle()?;
        let handle = self.state_handle()?;
        let mut state = handle.write().await;
        let mut header = state.header.clone();
        let (old, new) = (old.clone(), new.clone());
        let result = tokio::task::spawn_blocking(move || {
            let keyring = header.unlock_with_passphrase(&old)?;
            header.change_passphrase(keyring.current(), &new)?;
            Ok::<_, VaultCryptoError>(header)
        })
        .await
        .map_err(|e| VaultError::Invalid(e.to_string()))?;
        let header = match result {
            Ok(h) => h,
            Err(VaultCryptoError::WrongPassphrase) => {
                self.note_failure();
                return Err(VaultError::WrongCredential);
            }
            Err(e) => return Err(e.into()),
        };
        self.store.put_vault_header(&header.to_json(), now_us()).await?;
        state.header = header;
        Ok(())
    }
}

pub(crate) fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests;
