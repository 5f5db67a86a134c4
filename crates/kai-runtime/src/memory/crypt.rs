//! Encryption at rest of private memories: each owner has a vault named key
//! (`memory/<hash of the owner>`, created on first use, sealed in the vault like every key), and a
//! private record's text, metadata and embedding are stored as AES-256-GCM ciphertext under it.
//! Each plaintext is prefixed with the record id and field name before sealing, so a ciphertext
//! moved to another record or field fails to open. Keys are cached in memory while the vault is
//! unsealed; [`Crypt::forget`] drops them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kai_crypto::vault::NamedKey;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::types::{MemoryError, Result};
use crate::vault::{Vault, VaultError};

/// The fields of a record that are sealed.
#[derive(Clone, Copy)]
pub(crate) enum Field {
    Text,
    Metadata,
    Embedding,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Metadata => "metadata",
            Self::Embedding => "embedding",
        }
    }
}

pub(crate) struct Crypt {
    vault: Arc<Vault>,
    keys: Mutex<HashMap<String, Arc<NamedKey>>>,
}

/// The vault key name of `owner`'s private memories.
pub(crate) fn key_name(owner: &str) -> String {
    let digest = Sha256::digest(owner.as_bytes());
    format!("memory/{}", hex::encode(&digest[..16]))
}

fn bound(id: &str, field: Field, data: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(id.len() + data.len() + 16));
    out.extend_from_slice(id.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(field.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(data);
    out
}

impl Crypt {
    pub(crate) fn new(vault: Arc<Vault>) -> Self {
        Self { vault, keys: Mutex::new(HashMap::new()) }
    }

    /// Drops every cached key (the vault was sealed).
    pub(crate) fn forget(&self) {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// `owner`'s key; created (and audited as `actor`'s) when `create` and missing.
    pub(crate) async fn key(
        &self,
        owner: &str,
        create: bool,
        actor: &str,
    ) -> Result<Arc<NamedKey>> {
        if let Some(k) = self.keys.lock().unwrap_or_else(PoisonError::into_inner).get(owner) {
            return Ok(k.clone());
        }
        let key = Arc::new(self.vault.named_key_handle(&key_name(owner), create, actor).await?);
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(owner.to_owned(), key.clone());
        Ok(key)
    }

    pub(crate) fn seal(
        key: &NamedKey,
        owner: &str,
        id: &str,
        field: Field,
        data: &[u8],
    ) -> Result<String> {
        key.encrypt(&key_name(owner), &bound(id, field, data))
            .map_err(|e| MemoryError::Vault(VaultError::Crypto(e)))
    }

    pub(crate) fn open(
        key: &NamedKey,
        owner: &str,
        id: &str,
        field: Field,
        text: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let plain = key
            .decrypt(&key_name(owner), text)
            .map_err(|e| MemoryError::Vault(VaultError::Crypto(e)))?;
        let prefix = bound(id, field, &[]);
        if !plain.starts_with(&prefix) {
            return Err(MemoryError::Internal(format!(
                "the {} of memory {id} was sealed for another record",
                field.as_str()
            )));
        }
        Ok(Zeroizing::new(plain[prefix.len()..].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_fields_open_only_where_they_were_sealed() {
        let key = NamedKey::generate();
        let ct = Crypt::seal(&key, "user:a", "mem_1", Field::Text, b"secret note").unwrap();
        assert!(!ct.contains("secret"));
        let back = Crypt::open(&key, "user:a", "mem_1", Field::Text, &ct).unwrap();
        assert_eq!(&back[..], b"secret note");
        assert!(Crypt::open(&key, "user:a", "mem_2", Field::Text, &ct).is_err(), "other record");
        assert!(Crypt::open(&key, "user:a", "mem_1", Field::Metadata, &ct).is_err(), "other field");
        assert!(Crypt::open(&key, "user:b", "mem_1", Field::Text, &ct).is_err(), "other owner");
        assert!(Crypt::open(&NamedKey::generate(), "user:a", "mem_1", Field::Text, &ct).is_err());
        assert_ne!(key_name("user:a"), key_name("user:b"));
        assert!(key_name("agent:kBridge:mail").starts_with("memory/"));
    }
}
