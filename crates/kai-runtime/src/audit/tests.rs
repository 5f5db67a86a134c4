use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use kai_crypto::audit::Verifier;
use kai_store::{AuditStore, MetaStore, Store, StoreError, StoreResult};

use super::*;

/// The real SQLite store with a failpoint on audit commits.
struct Failpoint {
    inner: Arc<dyn Store>,
    fail: AtomicBool,
}

#[async_trait]
impl AuditStore for Failpoint {
    async fn append_audit(
        &self,
        e: &[Entry],
        c: Option<&Checkpoint>,
        f: Option<&str>,
    ) -> StoreResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("failpoint: disk full".into()));
        }
        self.inner.append_audit(e, c, f).await
    }
    async fn audit_head(&self) -> StoreResult<Option<Entry>> {
        self.inner.audit_head().await
    }
    async fn audit_range(&self, from: u64, limit: u32) -> StoreResult<Vec<Entry>> {
        self.inner.audit_range(from, limit).await
    }
    async fn audit_tail(&self, n: u32) -> StoreResult<Vec<Entry>> {
        self.inner.audit_tail(n).await
    }
    async fn audit_checkpoints(&self) -> StoreResult<Vec<Checkpoint>> {
        self.inner.audit_checkpoints().await
    }
    async fn audit_count(&self) -> StoreResult<u64> {
        self.inner.audit_count().await
    }
}
#[async_trait]
impl MetaStore for Failpoint {
    async fn get_meta(&self, k: &str) -> StoreResult<Option<String>> {
        self.inner.get_meta(k).await
    }
    async fn put_meta(&self, k: &str, v: &str) -> StoreResult<()> {
        self.inner.put_meta(k, v).await
    }
}
struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    tracker: TaskTracker,
    cancel: CancellationToken,
    settings: watch::Sender<AuditSettings>,
}

