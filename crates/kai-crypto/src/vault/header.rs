//! The vault header: vault id, format version, KDF parameters and salt, the key check and the
//! key slots (passphrase, optional key file) that wrap the data key, plus the pending next
//! generation while a rekey is in progress (see `rekey.rs`). Slot wrapping itself lives in
//! `slots.rs`.
//!
//! The caller stores the header as JSON; this module parses it strictly (unknown fields, an
//! unknown format or KDF are refused) and never derives a key from KDF parameters it has not
//! checked. Every mutation computes everything first and assigns last, so an error leaves the
//! header exactly as it was.

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::VaultCryptoError;
use super::aead::random_array;
use super::kdf::{KDF_ALGORITHM, KdfParams, KdfPolicy, derive_kek};
use super::keys::{DataKey, Keyring, UnlockKey, VaultId};
use super::slots::{SlotKind, Slots, hex_array, key_check, key_check_matches, unwrap, wrap};

/// The header format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KdfRecord {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    #[serde(with = "hex_array")]
    pub(super) salt: [u8; 16],
}

/// The next key generation, wrapped for the same slots, until the caller commits the rekey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PendingRekey {
    pub(super) generation: u32,
    #[serde(with = "hex_array")]
    pub(super) key_check: [u8; 32],
    pub(super) slots: Slots,
}

/// The stored shape of the header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderRepr {
    format: u32,
    pub(super) vault_id: VaultId,
    pub(super) kdf: KdfRecord,
    pub(super) generation: u32,
    #[serde(with = "hex_array")]
    pub(super) key_check: [u8; 32],
    pub(super) slots: Slots,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pending_rekey: Option<PendingRekey>,
}

/// A vault's header. Holds no secret in the clear: slots are ciphertext, the key check is an
/// HMAC under the data key. Serializes to and from JSON (use [`VaultHeader::from_json`] for
/// typed errors); deserializing validates the structure but checks KDF parameters only when a
/// key is about to be derived, under the header's [`KdfPolicy`] (always `Enforce` after
/// deserializing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HeaderRepr", into = "HeaderRepr")]
pub struct VaultHeader {
    pub(super) repr: HeaderRepr,
    pub(super) kdf_policy: KdfPolicy,
}

impl TryFrom<HeaderRepr> for VaultHeader {
    type Error = VaultCryptoError;
    fn try_from(repr: HeaderRepr) -> Result<Self, Self::Error> {
        let malformed = |reason| VaultCryptoError::Malformed { what: "vault header", reason };
        if repr.format != FORMAT_VERSION {
            return Err(VaultCryptoError::UnsupportedFormat {
                version: repr.format,
                supported: FORMAT_VERSION,
            });
        }
        if repr.kdf.algorithm != KDF_ALGORITHM {
            return Err(VaultCryptoError::UnsupportedKdf);
        }
        if repr.generation == 0 {
            return Err(malformed("key generation must be at least 1"));
        }
        if let Some(pending) = &repr.pending_rekey {
            if Some(pending.generation) != repr.generation.checked_add(1) {
                return Err(malformed("the pending rekey must be the next key generation"));
            }
            if pending.slots.key_file.is_some() != repr.slots.key_file.is_some() {
                return Err(malformed(
                    "the pending rekey must have the same slots as the current generation",
                ));
            }
        }
        Ok(Self { repr, kdf_policy: KdfPolicy::Enforce })
    }
}

impl From<VaultHeader> for HeaderRepr {
    fn from(header: VaultHeader) -> Self {
        header.repr
    }
}

impl VaultHeader {
    /// A new vault: random vault id, salt and data key (generation 1), wrapped in a passphrase
    /// slot. `params` must pass [`KdfParams::check`].
    pub fn create(
        passphrase: &SecretString,
        params: KdfParams,
    ) -> Result<(Self, DataKey), VaultCryptoError> {
        Self::create_with_policy(passphrase, params, KdfPolicy::Enforce)
    }

