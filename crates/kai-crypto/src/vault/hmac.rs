//! HMAC-SHA256 (RFC 2104, over `sha2`) and the name-HMAC key derived from a data key, so audit
//! entries can record `name_hmac` instead of a secret's name.
//!
//! The name-HMAC key is `HKDF-Expand(PRK = data key, info = "kai-vault-name-hmac-v1", L = 32)`,
//! i.e. `HMAC(dk, info ‖ 0x01)`: a separate sub-key, never the data key itself. It belongs to a
//! key generation, so name HMACs change when the vault is rekeyed.

use std::fmt;

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::keys::DataKey;

const BLOCK_LEN: usize = 64;
const NAME_HMAC_INFO: &[u8] = b"kai-vault-name-hmac-v1";

/// HMAC-SHA256 of `message` under `key` (RFC 2104; keys longer than a block are hashed first).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = Zeroizing::new([0u8; BLOCK_LEN]);
    if key.len() > BLOCK_LEN {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut pad = Zeroizing::new([0u8; BLOCK_LEN]);
    for (p, k) in pad.iter_mut().zip(block.iter()) {
        *p = k ^ 0x36;
    }
    let inner = Sha256::new().chain_update(pad.as_slice()).chain_update(message).finalize();
    for (p, k) in pad.iter_mut().zip(block.iter()) {
        *p = k ^ 0x5c;
    }
    Sha256::new().chain_update(pad.as_slice()).chain_update(inner).finalize().into()
}

/// The key audit entries use to name secrets without revealing them. `Debug` prints
/// `[redacted]`.
pub struct NameHmacKey(Zeroizing<[u8; 32]>);

impl NameHmacKey {
    /// `HMAC-SHA256(name)` as 64 lowercase hex digits.
    pub fn name_hmac(&self, name: &str) -> String {
        hex::encode(hmac_sha256(self.0.as_slice(), name.as_bytes()))
    }
}

impl fmt::Debug for NameHmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NameHmacKey([redacted])")
    }
}

impl DataKey {
    /// The name-HMAC sub-key of this data key (see the module doc).
    pub fn name_hmac_key(&self) -> NameHmacKey {
        let mut info = Vec::with_capacity(NAME_HMAC_INFO.len() + 1);
        info.extend_from_slice(NAME_HMAC_INFO);
        info.push(0x01);
        NameHmacKey(Zeroizing::new(hmac_sha256(self.expose(), &info)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 4231 §4.2–4.8 (test case 5 truncates the output and is skipped).
    #[test]
    fn rfc4231_vectors() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. \
                  The key needs to be hashed before being used by the HMAC algorithm."
                    .to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hex::encode(hmac_sha256(&key, &data)), expected);
        }
    }

    #[test]
    fn name_hmac_is_stable_per_key_and_separate_from_the_data_key() {
        let dk = DataKey::generate(1);
        let key = dk.name_hmac_key();
        let a = key.name_hmac("OPENAI_API_KEY");
        assert_eq!(a, dk.name_hmac_key().name_hmac("OPENAI_API_KEY"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, key.name_hmac("OPENAI_API_KEY2"));
        assert_ne!(a, DataKey::generate(1).name_hmac_key().name_hmac("OPENAI_API_KEY"));
        assert_ne!(
            a,
            hex::encode(hmac_sha256(dk.expose(), b"OPENAI_API_KEY")),
            "a sub-key, not the data key"
        );
        assert_eq!(format!("{key:?}"), "NameHmacKey([redacted])");
    }
}
