//! Named data keys for `POST /vault/encrypt` and `/vault/decrypt`: a random 256-bit key kept
//! (sealed) as a vault item, encrypting caller data with AES-256-GCM bound to the key's name.
//! Ciphertext text: `kve1:` + base64url(nonce ‖ ciphertext ‖ tag).

use base64::Engine as _;
use zeroize::Zeroizing;

use super::aead::{self, Aad, NONCE_LEN, random_array};
use super::error::VaultCryptoError;

const PREFIX: &str = "kve1:";

/// A named data key. `Debug` never shows the bytes.
pub struct NamedKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NamedKey([redacted])")
    }
}

fn aad(name: &str) -> Aad {
    Aad::new("kai-vault-data-v1").bytes(name.as_bytes())
}

impl NamedKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Zeroizing::new(random_array()))
    }

    /// The key from its stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VaultCryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| VaultCryptoError::Malformed {
            what: "named key",
            reason: "not 32 bytes",
        })?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// The bytes to store (sealed) in the vault.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Encrypts `plaintext` under this key, bound to `name`.
    pub fn encrypt(&self, name: &str, plaintext: &[u8]) -> Result<String, VaultCryptoError> {
        let (nonce, ct) = aead::encrypt(&self.0, &aad(name), plaintext)?;
        let mut raw = Vec::with_capacity(NONCE_LEN + ct.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ct);
        Ok(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Decrypts text made by [`NamedKey::encrypt`] with the same key and name.
    pub fn decrypt(&self, name: &str, text: &str) -> Result<Zeroizing<Vec<u8>>, VaultCryptoError> {
        let malformed =
            VaultCryptoError::Malformed { what: "ciphertext", reason: "not a kve1: ciphertext" };
        let body = text.strip_prefix(PREFIX).ok_or(malformed.clone())?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| malformed.clone())?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(malformed);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| malformed)?;
        aead::decrypt(&self.0, &nonce, &aad(name), ct).ok_or(VaultCryptoError::Integrity {
            what: "ciphertext",
            reason: "authentication failed: modified, another key, or another key name",
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn round_trip_and_name_binding(data in proptest::collection::vec(any::<u8>(), 0..512), name in "[a-z]{1,12}", flip in any::<usize>()) {
            let k = NamedKey::generate();
            let ct = k.encrypt(&name, &data).unwrap();
            let plain = k.decrypt(&name, &ct).unwrap();
            prop_assert_eq!(plain.as_slice(), data.as_slice());
            let mut other = name.clone();
            other.push('x');
            prop_assert!(k.decrypt(&other, &ct).is_err());
            prop_assert!(NamedKey::generate().decrypt(&name, &ct).is_err());
            let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&ct[PREFIX.len()..]).unwrap();
            let i = flip % raw.len();
            raw[i] ^= 1;
            let tampered = format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
            prop_assert!(k.decrypt(&name, &tampered).is_err());
        }
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", NamedKey::generate()), "NamedKey([redacted])");
    }
}
