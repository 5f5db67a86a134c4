//! Test fixtures for this crate's unit tests: a temporary SQLite store, an unlocked vault (fast
//! KDF), a running audit log and the in-process bus, torn down on drop of the token.

use std::sync::Arc;
use std::time::Duration;

use kai_crypto::Identity;
use kai_crypto::vault::{KdfParams, KdfPolicy};
use kai_store::Store;
use secrecy::SecretString;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::memory::MemoryBus;
use crate::{AuditLog, AuditSettings, EventBus, Vault};

pub(crate) struct Fixture {
    pub store: Arc<dyn Store>,
    pub vault: Arc<Vault>,
    pub audit: AuditLog,
    pub bus: Arc<dyn EventBus>,
    pub tracker: TaskTracker,
    pub cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("kai.db").display());
        let store = kai_store::open(&url, 4).await.unwrap();
        let vault = Arc::new(Vault::new(store.clone(), KdfPolicy::AllowWeakForTests));
        vault
            .create(
                &SecretString::from("fixture passphrase".to_owned()),
                KdfParams::testing_only_fast(),
                false,
            )
            .await
            .unwrap();
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let (_tx, settings) = watch::channel(AuditSettings {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(3600),
        });
        let audit = AuditLog::open(
            store.clone(),
            Identity::generate(),
            settings,
            None,
            &tracker,
            cancel.clone(),
        )
        .await
        .unwrap();
        let bus: Arc<dyn EventBus> =
            Arc::new(MemoryBus::new(store.clone(), 1024, tracker.clone(), cancel.clone()));
        Self { store, vault, audit, bus, tracker, cancel, _dir: dir }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
