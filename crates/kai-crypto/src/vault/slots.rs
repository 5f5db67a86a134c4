//! Key slots: the data key wrapped under a slot's key (AES-256-GCM; the AAD binds
//! `kai-vault-slot-v1`, vault id, slot kind and key generation), and the key check that tells
//! the current data key from a stale or foreign one.
//!
//! It knows nothing about KDFs or passphrases: callers hand in the 256-bit wrapping key.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::VaultCryptoError;
use super::aead::{self, Aad, NONCE_LEN, TAG_LEN};
use super::hmac::hmac_sha256;
use super::keys::{DataKey, VaultId};

const SLOT_DOMAIN: &str = "kai-vault-slot-v1";
const KEY_CHECK_DOMAIN: &str = "kai-vault-key-check-v1";

/// Which credential a slot opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SlotKind {
    /// A key-encryption key derived from the owner's passphrase with Argon2id.
    Passphrase,
    /// A random 256-bit unlock key kept in a key file or `KAI_VAULT_KEY`.
    KeyFile,
}

impl SlotKind {
    fn aad_label(self) -> &'static [u8] {
        match self {
            Self::Passphrase => b"passphrase",
            Self::KeyFile => b"key_file",
        }
    }
}

/// A data key encrypted under a slot's wrapping key (AES-256-GCM, ciphertext ‖ tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WrappedKey {
    #[serde(with = "hex_array")]
    nonce: [u8; NONCE_LEN],
    #[serde(with = "hex_array")]
    wrapped_key: [u8; 32 + TAG_LEN],
}

/// The slots of one key generation. The passphrase slot always exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Slots {
    pub(super) passphrase: WrappedKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) key_file: Option<WrappedKey>,
}

impl Slots {
    pub(super) fn get(&self, kind: SlotKind) -> Option<&WrappedKey> {
        match kind {
            SlotKind::Passphrase => Some(&self.passphrase),
            SlotKind::KeyFile => self.key_file.as_ref(),
        }
    }
}

fn slot_aad(vault_id: &VaultId, kind: SlotKind, generation: u32) -> Aad {
    Aad::new(SLOT_DOMAIN).bytes(vault_id.as_bytes()).bytes(kind.aad_label()).u32(generation)
}

/// Wraps `data_key` for a slot; the AAD binds vault id, slot kind and key generation.
pub(super) fn wrap(
    wrapping_key: &[u8; 32],
    vault_id: &VaultId,
    kind: SlotKind,
    data_key: &DataKey,
) -> Result<WrappedKey, VaultCryptoError> {
    let aad = slot_aad(vault_id, kind, data_key.generation());
    let (nonce, ciphertext) = aead::encrypt(wrapping_key, &aad, data_key.expose())?;
    let wrapped_key = ciphertext.try_into().map_err(|_| VaultCryptoError::Malformed {
        what: "wrapped key",
        reason: "unexpected length",
    })?;
    Ok(WrappedKey { nonce, wrapped_key })
}

/// Unwraps a slot; `None` when the wrapping key is wrong or anything bound in was changed.
pub(super) fn unwrap(
    wrapping_key: &[u8; 32],
    vault_id: &VaultId,
    kind: SlotKind,
    generation: u32,
    slot: &WrappedKey,
) -> Option<DataKey> {
    let aad = slot_aad(vault_id, kind, generation);
    let plain = aead::decrypt(wrapping_key, &slot.nonce, &aad, &slot.wrapped_key)?;
    DataKey::from_unwrapped(generation, &plain)
}

/// HMAC of (vault id, generation) under the data key: lets the header tell a stale or foreign
/// data key from the current one without holding any credential.
pub(super) fn key_check(data_key: &DataKey, vault_id: &VaultId) -> [u8; 32] {
    let mut message = Vec::with_capacity(64);
    message.extend_from_slice(KEY_CHECK_DOMAIN.as_bytes());
    message.extend_from_slice(vault_id.as_bytes());
    message.extend_from_slice(&data_key.generation().to_be_bytes());
    hmac_sha256(data_key.expose(), &message)
}

pub(super) fn key_check_matches(
    data_key: &DataKey,
    vault_id: &VaultId,
    expected: &[u8; 32],
) -> bool {
    bool::from(key_check(data_key, vault_id).ct_eq(expected))
}

pub(super) mod hex_array {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(in crate::vault) fn serialize<S: Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(in crate::vault) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = String::deserialize(d)?;
        let bytes = hex::decode(&s).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom(format!("expected {N} bytes")))
    }
}