    /// [`VaultHeader::create`] under an explicit KDF policy (tests create fast vaults with
    /// `KdfPolicy::AllowWeakForTests`); the header keeps the policy until serialized.
    pub fn create_with_policy(
        passphrase: &SecretString,
        params: KdfParams,
        policy: KdfPolicy,
    ) -> Result<(Self, DataKey), VaultCryptoError> {
        if passphrase.expose_secret().is_empty() {
            return Err(VaultCryptoError::EmptyPassphrase);
        }
        let vault_id = VaultId::random();
        let salt = random_array();
        let kek = derive_kek(passphrase, &salt, &params, policy)?;
        let data_key = DataKey::generate(1);
        let passphrase_slot = wrap(kek.expose(), &vault_id, SlotKind::Passphrase, &data_key)?;
        let repr = HeaderRepr {
            format: FORMAT_VERSION,
            vault_id,
            kdf: KdfRecord {
                algorithm: KDF_ALGORITHM.to_owned(),
                memory_kib: params.memory_kib,
                iterations: params.iterations,
                parallelism: params.parallelism,
                salt,
            },
            generation: 1,
            key_check: key_check(&data_key, &vault_id),
            slots: Slots { passphrase: passphrase_slot, key_file: None },
            pending_rekey: None,
        };
        Ok((Self { repr, kdf_policy: policy }, data_key))
    }

    /// Parses stored JSON with typed errors.
    pub fn from_json(json: &str) -> Result<Self, VaultCryptoError> {
        let repr: HeaderRepr =
            serde_json::from_str(json).map_err(|_| VaultCryptoError::Malformed {
                what: "vault header",
                reason: "not a vault header (invalid JSON, or unknown, missing or mistyped fields)",
            })?;
        Self::try_from(repr)
    }

    /// The JSON to store.
    pub fn to_json(&self) -> String {
        // Strings, integers and options of them, with string keys: serialization cannot fail.
        serde_json::to_string_pretty(&self.repr).expect("a vault header always serializes")
    }

    /// Sets the KDF policy used when this header derives keys. Only tests pass anything but
    /// `Enforce` (after loading a header written with `KdfParams::testing_only_fast`).
    pub fn set_kdf_policy(&mut self, policy: KdfPolicy) {
        self.kdf_policy = policy;
    }

    /// The vault's id (bind it into every record with `seal`/`open`).
    pub fn vault_id(&self) -> VaultId {
        self.repr.vault_id
    }

    /// The stored Argon2id parameters (unchecked: they are checked before each derivation).
    pub fn kdf_params(&self) -> KdfParams {
        let kdf = &self.repr.kdf;
        KdfParams {
            memory_kib: kdf.memory_kib,
            iterations: kdf.iterations,
            parallelism: kdf.parallelism,
        }
    }

    /// The current key generation.
    pub fn generation(&self) -> u32 {
        self.repr.generation
    }

    /// Whether an unlock key can open this vault.
    pub fn has_key_file_slot(&self) -> bool {
        self.repr.slots.key_file.is_some()
    }

    /// The generation a rekey in progress will commit to, if one is in progress.
    pub fn pending_generation(&self) -> Option<u32> {
        self.repr.pending_rekey.as_ref().map(|p| p.generation)
    }

    /// Unlocks with the passphrase: checks the KDF parameters (refusing a downgraded header
    /// before deriving), derives the KEK and unwraps the data key(s). A wrong passphrase gives
    /// `WrongPassphrase` and nothing else.
    pub fn unlock_with_passphrase(
        &self,
        passphrase: &SecretString,
    ) -> Result<Keyring, VaultCryptoError> {
        let kek = derive_kek(passphrase, &self.repr.kdf.salt, &self.kdf_params(), self.kdf_policy)?;
        self.open_slots(kek.expose(), SlotKind::Passphrase)
    }

