use std::time::Instant;

use secrecy::SecretString;
use serde_json::Value;
use subtle::ConstantTimeEq as _;

use super::*;
use crate::vault::{open, seal};

const PASS: &str = "correct horse battery staple";

fn secret(s: &str) -> SecretString {
    SecretString::from(s)
}

fn fast_vault() -> (VaultHeader, DataKey) {
    VaultHeader::create_with_policy(
        &secret(PASS),
        KdfParams::testing_only_fast(),
        KdfPolicy::AllowWeakForTests,
    )
    .unwrap()
}

fn reload(header: &VaultHeader) -> VaultHeader {
    let mut header = VaultHeader::from_json(&header.to_json()).unwrap();
    header.set_kdf_policy(KdfPolicy::AllowWeakForTests);
    header
}

fn edited(header: &VaultHeader, edit: impl FnOnce(&mut Value)) -> String {
    let mut json: Value = serde_json::from_str(&header.to_json()).unwrap();
    edit(&mut json);
    json.to_string()
}

fn same_key(a: &DataKey, b: &DataKey) -> bool {
    bool::from(a.ct_eq(b))
}

/// V1 with the real parameters: the header says Argon2id 64 MiB / 3 / 4, a stored header opens
/// under the enforcing policy, and a downgraded copy is refused even with the right passphrase.
#[test]
fn default_vault_round_trip_and_downgrade_refusal() {
    let (header, dk) = VaultHeader::create(&secret(PASS), KdfParams::default()).unwrap();
    let json: Value = serde_json::from_str(&header.to_json()).unwrap();
    assert_eq!(json["format"], 1);
    assert_eq!(json["generation"], 1);
    assert_eq!(json["vault_id"].as_str().unwrap().len(), 32);
    let kdf = &json["kdf"];
    assert_eq!(
        (kdf["algorithm"].as_str(), kdf["memory_kib"].as_u64()),
        (Some("argon2id"), Some(65_536))
    );
    assert_eq!((kdf["iterations"].as_u64(), kdf["parallelism"].as_u64()), (Some(3), Some(4)));
    assert_eq!(kdf["salt"].as_str().unwrap().len(), 32);
    assert!(!header.to_json().contains(&hex::encode(dk.expose())));

    let stored = VaultHeader::from_json(&header.to_json()).unwrap();
    let started = Instant::now();
    let ring = stored.unlock_with_passphrase(&secret(PASS)).unwrap();
    eprintln!("unlock with default KDF parameters (test profile): {:?}", started.elapsed());
    assert!(same_key(ring.current(), &dk) && ring.next().is_none());

    let downgraded = edited(&header, |j| j["kdf"]["memory_kib"] = 8192.into());
    let err = VaultHeader::from_json(&downgraded)
        .unwrap()
        .unlock_with_passphrase(&secret(PASS))
        .unwrap_err();
    assert_eq!(
        err,
        VaultCryptoError::WeakKdfParams { param: "memory_kib", value: 8192, minimum: 19_456 }
    );
}

#[test]
fn each_weakened_parameter_in_a_stored_header_is_refused() {
    let (header, _) = fast_vault();
    let cases = [
        ("memory_kib", 19_455, "weak_kdf_params"),
        ("iterations", 1, "weak_kdf_params"),
        ("parallelism", 0, "weak_kdf_params"),
        ("memory_kib", 5 * 1024 * 1024, "excessive_kdf_params"),
        ("iterations", 1000, "excessive_kdf_params"),
        ("parallelism", 255, "excessive_kdf_params"),
    ];
    for (param, value, code) in cases {
        // The attacker starts from valid parameters and changes one.
        let json = edited(&header, |j| {
            j["kdf"]["memory_kib"] = 65_536.into();
            j["kdf"]["iterations"] = 3.into();
            j["kdf"]["parallelism"] = 4.into();
            j["kdf"][param] = value.into();
        });
        let stored = VaultHeader::from_json(&json).unwrap();
        let err = stored.unlock_with_passphrase(&secret(PASS)).unwrap_err();
        assert_eq!(err.code(), code, "{param} = {value}");
        assert!(err.to_string().contains(param) && err.to_string().contains(&value.to_string()));
    }
    // The test vault itself opens only under the explicit test policy.
    let stored = VaultHeader::from_json(&header.to_json()).unwrap();
    assert_eq!(stored.unlock_with_passphrase(&secret(PASS)).unwrap_err().code(), "weak_kdf_params");
    assert!(reload(&header).unlock_with_passphrase(&secret(PASS)).is_ok());
    let params = KdfParams::testing_only_fast();
    assert_eq!(VaultHeader::create(&secret(PASS), params).unwrap_err().code(), "weak_kdf_params");
}