impl Fixture {
    fn new(every: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("kai.db").display());
        let (settings, _) = watch::channel(AuditSettings {
            checkpoint_every: every,
            checkpoint_interval: Duration::from_secs(3600),
        });
        Self {
            _dir: dir,
            url,
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            settings,
        }
    }

    async fn store(&self) -> Arc<dyn Store> {
        kai_store::open(&self.url, 4).await.unwrap()
    }

    async fn open(
        &self,
        store: Arc<dyn AuditBackend>,
        id: &Identity,
    ) -> Result<AuditLog, AuditError> {
        AuditLog::open(
            store,
            id.clone(),
            self.settings.subscribe(),
            None,
            &self.tracker,
            self.cancel.clone(),
        )
        .await
    }

    async fn shutdown(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn verify(
    store: &dyn AuditBackend,
    genesis: &Identity,
) -> Result<kai_crypto::audit::VerifyReport, kai_crypto::audit::VerifyError> {
    let mut v =
        Verifier::new(store.audit_checkpoints().await.unwrap(), Some(genesis.did().clone()));
    v.feed(&store.audit_range(1, u32::MAX).await.unwrap())?;
    v.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_form_one_verifiable_chain() {
    let fx = Fixture::new(16);
    let store = fx.store().await;
    let id = Identity::generate();
    let log = fx.open(store.clone(), &id).await.unwrap();
    assert_eq!(log.len(), 1, "genesis written");
    let mut handles = Vec::new();
    for i in 0..200 {
        let log = log.clone();
        handles.push(tokio::spawn(async move {
            log.record(
                "user:owner",
                "event.publish",
                &format!("e{i}"),
                Outcome::Success,
                serde_json::json!({"i": i}),
            )
            .await
            .unwrap()
        }));
    }
    let mut seqs: Vec<u64> =
        futures::future::join_all(handles).await.into_iter().map(|r| r.unwrap()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=201).collect::<Vec<_>>());
    let report = verify(store.as_ref(), &id).await.unwrap();
    assert_eq!(report.entries, 201);
    // Group commit: a checkpoint closes any batch that brings 16 or more entries since the last,
    // so fewer than 16 are left after the newest one. (How the 200 appends fall into batches
    // depends on timing: the last batch may bring fewer than 16 and wait for the seal.)
    let cps = store.audit_checkpoints().await.unwrap();
    let newest = cps.last().map_or(0, |c| c.size);
    assert!(report.checkpoints >= 1 && 201 - newest < 16, "{cps:?}");
    fx.shutdown().await;
    // Shutdown seals the tail with a final checkpoint.
    assert_eq!(store.audit_checkpoints().await.unwrap().last().unwrap().size, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_commit_fails_the_operation_and_the_chain_recovers() {
    let fx = Fixture::new(1000);
    let store = Arc::new(Failpoint { inner: fx.store().await, fail: AtomicBool::new(false) });
    let id = Identity::generate();
    let log = fx.open(store.clone(), &id).await.unwrap();
    log.record("a", "x.one", "t", Outcome::Success, serde_json::Value::Null).await.unwrap();
    store.fail.store(true, Ordering::SeqCst);
    let err =
        log.record("a", "x.two", "t", Outcome::Success, serde_json::Value::Null).await.unwrap_err();
    assert_eq!(err.code(), "audit_unavailable");
    assert_eq!(store.audit_count().await.unwrap(), 2);
    store.fail.store(false, Ordering::SeqCst);
    assert_eq!(
        log.record("a", "x.three", "t", Outcome::Success, serde_json::Value::Null).await.unwrap(),
        3
    );
    verify(store.as_ref(), &id).await.unwrap();
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_continues_the_chain_from_the_stored_frontier() {
    let fx = Fixture::new(7);
    let id = Identity::generate();
    {
        let store = fx.store().await;
        let log = fx.open(store.clone(), &id).await.unwrap();
        for i in 0..18 {
            log.record("a", "x", &i.to_string(), Outcome::Success, serde_json::Value::Null)
                .await
                .unwrap();
        }
    }
    let store = fx.store().await;
    // As after a crash between frontier writes: the stored frontier covers only entries 1-10.
    let mut older = MerkleAccumulator::new();
    store.audit_range(1, 10).await.unwrap().iter().for_each(|e| older.push(&e.hash));
    store.put_meta(AUDIT_FRONTIER_KEY, &older.to_text()).await.unwrap();
    let log = fx.open(store.clone(), &id).await.unwrap();
    assert_eq!(log.len(), 19, "entries 11 to 19 come from the log");
    log.record("a", "x", "after", Outcome::Success, serde_json::Value::Null).await.unwrap();
    log.checkpoint().await.unwrap().unwrap();
    assert_eq!(verify(store.as_ref(), &id).await.unwrap().entries, 20);
    // A lost frontier is rebuilt from the entries.
    store.put_meta(AUDIT_FRONTIER_KEY, "garbage").await.unwrap();
    let again = fx.open(store.clone(), &id).await.unwrap();
    again.record("a", "x", "rebuilt", Outcome::Success, serde_json::Value::Null).await.unwrap();
    again.checkpoint().await.unwrap().unwrap();
    assert_eq!(verify(store.as_ref(), &id).await.unwrap().entries, 21);
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_switches_signer_and_old_entries_stay_verifiable() {
    let fx = Fixture::new(1000);
    let store = fx.store().await;
    let old = Identity::generate();
    let log = fx.open(store.clone(), &old).await.unwrap();
    log.record("a", "before", "t", Outcome::Success, serde_json::Value::Null).await.unwrap();
    let new = Identity::generate();
    let proof = new.sign(&kai_crypto::audit::rotation_proof_message(old.did().as_str()));
    log.rotate("user:owner", new.clone(), proof).await.unwrap();
    log.record("a", "after", "t", Outcome::Success, serde_json::Value::Null).await.unwrap();
    let tail = store.audit_tail(1).await.unwrap();
    assert_eq!(tail[0].signer, new.did().as_str());
    let report = verify(store.as_ref(), &old).await.unwrap();
    assert_eq!(report.signers, vec![old.did().to_string(), new.did().to_string()]);
    // The stored log now expects the new key: opening with the old one is refused.
    let err = fx.open(store.clone(), &old).await.err().unwrap();
    assert_eq!(err.code(), "identity_mismatch");
    fx.open(store.clone(), &new).await.unwrap();
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn witness_file_holds_the_latest_checkpoint() {
    let fx = Fixture::new(3);
    let store = fx.store().await;
    let id = Identity::generate();
    let witness = fx._dir.path().join("checkpoint.json");
    let log = AuditLog::open(
        store.clone(),
        id.clone(),
        fx.settings.subscribe(),
        Some(witness.clone()),
        &fx.tracker,
        fx.cancel.clone(),
    )
    .await
    .unwrap();
    for i in 0..5 {
        log.record("a", "x", &i.to_string(), Outcome::Success, serde_json::Value::Null)
            .await
            .unwrap();
    }
    let cp: Checkpoint = serde_json::from_slice(&std::fs::read(&witness).unwrap()).unwrap();
    assert_eq!(cp.size, 6);
    assert!(cp.signature_valid());
    fx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_policy_changes_live() {
    let fx = Fixture::new(1000);
    let store = fx.store().await;
    let log = fx.open(store.clone(), &Identity::generate()).await.unwrap();
    for _ in 0..5 {
        log.record("a", "x", "t", Outcome::Success, serde_json::Value::Null).await.unwrap();
    }
    assert!(store.audit_checkpoints().await.unwrap().is_empty());
    fx.settings.send_modify(|s| s.checkpoint_every = 2);
    for _ in 0..2 {
        log.record("a", "x", "t", Outcome::Success, serde_json::Value::Null).await.unwrap();
    }
    assert!(!store.audit_checkpoints().await.unwrap().is_empty());
    fx.shutdown().await;
}