    /// Unlocks with the key-file slot's unlock key.
    pub fn unlock_with_key(&self, unlock_key: &UnlockKey) -> Result<Keyring, VaultCryptoError> {
        if !self.has_key_file_slot() {
            return Err(VaultCryptoError::NoKeyFileSlot);
        }
        self.open_slots(unlock_key.expose(), SlotKind::KeyFile)
    }

    /// Adds a key-file slot wrapping the current data key and returns its new random unlock
    /// key (show it once). An existing key-file slot is replaced: its old key stops working.
    pub fn add_key_file_slot(&mut self, data_key: &DataKey) -> Result<UnlockKey, VaultCryptoError> {
        self.ensure_no_rekey()?;
        self.verify_current(data_key)?;
        let unlock_key = UnlockKey::generate();
        let slot = wrap(unlock_key.expose(), &self.repr.vault_id, SlotKind::KeyFile, data_key)?;
        self.repr.slots.key_file = Some(slot);
        Ok(unlock_key)
    }

    /// Removes the key-file slot; returns whether there was one.
    pub fn remove_key_file_slot(&mut self) -> Result<bool, VaultCryptoError> {
        self.ensure_no_rekey()?;
        Ok(self.repr.slots.key_file.take().is_some())
    }

    /// Re-wraps the same data key under a new passphrase with a fresh salt (records stay as
    /// they are; the old passphrase stops working once the caller stores the new header).
    pub fn change_passphrase(
        &mut self,
        data_key: &DataKey,
        new_passphrase: &SecretString,
    ) -> Result<(), VaultCryptoError> {
        self.ensure_no_rekey()?;
        if new_passphrase.expose_secret().is_empty() {
            return Err(VaultCryptoError::EmptyPassphrase);
        }
        self.verify_current(data_key)?;
        let salt = random_array();
        let kek = derive_kek(new_passphrase, &salt, &self.kdf_params(), self.kdf_policy)?;
        let slot = wrap(kek.expose(), &self.repr.vault_id, SlotKind::Passphrase, data_key)?;
        self.repr.kdf.salt = salt;
        self.repr.slots.passphrase = slot;
        Ok(())
    }

    fn open_slots(
        &self,
        wrapping_key: &[u8; 32],
        kind: SlotKind,
    ) -> Result<Keyring, VaultCryptoError> {
        let r = &self.repr;
        let wrong = match kind {
            SlotKind::Passphrase => VaultCryptoError::WrongPassphrase,
            SlotKind::KeyFile => VaultCryptoError::WrongUnlockKey,
        };
        let current = r
            .slots
            .get(kind)
            .and_then(|slot| unwrap(wrapping_key, &r.vault_id, kind, r.generation, slot))
            .ok_or(wrong)?;
        if !key_check_matches(&current, &r.vault_id, &r.key_check) {
            return Err(VaultCryptoError::Integrity {
                what: "vault header",
                reason: "the key check does not match the unwrapped data key",
            });
        }
        let next = match &r.pending_rekey {
            None => None,
            Some(pending) => Some(
                pending
                    .slots
                    .get(kind)
                    .and_then(|slot| unwrap(wrapping_key, &r.vault_id, kind, pending.generation, slot))
                    .filter(|next| key_check_matches(next, &r.vault_id, &pending.key_check))
                    .ok_or(VaultCryptoError::Integrity {
                        what: "vault header",
                        reason: "the pending rekey's slot does not open with the credential that opened the current one",
                    })?,
            ),
        };
        Ok(Keyring { current, next })
    }

    /// Refuses a data key that is not this vault's current one.
    pub(super) fn verify_current(&self, data_key: &DataKey) -> Result<(), VaultCryptoError> {
        let r = &self.repr;
        if data_key.generation() == r.generation
            && key_check_matches(data_key, &r.vault_id, &r.key_check)
        {
            Ok(())
        } else {
            Err(VaultCryptoError::KeyMismatch)
        }
    }

    pub(super) fn ensure_no_rekey(&self) -> Result<(), VaultCryptoError> {
        match self.pending_generation() {
            Some(next_generation) => Err(VaultCryptoError::RekeyInProgress { next_generation }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
