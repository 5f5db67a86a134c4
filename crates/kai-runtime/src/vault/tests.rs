use std::time::Duration;

use kai_core::policy::Role;
use kai_core::secret_policy::{Grant, SecretOp, SecretPolicy, Subject};
use kai_crypto::vault::{KdfParams, KdfPolicy, SealedRecord, VaultHeader, seal};
use secrecy::SecretString;

use super::items::SECRET;
use super::*;

fn pass(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn owner() -> Subject {
    Subject::User { id: "owner".into(), role: Role::Owner }
}

async fn fixture() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = kai_store::open(&format!("sqlite://{}", dir.path().join("kai.db").display()), 4)
        .await
        .unwrap();
    (dir, store)
}

async fn vault(store: &Arc<dyn Store>) -> Vault {
    Vault::new(store.clone(), KdfPolicy::AllowWeakForTests)
}

#[tokio::test]
async fn lifecycle_put_read_list_history_delete() {
    let (_d, store) = fixture().await;
    let v = vault(&store).await;
    assert_eq!(v.status().await.unwrap().state, VaultState::Uninitialized);
    assert!(matches!(v.unlock_passphrase(&pass("x")).await, Err(VaultError::NotInitialized)));
    v.create(&pass("correct horse"), KdfParams::testing_only_fast(), false).await.unwrap();
    assert_eq!(v.status().await.unwrap().state, VaultState::Unsealed);
    v.put(SECRET, "openai/api-key", b"sk-1", None, None, "user:owner").await.unwrap();
    let meta = v.put(SECRET, "openai/api-key", b"sk-2", None, None, "user:owner").await.unwrap();
    assert_eq!(meta.version, 2);
    let (value, _) =
        v.read(SECRET, "openai/api-key", None, &owner(), SecretOp::Read).await.unwrap();
    assert_eq!(value.as_slice(), b"sk-2");
    let (old, _) =
        v.read(SECRET, "openai/api-key", Some(1), &owner(), SecretOp::Read).await.unwrap();
    assert_eq!(old.as_slice(), b"sk-1");
    assert_eq!(
        v.list(SECRET).await.unwrap().iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        ["openai/api-key"]
    );
    assert_eq!(v.history(SECRET, "openai/api-key").await.unwrap().len(), 2);
    // Sealed: nothing readable; unlocking again restores the name index.
    v.seal();
    assert!(matches!(
        v.read(SECRET, "openai/api-key", None, &owner(), SecretOp::Read).await,
        Err(VaultError::Sealed)
    ));
    assert!(matches!(v.list(SECRET).await, Err(VaultError::Sealed)));
    v.unlock_passphrase(&pass("correct horse")).await.unwrap();
    assert_eq!(v.list(SECRET).await.unwrap().len(), 1);
    v.delete(SECRET, "openai/api-key").await.unwrap();
    assert!(matches!(
        v.read(SECRET, "openai/api-key", None, &owner(), SecretOp::Read).await,
        Err(VaultError::NotFound(_))
    ));
    assert!(matches!(
        v.put(SECRET, "../etc", b"x", None, None, "u").await,
        Err(VaultError::Invalid(_))
    ));
}

#[tokio::test]
async fn wrong_passphrase_is_clear_changes_nothing_and_is_throttled() {
    let (_d, store) = fixture().await;
    let v = vault(&store).await;
    v.create(&pass("right"), KdfParams::testing_only_fast(), false).await.unwrap();
    v.seal();
    let header_before = store.vault_header().await.unwrap();
    for _ in 0..5 {
        let err = v.unlock_passphrase(&pass("wrong")).await.unwrap_err();
        assert_eq!(err.code(), "wrong_passphrase");
        assert!(!err.to_string().contains("wrong\""), "the guess is not echoed");
    }
    assert!(!v.is_unsealed());
    assert_eq!(store.vault_header().await.unwrap(), header_before, "no partial state");
    let err = v.unlock_passphrase(&pass("right")).await.unwrap_err();
    assert!(matches!(err, VaultError::TooManyAttempts(s) if s >= 1), "{err}");
}

