//! The one error type of the vault cryptography and its stable snake_case codes.
//!
//! Messages say what was wrong and what to do. They never carry key, passphrase or plaintext
//! bytes: every field is a static string or a number taken from public header data.

/// Why a vault operation failed. `code()` is stable and is what the API layer maps to a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultCryptoError {
    /// A KDF parameter is below the OWASP floor: the header was weakened (a downgrade attack)
    /// or written by a test build.
    #[error(
        "vault KDF parameter {param} = {value} is below the minimum {minimum}; the vault header \
         may have been tampered with (KDF downgrade), so it was refused before deriving any key: \
         restore the header from a trusted backup"
    )]
    WeakKdfParams { param: &'static str, value: u32, minimum: u32 },
    /// A KDF parameter is absurdly large (a denial-of-service attempt or a corrupt header).
    #[error(
        "vault KDF parameter {param} = {value} is above the maximum {maximum}; the vault header \
         is corrupt or was tampered with: restore it from a trusted backup"
    )]
    ExcessiveKdfParams { param: &'static str, value: u32, maximum: u32 },
    /// The header names a key-derivation function this build does not implement.
    #[error(
        "vault header uses an unsupported KDF; only argon2id is accepted: restore the header from a trusted backup"
    )]
    UnsupportedKdf,
    /// The header was written by a newer (or unknown) format.
    #[error(
        "vault header format {version} is not supported by this build (expected {supported}): upgrade kai"
    )]
    UnsupportedFormat { version: u32, supported: u32 },
    /// An empty passphrase was offered for a new vault or a passphrase change.
    #[error("the vault passphrase must not be empty: choose a long passphrase")]
    EmptyPassphrase,
    /// The passphrase did not unlock the vault (or the passphrase slot was modified).
    #[error(
        "the passphrase does not unlock this vault; the vault stays sealed: check the passphrase and try again"
    )]
    WrongPassphrase,
    /// The unlock key did not unlock the vault (or the key-file slot was modified).
    #[error(
        "the unlock key does not unlock this vault; the vault stays sealed: check the key file or \
         KAI_VAULT_KEY, or unlock with the passphrase"
    )]
    WrongUnlockKey,
    /// The vault has no key-file slot, so an unlock key cannot open it.
    #[error(
        "this vault has no key-file slot: unlock it with the passphrase, or add a key file first"
    )]
    NoKeyFileSlot,
    /// The data key handed in is not this vault's current data key (stale after a rekey, or from
    /// another vault). Nothing was changed.
    #[error(
        "the data key is not this vault's current key (stale or from another vault); nothing was changed: unlock the vault again"
    )]
    KeyMismatch,
    /// A rekey needs to re-wrap the new key for every slot, and a credential was missing.
    #[error(
        "this vault also opens with a {slot}; rekeying needs its key too, so the new data key can be wrapped for it: supply it, or remove that slot first"
    )]
    MissingCredential { slot: &'static str },
    /// The operation needs no rekey in progress.
    #[error(
        "a rekey to key generation {next_generation} is in progress: finish it (re-encrypt the \
         remaining records, then commit) or abort it, then retry"
    )]
    RekeyInProgress { next_generation: u32 },
    /// `commit_rekey`/`abort_rekey` was called with no rekey in progress.
    #[error("no rekey is in progress: start one with begin_rekey")]
    NoRekeyInProgress,
    /// Authenticated decryption failed: the data was modified, moved to another record, version
    /// or vault, or sealed under a key generation this vault no longer holds.
    #[error(
        "{what} failed its integrity check ({reason}); no data was returned: restore it from a trusted backup"
    )]
    Integrity { what: &'static str, reason: &'static str },
    /// Bytes or text that do not have the expected shape.
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: &'static str },
}

impl VaultCryptoError {
    /// Stable snake_case code for logs, the API and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::WeakKdfParams { .. } => "weak_kdf_params",
            Self::ExcessiveKdfParams { .. } => "excessive_kdf_params",
            Self::UnsupportedKdf => "unsupported_kdf",
            Self::UnsupportedFormat { .. } => "unsupported_format",
            Self::EmptyPassphrase => "empty_passphrase",
            Self::WrongPassphrase => "wrong_passphrase",
            Self::WrongUnlockKey => "wrong_unlock_key",
            Self::NoKeyFileSlot => "no_key_file_slot",
            Self::KeyMismatch => "key_mismatch",
            Self::MissingCredential { .. } => "missing_credential",
            Self::RekeyInProgress { .. } => "rekey_in_progress",
            Self::NoRekeyInProgress => "no_rekey_in_progress",
            Self::Integrity { .. } => "integrity_error",
            Self::Malformed { .. } => "malformed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_distinct() {
        let all = [
            VaultCryptoError::WeakKdfParams { param: "memory_kib", value: 1, minimum: 2 },
            VaultCryptoError::ExcessiveKdfParams { param: "iterations", value: 99, maximum: 20 },
            VaultCryptoError::UnsupportedKdf,
            VaultCryptoError::UnsupportedFormat { version: 9, supported: 1 },
            VaultCryptoError::EmptyPassphrase,
            VaultCryptoError::WrongPassphrase,
            VaultCryptoError::WrongUnlockKey,
            VaultCryptoError::NoKeyFileSlot,
            VaultCryptoError::KeyMismatch,
            VaultCryptoError::MissingCredential { slot: "key file" },
            VaultCryptoError::RekeyInProgress { next_generation: 2 },
            VaultCryptoError::NoRekeyInProgress,
            VaultCryptoError::Integrity { what: "record", reason: "tag mismatch" },
            VaultCryptoError::Malformed { what: "record", reason: "too short" },
        ];
        let mut codes: Vec<_> = all.iter().map(VaultCryptoError::code).collect();
        assert!(codes.iter().all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        let weak = all[0].to_string();
        assert!(weak.contains("memory_kib") && weak.contains('1') && weak.contains('2'), "{weak}");
    }
}