#[test]
fn wrong_passphrase_is_always_the_same_clear_error() {
    let (header, _) = fast_vault();
    let header = reload(&header);
    for attempt in 0..6 {
        let guess = secret(&format!("guess number {attempt}"));
        let err = header.unlock_with_passphrase(&guess).unwrap_err();
        assert_eq!(err, VaultCryptoError::WrongPassphrase);
        assert!(!err.to_string().contains("guess number"));
    }
    assert_eq!(header.unlock_with_passphrase(&secret("")).unwrap_err().code(), "wrong_passphrase");
    assert!(header.unlock_with_passphrase(&secret(PASS)).is_ok());
}

#[test]
fn key_file_slot_opens_the_same_data_key() {
    let (mut header, dk) = fast_vault();
    assert_eq!(
        header.unlock_with_key(&UnlockKey::generate()).unwrap_err().code(),
        "no_key_file_slot"
    );
    let uk = header.add_key_file_slot(&dk).unwrap();
    let text = uk.to_text();
    let stored = reload(&header);
    assert!(stored.has_key_file_slot());
    let from_text = UnlockKey::from_text(secrecy::ExposeSecret::expose_secret(&text)).unwrap();
    assert!(same_key(stored.unlock_with_key(&from_text).unwrap().current(), &dk));
    assert_eq!(
        stored.unlock_with_key(&UnlockKey::generate()).unwrap_err().code(),
        "wrong_unlock_key"
    );

    // Adding again rotates: the old unlock key stops working, the passphrase still works.
    let rotated = header.add_key_file_slot(&dk).unwrap();
    assert_eq!(header.unlock_with_key(&uk).unwrap_err().code(), "wrong_unlock_key");
    assert!(same_key(header.unlock_with_key(&rotated).unwrap().current(), &dk));
    assert!(header.remove_key_file_slot().unwrap());
    assert!(!header.remove_key_file_slot().unwrap());
    assert_eq!(header.unlock_with_key(&rotated).unwrap_err().code(), "no_key_file_slot");
    assert!(same_key(header.unlock_with_passphrase(&secret(PASS)).unwrap().current(), &dk));
}

#[test]
fn change_passphrase_keeps_records_and_retires_the_old_passphrase() {
    let (mut header, dk) = fast_vault();
    let uk = header.add_key_file_slot(&dk).unwrap();
    let vault_id = header.vault_id();
    let sealed = seal(&dk, &vault_id, "secret/db", 4, b"hunter2").unwrap();
    let salt_before = header.repr.kdf.salt;

    header.change_passphrase(&dk, &secret("a brand new passphrase")).unwrap();
    assert_ne!(header.repr.kdf.salt, salt_before, "a fresh salt");
    let stored = reload(&header);
    assert_eq!(
        stored.unlock_with_passphrase(&secret(PASS)).unwrap_err().code(),
        "wrong_passphrase"
    );
    let ring = stored.unlock_with_passphrase(&secret("a brand new passphrase")).unwrap();
    assert_eq!(ring.current().generation(), 1);
    assert_eq!(
        open(ring.current(), &vault_id, "secret/db", 4, &sealed).unwrap().as_slice(),
        b"hunter2"
    );
    assert!(same_key(stored.unlock_with_key(&uk).unwrap().current(), &dk), "key file unaffected");

    let before = header.clone();
    let stale = DataKey::generate(1);
    assert_eq!(header.change_passphrase(&stale, &secret("x")).unwrap_err().code(), "key_mismatch");
    assert_eq!(header.change_passphrase(&dk, &secret("")).unwrap_err().code(), "empty_passphrase");
    assert_eq!(header.add_key_file_slot(&stale).unwrap_err().code(), "key_mismatch");
    assert_eq!(header, before, "refusals change nothing");
}