#[tokio::test]
async fn downgraded_kdf_parameters_are_refused() {
    let (_d, store) = fixture().await;
    let v = Vault::new(store.clone(), KdfPolicy::Enforce);
    v.create(&pass("right"), KdfParams::default(), false).await.unwrap();
    v.seal();
    let mut json: serde_json::Value =
        serde_json::from_str(&store.vault_header().await.unwrap().unwrap()).unwrap();
    let kdf = json.get_mut("kdf").unwrap();
    let text = kdf.to_string();
    assert!(text.contains("65536"), "{text}");
    let lowered: serde_json::Value = serde_json::from_str(&text.replace("65536", "8192")).unwrap();
    *kdf = lowered;
    store.put_vault_header(&json.to_string(), 1).await.unwrap();
    let err = v.unlock_passphrase(&pass("right")).await.unwrap_err();
    assert_eq!(err.code(), "weak_kdf_params", "{err}");
}

#[tokio::test]
async fn ttl_expiry_is_enforced_on_read() {
    let (_d, store) = fixture().await;
    let v = vault(&store).await;
    v.create(&pass("p"), KdfParams::testing_only_fast(), false).await.unwrap();
    v.put(SECRET, "short", b"v", Some(Duration::from_micros(1)), None, "u").await.unwrap();
    v.put(SECRET, "long", b"v", Some(Duration::from_secs(3600)), None, "u").await.unwrap();
    assert!(matches!(
        v.read(SECRET, "short", None, &owner(), SecretOp::Read).await,
        Err(VaultError::Expired)
    ));
    assert!(v.read(SECRET, "long", None, &owner(), SecretOp::Read).await.is_ok());
    assert!(v.history(SECRET, "short").await.unwrap()[0].expired);
}

#[tokio::test]
async fn policies_keep_agents_apart_and_use_is_not_read() {
    let (_d, store) = fixture().await;
    let v = vault(&store).await;
    v.create(&pass("p"), KdfParams::testing_only_fast(), false).await.unwrap();
    let for_a = SecretPolicy {
        use_: Grant { agents: vec!["kBridge:a".into()], ..Default::default() },
        ..Default::default()
    };
    v.put(SECRET, "a-key", b"secret-a", None, Some(for_a), "u").await.unwrap();
    let a = Subject::Agent { id: "kBridge:a".into() };
    let b = Subject::Agent { id: "kBridge:b".into() };
    assert!(v.read(SECRET, "a-key", None, &a, SecretOp::Use).await.is_ok());
    assert!(matches!(
        v.read(SECRET, "a-key", None, &a, SecretOp::Read).await,
        Err(VaultError::Forbidden)
    ));
    assert!(matches!(
        v.read(SECRET, "a-key", None, &b, SecretOp::Use).await,
        Err(VaultError::Forbidden)
    ));
    let viewer = Subject::User { id: "v".into(), role: Role::Viewer };
    assert!(matches!(
        v.read(SECRET, "a-key", None, &viewer, SecretOp::Read).await,
        Err(VaultError::Forbidden)
    ));
}

#[tokio::test]
async fn encrypt_decrypt_under_named_keys() {
    let (_d, store) = fixture().await;
    let v = vault(&store).await;
    v.create(&pass("p"), KdfParams::testing_only_fast(), false).await.unwrap();
    let ct = v.encrypt("backups", b"hello", "u").await.unwrap();
    assert_eq!(v.decrypt("backups", &ct).await.unwrap().as_slice(), b"hello");
    v.encrypt("other", b"x", "u").await.unwrap();
    assert_eq!(v.decrypt("other", &ct).await.unwrap_err().code(), "integrity_error");
    assert!(matches!(v.decrypt("missing", &ct).await, Err(VaultError::NotFound(_))));
}

