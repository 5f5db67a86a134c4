//! Opening the pieces of a node on a data directory: store, identity, audit log. Shared by
//! `serve`, `init` and the offline commands.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kai_core::config::Config;
use kai_crypto::Identity;
use kai_runtime::{AuditLog, AuditSettings};
use kai_store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::paths::DataDir;

/// The storage URL: `storage.url`, or SQLite in the data directory.
pub fn storage_url(config: &Config, data: &DataDir) -> String {
    if config.storage.url.is_empty() { data.db_url() } else { config.storage.url.clone() }
}

/// Opens (and migrates) the store.
pub async fn open_store(config: &Config, data: &DataDir) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(&data.root)
        .with_context(|| format!("cannot create the data directory {}", data.root.display()))?;
    let url = storage_url(config, data);
    kai_store::open(&url, config.storage.max_connections)
        .await
        .with_context(|| format!("cannot open storage at {}", kai_store::redact_url(&url)))
}

/// Audit policy from the configuration.
pub fn audit_settings(config: &Config) -> AuditSettings {
    AuditSettings {
        checkpoint_every: config.audit.checkpoint_every,
        checkpoint_interval: Duration::from_secs(config.audit.checkpoint_interval_secs),
    }
}

/// Loads the identity the audit log expects next (promoting a staged rotation if needed).
pub async fn load_identity(store: &dyn Store, data: &DataDir) -> anyhow::Result<Identity> {
    let head = store.audit_head().await.context("cannot read the audit log")?;
    let expected = head.as_ref().map(|h| kai_runtime::audit::current_signer(h).to_owned());
    let dir = data.identity_dir();
    Ok(tokio::task::spawn_blocking(move || kai_runtime::identity::load(&dir, expected.as_deref()))
        .await??)
}

/// Store, identity and a running audit writer.
pub struct Core {
    pub store: Arc<dyn Store>,
    pub identity: Identity,
    pub audit: AuditLog,
}

/// Opens store, identity and audit log with their tasks on `tracker`.
pub async fn open_core(
    config: &Config,
    data: &DataDir,
    settings: watch::Receiver<AuditSettings>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> anyhow::Result<Core> {
    let store = open_store(config, data).await?;
    let identity = load_identity(store.as_ref(), data).await?;
    std::fs::create_dir_all(data.witness_file().parent().unwrap_or(&data.root))?;
    let audit = AuditLog::open(
        store.clone(),
        identity.clone(),
        settings,
        Some(data.witness_file()),
        tracker,
        cancel,
    )
    .await
    .context("cannot open the audit log")?;
    Ok(Core { store, identity, audit })
}
