//! The vault's key types: the vault id, the data key (per generation), the unlock key of a
//! key-file slot, and the keyring an unlock yields.
//!
//! Secret types here hold their bytes in `Zeroizing` buffers, print `[redacted]` in `Debug`,
//! implement neither `Display`, `PartialEq` nor serde, and compare in constant time through
//! `subtle`. Only `UnlockKey::to_text` exports key bytes, as a `SecretString`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use super::VaultCryptoError;
use super::aead::random_array;

/// A vault's random 128-bit identity, written as 32 lowercase hex digits. Bound into every
/// slot and record so ciphertexts cannot move between vaults.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VaultId([u8; 16]);

impl VaultId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(random_array())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for VaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultId({self})")
    }
}

impl std::str::FromStr for VaultId {
    type Err = VaultCryptoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed =
            VaultCryptoError::Malformed { what: "vault id", reason: "expected 32 hex digits" };
        let bytes = hex::decode(s).map_err(|_| malformed.clone())?;
        bytes.try_into().map(Self).map_err(|_| malformed)
    }
}

impl TryFrom<String> for VaultId {
    type Error = VaultCryptoError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<VaultId> for String {
    fn from(id: VaultId) -> Self {
        id.to_string()
    }
}

/// The key that encrypts records, for one key generation. Obtained only by creating or
/// unlocking a vault (or starting a rekey).
pub struct DataKey {
    generation: u32,
    key: Zeroizing<[u8; 32]>,
}

impl DataKey {
    pub(crate) fn generate(generation: u32) -> Self {
        Self { generation, key: Zeroizing::new(random_array()) }
    }

    pub(crate) fn from_unwrapped(generation: u32, bytes: &[u8]) -> Option<Self> {
        let key: [u8; 32] = bytes.try_into().ok()?;
        Some(Self { generation, key: Zeroizing::new(key) })
    }

    /// The key generation this key belongs to (1 for a new vault, +1 per rekey).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.key
    }
}

impl ConstantTimeEq for DataKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.generation.ct_eq(&other.generation) & self.key.as_slice().ct_eq(other.key.as_slice())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("generation", &self.generation)
            .field("key", &Redacted)
            .finish()
    }
}

/// Prefix of an unlock key's text form.
pub const UNLOCK_KEY_PREFIX: &str = "kai-vault-key-v1:";
const UNLOCK_KEY_TEXT_LEN: usize = 43; // 32 bytes, base64url without padding

/// A random 256-bit key that opens the key-file slot (for unattended servers: a 0600 key file
/// or `KAI_VAULT_KEY`). Shown once when created; its text form is
/// `kai-vault-key-v1:` followed by 43 base64url characters.
pub struct UnlockKey(Zeroizing<[u8; 32]>);

impl UnlockKey {
    pub(crate) fn generate() -> Self {
        Self(Zeroizing::new(random_array()))
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// The text form, for a key file or `KAI_VAULT_KEY`.
    pub fn to_text(&self) -> SecretString {
        let mut encoded = Zeroizing::new([0u8; UNLOCK_KEY_TEXT_LEN]);
        let written =
            URL_SAFE_NO_PAD.encode_slice(self.0.as_slice(), encoded.as_mut_slice()).unwrap_or(0);
        // Exact capacity: the conversion to `SecretString` then never reallocates (which would
        // leave an unwiped copy behind).
        let mut text = String::with_capacity(UNLOCK_KEY_PREFIX.len() + UNLOCK_KEY_TEXT_LEN);
        text.push_str(UNLOCK_KEY_PREFIX);
        text.extend(encoded[..written].iter().map(|&b| char::from(b)));
        SecretString::from(text)
    }

    /// Parses the text form (surrounding whitespace, e.g. a key file's final newline, is
    /// ignored; the prefix may be omitted). The error never echoes the input.
    pub fn from_text(text: &str) -> Result<Self, VaultCryptoError> {
        let text = text.trim();
        let body = text.strip_prefix(UNLOCK_KEY_PREFIX).unwrap_or(text);
        let malformed = VaultCryptoError::Malformed {
            what: "unlock key",
            reason: "expected kai-vault-key-v1: followed by 43 base64url characters",
        };
        if body.len() != UNLOCK_KEY_TEXT_LEN {
            return Err(malformed);
        }
        let mut decoded = Zeroizing::new([0u8; 36]);
        let len = URL_SAFE_NO_PAD
            .decode_slice(body, decoded.as_mut_slice())
            .map_err(|_| malformed.clone())?;
        let key: [u8; 32] = decoded[..len].try_into().map_err(|_| malformed)?;
        Ok(Self(Zeroizing::new(key)))
    }
}

impl ConstantTimeEq for UnlockKey {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.as_slice().ct_eq(other.0.as_slice())
    }
}

