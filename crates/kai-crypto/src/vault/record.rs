//! Record encryption under a data key: `seal` and `open`, and the compact byte and text
//! encodings of a sealed record.
//!
//! AES-256-GCM with a fresh random 96-bit nonce per seal. The AAD binds the domain tag
//! `kai-vault-record-v1`, the vault id, the record id, the record version and the key
//! generation (length-prefixed), so a ciphertext moved to another record, version or vault, or
//! presented under another generation, fails with `integrity_error`. With random nonces a data
//! key must seal fewer than [`MAX_SEALS_PER_DATA_KEY`] records; the caller counts seals and
//! rekeys before the limit.
//!
//! Byte layout (version 1): `0x01 ‖ generation (u32 BE) ‖ nonce (12) ‖ ciphertext ‖ tag (16)`.
//! Text layout: `kvr1:` followed by the bytes in base64url without padding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use super::VaultCryptoError;
use super::aead::{self, Aad, NONCE_LEN, TAG_LEN};
use super::keys::{DataKey, Keyring, VaultId};

/// NIST SP 800-38D bound for random 96-bit nonces: at most 2³² encryptions per key.
pub const MAX_SEALS_PER_DATA_KEY: u64 = 1 << 32;

const RECORD_DOMAIN: &str = "kai-vault-record-v1";
const ENCODING_VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TEXT_PREFIX: &str = "kvr1:";

/// A record encrypted under one data-key generation. Holds only ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// The key generation that sealed it.
    pub generation: u32,
    /// Random 96-bit nonce.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the 16-byte GCM tag.
    pub ciphertext: Vec<u8>,
}

fn record_aad(vault_id: &VaultId, record_id: &str, version: u64, generation: u32) -> Aad {
    Aad::new(RECORD_DOMAIN)
        .bytes(vault_id.as_bytes())
        .bytes(record_id.as_bytes())
        .u64(version)
        .u32(generation)
}

/// Encrypts `plaintext` as version `version` of record `record_id` in vault `vault_id`.
pub fn seal(
    data_key: &DataKey,
    vault_id: &VaultId,
    record_id: &str,
    version: u64,
    plaintext: &[u8],
) -> Result<SealedRecord, VaultCryptoError> {
    let generation = data_key.generation();
    let aad = record_aad(vault_id, record_id, version, generation);
    let (nonce, ciphertext) = aead::encrypt(data_key.expose(), &aad, plaintext)?;
    Ok(SealedRecord { generation, nonce, ciphertext })
}

/// Authenticates and decrypts a record; any mismatch (modified bytes, another record, version,
/// vault or key generation) is `Integrity` and returns no bytes.
pub fn open(
    data_key: &DataKey,
    vault_id: &VaultId,
    record_id: &str,
    version: u64,
    sealed: &SealedRecord,
) -> Result<Zeroizing<Vec<u8>>, VaultCryptoError> {
    if sealed.generation != data_key.generation() {
        return Err(VaultCryptoError::Integrity {
            what: "vault record",
            reason: "sealed under another key generation than the key offered",
        });
    }
    let aad = record_aad(vault_id, record_id, version, sealed.generation);
    aead::decrypt(data_key.expose(), &sealed.nonce, &aad, &sealed.ciphertext).ok_or(VaultCryptoError::Integrity {
        what: "vault record",
        reason: "authentication failed: modified, or moved from another record, version or vault",
    })
}

impl Keyring {
    /// [`open`] with the key of the record's generation (current or, mid-rekey, next).
    pub fn open(
        &self,
        vault_id: &VaultId,
        record_id: &str,
        version: u64,
        sealed: &SealedRecord,
    ) -> Result<Zeroizing<Vec<u8>>, VaultCryptoError> {
        let key = self.get(sealed.generation).ok_or(VaultCryptoError::Integrity {
            what: "vault record",
            reason: "sealed under a key generation this vault does not hold",
        })?;
        open(key, vault_id, record_id, version, sealed)
    }
}

impl SealedRecord {
    /// The compact byte encoding (see the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.ciphertext.len());
        out.push(ENCODING_VERSION);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses the byte encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultCryptoError> {
        let malformed = |reason| VaultCryptoError::Malformed { what: "sealed record", reason };
        if bytes.len() < HEADER_LEN + TAG_LEN {
            return Err(malformed("shorter than the smallest sealed record"));
        }
        let (head, ciphertext) = bytes.split_at(HEADER_LEN);
        if head[0] != ENCODING_VERSION {
            return Err(malformed("unknown encoding version"));
        }
        let mut generation = [0u8; 4];
        generation.copy_from_slice(&head[1..5]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&head[5..]);
        Ok(Self {
            generation: u32::from_be_bytes(generation),
            nonce,
            ciphertext: ciphertext.to_vec(),
        })
    }

