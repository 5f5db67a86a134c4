//! Bearer tokens: `kai_` + 43 characters of base64url (256 random bits). Only the SHA-256 of a
//! token is ever stored; lookups go by hash, so no token comparison happens in user space.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Prefix of every token, so leaked tokens are easy to recognize and scan for.
pub const PREFIX: &str = "kai_";

/// A fresh token (shown once) and its hash (stored).
pub fn generate() -> (Zeroizing<String>, [u8; 32]) {
    let bytes: [u8; 32] = rand::random();
    let token = Zeroizing::new(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ));
    let hash = hash(&token);
    (token, hash)
}

/// The stored form of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// True when `text` has the shape of a token (checked before any lookup).
pub fn well_formed(text: &str) -> bool {
    text.len() == PREFIX.len() + 43
        && text.starts_with(PREFIX)
        && text[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_well_formed_and_unique() {
        let (a, ha) = generate();
        let (b, hb) = generate();
        assert!(well_formed(&a) && well_formed(&b));
        assert_ne!(ha, hb);
        assert_eq!(hash(&a), ha);
        assert!(!well_formed("kai_short"));
        assert!(!well_formed(&format!("xyz_{}", &a[4..])));
    }
}
