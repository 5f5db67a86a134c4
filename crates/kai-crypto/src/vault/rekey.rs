//! Rekey: a new data-key generation wrapped for the same slots and held *next to* the current
//! one in the header (`pending_rekey`) until the caller commits. The protocol that makes this
//! crash-safe is described in the `vault` module doc; this module only moves the header
//! between its three states (no rekey → pending → committed, or back by aborting).

use secrecy::SecretString;
use subtle::ConstantTimeEq as _;

use super::VaultCryptoError;
use super::header::{PendingRekey, VaultHeader};
use super::kdf::derive_kek;
use super::keys::{DataKey, UnlockKey};
use super::slots::{SlotKind, Slots, key_check, unwrap, wrap};

impl VaultHeader {
    /// Step 1 of a rekey: creates the next generation's data key, wraps it for every slot and
    /// records it as pending. Returns the new key; records are re-sealed with it by the caller.
    ///
    /// `current` must be the current data key. The passphrase is required (it derives the
    /// KEK that wraps the new key); `unlock_key` is required when the vault has a key-file slot
    /// (and ignored otherwise), so every way into the vault keeps working. On error the header
    /// is unchanged.
    pub fn begin_rekey(
        &mut self,
        current: &DataKey,
        passphrase: &SecretString,
        unlock_key: Option<&UnlockKey>,
    ) -> Result<DataKey, VaultCryptoError> {
        self.ensure_no_rekey()?;
        self.verify_current(current)?;
        let r = &self.repr;
        let next_generation = r.generation.checked_add(1).ok_or(VaultCryptoError::Malformed {
            what: "vault header",
            reason: "key generations are exhausted",
        })?;
        let kek = derive_kek(passphrase, &r.kdf.salt, &self.kdf_params(), self.kdf_policy)?;
        let from_passphrase = unwrap(
            kek.expose(),
            &r.vault_id,
            SlotKind::Passphrase,
            r.generation,
            &r.slots.passphrase,
        )
        .ok_or(VaultCryptoError::WrongPassphrase)?;
        if !bool::from(from_passphrase.ct_eq(current)) {
            return Err(VaultCryptoError::KeyMismatch);
        }
        let unlock_key = match (&r.slots.key_file, unlock_key) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(VaultCryptoError::MissingCredential { slot: "key file" });
            }
            (Some(slot), Some(key)) => {
                unwrap(key.expose(), &r.vault_id, SlotKind::KeyFile, r.generation, slot)
                    .filter(|from_key| bool::from(from_key.ct_eq(current)))
                    .ok_or(VaultCryptoError::WrongUnlockKey)?;
                Some(key)
            }
        };
        let next = DataKey::generate(next_generation);
        let passphrase_slot = wrap(kek.expose(), &r.vault_id, SlotKind::Passphrase, &next)?;
        let key_file_slot = unlock_key
            .map(|key| wrap(key.expose(), &r.vault_id, SlotKind::KeyFile, &next))
            .transpose()?;
        self.repr.pending_rekey = Some(PendingRekey {
            generation: next_generation,
            key_check: key_check(&next, &r.vault_id),
            slots: Slots { passphrase: passphrase_slot, key_file: key_file_slot },
        });
        Ok(next)
    }

    /// Step 3 of a rekey, once every record is sealed under `next`: the pending generation
    /// becomes the current one and the old generation's slots are dropped. `next` must be the
    /// pending key (proof the caller holds it). Returns the new generation.
    pub fn commit_rekey(&mut self, next: &DataKey) -> Result<u32, VaultCryptoError> {
        let pending =
            self.repr.pending_rekey.as_ref().ok_or(VaultCryptoError::NoRekeyInProgress)?;
        let expected = key_check(next, &self.repr.vault_id);
        if next.generation() != pending.generation
            || !bool::from(expected.ct_eq(&pending.key_check))
        {
            return Err(VaultCryptoError::KeyMismatch);
        }
        let Some(pending) = self.repr.pending_rekey.take() else {
            return Err(VaultCryptoError::NoRekeyInProgress);
        };
        self.repr.generation = pending.generation;
        self.repr.key_check = pending.key_check;
        self.repr.slots = pending.slots;
        Ok(self.repr.generation)
    }

    /// Abandons a pending rekey. Only safe when no record is sealed under the pending
    /// generation (re-seal such records with the current key first): after this the pending
    /// key is gone.
    pub fn abort_rekey(&mut self) -> Result<(), VaultCryptoError> {
        self.repr.pending_rekey.take().map(|_| ()).ok_or(VaultCryptoError::NoRekeyInProgress)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::vault::{KdfParams, KdfPolicy, Keyring, SealedRecord, seal};

    const PASS: &str = "old and trusted passphrase";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    fn fast_vault_with_key_file() -> (VaultHeader, DataKey, UnlockKey) {
        let (mut header, dk) = VaultHeader::create_with_policy(
            &secret(PASS),
            KdfParams::testing_only_fast(),
            KdfPolicy::AllowWeakForTests,
        )
        .unwrap();
        let uk = header.add_key_file_slot(&dk).unwrap();
        (header, dk, uk)
    }

    /// What a restarted process sees: the stored JSON, parsed again.
    fn reload(json: &str) -> VaultHeader {
        let mut header = VaultHeader::from_json(json).unwrap();
        header.set_kdf_policy(KdfPolicy::AllowWeakForTests);
        header
    }

    type Store = BTreeMap<String, Vec<u8>>;

    fn plaintext(id: &str) -> Vec<u8> {
        format!("value of {id}").into_bytes()
    }

    /// Every record in `store` opens, with the right plaintext, through both credentials.
    fn assert_opens(header_json: &str, store: &Store, uk: &UnlockKey) {
        let header = reload(header_json);
        let rings: [Keyring; 2] = [
            header.unlock_with_passphrase(&secret(PASS)).unwrap(),
            header.unlock_with_key(uk).unwrap(),
        ];
        for ring in &rings {
            for (id, bytes) in store {
                let sealed = SealedRecord::from_bytes(bytes).unwrap();
                let opened = ring.open(&header.vault_id(), id, 1, &sealed).unwrap();
                assert_eq!(opened.as_slice(), plaintext(id).as_slice(), "record {id}");
            }
        }
    }

    /// Re-seals every record still under an older generation with `ring`'s sealing key.
    fn reseal_remaining(header: &VaultHeader, ring: &Keyring, store: &mut Store) {
        let target = ring.sealing_key();
        for (id, bytes) in store.iter_mut() {
            let sealed = SealedRecord::from_bytes(bytes).unwrap();
            if sealed.generation != target.generation() {
                let plain = ring.open(&header.vault_id(), id, 1, &sealed).unwrap();
                *bytes = seal(target, &header.vault_id(), id, 1, &plain).unwrap().to_bytes();
            }
        }
    }

    #[test]
    fn crash_at_any_step_leaves_a_vault_that_opens() {
        let (mut header, old, uk) = fast_vault_with_key_file();
        let vault_id = header.vault_id();
        let mut store: Store = (0..6)
            .map(|i| {
                let id = format!("secret/{i}");
                let bytes = seal(&old, &vault_id, &id, 1, &plaintext(&id)).unwrap().to_bytes();
                (id, bytes)
            })
            .collect();
        let h0 = header.to_json();
        let mut states = vec![(h0, store.clone())];

        let next = header.begin_rekey(&old, &secret(PASS), Some(&uk)).unwrap();
        assert_eq!((header.generation(), header.pending_generation()), (1, Some(2)));
        let h1 = header.to_json();
        states.push((h1.clone(), store.clone()));
        let ids: Vec<String> = store.keys().cloned().collect();
        for id in &ids {
            let bytes = store.get_mut(id).unwrap();
            let plain = crate::vault::open(
                &old,
                &vault_id,
                id,
                1,
                &SealedRecord::from_bytes(bytes).unwrap(),
            )
            .unwrap();
            *bytes = seal(&next, &vault_id, id, 1, &plain).unwrap().to_bytes();
            states.push((h1.clone(), store.clone()));
        }
        assert_eq!(header.commit_rekey(&next).unwrap(), 2);
        let h2 = header.to_json();
        states.push((h2.clone(), store.clone()));

        for (header_json, store) in &states {
            assert_opens(header_json, store, &uk);
        }

        // A process restarting mid-rekey resumes from the stored header alone (no credential
        // beyond the one that unlocked it) and finishes the rekey.
        for (header_json, store) in states.iter().filter(|(h, _)| *h == h1) {
            let mut header = reload(header_json);
            let ring = header.unlock_with_key(&uk).unwrap();
            let mut store = store.clone();
            reseal_remaining(&header, &ring, &mut store);
            let next = ring.next.unwrap();
            header.commit_rekey(&next).unwrap();
            assert_opens(&header.to_json(), &store, &uk);
        }

        // After the commit the old generation is gone: its key and its records are refused.
        let committed = reload(&h2);
        assert_eq!(committed.clone().add_key_file_slot(&old).unwrap_err().code(), "key_mismatch");
        let ring = committed.unlock_with_passphrase(&secret(PASS)).unwrap();
        assert!(ring.next().is_none());
        let (id, bytes) = states[0].1.iter().next().unwrap();
        let err =
            ring.open(&vault_id, id, 1, &SealedRecord::from_bytes(bytes).unwrap()).unwrap_err();
        assert_eq!(err.code(), "integrity_error");
    }

    #[test]
    fn refusals_leave_the_header_unchanged() {
        let (mut header, dk, uk) = fast_vault_with_key_file();
        let before = header.clone();
        let cases = [
            (header.begin_rekey(&dk, &secret("wrong"), Some(&uk)).unwrap_err(), "wrong_passphrase"),
            (header.begin_rekey(&dk, &secret(PASS), None).unwrap_err(), "missing_credential"),
            (
                header.begin_rekey(&dk, &secret(PASS), Some(&UnlockKey::generate())).unwrap_err(),
                "wrong_unlock_key",
            ),
            (
                header.begin_rekey(&DataKey::generate(1), &secret(PASS), Some(&uk)).unwrap_err(),
                "key_mismatch",
            ),
            (header.commit_rekey(&dk).unwrap_err(), "no_rekey_in_progress"),
            (header.abort_rekey().unwrap_err(), "no_rekey_in_progress"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
        }
        assert_eq!(header, before);
    }

    #[test]
    fn pending_rekey_blocks_other_changes_and_abort_restores() {
        let (mut header, dk, uk) = fast_vault_with_key_file();
        let before = header.clone();
        let next = header.begin_rekey(&dk, &secret(PASS), Some(&uk)).unwrap();
        assert_eq!(next.generation(), 2);
        let in_progress = "rekey_in_progress";
        assert_eq!(
            header.begin_rekey(&dk, &secret(PASS), Some(&uk)).unwrap_err().code(),
            in_progress
        );
        assert_eq!(header.change_passphrase(&dk, &secret("new")).unwrap_err().code(), in_progress);
        assert_eq!(header.add_key_file_slot(&dk).unwrap_err().code(), in_progress);
        assert_eq!(header.remove_key_file_slot().unwrap_err().code(), in_progress);
        assert_eq!(header.commit_rekey(&dk).unwrap_err().code(), "key_mismatch");
        header.abort_rekey().unwrap();
        assert_eq!(header, before);
    }

    #[test]
    fn rekey_without_key_file_slot_needs_only_the_passphrase() {
        let (mut header, dk) = VaultHeader::create_with_policy(
            &secret(PASS),
            KdfParams::testing_only_fast(),
            KdfPolicy::AllowWeakForTests,
        )
        .unwrap();
        let next = header.begin_rekey(&dk, &secret(PASS), None).unwrap();
        header.commit_rekey(&next).unwrap();
        let ring = reload(&header.to_json()).unlock_with_passphrase(&secret(PASS)).unwrap();
        assert!(bool::from(ring.current().ct_eq(&next)));
    }

    #[test]
    fn tampered_pending_state_is_refused() {
        let (mut header, dk, uk) = fast_vault_with_key_file();
        header.begin_rekey(&dk, &secret(PASS), Some(&uk)).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&header.to_json()).unwrap();
        json["pending_rekey"]["generation"] = 5.into();
        assert_eq!(VaultHeader::from_json(&json.to_string()).unwrap_err().code(), "malformed");

        let mut json: serde_json::Value = serde_json::from_str(&header.to_json()).unwrap();
        json["pending_rekey"]["slots"]["key_file"] = serde_json::Value::Null;
        assert_eq!(VaultHeader::from_json(&json.to_string()).unwrap_err().code(), "malformed");

        let mut json: serde_json::Value = serde_json::from_str(&header.to_json()).unwrap();
        json["pending_rekey"]["slots"]["passphrase"]["nonce"] = "00".repeat(12).into();
        let tampered = reload(&json.to_string());
        assert_eq!(
            tampered.unlock_with_passphrase(&secret(PASS)).unwrap_err().code(),
            "integrity_error"
        );
        assert!(tampered.unlock_with_key(&uk).is_ok(), "the key-file path is intact");
    }
}
