//! Vault and auth costs on the real SQLite store: unlock with the production KDF
//! (Argon2id 64 MiB, t=3, p=4), a secret read after unlock (policy check, storage read,
//! AES-256-GCM), access-token verification (signature only, and with the session lookup),
//! and a password login (Argon2id 19 MiB, t=2).

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use kai_core::policy::Role;
use kai_core::secret_policy::{SecretOp, Subject};
use kai_crypto::vault::{KdfParams, KdfPolicy};
use kai_runtime::Vault;
use kai_runtime::auth::Auth;
use kai_runtime::users::Users;
use secrecy::SecretString;

fn bench(c: &mut Criterion) {
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(kai_store::open(&format!("sqlite://{}", dir.path().join("kai.db").display()), 4))
        .unwrap();
    let vault = Arc::new(Vault::new(store.clone(), KdfPolicy::Enforce));
    let pass = SecretString::from("a benchmark passphrase".to_owned());
    rt.block_on(vault.create(&pass, KdfParams::default(), false)).unwrap();
    rt.block_on(vault.put(
        "secret",
        "openai/api-key",
        b"sk-0123456789abcdef0123456789abcdef",
        None,
        None,
        "bench",
    ))
    .unwrap();

    let mut group = c.benchmark_group("vault");
    group.sample_size(10);
    group.bench_function("unlock (Argon2id 64 MiB, t=3, p=4)", |b| {
        b.to_async(&rt).iter(|| async {
            vault.seal();
            vault.unlock_passphrase(&pass).await.unwrap();
        })
    });
    group.finish();
    let owner = Subject::User { id: "o".into(), role: Role::Owner };
    c.bench_function("vault secret read after unlock", |b| {
        b.to_async(&rt).iter(|| async {
            vault.read("secret", "openai/api-key", None, &owner, SecretOp::Read).await.unwrap()
        })
    });

    let users = Users::new(store.clone());
    let password = SecretString::from("a long benchmark password".to_owned());
    let user = rt.block_on(users.create("bench", &password, Role::Member)).unwrap();
    let auth = Auth::new(store.clone());
    auth.install_key(&[9; 32], "did:key:bench").unwrap();
    let pair = rt.block_on(auth.start_session(&user.id, Role::Member)).unwrap();
    c.bench_function("access token verify (signature, claims)", |b| {
        b.iter(|| auth.verify_signature(&pair.access_token).unwrap())
    });
    c.bench_function("access token verify (+ session lookup)", |b| {
        b.to_async(&rt).iter(|| async { auth.verify_access(&pair.access_token).await.unwrap() })
    });
    let mut group = c.benchmark_group("login");
    group.sample_size(10);
    group.bench_function("password login (Argon2id 19 MiB, t=2)", |b| {
        b.to_async(&rt).iter(|| async { users.authenticate("bench", &password).await.unwrap() })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
