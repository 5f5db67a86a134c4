//! Passphrase → key-encryption key: Argon2id parameters, their floor and ceiling (the KDF
//! downgrade defence), and the derivation itself.
//!
//! This module must not derive anything from parameters it has not checked: every derivation
//! goes through [`KdfParams::check_with`] first, so a header whose stored parameters an attacker
//! lowered is refused before a single key is computed.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::VaultCryptoError;

/// The only KDF a vault header may name.
pub const KDF_ALGORITHM: &str = "argon2id";

/// OWASP floor for Argon2id memory: 19 MiB.
pub const MIN_MEMORY_KIB: u32 = 19 * 1024;
/// OWASP floor for Argon2id passes at 19 MiB.
pub const MIN_ITERATIONS: u32 = 2;
/// At least one lane.
pub const MIN_PARALLELISM: u32 = 1;
/// Ceiling on memory: 4 GiB (anything above is a corrupt header or a denial of service).
pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Ceiling on passes.
pub const MAX_ITERATIONS: u32 = 20;
/// Ceiling on lanes.
pub const MAX_PARALLELISM: u32 = 16;

/// Argon2id cost parameters. Default: m = 64 MiB, t = 3, p = 4 (Bitwarden's Argon2id default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        Self { memory_kib: 64 * 1024, iterations: 3, parallelism: 4 }
    }
}

/// Whether parameters below the OWASP floor are acceptable. Production code uses
/// [`KdfPolicy::Enforce`] (the default); nothing read from disk can change the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KdfPolicy {
    /// Refuse parameters below the floor or above the ceiling.
    #[default]
    Enforce,
    /// Tests only: accept parameters below the floor (the ceiling still applies) so that test
    /// vaults open in microseconds. Never use it outside tests.
    AllowWeakForTests,
}

impl KdfParams {
    /// Tests only: tiny parameters (64 KiB, t = 1, p = 1). [`KdfParams::check`] refuses them;
    /// they are accepted only together with [`KdfPolicy::AllowWeakForTests`].
    #[doc(hidden)]
    pub fn testing_only_fast() -> Self {
        Self { memory_kib: 64, iterations: 1, parallelism: 1 }
    }

    /// Refuses parameters below the OWASP floor or above the sanity ceiling, naming the
    /// parameter, its value and the bound.
    pub fn check(&self) -> Result<(), VaultCryptoError> {
        self.check_with(KdfPolicy::Enforce)
    }

    /// [`KdfParams::check`] under an explicit policy.
    pub fn check_with(&self, policy: KdfPolicy) -> Result<(), VaultCryptoError> {
        let bounds = [
            ("memory_kib", self.memory_kib, MIN_MEMORY_KIB, MAX_MEMORY_KIB),
            ("iterations", self.iterations, MIN_ITERATIONS, MAX_ITERATIONS),
            ("parallelism", self.parallelism, MIN_PARALLELISM, MAX_PARALLELISM),
        ];
        for (param, value, minimum, maximum) in bounds {
            if value > maximum {
                return Err(VaultCryptoError::ExcessiveKdfParams { param, value, maximum });
            }
            if value < minimum && policy == KdfPolicy::Enforce {
                return Err(VaultCryptoError::WeakKdfParams { param, value, minimum });
            }
        }
        Ok(())
    }

