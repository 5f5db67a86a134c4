//! Vault cryptography costs: unlocking with the default Argon2id parameters (64 MiB, t = 3,
//! p = 4), and sealing / opening a 256-byte secret with AES-256-GCM.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kai_crypto::vault::{KdfParams, VaultHeader, open, seal};
use secrecy::SecretString;

fn unlock(c: &mut Criterion) {
    let passphrase = SecretString::from("a benchmark passphrase");
    let (header, _) = VaultHeader::create(&passphrase, KdfParams::default()).expect("create vault");
    let mut group = c.benchmark_group("vault");
    group.sample_size(10);
    group.bench_function("unlock_default_kdf", |b| {
        b.iter(|| header.unlock_with_passphrase(black_box(&passphrase)).expect("unlock"));
    });
    group.finish();
}

fn records(c: &mut Criterion) {
    let passphrase = SecretString::from("a benchmark passphrase");
    let params = KdfParams::testing_only_fast();
    let policy = kai_crypto::vault::KdfPolicy::AllowWeakForTests;
    let (header, key) =
        VaultHeader::create_with_policy(&passphrase, params, policy).expect("create vault");
    let vault_id = header.vault_id();
    let secret = [0x5a_u8; 256];
    let sealed = seal(&key, &vault_id, "secret/bench", 1, &secret).expect("seal");
    let mut group = c.benchmark_group("vault");
    group.bench_function("seal_256B", |b| {
        b.iter(|| seal(&key, &vault_id, "secret/bench", 1, black_box(&secret)).expect("seal"));
    });
    group.bench_function("open_256B", |b| {
        b.iter(|| open(&key, &vault_id, "secret/bench", 1, black_box(&sealed)).expect("open"));
    });
    group.finish();
}

criterion_group!(benches, unlock, records);
criterion_main!(benches);
