//! Building the node on a data directory: store, bus, vault and the sealed/unsealed node.
//! Shared by `serve`, `init` and the offline commands.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kai_core::config::{BusBackend, Config};
use kai_crypto::vault::KdfPolicy;
use kai_runtime::bus::memory::MemoryBus;
use kai_runtime::node::Node;
use kai_runtime::{AuditSettings, EventBus, Vault};
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

/// The memory service's settings from `[memory]` (vector index under `<data>/memory`).
pub fn memory_settings(config: &Config, data: &DataDir) -> kai_runtime::memory::MemorySettings {
    use kai_core::config::{Quantization, VectorBackendName};
    use kai_runtime::memory::{MemorySettings, VectorBackend};
    let m = &config.memory;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let mut s = MemorySettings::new(data.root.join("memory"));
    s.embedding_provider = non_empty(&m.embedding_provider);
    s.embedding_model = non_empty(&m.embedding_model).or_else(|| {
        let entry = config.providers.iter().find(|p| p.name == m.embedding_provider)?;
        non_empty(&entry.embedding_model)
    });
    s.backend = match m.vector_backend {
        VectorBackendName::Hnsw => VectorBackend::Hnsw(match m.quantization {
            Quantization::F32 => kai_runtime::memory::Storage::F32,
            Quantization::Int8 => kai_runtime::memory::Storage::Int8,
            Quantization::Int8File => kai_runtime::memory::Storage::Int8FileRerank,
        }),
        VectorBackendName::Qdrant => VectorBackend::Qdrant {
            url: m.qdrant_url.clone(),
            collection: m.qdrant_collection.clone(),
            key_secret: non_empty(&m.qdrant_key_secret),
        },
    };
    s.sweep_interval = Duration::from_secs(m.sweep_interval_secs);
    s.recall_k = m.recall_k as usize;
    s.episodic = m.episodic;
    s.extraction_persona = non_empty(&m.extraction_persona);
    s
}

/// KDF policy: enforced, unless the test suite asks for fast vaults through
/// `KAI_TEST_INSECURE_FAST_KDF=1` (never set it for a real node).
pub fn kdf_policy() -> KdfPolicy {
    if std::env::var("KAI_TEST_INSECURE_FAST_KDF").as_deref() == Ok("1") {
        KdfPolicy::AllowWeakForTests
    } else {
        KdfPolicy::Enforce
    }
}

#[cfg(feature = "nats")]
async fn nats_bus(
    config: &Config,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> anyhow::Result<Arc<dyn EventBus>> {
    let bus = kai_runtime::bus::nats::NatsBus::connect(
        &config.bus.nats_url,
        &config.bus.nats_stream,
        config.bus.subscriber_queue,
        tracker.clone(),
        cancel.clone(),
    )
    .await?;
    Ok(Arc::new(bus))
}

#[cfg(not(feature = "nats"))]
async fn nats_bus(
    _: &Config,
    _: &TaskTracker,
    _: &CancellationToken,
) -> anyhow::Result<Arc<dyn EventBus>> {
    anyhow::bail!("bus.backend = \"nats\" needs a kai built with the `nats` feature (the default)")
}

/// A node (sealed) over `data`, with its tasks on `tracker`.
pub async fn build(
    config: &Config,
    data: &DataDir,
    settings: watch::Receiver<AuditSettings>,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> anyhow::Result<Arc<Node>> {
    let store = open_store(config, data).await?;
    let bus: Arc<dyn EventBus> = match config.bus.backend {
        BusBackend::Memory => Arc::new(MemoryBus::new(
            store.clone(),
            config.bus.subscriber_queue,
            tracker.clone(),
            cancel.clone(),
        )),
        BusBackend::Nats => nats_bus(config, tracker, cancel).await?,
    };
    std::fs::create_dir_all(data.witness_file().parent().unwrap_or(&data.root))?;
    let vault = Arc::new(Vault::new(store.clone(), kdf_policy()));
    Ok(Arc::new(Node::new(
        store,
        bus,
        vault,
        settings,
        Some(data.witness_file()),
        tracker.clone(),
        cancel.clone(),
    )))
}

/// The unlock key for unattended start: `KAI_VAULT_KEY`, else `<data>/vault.key`.
pub fn unattended_key(data: &DataDir) -> anyhow::Result<Option<kai_crypto::vault::UnlockKey>> {
    let text = match std::env::var("KAI_VAULT_KEY") {
        Ok(t) => Some(t),
        Err(_) => match std::fs::read_to_string(data.vault_key_file()) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        },
    };
    text.map(|t| {
        kai_crypto::vault::UnlockKey::from_text(t.trim())
            .context("the vault key (KAI_VAULT_KEY or vault.key) is not an unlock key")
    })
    .transpose()
}
