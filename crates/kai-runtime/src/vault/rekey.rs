//! Rotating the data key, crash-safe (see `kai_crypto::vault` for the protocol): the header
//! with the pending generation is stored first, records are re-sealed in batches, the header
//! is committed last. An unlock that finds a pending generation finishes the job.

use kai_crypto::vault::{DataKey, SealedRecord, UnlockKey, seal};
use kai_store::VaultItemRow;
use secrecy::SecretString;

use super::{Vault, VaultError, now_us};

/// Records re-sealed per transaction.
const BATCH: u32 = 500;

impl Vault {
    /// Replaces the data key with a new generation and re-seals every record. Needs the
    /// passphrase (its KEK wraps the new key) and, if the vault has a key-file slot, the
    /// unlock key. Returns the new generation.
    pub async fn rekey(
        &self,
        passphrase: &SecretString,
        unlock_key: Option<&UnlockKey>,
    ) -> Result<u32, VaultError> {
        let handle = self.state_handle()?;
        {
            let mut state = handle.write().await;
            let mut header = state.header.clone();
            let current_gen = state.keyring.current().generation();
            let (pass, key_text) = (passphrase.clone(), unlock_key.map(|k| k.to_text()));
            let begun = tokio::task::spawn_blocking(move || {
                let keyring = header.unlock_with_passphrase(&pass)?;
                let unlock = key_text
                    .map(|t| UnlockKey::from_text(secrecy::ExposeSecret::expose_secret(&t)))
                    .transpose()?;
                header.begin_rekey(keyring.current(), &pass, unlock.as_ref())?;
                let keyring = header.unlock_with_passphrase(&pass)?;
                Ok::<_, kai_crypto::vault::VaultCryptoError>((header, keyring))
            })
            .await
            .map_err(|e| VaultError::Invalid(e.to_string()))?;
            let (header, keyring) = begun.map_err(|e| match e {
                kai_crypto::vault::VaultCryptoError::WrongPassphrase => VaultError::WrongCredential,
                other => other.into(),
            })?;
            debug_assert!(keyring.next().is_some_and(|n| n.generation() > current_gen));
            self.store.put_vault_header(&header.to_json(), now_us()).await?;
            state.header = header;
            state.keyring = keyring;
        }
        self.finish_pending_rekey().await
    }

    /// Step 2 and 3 of the protocol: re-seal what is left under older generations, then commit.
    pub(crate) async fn finish_pending_rekey(&self) -> Result<u32, VaultError> {
        let handle = self.state_handle()?;
        let mut state = handle.write().await;
        let Some(next) = state.keyring.next() else {
            return Ok(state.keyring.current().generation());
        };
        let generation = next.generation();
        let vault_id = state.header.vault_id();
        loop {
            let old = self.store.vault_versions_before(i64::from(generation), BATCH).await?;
            if old.is_empty() {
                break;
            }
            let mut resealed = Vec::with_capacity(old.len());
            for mut v in old {
                let sealed = SealedRecord::from_bytes(&v.sealed)?;
                let plain = state.keyring.open(&vault_id, &v.item_id, v.version as u64, &sealed)?;
                let next: &DataKey =
                    state.keyring.next().ok_or(VaultError::Invalid("rekey lost its key".into()))?;
                let again = seal(next, &vault_id, &v.item_id, v.version as u64, &plain)?;
                v.generation = i64::from(again.generation);
                v.sealed = again.to_bytes();
                resealed.push(v);
            }
            self.store.reseal_vault(&resealed, &[]).await?;
        }
        // Names last: re-seal and re-HMAC every item's name under the new key.
        let next = state.keyring.next().ok_or(VaultError::Invalid("rekey lost its key".into()))?;
        let mut items: Vec<VaultItemRow> = Vec::new();
        for mut item in self.store.all_vault_items().await? {
            let sealed = SealedRecord::from_bytes(&item.sealed_name)?;
            if sealed.generation == generation {
                continue;
            }
            let record = format!("{}#name", item.id);
            let name = state.keyring.open(&vault_id, &record, 0, &sealed)?;
            item.sealed_name = seal(next, &vault_id, &record, 0, &name)?.to_bytes();
            let name = String::from_utf8_lossy(&name).into_owned();
            item.name_hmac = next.name_hmac_key().name_hmac(&name);
            items.push(item);
        }
        self.store.reseal_vault(&[], &items).await?;
        let mut header = state.header.clone();
        let next = state.keyring.next().ok_or(VaultError::Invalid("rekey lost its key".into()))?;
        header.commit_rekey(next)?;
        self.store.put_vault_header(&header.to_json(), now_us()).await?;
        state.header = header;
        // Keep using the keyring: it holds the new key as `next`; reload for a clean one.
        drop(state);
        tracing::info!(generation, "vault rekeyed");
        Ok(generation)
    }
}