impl fmt::Debug for UnlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnlockKey([redacted])")
    }
}

/// What an unlock yields: the current data key and, while a rekey is in progress, the next
/// generation's key too (records may be sealed under either until the rekey is committed).
#[derive(Debug)]
pub struct Keyring {
    pub(crate) current: DataKey,
    pub(crate) next: Option<DataKey>,
}

impl Keyring {
    /// The current generation's key.
    pub fn current(&self) -> &DataKey {
        &self.current
    }

    /// The next generation's key, while a rekey is in progress.
    pub fn next(&self) -> Option<&DataKey> {
        self.next.as_ref()
    }

    /// The key new records must be sealed with: the next generation's while a rekey is in
    /// progress (so they need no re-encryption), the current one otherwise.
    pub fn sealing_key(&self) -> &DataKey {
        self.next.as_ref().unwrap_or(&self.current)
    }

    /// The key of `generation`, if this keyring holds it.
    pub fn get(&self, generation: u32) -> Option<&DataKey> {
        std::iter::once(&self.current).chain(&self.next).find(|k| k.generation == generation)
    }

    /// The current key, dropping the rest.
    pub fn into_current(self) -> DataKey {
        self.current
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn unlock_key_text_round_trips_and_errors_do_not_echo() {
        let key = UnlockKey::generate();
        let text = key.to_text();
        assert!(text.expose_secret().starts_with(UNLOCK_KEY_PREFIX));
        assert_eq!(text.expose_secret().len(), UNLOCK_KEY_PREFIX.len() + 43);
        let parsed = UnlockKey::from_text(&format!("{}\n", text.expose_secret())).unwrap();
        assert!(bool::from(parsed.ct_eq(&key)));
        let bare = text.expose_secret().strip_prefix(UNLOCK_KEY_PREFIX).unwrap().to_owned();
        assert!(bool::from(UnlockKey::from_text(&bare).unwrap().ct_eq(&key)));
        assert!(!bool::from(UnlockKey::generate().ct_eq(&key)));
        for bad in [
            "",
            "kai-vault-key-v1:",
            "kai-vault-key-v1:!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            &bare[1..],
        ] {
            let err = UnlockKey::from_text(bad).unwrap_err();
            assert_eq!(err.code(), "malformed");
            assert!(!err.to_string().contains(&bare[5..]));
        }
    }

    #[test]
    fn debug_of_secret_types_shows_no_key_bytes() {
        let dk = DataKey::generate(3);
        let uk = UnlockKey::generate();
        let ring = Keyring { current: DataKey::generate(1), next: Some(DataKey::generate(2)) };
        let texts = [format!("{dk:?}"), format!("{dk:#?}"), format!("{uk:?}"), format!("{ring:?}")];
        assert_eq!(texts[0], "DataKey { generation: 3, key: [redacted] }");
        assert_eq!(texts[2], "UnlockKey([redacted])");
        let keys =
            [dk.expose(), uk.expose(), ring.current.expose(), ring.next.as_ref().unwrap().expose()];
        for text in &texts {
            assert!(text.contains("[redacted]"));
            for key in keys {
                assert!(!text.to_lowercase().contains(&hex::encode(&key[..4])), "{text}");
                // Nor as the decimal byte list an array's default `Debug` prints.
                let decimal = format!("{:?}", &key[..3]);
                assert!(!text.contains(decimal.trim_end_matches(']')), "{text}");
            }
        }
    }

    #[test]
    fn keyring_picks_keys_by_generation() {
        let ring = Keyring { current: DataKey::generate(4), next: None };
        assert_eq!(ring.sealing_key().generation(), 4);
        assert!(ring.get(5).is_none());
        let ring = Keyring { current: DataKey::generate(4), next: Some(DataKey::generate(5)) };
        assert_eq!(ring.sealing_key().generation(), 5);
        assert_eq!(ring.get(4).map(DataKey::generation), Some(4));
        assert_eq!(ring.get(5).map(DataKey::generation), Some(5));
        assert_eq!(ring.into_current().generation(), 4);
    }

    #[test]
    fn vault_id_is_hex_text() {
        let id = VaultId::random();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json.len(), 34);
        assert_eq!(serde_json::from_str::<VaultId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<VaultId>("\"abc\"").is_err());
    }
}
