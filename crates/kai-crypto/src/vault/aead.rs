//! AES-256-GCM with a fresh random 96-bit nonce per encryption, and the length-prefixed AAD
//! builder with which every vault ciphertext binds its context (slot or record).
//!
//! Internal plumbing: it knows nothing about slots, records or error wording beyond "failed".
//! Decrypted bytes only ever leave this module inside `Zeroizing`.

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore as _;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::VaultCryptoError;

/// Nonce length of AES-GCM as used here (96 bits, random).
pub const NONCE_LEN: usize = 12;
/// Length of the GCM tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

/// Encrypts under a fresh random nonce; returns the nonce and ciphertext ‖ tag.
pub(crate) fn encrypt(
    key: &[u8; 32],
    aad: &Aad,
    plaintext: &[u8],
) -> Result<([u8; NONCE_LEN], Vec<u8>), VaultCryptoError> {
    let nonce = random_array::<NONCE_LEN>();
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad.0 })
        .map_err(|_| VaultCryptoError::Malformed {
            what: "plaintext",
            reason: "too long for AES-GCM",
        })?;
    Ok((nonce, ciphertext))
}

/// Authenticates and decrypts; `None` on any failure (wrong key, modified bytes, other AAD).
pub(crate) fn decrypt(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &Aad,
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad.0 })
        .ok()
        .map(Zeroizing::new)
}

/// Additional authenticated data: a domain tag followed by fields, each variable-length field
/// prefixed with its length (u32, big-endian), integers big-endian, so no two different
/// contexts serialize to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Aad(Vec<u8>);

impl Aad {
    pub(crate) fn new(domain: &'static str) -> Self {
        Self(Vec::with_capacity(96)).bytes(domain.as_bytes())
    }

    pub(crate) fn bytes(mut self, field: &[u8]) -> Self {
        // Fields are ids and names; one beyond 4 GiB is impossible, saturate rather than panic.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(field);
        self
    }

    pub(crate) fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = [7u8; 32];
        let aad = Aad::new("test").bytes(b"a").u64(1);
        let (nonce, ct) = encrypt(&key, &aad, b"hello").unwrap();
        assert_eq!(ct.len(), 5 + TAG_LEN);
        assert_eq!(decrypt(&key, &nonce, &aad, &ct).unwrap().as_slice(), b"hello");
        assert!(decrypt(&[8u8; 32], &nonce, &aad, &ct).is_none());
        assert!(decrypt(&key, &nonce, &Aad::new("test").bytes(b"a").u64(2), &ct).is_none());
        let (nonce2, _) = encrypt(&key, &aad, b"hello").unwrap();
        assert_ne!(nonce, nonce2, "nonces are random per encryption");
    }

    #[test]
    fn length_prefixes_keep_field_boundaries() {
        let ab_c = Aad::new("d").bytes(b"ab").bytes(b"c");
        let a_bc = Aad::new("d").bytes(b"a").bytes(b"bc");
        assert_ne!(ab_c, a_bc);
    }
}