    /// The text encoding: `kvr1:` + base64url of the bytes.
    pub fn to_text(&self) -> String {
        format!("{TEXT_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.to_bytes()))
    }

    /// Parses the text encoding.
    pub fn from_text(text: &str) -> Result<Self, VaultCryptoError> {
        let malformed = |reason| VaultCryptoError::Malformed { what: "sealed record", reason };
        let body = text.strip_prefix(TEXT_PREFIX).ok_or(malformed("text must start with kvr1:"))?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| malformed("not base64url"))?;
        Self::from_bytes(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(generation: u32, bytes: [u8; 32]) -> DataKey {
        DataKey::from_unwrapped(generation, &bytes).unwrap()
    }

    fn is_integrity(result: Result<Zeroizing<Vec<u8>>, VaultCryptoError>) -> bool {
        matches!(result, Err(ref e) if e.code() == "integrity_error")
    }

    #[test]
    fn round_trip_and_encodings() {
        let dk = DataKey::generate(1);
        let vault = VaultId::random();
        for plaintext in [&b""[..], b"x", &[0xa5; 256]] {
            let sealed = seal(&dk, &vault, "secret/openai", 7, plaintext).unwrap();
            assert_eq!(sealed.ciphertext.len(), plaintext.len() + TAG_LEN);
            assert_eq!(
                open(&dk, &vault, "secret/openai", 7, &sealed).unwrap().as_slice(),
                plaintext
            );
            let bytes = sealed.to_bytes();
            assert_eq!(bytes.len(), HEADER_LEN + plaintext.len() + TAG_LEN);
            assert_eq!(SealedRecord::from_bytes(&bytes).unwrap(), sealed);
            let text = sealed.to_text();
            assert!(text.starts_with("kvr1:"));
            assert_eq!(SealedRecord::from_text(&text).unwrap(), sealed);
        }
    }

    #[test]
    fn malformed_encodings_are_refused() {
        let sealed = seal(&DataKey::generate(1), &VaultId::random(), "r", 1, b"abc").unwrap();
        let mut bytes = sealed.to_bytes();
        assert_eq!(
            SealedRecord::from_bytes(&bytes[..HEADER_LEN + TAG_LEN - 1]).unwrap_err().code(),
            "malformed"
        );
        bytes[0] = 2;
        assert_eq!(SealedRecord::from_bytes(&bytes).unwrap_err().code(), "malformed");
        assert_eq!(SealedRecord::from_text("kvr2:AAAA").unwrap_err().code(), "malformed");
        assert_eq!(SealedRecord::from_text("kvr1:***").unwrap_err().code(), "malformed");
    }

    #[test]
    fn wrong_key_generation_and_keyring_selection() {
        let vault = VaultId::random();
        let old = DataKey::generate(1);
        let sealed = seal(&old, &vault, "r", 1, b"v").unwrap();
        let same_bytes_next_generation = key(2, *old.expose());
        assert!(is_integrity(open(&same_bytes_next_generation, &vault, "r", 1, &sealed)));
        let mut relabelled = sealed.clone();
        relabelled.generation = 2;
        assert!(is_integrity(open(&same_bytes_next_generation, &vault, "r", 1, &relabelled)));
        let ring = Keyring { current: old, next: Some(DataKey::generate(2)) };
        assert_eq!(ring.open(&vault, "r", 1, &sealed).unwrap().as_slice(), b"v");
        let newer = seal(ring.sealing_key(), &vault, "r", 2, b"w").unwrap();
        assert_eq!(ring.open(&vault, "r", 2, &newer).unwrap().as_slice(), b"w");
        let committed = Keyring { current: ring.next.unwrap(), next: None };
        assert!(is_integrity(committed.open(&vault, "r", 1, &sealed)));
    }

    #[test]
    fn nonces_do_not_repeat() {
        let dk = DataKey::generate(1);
        let vault = VaultId::random();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(seal(&dk, &vault, "r", 1, b"").unwrap().nonce));
        }
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(
            key_bytes in any::<[u8; 32]>(),
            generation in 1u32..,
            record_id in ".{0,40}",
            version in any::<u64>(),
            plaintext in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let dk = key(generation, key_bytes);
            let vault = VaultId::random();
            let sealed = seal(&dk, &vault, &record_id, version, &plaintext).unwrap();
            let decoded = SealedRecord::from_bytes(&sealed.to_bytes()).unwrap();
            let opened = open(&dk, &vault, &record_id, version, &decoded).unwrap();
            prop_assert_eq!(opened.as_slice(), &plaintext[..]);
        }

        #[test]
        fn aad_binds_record_version_and_vault(
            record_id in "[a-z/._-]{0,24}",
            other_id in "[a-z/._-]{0,24}",
            version in any::<u64>(),
            other_version in any::<u64>(),
            plaintext in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let dk = DataKey::generate(1);
            let vault = VaultId::random();
            let sealed = seal(&dk, &vault, &record_id, version, &plaintext).unwrap();
            if other_id != record_id {
                prop_assert!(is_integrity(open(&dk, &vault, &other_id, version, &sealed)));
            }
            if other_version != version {
                prop_assert!(is_integrity(open(&dk, &vault, &record_id, other_version, &sealed)));
            }
            prop_assert!(is_integrity(open(&dk, &VaultId::random(), &record_id, version, &sealed)));
            prop_assert!(is_integrity(open(&DataKey::generate(1), &vault, &record_id, version, &sealed)));
        }

        #[test]
        fn any_single_bit_flip_is_refused(
            plaintext in proptest::collection::vec(any::<u8>(), 0..128),
            position in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let dk = DataKey::generate(1);
            let vault = VaultId::random();
            let mut bytes = seal(&dk, &vault, "r", 3, &plaintext).unwrap().to_bytes();
            let i = position.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let result = SealedRecord::from_bytes(&bytes).and_then(|s| open(&dk, &vault, "r", 3, &s));
            let code = result.map(|_| "opened").unwrap_or_else(|e| e.code());
            // The version byte is framing (malformed); generation, nonce, ciphertext and tag
            // are authenticated (integrity_error).
            prop_assert_eq!(code, if i == 0 { "malformed" } else { "integrity_error" });
        }
    }
}
