//! Vault cryptography, pure (no I/O, no clock, no async): Argon2id key derivation with a
//! downgrade floor, a JSON header whose key slots wrap a random data key, AES-256-GCM record
//! encryption bound to vault, record, version and key generation, and an HMAC sub-key for
//! naming secrets in audit entries. The caller stores the header and the sealed records.
//!
//! # Keys
//!
//! ```text
//! passphrase ──Argon2id(salt, m,t,p)──▶ KEK ─┐
//!                                            ├─ AES-256-GCM wrap ─▶ DataKey (generation g)
//! key file / KAI_VAULT_KEY ──▶ UnlockKey ────┘                         │
//!                                     records: AES-256-GCM, AAD = vault id ‖ record id ‖ version ‖ g
//! ```
//!
//! Slot AAD is `"kai-vault-slot-v1" ‖ vault id ‖ slot kind ‖ generation` (length-prefixed).
//! A wrong passphrase or unlock key fails the slot's GCM tag and yields `WrongPassphrase` /
//! `WrongUnlockKey`; a `key_check` (HMAC of vault id and generation under the data key) lets
//! the header refuse a stale or foreign data key (`KeyMismatch`) in operations that take one.
//! KDF parameters read from a header are checked against the OWASP floor (m ≥ 19 MiB, t ≥ 2,
//! p ≥ 1) and a ceiling before anything is derived; only `KdfPolicy::AllowWeakForTests`, which
//! no stored data can select, skips the floor.
//!
//! # Crash-safe rekey protocol
//!
//! A rekey replaces the data key with a new generation. The header holds the next generation
//! (wrapped for the same slots) next to the current one until the caller commits, and every
//! sealed record names its generation, so at every crash point each record opens with a key
//! the stored header yields. The caller writes the header atomically (rename or transaction)
//! and makes each write durable before the next step:
//!
//! 1. `let next = header.begin_rekey(&current, &passphrase, unlock_key)?;` then **store the
//!    header**. Crash before: the old header, old records. Crash after: unlock returns a
//!    [`Keyring`] with `current` and `next`.
//! 2. For each record sealed under an older generation: `keyring.open(..)` and `seal(&next, ..)`
//!    with the same id and version; store it. New writes meanwhile use
//!    [`Keyring::sealing_key`] (the next key). Crash: records are mixed, the stored header
//!    still yields both keys, and a restart resumes from step 2 with `keyring.next()`, needing
//!    no credential beyond the one that unlocked.
//! 3. When no record is left under the old generation: `header.commit_rekey(&next)?` then
//!    **store the header**. Crash before: as in step 2 (all records open with `next`). After:
//!    only the new generation remains; the old key no longer opens anything.
//!
//! `abort_rekey` drops the pending generation; it is safe only while no record is sealed under
//! it. Slot changes (`change_passphrase`, `add_key_file_slot`, `remove_key_file_slot`) are
//! refused while a rekey is pending, so the two generations always have the same slots and the
//! same KDF salt (one Argon2id run unlocks both).
//!
//! With random nonces a data key must seal fewer than [`MAX_SEALS_PER_DATA_KEY`] records; the
//! caller counts seals and rekeys before that.

mod aead;
mod error;
mod header;
mod hmac;
mod kdf;
mod keys;
mod named;
mod record;
mod rekey;
mod slots;

pub use aead::{NONCE_LEN, TAG_LEN};
pub use error::VaultCryptoError;
pub use header::{FORMAT_VERSION, VaultHeader};
pub use hmac::{NameHmacKey, hmac_sha256};
pub use kdf::{
    KDF_ALGORITHM, KdfParams, KdfPolicy, Kek, MAX_ITERATIONS, MAX_MEMORY_KIB, MAX_PARALLELISM,
    MIN_ITERATIONS, MIN_MEMORY_KIB, MIN_PARALLELISM, derive_kek,
};
pub use keys::{DataKey, Keyring, UNLOCK_KEY_PREFIX, UnlockKey, VaultId};
pub use named::NamedKey;
pub use record::{MAX_SEALS_PER_DATA_KEY, SealedRecord, open, seal};