async fn fill(v: &Vault, n: usize) {
    for i in 0..n {
        v.put(SECRET, &format!("s{i}"), format!("value-{i}").as_bytes(), None, None, "u")
            .await
            .unwrap();
        if i % 3 == 0 {
            v.put(SECRET, &format!("s{i}"), format!("value-{i}-v2").as_bytes(), None, None, "u")
                .await
                .unwrap();
        }
    }
}

async fn check_all(v: &Vault, n: usize) {
    for i in 0..n {
        let (value, _) =
            v.read(SECRET, &format!("s{i}"), None, &owner(), SecretOp::Read).await.unwrap();
        let want = if i % 3 == 0 { format!("value-{i}-v2") } else { format!("value-{i}") };
        assert_eq!(value.as_slice(), want.as_bytes());
    }
}

#[tokio::test]
async fn rekey_round_trip_and_passphrase_change() {
    let (_d, store) = fixture().await;
    let v = vault(&store).await;
    let unlock_key =
        v.create(&pass("p1"), KdfParams::testing_only_fast(), true).await.unwrap().unwrap();
    fill(&v, 30).await;
    assert_eq!(v.rekey(&pass("p1"), Some(&unlock_key)).await.unwrap(), 2);
    check_all(&v, 30).await;
    assert!(store.vault_versions_before(2, 10).await.unwrap().is_empty());
    v.seal();
    v.unlock_key(&unlock_key).await.unwrap();
    check_all(&v, 30).await;
    v.change_passphrase(&pass("p1"), &pass("p2")).await.unwrap();
    v.seal();
    assert!(matches!(v.unlock_passphrase(&pass("p1")).await, Err(VaultError::WrongCredential)));
    v.unlock_passphrase(&pass("p2")).await.unwrap();
    check_all(&v, 30).await;
    assert!(
        matches!(v.rekey(&pass("p2"), None).await, Err(VaultError::Crypto(_))),
        "the key-file slot needs its key"
    );
}

/// A crash at any point of a rekey leaves a vault that opens (with the old or new key) and
/// reads every secret: simulated by running the protocol by hand and stopping at each step.
#[tokio::test]
async fn interrupted_rekey_opens_and_finishes_at_every_crash_point() {
    for crash_after in 0..4usize {
        let (_d, store) = fixture().await;
        let v = vault(&store).await;
        v.create(&pass("p"), KdfParams::testing_only_fast(), false).await.unwrap();
        fill(&v, 12).await;
        v.seal();
        let mut header =
            VaultHeader::from_json(&store.vault_header().await.unwrap().unwrap()).unwrap();
        header.set_kdf_policy(KdfPolicy::AllowWeakForTests);
        let keyring = header.unlock_with_passphrase(&pass("p")).unwrap();
        let next = header.begin_rekey(keyring.current(), &pass("p"), None).unwrap();
        if crash_after >= 1 {
            store.put_vault_header(&header.to_json(), 1).await.unwrap();
        }
        if crash_after >= 2 {
            // Some records re-sealed, then the crash.
            let old = store.vault_versions_before(2, 5).await.unwrap();
            let vid = header.vault_id();
            let resealed: Vec<_> = old
                .into_iter()
                .map(|mut r| {
                    let plain = keyring
                        .open(
                            &vid,
                            &r.item_id,
                            r.version as u64,
                            &SealedRecord::from_bytes(&r.sealed).unwrap(),
                        )
                        .unwrap();
                    let s = seal(&next, &vid, &r.item_id, r.version as u64, &plain).unwrap();
                    r.generation = 2;
                    r.sealed = s.to_bytes();
                    r
                })
                .collect();
            store.reseal_vault(&resealed, &[]).await.unwrap();
        }
        if crash_after >= 3 {
            let mut committed = header.clone();
            // Commit only after everything is re-sealed: finish the job by hand first.
            let rest = store.vault_versions_before(2, 1000).await.unwrap();
            let vid = header.vault_id();
            let resealed: Vec<_> = rest
                .into_iter()
                .map(|mut r| {
                    let plain = keyring
                        .open(
                            &vid,
                            &r.item_id,
                            r.version as u64,
                            &SealedRecord::from_bytes(&r.sealed).unwrap(),
                        )
                        .unwrap();
                    r.sealed =
                        seal(&next, &vid, &r.item_id, r.version as u64, &plain).unwrap().to_bytes();
                    r.generation = 2;
                    r
                })
                .collect();
            // Names too, as the real protocol does before committing.
            let items: Vec<_> = store
                .all_vault_items()
                .await
                .unwrap()
                .into_iter()
                .map(|mut i| {
                    let record = format!("{}#name", i.id);
                    let name = keyring
                        .open(&vid, &record, 0, &SealedRecord::from_bytes(&i.sealed_name).unwrap())
                        .unwrap();
                    i.sealed_name = seal(&next, &vid, &record, 0, &name).unwrap().to_bytes();
                    i.name_hmac =
                        next.name_hmac_key().name_hmac(std::str::from_utf8(&name).unwrap());
                    i
                })
                .collect();
            store.reseal_vault(&resealed, &items).await.unwrap();
            committed.commit_rekey(&next).unwrap();
            store.put_vault_header(&committed.to_json(), 2).await.unwrap();
        }
        // "Restart": a fresh service unlocks, finishes any pending rekey, reads everything.
        let again = vault(&store).await;
        again
            .unlock_passphrase(&pass("p"))
            .await
            .unwrap_or_else(|e| panic!("crash point {crash_after}: {e}"));
        check_all(&again, 12).await;
        let status = again.status().await.unwrap();
        assert!(!status.rekey_pending, "crash point {crash_after}");
    }
}