    fn argon2(&self) -> Result<Argon2<'static>, VaultCryptoError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(KEY_LEN))
            .map_err(|_| VaultCryptoError::Malformed {
                what: "KDF parameters",
                reason: "rejected by Argon2 (memory must be at least 8 KiB per lane, passes and lanes at least 1)",
            })?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

const KEY_LEN: usize = 32;

/// A key-encryption key derived from a passphrase. Wiped on drop; `Debug` prints `[redacted]`.
pub struct Kek(Zeroizing<[u8; 32]>);

impl Kek {
    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

/// Derives the key-encryption key from `passphrase` with Argon2id, after checking `params`
/// under `policy` (the downgrade defence runs before any work is done).
pub fn derive_kek(
    passphrase: &SecretString,
    salt: &[u8; 16],
    params: &KdfParams,
    policy: KdfPolicy,
) -> Result<Kek, VaultCryptoError> {
    params.check_with(policy)?;
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    params
        .argon2()?
        .hash_password_into(passphrase.expose_secret().as_bytes(), salt, out.as_mut())
        .map_err(|_| VaultCryptoError::Malformed {
            what: "KDF input",
            reason: "rejected by Argon2 (passphrase too long?)",
        })?;
    Ok(Kek(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> KdfParams {
        KdfParams::testing_only_fast()
    }

    #[test]
    fn default_is_argon2id_64mib_t3_p4_and_passes() {
        let p = KdfParams::default();
        assert_eq!((p.memory_kib, p.iterations, p.parallelism), (65_536, 3, 4));
        assert_eq!(p.check(), Ok(()));
        let floor =
            KdfParams { memory_kib: MIN_MEMORY_KIB, iterations: MIN_ITERATIONS, parallelism: 1 };
        assert_eq!(floor.check(), Ok(()));
    }

    #[test]
    fn each_parameter_below_its_floor_is_refused_by_name() {
        let d = KdfParams::default();
        let cases = [
            (
                KdfParams { memory_kib: MIN_MEMORY_KIB - 1, ..d },
                "memory_kib",
                MIN_MEMORY_KIB - 1,
                MIN_MEMORY_KIB,
            ),
            (KdfParams { iterations: 1, ..d }, "iterations", 1, MIN_ITERATIONS),
            (KdfParams { parallelism: 0, ..d }, "parallelism", 0, MIN_PARALLELISM),
        ];
        for (params, param, value, minimum) in cases {
            let err = params.check().unwrap_err();
            assert_eq!(err, VaultCryptoError::WeakKdfParams { param, value, minimum });
            assert_eq!(err.code(), "weak_kdf_params");
        }
    }

    #[test]
    fn absurd_parameters_are_refused_under_every_policy() {
        let d = KdfParams::default();
        let cases = [
            (KdfParams { memory_kib: MAX_MEMORY_KIB + 1, ..d }, "memory_kib"),
            (KdfParams { iterations: 21, ..d }, "iterations"),
            (KdfParams { parallelism: 17, ..d }, "parallelism"),
        ];
        for (params, param) in cases {
            for policy in [KdfPolicy::Enforce, KdfPolicy::AllowWeakForTests] {
                let err = params.check_with(policy).unwrap_err();
                assert!(
                    matches!(err, VaultCryptoError::ExcessiveKdfParams { param: p, .. } if p == param)
                );
                assert_eq!(err.code(), "excessive_kdf_params");
            }
        }
    }

    #[test]
    fn test_params_need_the_explicit_policy() {
        assert!(matches!(fast().check(), Err(VaultCryptoError::WeakKdfParams { .. })));
        assert_eq!(fast().check_with(KdfPolicy::AllowWeakForTests), Ok(()));
        assert_eq!(KdfPolicy::default(), KdfPolicy::Enforce);
        let pass = SecretString::from("pw");
        let err = derive_kek(&pass, &[0; 16], &fast(), KdfPolicy::Enforce).unwrap_err();
        assert_eq!(err.code(), "weak_kdf_params");
    }

    #[test]
    fn derivation_is_deterministic_and_input_sensitive() {
        let pass = SecretString::from("correct horse");
        let other = SecretString::from("correct horsf");
        let policy = KdfPolicy::AllowWeakForTests;
        let a = derive_kek(&pass, &[1; 16], &fast(), policy).unwrap();
        let b = derive_kek(&pass, &[1; 16], &fast(), policy).unwrap();
        let c = derive_kek(&pass, &[2; 16], &fast(), policy).unwrap();
        let d = derive_kek(&other, &[1; 16], &fast(), policy).unwrap();
        let e =
            derive_kek(&pass, &[1; 16], &KdfParams { iterations: 2, ..fast() }, policy).unwrap();
        assert_eq!(a.expose(), b.expose());
        for different in [&c, &d, &e] {
            assert_ne!(a.expose(), different.expose());
        }
        assert_eq!(format!("{a:?}"), "Kek([redacted])");
    }

    /// The reference implementation's Argon2id v1.3 vector (phc-winner-argon2 `src/test.c`:
    /// t = 2, m = 2^16 KiB, p = 1, "password", "somesalt"): our parameter mapping is the
    /// standard one (memory in KiB).
    #[test]
    fn matches_the_reference_argon2id_vector() {
        let params = KdfParams { memory_kib: 1 << 16, iterations: 2, parallelism: 1 };
        let mut out = [0u8; 32];
        params.argon2().unwrap().hash_password_into(b"password", b"somesalt", &mut out).unwrap();
        assert_eq!(
            hex::encode(out),
            "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7"
        );
    }

    #[test]
    fn params_round_trip_as_json() {
        let json = serde_json::to_string(&KdfParams::default()).unwrap();
        assert_eq!(json, r#"{"memory_kib":65536,"iterations":3,"parallelism":4}"#);
        assert_eq!(serde_json::from_str::<KdfParams>(&json).unwrap(), KdfParams::default());
    }
}