#[test]
fn structural_tampering_is_refused() {
    let (header, _) = fast_vault();
    let other_vault = VaultId::random().to_string();
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: [(Edit, &str); 7] = [
        (Box::new(|j| j["format"] = 2.into()), "unsupported_format"),
        (Box::new(|j| j["kdf"]["algorithm"] = "pbkdf2-sha256".into()), "unsupported_kdf"),
        (Box::new(|j| j["generation"] = 0.into()), "malformed"),
        (Box::new(|j| j["extra"] = true.into()), "malformed"),
        (Box::new(|j| j["kdf"]["salt"] = "abcd".into()), "malformed"),
        (Box::new(|j| j["slots"].as_object_mut().unwrap().clear()), "malformed"),
        (Box::new(|j| j["pending_rekey"] = Value::Null), "opens"),
    ];
    for (edit, code) in cases {
        let result = VaultHeader::from_json(&edited(&header, edit));
        assert_eq!(result.as_ref().map(|_| "opens").unwrap_or_else(VaultCryptoError::code), code);
    }
    assert_eq!(VaultHeader::from_json("not json").unwrap_err().code(), "malformed");
    assert!(
        serde_json::from_str::<VaultHeader>(&edited(&header, |j| j["format"] = 2.into())).is_err()
    );

    // Slots are bound to the vault id and generation; the key check to the data key.
    let unlock = |json: String| {
        let mut h = VaultHeader::from_json(&json).unwrap();
        h.set_kdf_policy(KdfPolicy::AllowWeakForTests);
        h.unlock_with_passphrase(&secret(PASS)).map(|_| ()).unwrap_err().code()
    };
    assert_eq!(unlock(edited(&header, |j| j["vault_id"] = other_vault.into())), "wrong_passphrase");
    assert_eq!(unlock(edited(&header, |j| j["generation"] = 2.into())), "wrong_passphrase");
    assert_eq!(
        unlock(edited(&header, |j| j["key_check"] = "00".repeat(32).into())),
        "integrity_error"
    );
}

#[test]
fn serde_round_trip_and_no_secrets_in_output() {
    let (mut header, dk) = fast_vault();
    let uk = header.add_key_file_slot(&dk).unwrap();
    let via_serde: VaultHeader =
        serde_json::from_str(&serde_json::to_string(&header).unwrap()).unwrap();
    assert_eq!(via_serde.repr, header.repr);
    assert_eq!(via_serde.kdf_policy, KdfPolicy::Enforce, "the policy is never read from storage");
    let outputs = [header.to_json(), format!("{header:?}"), format!("{dk:?}"), format!("{uk:?}")];
    for out in &outputs {
        for key in [dk.expose(), uk.expose()] {
            assert!(!out.contains(&hex::encode(key)), "{out}");
            assert!(!out.contains(&hex::encode(&key[..6])), "{out}");
        }
        assert!(!out.contains(PASS));
    }
}

#[test]
fn empty_passphrase_is_refused_at_creation() {
    let err = VaultHeader::create_with_policy(
        &secret(""),
        KdfParams::testing_only_fast(),
        KdfPolicy::AllowWeakForTests,
    )
    .unwrap_err();
    assert_eq!(err.code(), "empty_passphrase");
}
