//! Ed25519 identities and their `did:key` names (multicodec `0xed01` + public key, base58btc).

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const ED25519_MULTICODEC: [u8; 2] = [0xed, 0x01];

/// A `did:key` for an Ed25519 public key, e.g. `did:key:z6Mk…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Did(String);

/// Why text is not a usable Ed25519 `did:key`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid did:key {input:?}: {reason}")]
pub struct DidError {
    input: String,
    reason: &'static str,
}

impl Did {
    /// The DID naming a public key.
    pub fn from_public_key(key: &VerifyingKey) -> Self {
        let mut bytes = Vec::with_capacity(34);
        bytes.extend_from_slice(&ED25519_MULTICODEC);
        bytes.extend_from_slice(key.as_bytes());
        Self(format!("did:key:z{}", bs58::encode(bytes).into_string()))
    }

    /// The public key this DID names.
    pub fn verifying_key(&self) -> Result<VerifyingKey, DidError> {
        decode(&self.0)
    }

    /// Verifies `signature` over `message` with strict Ed25519 rules (no malleable or
    /// small-order encodings).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        self.verifying_key()
            .is_ok_and(|k| k.verify_strict(message, &Signature::from_bytes(signature)).is_ok())
    }

    /// The DID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn decode(input: &str) -> Result<VerifyingKey, DidError> {
    let err = |reason| DidError { input: input.to_owned(), reason };
    let rest = input.strip_prefix("did:key:z").ok_or_else(|| err("must start with did:key:z"))?;
    let bytes = bs58::decode(rest).into_vec().map_err(|_| err("not base58btc"))?;
    if bytes.len() != 34 || bytes[..2] != ED25519_MULTICODEC {
        return Err(err("not an Ed25519 public key"));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes[2..]);
    let key = VerifyingKey::from_bytes(&key).map_err(|_| err("not a valid curve point"))?;
    if key.is_weak() {
        return Err(err("weak (small-order) key"));
    }
    Ok(key)
}

impl TryFrom<String> for Did {
    type Error = DidError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        decode(&s)?;
        Ok(Self(s))
    }
}

impl std::str::FromStr for Did {
    type Err = DidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<Did> for String {
    fn from(d: Did) -> Self {
        d.0
    }
}

impl std::fmt::Display for Did {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signing identity: an Ed25519 key pair and its DID. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
    did: Did,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("did", &self.did).finish_non_exhaustive()
    }
}

/// The on-disk form of an identity (JSON, kept in a 0600 file until the vault holds it).
#[derive(Serialize, Deserialize)]
pub struct IdentityFile {
    pub did: Did,
    /// Base64 of the 32-byte Ed25519 seed.
    pub secret_key: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Self {
        Self::from_seed(&rand::random())
    }

    /// The identity for a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let did = Did::from_public_key(&key.verifying_key());
        Self { key, did }
    }

    /// This identity's DID.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The 32-byte seed (to store sealed in the vault).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The file form, with the secret encoded.
    pub fn to_file(&self, created_at: chrono::DateTime<chrono::Utc>) -> IdentityFile {
        let seed = Zeroizing::new(self.key.to_bytes());
        IdentityFile {
            did: self.did.clone(),
            secret_key: base64::engine::general_purpose::STANDARD.encode(*seed),
            created_at,
        }
    }

    /// Reads the file form, checking that the secret matches the recorded DID.
    pub fn from_file(file: &IdentityFile) -> Result<Self, &'static str> {
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(&file.secret_key)
                .map_err(|_| "secret_key is not base64")?,
        );
        let seed: [u8; 32] =
            bytes.as_slice().try_into().map_err(|_| "secret_key is not 32 bytes")?;
        let id = Self::from_seed(&seed);
        if id.did != file.did {
            return Err("secret_key does not match the recorded did");
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_round_trip_and_known_prefix() {
        let id = Identity::generate();
        assert!(id.did().as_str().starts_with("did:key:z6Mk"), "{}", id.did());
        let parsed: Did = id.did().as_str().parse().unwrap();
        assert_eq!(&parsed, id.did());
        let sig = id.sign(b"hello");
        assert!(parsed.verify(b"hello", &sig));
        assert!(!parsed.verify(b"hellp", &sig));
    }

    #[test]
    fn did_key_spec_vector() {
        // Test vector from the did:key spec (W3C CCG): seed-independent encoding check.
        let did: Did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp".parse().unwrap();
        let again = Did::from_public_key(&did.verifying_key().unwrap());
        assert_eq!(did, again);
    }

    #[test]
    fn rejects_bad_dids() {
        for bad in ["did:web:x", "did:key:zzzz", "did:key:z6Mk", "did:key:abc"] {
            assert!(bad.parse::<Did>().is_err(), "{bad}");
        }
    }

    #[test]
    fn file_round_trip_checks_did() {
        let id = Identity::generate();
        let f = id.to_file(chrono::Utc::now());
        let back = Identity::from_file(&f).unwrap();
        assert_eq!(back.did(), id.did());
        let other = Identity::generate().to_file(chrono::Utc::now());
        let forged = IdentityFile {
            did: id.did().clone(),
            secret_key: other.secret_key,
            created_at: f.created_at,
        };
        assert!(Identity::from_file(&forged).is_err());
        assert!(!format!("{id:?}").contains(&f.secret_key));
    }
}