/// An agent allowed to *use* a provider key but not read it: the host puts the key into the
/// outgoing request to a (fake, real-HTTP) OpenAI server; the agent itself gets 403-equivalent.
#[tokio::test]
async fn host_injects_a_key_the_agent_cannot_read() {
    use kai_llm::fake::FakeServer;
    use kai_llm::{ChatRequest, Message};
    use kai_llm::{ProviderConfig, ProviderKind, build_provider};

    let (_d, store) = fixture().await;
    let v = vault(&store).await;
    v.create(&pass("p"), KdfParams::testing_only_fast(), false).await.unwrap();
    let policy = SecretPolicy {
        use_: Grant { agents: vec!["kBridge:openai".into()], ..Default::default() },
        ..Default::default()
    };
    v.put(SECRET, "openai/api-key", b"sk-canary-0123", None, Some(policy), "user:owner")
        .await
        .unwrap();

    let agent = Subject::Agent { id: "kBridge:openai".into() };
    assert!(matches!(
        v.read(SECRET, "openai/api-key", None, &agent, SecretOp::Read).await,
        Err(VaultError::Forbidden)
    ));

    let server = FakeServer::start(ProviderKind::OpenAi).await.unwrap();
    server.require_key(Some("sk-canary-0123"));
    let mut config = ProviderConfig::new(ProviderKind::OpenAi);
    config.base_url = Some(server.base_url());
    config.chat_model = Some("gpt-test".into());
    let provider = v
        .use_secret(SECRET, "openai/api-key", &agent, |key| build_provider(&config, Some(key)))
        .await
        .unwrap()
        .unwrap();
    let reply = provider.chat(ChatRequest::new(vec![Message::user("hello")])).await.unwrap();
    assert!(!reply.message.content.is_empty());
    let sent = server.requests();
    let auth = sent[0].headers.get("authorization").unwrap().to_str().unwrap();
    assert_eq!(auth, "Bearer sk-canary-0123", "the host injected the key into the request");
    // Another agent may not even use it.
    let other = Subject::Agent { id: "kBridge:other".into() };
    assert!(matches!(
        v.use_secret(SECRET, "openai/api-key", &other, |_| ()).await,
        Err(VaultError::Forbidden)
    ));
}
